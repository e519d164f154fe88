"""Checks of a run's state: its Config, its parameters and their layout, its optimisers and its
history (the scalar checks they build on are in avb_np.validate). Each names what is wrong, what
was expected and what was given; a Config comes back normalised (plain ints, floats, tuples).
"""
import dataclasses
import math

import numpy as np

from . import backend, network
from .config import Config
from .layers import ACTIVATIONS
from .optim import Adam
from .validate import (DTYPES, LR_SCHEDULES, MAX_DEPTH, METHOD_NAMES, OUT_GAIN_MAX, PARAM_BOUND, PRIOR_TERM_MAX,
                       choice, finite_float, flag, non_negative_int, positive_float, positive_int, same_backend,
                       widths)

HISTORY = ("step", "primal", "dual", "ll_step", "log_likelihood")   # a run's history, one list each
MAX_THREADS = 64      # Config.threads: row shares (threads) per minibatch


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
    for field in ("x_dim", "z_dim", "n_bases", "adv_width", "batch_size", "dual_steps", "steps", "threads"):
        out[field] = positive_int(f"{name}.{field}", getattr(cfg, field))
    for field in ("eps_dim", "adv_blocks", "seed", "log_every", "eval_every"):
        out[field] = non_negative_int(f"{name}.{field}", getattr(cfg, field))
    if out["adv_blocks"] > MAX_DEPTH:
        raise ValueError(f"{name}.adv_blocks must be at most {MAX_DEPTH} (avb_np.validate.MAX_DEPTH), got {out['adv_blocks']}")
    if out["threads"] > MAX_THREADS:
        raise ValueError(f"{name}.threads must be at most {MAX_THREADS} (avb_np.validate_run.MAX_THREADS), "
                         f"got {out['threads']}: each share runs in a thread of its own")
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
