"""The array backend: NumPy by default, CuPy on request. The only module that imports CuPy.

Every other module is written once against an array module `xp` (numpy or cupy) that it is
handed, or that it reads off its input arrays with `array_module`, so the same lines run on
the CPU and on a GPU.

Choosing the backend:
    from avb_np import backend
    xp = backend.use("cupy")        # from code; raises BackendError if CuPy or a GPU is missing
    AVB_BACKEND=cupy python ...     # from the environment; read the first time `current()` runs
"""
import os
import sys

import numpy as np

BACKENDS = ("numpy", "cupy")
CUPY_HELP = ("Install the CuPy wheel that matches your CUDA toolkit: `pip install cupy-cuda12x` "
             "(CUDA 12) or `pip install cupy-cuda13x` (CUDA 13), or use the 'numpy' backend.")

_xp = None  # the selected module; None until `use` or `current` runs


class BackendError(RuntimeError):
    """The requested backend cannot be used here (unknown name, CuPy missing, no GPU)."""


def load(name):
    """Return the array module called `name` ('numpy' or 'cupy') without selecting it."""
    if name not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {name!r}. "
                           "Pass it to avb_np.backend.use() or set AVB_BACKEND.")
    if name == "numpy":
        return np
    try:
        import cupy
    except ImportError as err:  # not installed, or installed for another CUDA version
        raise BackendError(f"backend 'cupy' was asked for but CuPy cannot be imported ({err}). "
                           + CUPY_HELP) from err
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise BackendError(f"backend 'cupy' was asked for but no GPU is visible ({err}). "
                           "Check `nvidia-smi`, or use the 'numpy' backend.") from err
    if n_gpus == 0:
        raise BackendError("backend 'cupy' was asked for but no GPU is visible. "
                           "Check `nvidia-smi`, or use the 'numpy' backend.")
    return cupy


def use(name):
    """Select the backend for everything created from now on and return its module."""
    global _xp
    _xp = load(name)
    return _xp


def current():
    """The selected array module; on first use, taken from AVB_BACKEND (default 'numpy')."""
    if _xp is None:
        use(os.environ.get("AVB_BACKEND", "numpy").strip().lower() or "numpy")
    return _xp


def module_name(xp):
    """'numpy' or 'cupy' for an array module."""
    return xp.__name__.split(".")[0]


def array_module(*arrays):
    """The module (numpy or cupy) that owns `arrays`; Python scalars and None are ignored.

    Raises TypeError when arrays from both backends are mixed, which otherwise fails deep
    inside CuPy with an unhelpful message.
    """
    found = {}                                   # backend name -> position of its first array
    for i, a in enumerate(arrays):
        if a is None or isinstance(a, (int, float)):
            continue
        if isinstance(a, (np.ndarray, np.generic)):
            found.setdefault("numpy", i)
            continue
        cupy = sys.modules.get("cupy")
        if cupy is not None and isinstance(a, cupy.ndarray):
            found.setdefault("cupy", i)
            continue
        raise TypeError(f"expected a numpy or cupy array, got {type(a).__name__} (argument {i})")
    if len(found) > 1:
        raise TypeError(f"numpy and cupy arrays were mixed in one call (argument {found['numpy']} is "
                        f"numpy, argument {found['cupy']} is cupy); move them to one backend first "
                        "with avb_np.backend.to_device(array, xp) or to_host(array)")
    return sys.modules["cupy"] if "cupy" in found else np


def to_host(a):
    """A NumPy copy of `a` (for printing, plotting, saving); NumPy arrays pass through."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def to_device(a, xp):
    """`a` as an array of module `xp` (host arrays are copied to the GPU for cupy)."""
    return xp.asarray(a)


def host_params(params):
    """A float64 NumPy copy of a parameter dict {name: array} (for evaluation on the host)."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict {{parameter name: array}}, got {type(params).__name__}")
    return {k: to_host(v).astype(np.float64) for k, v in params.items()}
