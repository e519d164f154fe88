"""Checks of user input at the public entry points, so that a mistake ends in a message that
names the argument, what was expected and what was given, not in a traceback from inside NumPy.

Wrong types raise TypeError, wrong values ValueError. Each function returns the checked value,
normalised where that is harmless (a list of rows becomes an array, a NumPy integer or a
Fraction a plain int or float, a list of widths a tuple), so what passes here also saves,
loads and compares like the plain value.
"""
import dataclasses
import math
import numbers
import os

import numpy as np

from . import backend, network
from .config import Config
from .layers import ACTIVATIONS
from .optim import Adam

METHOD_NAMES = ("avb", "avb-ac", "vae")   # what each needs: avb_np.methods.METHODS
DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
HISTORY = ("step", "primal", "dual", "ll_step", "log_likelihood")   # a run's history, one list each
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


def config(cfg, method, name="Config"):
    """Every field of a Config, and the method ("avb", "avb-ac" or "vae") it is used for.

    Returns a normalised copy (plain int, float, str, bool, tuples of ints), so the checked
    configuration saves as JSON and compares equal to itself after loading. `name` prefixes the
    fields in messages: "Config.batch_size", "run.cfg.batch_size", "expected_cfg.batch_size".
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"{'cfg' if name == 'Config' else name} must be an avb_np.config.Config, "
                        f"got {type(cfg).__name__}")
    choice("method", method, METHOD_NAMES)
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(vars(cfg)) - known)
    if unknown:                                   # e.g. cfg.lr_dul = 1e-4, which nothing would read
        raise ValueError(f"{name} has no field {unknown[0]!r}; its fields are {sorted(known)}")
    out = {}
    for field in ("x_dim", "z_dim", "n_bases", "adv_width", "batch_size", "dual_steps", "steps"):
        out[field] = positive_int(f"{name}.{field}", getattr(cfg, field))
    for field in ("eps_dim", "adv_blocks", "seed", "log_every", "eval_every"):
        out[field] = non_negative_int(f"{name}.{field}", getattr(cfg, field))
    if out["adv_blocks"] > MAX_DEPTH:
        raise ValueError(f"{name}.adv_blocks must be at most {MAX_DEPTH} (avb_np.validate.MAX_DEPTH), got {out['adv_blocks']}")
    if method != "vae" and out["eps_dim"] == 0:
        raise ValueError(f"{name}.eps_dim must be >= 1 for the AVB encoders, got 0: without noise "
                         "z = g(x) is a point mass, whose KL to the prior is infinite")
    for field in ("enc_hidden", "dec_hidden", "basis_hidden"):
        out[field] = widths(f"{name}.{field}", getattr(cfg, field))
    if method == "avb-ac" and not out["enc_hidden"]:
        raise ValueError(f"{name}.enc_hidden must have at least one layer for the AVB+AC encoder, got (): "
                         "its z0(x) and scales a_i(x) read the last hidden layer")
    out["act"] = choice(f"{name}.act", cfg.act, sorted(ACTIVATIONS))
    out["dtype"] = choice(f"{name}.dtype", cfg.dtype, DTYPES)
    out["lr_schedule"] = choice(f"{name}.lr_schedule", cfg.lr_schedule, LR_SCHEDULES)
    out["dynamic"] = flag(f"{name}.dynamic", cfg.dynamic)
    out["lr_primal"] = positive_float(f"{name}.lr_primal", cfg.lr_primal)
    out["lr_dual"] = positive_float(f"{name}.lr_dual", cfg.lr_dual)
    out["out_gain"] = finite_float(f"{name}.out_gain", cfg.out_gain, minimum=0.0, maximum=OUT_GAIN_MAX)
    out["prior_term"] = finite_float(f"{name}.prior_term", cfg.prior_term, -PRIOR_TERM_MAX, PRIOR_TERM_MAX)
    return dataclasses.replace(cfg, **out)


# ----------------------------------------------------------------------------- a run's arrays

def layout(label, got, shapes, dtype, complete=True):
    """The problems of arrays described by {name: (shape, dtype)} against the expected
    {name: shape} and dtype, as a list of sentences (empty when all is well): missing,
    unexpected, misshapen or wrongly typed entries (dtype None: any). `label(name)` names an entry.
    complete=False: the entries may also all be absent (Adam's moments before its first step)."""
    problems = [f"{label(k)} is missing" for k in shapes if k not in got and (complete or got)]
    problems += [f"{label(k)} is not a parameter of this model" for k in got if k not in shapes]
    problems += [f"{label(k)} has shape {s}, expected {shapes[k]}" for k, (s, _) in got.items()
                 if k in shapes and tuple(s) != tuple(shapes[k])]
    problems += [f"{label(k)} has dtype {d}, expected {dtype}" for k, (_, d) in got.items()
                 if k in shapes and dtype is not None and d != np.dtype(dtype)]
    return problems


def arrays(name, values, shapes, dtype, xp, bound=PARAM_BOUND, complete=True, writable=True):
    """A dict {name: array} of module `xp` with the names, shapes and dtype of `shapes` (see
    `layout`), whose values are finite and at most `bound` in size (math.inf: finite only), and
    writable if asked (training updates them in place). The size check is one reduction per
    array and one host sync."""
    if not isinstance(values, dict):
        raise TypeError(f"{name} must be a dict {{parameter name: array}}, got {type(values).__name__}")
    same_backend(name, values, xp)
    for k, a in values.items():
        if writable and not getattr(a.flags, "writeable", True):
            raise ValueError(f"{name}[{k!r}] is read-only, but training updates it in place; give it a copy "
                             "(array.copy())")
    problems = layout(lambda k: f"{name}[{k!r}]", {k: (a.shape, a.dtype) for k, a in values.items()},
                      shapes, dtype, complete)
    if problems:
        raise ValueError(f"{name} does not fit the networks: " + "; ".join(problems))
    if values and not _within(xp, list(values.values()), bound):
        for k, a in values.items():                # only on failure: find and describe the culprit
            bad = int((~xp.isfinite(a)).sum())
            if bad:
                raise ValueError(f"{name}[{k!r}] holds {bad} NaN or inf value(s)")
            if float(xp.abs(a).max()) > bound:
                raise ValueError(f"{name}[{k!r}] reaches {float(xp.abs(a).max()):.3g} in size, beyond "
                                 f"{bound:g} (avb_np.validate.PARAM_BOUND): the run has diverged")
    return values


def _within(xp, values, bound):
    """True if every array is finite and at most `bound` in absolute value (NaN fails)."""
    worst = float(xp.stack([xp.abs(a).max() for a in values]).max())
    return math.isfinite(worst) and worst <= bound


def model(nets, params, need=("dec",), names=("nets", "params")):
    """Check the networks `need` of `nets` (layer lists, as models.build_nets makes them) and
    that `params` holds each of their parameters with its shape, finite and within
    PARAM_BOUND (other entries are ignored)."""
    if not isinstance(nets, dict) or not all(
            isinstance(nets.get(k), list) and nets[k] and all(isinstance(layer, (network.Affine, network.Act,
                                                                               network.Residual)) for layer in nets[k])
            for k in need):
        raise TypeError(f"{names[0]} must be a dict of layer lists with the networks {list(need)} "
                        f"(run.nets, from models.build_nets), got {type(nets).__name__}")
    shapes = {k: s for key in need for k, s in network.param_shapes(nets[key]).items()}
    if not isinstance(params, dict):
        raise TypeError(f"{names[1]} must be a dict {{parameter name: array}}, got {type(params).__name__}")
    own = {k: params[k] for k in shapes if k in params}
    try:
        xp = backend.array_module(*own.values())
    except TypeError as err:
        raise TypeError(f"{names[1]} must hold NumPy or CuPy arrays: {err}") from None
    arrays(names[1], own, shapes, None, xp, writable=False)


def adam(name, opt, shapes, dtype, xp):
    """An optim.Adam whose state fits the parameters `shapes` it updates: a step count t >= 0,
    constants 0 <= beta < 1 and eps > 0, and finite moments of those names and shapes, v >= 0,
    present exactly when t > 0 (Adam creates them at its first step)."""
    if not isinstance(opt, Adam):
        raise TypeError(f"{name} must be an avb_np.optim.Adam, got {type(opt).__name__}")
    positive_float(f"{name}.lr", opt.lr)
    finite_float(f"{name}.beta1", opt.beta1, minimum=0.0, maximum=1 - 1e-12)
    finite_float(f"{name}.beta2", opt.beta2, minimum=0.0, maximum=1 - 1e-12)
    positive_float(f"{name}.eps", opt.eps)
    t = non_negative_int(f"{name}.t", opt.t)
    m = arrays(f"{name}.m", opt.m, shapes, dtype, xp, bound=math.inf, complete=False)
    v = arrays(f"{name}.v", opt.v, shapes, dtype, xp, bound=math.inf, complete=False)
    if (t > 0) != bool(m) or m.keys() != v.keys():
        raise ValueError(f"{name} is inconsistent: step count t={t} with first moments for {len(m)} and "
                         f"second moments for {len(v)} of {len(shapes)} parameters (none before the "
                         "first step, all after it)")
    if v and float(xp.stack([a.min() for a in v.values()]).min()) < 0:
        raise ValueError(f"{name}.v holds negative values; Adam's second moment is a mean of squares")
    return opt


def history(name, hist, step):
    """A run's history: the lists HISTORY, one entry per iteration in "step", "primal", "dual"
    (at most `step` of them, the iteration numbers increasing) and one per exact evaluation in
    "ll_step" and "log_likelihood"; every entry a plain int or float."""
    if not isinstance(hist, dict) or sorted(hist) != sorted(HISTORY):
        got = sorted(hist) if isinstance(hist, dict) else type(hist).__name__
        raise TypeError(f"{name} must be a dict with the lists {list(HISTORY)}, got {got}")
    for key in HISTORY:
        entries, allowed = hist[key], (int,) if key.endswith("step") else (int, float)
        if not isinstance(entries, list):
            raise TypeError(f"{name}[{key!r}] must be a list, got {type(entries).__name__}")
        bad = next((v for v in entries if isinstance(v, bool) or not isinstance(v, allowed)), None)
        if bad is not None:
            raise TypeError(f"{name}[{key!r}] must hold plain {'ints' if len(allowed) == 1 else 'numbers'}, "
                            f"got {bad!r} ({type(bad).__name__})")
    for keys in (("step", "primal", "dual"), ("ll_step", "log_likelihood")):
        lengths = [len(hist[k]) for k in keys]
        if len(set(lengths)) > 1:
            raise ValueError(f"{name} lists {keys} must have one length, got {lengths}")
    for key in ("step", "ll_step"):
        steps = hist[key]
        if any(b <= a for a, b in zip(steps, steps[1:])) or (steps and not 1 <= steps[0] <= steps[-1] <= step):
            raise ValueError(f"{name}[{key!r}] must be increasing iteration numbers from 1 to the run's "
                             f"step {step}, got {steps[:3]} ... {steps[-3:]}")
    if len(hist["step"]) > step:
        raise ValueError(f"{name} has {len(hist['step'])} iterations, more than the run's step {step}")
    return hist
