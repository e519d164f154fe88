"""Checks of user input at the public entry points, so that a mistake ends in a message that
names the argument, what was expected and what was given, not in a traceback from inside NumPy.

Wrong types raise TypeError, wrong values ValueError. Each function returns the checked value,
normalised where that is harmless (a list of rows becomes an array, a NumPy integer or a
Fraction a plain int or float, a list of widths a tuple), so what passes here also saves,
loads and compares like the plain value.
"""
import math
import numbers
import os

import numpy as np

from . import backend

METHOD_NAMES = ("avb", "avb-ac", "vae")   # what each needs: avb_np.methods.METHODS
DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
MAX_BYTES = 8 * 2**30   # the most memory a run or an evaluation may ask for; raise it on a larger machine
PARAM_BOUND = 1e6       # |parameter| beyond this means a run diverged: initial weights are at most about
                        # 1.4 in size, and Adam moves a weight by about lr per step, a step that float32
                        # cannot even represent on a weight of 1e6 (its spacing there is 0.06)
OUT_GAIN_MAX = 100.0    # Config.out_gain: 1 is the usual unit-variance scale, the default 0.1
PRIOR_TERM_MAX = 100.0  # |Config.prior_term| c in T = NN + c ||z||^2: 0.5 makes it -log p(z) up to a
                        # constant, 1 is the official notebook's; beyond 100 it would swamp the network
LIM_RANGE = (1e-3, 40.0)      # the half-width of an evaluation grid: beyond 40, N(0, 1) has no mass a float64 holds
MAX_DEPTH = 10_000      # layers of one network (hidden widths, residual blocks); the memory a
                        # network needs is checked once its layer list exists (training.check_size)
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


def finite_float(name, value, minimum=-math.inf, maximum=math.inf):
    """A finite real number in [minimum, maximum], as a plain float (NumPy floats, Fractions and
    integers are converted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:                       # an int or Fraction beyond the float range
        number = math.inf
    if not math.isfinite(number) or not minimum <= number <= maximum:
        limits = [f">= {minimum:g}"] * (minimum > -math.inf) + [f"<= {maximum:g}"] * (maximum < math.inf)
        raise ValueError(f"{name} must be a finite number{' ' if limits else ''}{' and '.join(limits)}, got {value!r}")
    return number


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
        try:
            module = backend.array_module(a)
        except TypeError:
            raise TypeError(f"{name}[{key!r}] must be a NumPy or CuPy array, got {type(a).__name__}") from None
        if module is not xp:
            raise TypeError(f"{name}[{key!r}] is a {backend.module_name(module)} array but the run's "
                            f"backend is {backend.module_name(xp)}; move it with "
                            f"avb_np.backend.to_device(array, xp)")
    return arrays


def array_library(name, xp):
    """The numpy or cupy module itself (as returned by avb_np.backend.use)."""
    if getattr(xp, "__name__", None) not in backend.BACKENDS:
        raise TypeError(f"{name} must be the numpy or cupy module (see avb_np.backend.use), got {xp!r}")
    return xp


def choice(name, value, options):
    """One of the strings `options` (a list or a NumPy string is refused or converted, never hashed)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {tuple(options)}, got {value!r} ({type(value).__name__})")
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return str(value)


def flag(name, value):
    """True or False (NumPy bools are converted; 0, 1 and strings are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def widths(name, value):
    """Hidden-layer widths: a tuple (or list) of positive integers, returned as a tuple of ints."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of layer widths, got {value!r} ({type(value).__name__})")
    if len(value) > MAX_DEPTH:
        raise ValueError(f"{name} must have at most {MAX_DEPTH} layers (avb_np.validate.MAX_DEPTH), got {len(value)}")
    return tuple(positive_int(f"{name}[{i}]", size) for i, size in enumerate(value))


def path(name, value):
    """A file or folder path: a non-empty str or os.PathLike (bytes are refused), as a str. An
    empty one is refused, as a shell gives it for an unset variable."""
    try:
        text = os.fspath(value)
    except TypeError:
        text = None
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a path (a str or pathlib.Path), got {value!r} ({type(value).__name__})")
    if not text.strip() or "\0" in text:
        raise ValueError(f"{name} must be a path, got {value!r}" + (" (is a shell variable unset?)" if not text else ""))
    return text


def generator(name, rng):
    """A NumPy Generator, the only source of randomness a function may be handed."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {rng!r} ({type(rng).__name__})")
    return rng


def memory(name, given, nbytes, what):
    """Refuse a request (argument `name`, whose value `given` is shown as it is) whose arrays
    would need more than MAX_BYTES, before any is allocated."""
    if nbytes > MAX_BYTES:
        raise ValueError(f"{name}: too large, got {given}; {what} would need about {nbytes / 2**30:.3g} GiB, above "
                         f"the limit of {MAX_BYTES / 2**30:g} GiB (avb_np.validate.MAX_BYTES; raise it on "
                         "a machine with more memory)")
    return nbytes
