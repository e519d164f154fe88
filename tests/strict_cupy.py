"""A strict stand-in for CuPy that runs on the CPU, so the GPU path is tested without a GPU.

Its arrays (`ndarray`) wrap NumPy arrays and compute with NumPy, but they fail the way CuPy's
fail where NumPy would quietly succeed:

    np.asarray(a), np.array(a), a.__array__()        TypeError (CuPy: "Implicit conversion to a
                                                     NumPy array is not allowed")
    a + host, host * a, xp.where(c, host, a), ...    TypeError (CuPy: "Unsupported type numpy.ndarray")
    np.f(a) for a function the stand-in lacks        TypeError (no implementation found)

and they count every crossing between host and device, each with the line that made it:

    to device   xp.asarray / xp.array of host data (what backend.to_device does), and the implicit
                ones CuPy allows: a host array or list as an index, a host value written into an array
    to host     a.get() / xp.asnumpy (what backend.to_host does), and the implicit ones CuPy
                allows, each a sync with the GPU: float(a), int(a), bool(a), a.item(), a.tolist(),
                f"{a:.3f}"

Python scalars and NumPy scalars (np.float32(2)) mix freely, as in CuPy. Random numbers come
from NumPy's RandomState, so they differ from CuPy's (which also differ from NumPy's).

Use:    with strict_cupy.installed(): ...     `import cupy` gives the stand-in (named "cupy"),
        so backend.load("cupy"), array_module and validate see a device backend;
        crossings(), count("host"), report() and reset() read and clear the log.
The functions and methods are the subset of CuPy's that avb_np uses; tests/test_device_path.py
checks that each exists in CuPy.
"""
import contextlib
import sys
import traceback
import types
from collections import namedtuple
from pathlib import Path

import numpy as np

Crossing = namedtuple("Crossing", "to how where")   # to: "device" or "host"; how: "asarray", "float", ...
IMPLICIT = {"index", "setitem", "float", "int", "bool", "item", "tolist", "format"}
_log = []
_SKIP = ("strict_cupy.py", "backend.py")   # where a crossing is asked for, not where it is made


def _where():
    """file:line of the code that asked for the crossing (outside this file, backend.py, NumPy)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.endswith(_SKIP) and "/numpy/" not in frame.filename.replace("\\", "/"):
            return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
    return "?"


def _record(to, how):
    _log.append(Crossing(to, how, _where()))


def reset():
    """Forget the crossings so far."""
    _log.clear()


def crossings(to=None):
    """The crossings since the last reset (to "host" or "device" only, if given)."""
    return [c for c in _log if to is None or c.to == to]


def count(to=None):
    return len(crossings(to))


def report():
    """One line per crossing, for an assertion's message."""
    return "\n".join(f"to {c.to:<6} by {c.how:<8} at {c.where}" for c in _log) or "no crossings"


# ----------------------------------------------------------------------------- the array

def _host_error(what):
    return TypeError(f"Unsupported type {what}: a NumPy array cannot enter a device operation; "
                     "move it with avb_np.backend.to_device(array, xp) first")


def _unwrap(obj, where):
    """The NumPy arrays inside `obj` (nested tuples, lists, dicts); a host NumPy array is refused."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise _host_error(f"numpy.ndarray (in {where})")
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """NumPy results as device arrays; a NumPy scalar becomes a 0-d array, as CuPy returns."""
    if isinstance(obj, np.ndarray):
        return ndarray(obj)
    if isinstance(obj, np.generic):
        return ndarray(np.asarray(obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_wrap(o) for o in obj)
    return obj


def _has_host_data(obj):
    """Does `obj` (an index or a value) hold a host array or a list, which CuPy would copy over?"""
    if isinstance(obj, tuple):
        return any(_has_host_data(o) for o in obj)
    return isinstance(obj, (np.ndarray, list))


# The methods of CuPy's ndarray that avb_np calls (other NumPy methods raise AttributeError).
METHODS = ("all", "any", "argmax", "argmin", "astype", "clip", "copy", "cumsum", "dot", "fill", "flatten",
           "max", "mean", "min", "prod", "ravel", "repeat", "reshape", "squeeze", "std", "sum", "swapaxes",
           "take", "transpose", "var", "view")
ATTRIBUTES = ("shape", "dtype", "ndim", "size", "nbytes", "itemsize", "strides", "T", "real", "imag", "flags")


class ndarray(np.lib.mixins.NDArrayOperatorsMixin):
    """A device array: a NumPy array that refuses to meet host arrays (see the module docstring).
    The operators (+, *, @, <, ...) come from NumPy's mixin and run through __array_ufunc__."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a                                  # the NumPy array holding the "device" data

    # -- what CuPy refuses
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Use backend.to_host(a) "
                        "(a.get() in CuPy) to copy it to the host explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_unwrap(inputs, f"numpy.{ufunc.__name__}"),
                                        **_unwrap(kwargs, f"numpy.{ufunc.__name__}"))
        if out is not None:                          # in place (a += b): the same device array back
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        impl = globals().get(func.__name__)          # np.f(a) runs f of this module, as CuPy does
        if not callable(impl) or func.__name__.startswith("_"):
            return NotImplemented                    # NumPy then raises TypeError
        return impl(*args, **kwargs)

    # -- crossings to the host
    def get(self):
        _record("host", "get")
        return self._a.copy()

    def item(self):
        _record("host", "item")
        return self._a.item()

    def tolist(self):
        _record("host", "tolist")
        return self._a.tolist()

    def __float__(self):
        _record("host", "float")
        return float(self._a)

    def __int__(self):
        _record("host", "int")
        return int(self._a)

    def __bool__(self):
        _record("host", "bool")
        return bool(self._a)

    def __format__(self, spec):
        _record("host", "format")
        return format(self._a.item() if self.ndim == 0 else self._a, spec)

    # -- indexing (a host index or value is copied over, as CuPy does)
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if _has_host_data(value):
            _record("device", "setitem")
        self._a[_index(key)] = value._a if isinstance(value, ndarray) else value

    # -- the rest of the interface
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"strict_cupy.{np.array_repr(self._a)}"

    def __getattr__(self, name):
        if name in ATTRIBUTES:
            return _wrap(getattr(self._a, name)) if name in ("T", "real", "imag") else getattr(self._a, name)
        if name in METHODS:
            method = getattr(self._a, name)
            return lambda *args, **kwargs: _wrap(method(*_unwrap(args, f"ndarray.{name}"),
                                                        **_unwrap(kwargs, f"ndarray.{name}")))
        raise AttributeError(f"'ndarray' object has no attribute {name!r} in the strict CuPy stand-in")

    __hash__ = None


