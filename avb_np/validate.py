"""Checks of user input at the public entry points, so that a mistake ends in a message that
names the argument, what was expected and what was given, not in a traceback from inside NumPy.

Wrong types raise TypeError, wrong values ValueError. Each function returns the checked value
(converted where that is harmless: a list of rows becomes an array, a NumPy integer an int).
"""
import math
import numbers

import numpy as np

from . import backend
from .config import Config
from .layers import ACTIVATIONS

METHODS = ("avb", "vae")
DTYPES = ("float32", "float64")
BINARISE = ("binarise with (x > 0.5).astype(float), or dynamically with "
            "(rng.random(x.shape) < x).astype(float) for intensities in [0, 1]")


def positive_int(name, value):
    """An integer >= 1 (bools are refused: True is not a size)."""
    return _int_at_least(name, value, 1, "a positive integer")


def non_negative_int(name, value):
    """An integer >= 0 (for 'every n iterations, 0: never' and seeds)."""
    return _int_at_least(name, value, 0, "a non-negative integer")


def _int_at_least(name, value, minimum, kind):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value}")
    return int(value)


def finite_float(name, value, minimum=-math.inf):
    """A finite real number >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value < minimum:
        bound = "" if minimum == -math.inf else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def positive_float(name, value):
    """A finite real number > 0 (learning rates, grid limits)."""
    value = finite_float(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def binary_data(name, data, x_dim, intensities=False):
    """A host array of binary rows, (K, x_dim) with K >= 1, as the Bernoulli decoder needs;
    with intensities=True, values anywhere in [0, 1] (binarised later, at every minibatch).

    Returns it as a NumPy array (a list of rows is converted). The scan for NaN and for values
    outside {0, 1} reads the whole array once, so call this once per entry, not per minibatch.
    """
    if _is_device_array(data):
        raise TypeError(f"{name} must be a NumPy array on the host, got a CuPy array; "
                        f"pass avb_np.backend.to_host({name}) (minibatches are moved to the GPU as drawn)")
    try:
        data = np.asarray(data)
    except (TypeError, ValueError) as err:      # ragged lists, objects NumPy cannot read
        raise TypeError(f"{name} must be a 2-d array of numbers, got {type(data).__name__} ({err})") from None
    if data.dtype.kind not in "biuf":          # bool, signed, unsigned, float
        raise TypeError(f"{name} must hold real numbers, got dtype {data.dtype}")
    if data.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (data points, x_dim={x_dim}), got shape {data.shape}")
    if data.shape[1] != x_dim:
        raise ValueError(f"{name} must have x_dim={x_dim} columns (Config.x_dim, the decoder's width), "
                         f"got shape {data.shape}")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {data.shape}); it needs at least one data point")
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf value(s), the first "
                         f"{data[row, col].item()} at row {row}, column {col}; remove or replace them")
    outside = (data < 0) | (data > 1) if intensities else (data != 0) & (data != 1)
    if outside.any() and intensities:
        row, col = np.argwhere(outside)[0]
        raise ValueError(f"{name} must hold intensities in [0, 1] (Config.dynamic is on), got "
                         f"{data[row, col].item()!r} at row {row}, column {col}; divide 8-bit pixels by 255")
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise ValueError(f"{name} must be binary (values in {{0, 1}}) for the Bernoulli decoder, got "
                         f"{data[row, col].item()!r} at row {row}, column {col}; {BINARISE}")
    return data


def _is_device_array(a):
    """True for a CuPy array (without importing CuPy where it is not loaded)."""
    try:
        return backend.array_module(a) is not np
    except TypeError:                          # lists and other non-arrays: not a device array
        return False


def same_backend(name, arrays, xp):
    """Every array of the dict `arrays` belongs to the array module `xp` (numpy or cupy)."""
    for key, a in arrays.items():
        module = backend.array_module(a)       # TypeError for non-arrays
        if module is not xp:
            raise TypeError(f"{name}[{key!r}] is a {backend.module_name(module)} array but the run's "
                            f"backend is {backend.module_name(xp)}; move it with "
                            f"avb_np.backend.to_device(array, xp)")
    return arrays


def array_library(name, xp):
    """The numpy or cupy module itself (as returned by avb_np.backend.use)."""
    if getattr(xp, "__name__", None) not in backend.NAMES:
        raise TypeError(f"{name} must be the numpy or cupy module (see avb_np.backend.use), got {xp!r}")
    return xp


def config(cfg, method):
    """Every field of a Config, and the method "avb" or "vae" it is used for."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be an avb_np.config.Config, got {type(cfg).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    for field in ("x_dim", "z_dim", "adv_width", "batch_size", "dual_steps", "steps"):
        positive_int(f"Config.{field}", getattr(cfg, field))
    for field in ("adv_blocks", "seed", "log_every", "eval_every"):
        non_negative_int(f"Config.{field}", getattr(cfg, field))
    non_negative_int("Config.eps_dim", cfg.eps_dim)
    if method == "avb" and cfg.eps_dim == 0:
        raise ValueError("Config.eps_dim must be >= 1 for the AVB encoder, got 0: without noise "
                         "z = g(x) is a point mass, whose KL to the prior is infinite")
    for field in ("enc_hidden", "dec_hidden"):
        sizes = getattr(cfg, field)
        if not isinstance(sizes, (tuple, list)):
            raise TypeError(f"Config.{field} must be a tuple of layer widths, got {sizes!r}")
        for i, size in enumerate(sizes):
            positive_int(f"Config.{field}[{i}]", size)
    if cfg.act not in ACTIVATIONS:
        raise ValueError(f"Config.act must be one of {sorted(ACTIVATIONS)}, got {cfg.act!r}")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"Config.dtype must be one of {DTYPES}, got {cfg.dtype!r}")
    positive_float("Config.lr_primal", cfg.lr_primal)
    positive_float("Config.lr_dual", cfg.lr_dual)
    finite_float("Config.out_gain", cfg.out_gain, minimum=0.0)
    finite_float("Config.prior_term", cfg.prior_term)
    return cfg