def _index(key):
    """`key` for NumPy: device arrays unwrapped; a host array or list in it is copied over (counted)."""
    if _has_host_data(key):
        _record("device", "index")
    if isinstance(key, tuple):
        return tuple(k._a if isinstance(k, ndarray) else k for k in key)
    return key._a if isinstance(key, ndarray) else key


# ----------------------------------------------------------------------------- the module

def _device_function(fn):
    """fn of NumPy run on device arrays: host arrays refused, results device arrays."""
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, fn.__name__), **_unwrap(kwargs, fn.__name__)))
    call.__name__ = call.__qualname__ = fn.__name__
    call.__doc__ = f"numpy.{fn.__name__} on device arrays (host arrays refused)"
    return call


def asarray(a, dtype=None, order=None):
    """A device array of `a`; host data (a NumPy array, a list, a Python scalar) is copied over."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    _record("device", "asarray")
    return ndarray(np.array(a, dtype=dtype, order=order or "K"))


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, ndarray):
        return ndarray(np.array(a._a, dtype=dtype, copy=copy, order=order))
    _record("device", "array")
    return ndarray(np.array(a, dtype=dtype, order=order))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*args):
    return CUPY if any(isinstance(a, ndarray) for a in args) else np


# The functions of CuPy's namespace that avb_np calls on device arrays (the same names as NumPy's).
FUNCTIONS = ("abs", "array_equal", "concatenate", "diag", "divide", "exp", "expm1", "full", "full_like", "isfinite", "isnan",
             "log", "log1p", "logaddexp", "maximum", "median", "minimum", "multiply", "ones", "ones_like", "repeat",
             "reshape", "split", "sqrt", "stack", "sum", "tanh", "tril", "where", "zeros", "zeros_like")
globals().update({name: _device_function(getattr(np, name)) for name in FUNCTIONS})
CONSTANTS = ("inf", "nan", "pi", "e", "newaxis", "float16", "float32", "float64", "int8", "int16", "int32",
             "int64", "uint8", "bool_", "dtype", "finfo", "iinfo")
globals().update({name: getattr(np, name) for name in CONSTANTS})


RANDOM_METHODS = ("randint", "random_sample", "standard_normal")


class RandomState:
    """cupy.random.RandomState's interface over NumPy's generator: device arrays out."""

    def __init__(self, seed=None):
        self._rs = np.random.RandomState(seed)

    def __getattr__(self, name):
        if name not in RANDOM_METHODS:
            raise AttributeError(f"'RandomState' object has no attribute {name!r} in the strict CuPy stand-in")
        return _device_function(getattr(self._rs, name))


random = types.SimpleNamespace(RandomState=RandomState)
cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


def as_cupy():
    """This module as `import cupy` sees it when installed: the same objects, named "cupy"."""
    module = types.ModuleType("cupy", __doc__)
    module.__dict__.update({k: v for k, v in globals().items() if not k.startswith("__")})
    return module


CUPY = as_cupy()


@contextlib.contextmanager
def installed():
    """Within the block, `import cupy` (and so avb_np.backend) gets the stand-in; crossings reset."""
    saved = sys.modules.get("cupy", None), "cupy" in sys.modules
    sys.modules["cupy"] = CUPY
    reset()
    try:
        yield CUPY
    finally:
        if saved[1]:
            sys.modules["cupy"] = saved[0]
        else:
            del sys.modules["cupy"]
