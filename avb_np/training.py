"""Training loops: AVB (Algorithm 1 of the paper) and the VAE baseline, with a divergence guard.

A `Run` holds everything a run needs to continue (configuration, parameters, both optimisers,
the random generator, the iteration count and the history), so training can be resumed
(avb_np.checkpoint saves and loads it). All randomness (minibatches, eps, z_p) is drawn on the
host from one NumPy generator and then moved to the backend, so a seed gives the same numbers
on NumPy and (up to rounding) on CuPy.

Divergence guard: `train` copies the run's state at the start of every iteration. If a loss or
a parameter becomes NaN or inf, or Ctrl-C lands mid-iteration, that copy is put back, so the
run is always left at the end of a whole, finite iteration, ready to save or continue.
"""
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import evaluation, models, validate
from .backend import to_device
from .data import sample_batch
from .objectives import dual_loss, primal_loss, vae_loss
from .optim import Adam

PLAYERS = {"primal": ("enc.", "dec."), "dual": ("adv.",)}  # parameter prefixes of each player
PLAYER_NAMES = {"primal": "the encoder/decoder (primal)", "dual": "the adversary (dual)"}


class DivergenceError(FloatingPointError):
    """A loss or parameter became NaN or inf; the run was restored to its last finite iteration."""

    def __init__(self, message, step, player, lrs):
        super().__init__(message)
        self.step, self.player = step, player   # iteration that failed; "primal", "dual" or None
        self.lrs = lrs                          # the Config fields to lower, e.g. ["lr_dual"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during an iteration; the run was restored to the end of the previous one."""


class _NonFinite(Exception):
    """Raised inside an iteration, turned into DivergenceError by `train` after restoring."""

    def __init__(self, player, what):
        super().__init__(what)
        self.player, self.what = player, what


@dataclass
class Run:
    cfg: object                # Config
    method: str                # "avb" or "vae"
    nets: dict                 # layer lists {"enc", "dec"[, "adv"]}
    params: dict               # name -> array, all networks
    opt_primal: Adam           # encoder + decoder (theta, phi)
    opt_dual: object           # adversary (psi); None for the VAE
    rng: np.random.Generator   # the only source of randomness after initialisation
    xp: object                 # array module
    step: int = 0              # iterations done
    seconds: float = 0.0       # training time so far
    history: dict = field(default_factory=lambda: {"step": [], "primal": [], "dual": [],
                                                    "ll_step": [], "log_likelihood": []})


def new_run(cfg, method, xp):
    """A fresh run: parameters initialised from cfg.seed, optimisers with zero state."""
    nets = models.build_nets(cfg, method)                  # validates cfg and method
    validate.array_library("xp", xp)
    rng = np.random.default_rng(cfg.seed)
    params = models.init_params(nets, rng, xp, cfg.dtype)
    opt_dual = Adam(cfg.lr_dual) if method == "avb" else None
    return Run(cfg, method, nets, params, Adam(cfg.lr_primal), opt_dual, rng, xp)


def _draw(run, data, noise_dim):
    """A fresh minibatch x: (N, Dx) and standard normal noise: (N, noise_dim), on the backend."""
    cfg = run.cfg
    x = sample_batch(run.rng, data, cfg.batch_size, dynamic=cfg.dynamic)   # binary rows (N, Dx)
    noise = run.rng.standard_normal((cfg.batch_size, noise_dim))
    return to_device(x.astype(cfg.dtype), run.xp), to_device(noise.astype(cfg.dtype), run.xp)


def avb_iteration(run, data):
    """One iteration of Algorithm 1: a primal step, then cfg.dual_steps adversary steps."""
    cfg = run.cfg
    # Primal step: minimise mean[T(x, z_q) - log p(x|z_q)] over theta, phi; psi fixed.
    with _blame("primal"):
        x, eps = _draw(run, data, cfg.eps_dim)
        primal, grads = primal_loss(run.nets, run.params, x, eps, cfg.prior_term)
        run.opt_primal.step(run.params, grads)
    _check_finite(run, "primal", primal)
    # Dual steps: minimise mean[softplus(-T(x, z_q)) + softplus(T(x, z_p))] over psi; phi fixed.
    for _ in range(cfg.dual_steps):
        with _blame("dual"):
            x, eps = _draw(run, data, cfg.eps_dim)
            z_p = run.rng.standard_normal((cfg.batch_size, cfg.z_dim))       # z_p ~ p(z) = N(0, I)
            z_p = to_device(z_p.astype(cfg.dtype), run.xp)
            dual, grads = dual_loss(run.nets, run.params, x, eps, z_p, cfg.prior_term)
            run.opt_dual.step(run.params, grads)
        _check_finite(run, "dual", dual)
    return float(primal), float(dual)


def vae_iteration(run, data):
    """One VAE step: minimise mean[KL(q(z|x) || p(z)) - log p(x|z)], z = mu + sigma * eps."""
    with _blame("primal"):
        x, eps = _draw(run, data, run.cfg.z_dim)
        loss, grads = vae_loss(run.nets, run.params, x, eps)
        run.opt_primal.step(run.params, grads)
    _check_finite(run, "primal", loss)
    return float(loss), float("nan")


@contextmanager
def _blame(player):
    """Blame a FloatingPointError (raised under np.errstate(...='raise')) on `player`."""
    try:
        yield
    except FloatingPointError as err:
        raise _NonFinite(player, f"step raised FloatingPointError ({err})") from None


def _non_finite(xp, arrays):
    """The index of the first array holding a NaN or inf, or None; one host sync when all are finite."""
    if bool(xp.stack([xp.isfinite(a).all() for a in arrays]).all()):
        return None
    return next(i for i, a in enumerate(arrays) if not bool(xp.isfinite(a).all()))


def _check_finite(run, player, loss):
    """Raise _NonFinite if `loss` or a parameter of `player` ("primal" or "dual") is NaN or inf."""
    names = [n for n in run.params if n.startswith(PLAYERS[player])]
    arrays = [loss] + [run.params[n] for n in names]
    i = _non_finite(run.xp, arrays)
    if i is not None:
        value = "nan" if bool(run.xp.isnan(arrays[i]).any()) else "inf"
        raise _NonFinite(player, f"loss became {value}" if i == 0 else f"parameter {names[i - 1]} became {value}")


def _snapshot(run):
    """Copies of everything an iteration changes (parameters and Adam moments: ~270k floats, ~1 MB,
    for the default sizes; about 0.2% of an AVB iteration)."""
    return {"params": {k: v.copy() for k, v in run.params.items()},
            "primal": run.opt_primal.state(),
            "dual": run.opt_dual.state() if run.opt_dual else None,
            "rng": run.rng.bit_generator.state,            # a fresh dict of plain ints
            "step": run.step, "seconds": run.seconds,
            "history": {k: len(v) for k, v in run.history.items()}}


def _restore(run, saved):
    """Put a snapshot back: parameters in place (views stay valid), optimisers, generator, counters."""
    for k, v in saved["params"].items():
        run.params[k][...] = v
    run.opt_primal.load_state(saved["primal"])
    if run.opt_dual:
        run.opt_dual.load_state(saved["dual"])
    run.rng.bit_generator.state = saved["rng"]
    run.step, run.seconds = saved["step"], saved["seconds"]
    for k, n in saved["history"].items():
        del run.history[k][n:]


def _lrs_to_lower(run, player):
    """The learning rates of the player that diverged (both if unknown)."""
    if player == "dual":
        return ["lr_dual"]
    if player == "primal" or run.method == "vae":
        return ["lr_primal"]
    return ["lr_primal", "lr_dual"]                        # unknown: a FloatingPointError outside a step


def _divergence_message(run, player, what):
    """Which iteration, which player, what became non-finite, and the learning rate to lower."""
    cause = f"{PLAYER_NAMES[player]} {what}" if player else f"NumPy raised FloatingPointError ({what})"
    now = ", ".join(f"{k}={getattr(run.cfg, k):g}" for k in _lrs_to_lower(run, player))
    return (f"{run.method.upper()} training diverged at iteration {run.step + 1}: {cause}. "
            f"Parameters and optimiser state were restored to iteration {run.step} (all finite). "
            f"Try a lower learning rate ({now} now), e.g. half of it.")


def train(run, data, steps, log=print, valid=None):
    """Advance `run` by `steps` iterations on host array `data`, logging progress and history.

    Every cfg.eval_every iterations a model with z_dim = 2 records its exact log-likelihood
    (quadrature, 100 x 100 grid) on `valid` if given (a binary host array), else on `data`.

    Raises DivergenceError if a loss or parameter becomes NaN or inf, and Interrupted on Ctrl-C;
    either way `run` is left at the end of the last whole iteration, finite and consistent.
    """
    if not isinstance(run, Run):
        raise TypeError(f"run must be a training.Run (from new_run or checkpoint.load), got {type(run).__name__}")
    steps = validate.positive_int("steps", steps)
    data = validate.binary_data("data", data, run.cfg.x_dim, intensities=run.cfg.dynamic)
    track = data if valid is None else validate.binary_data("valid", valid, run.cfg.x_dim)
    track = track if run.cfg.z_dim == 2 and not (valid is None and run.cfg.dynamic) else None
    validate.same_backend("run.params", run.params, run.xp)
    bad = _non_finite(run.xp, list(run.params.values()))
    if bad is not None:
        raise ValueError(f"run.params[{list(run.params)[bad]!r}] holds NaN or inf before training; "
                         "start from new_run or a checkpoint")
    cfg, hist = run.cfg, run.history
    iteration = avb_iteration if run.method == "avb" else vae_iteration
    last = run.step + steps
    t_log, step_log = time.perf_counter(), run.step
    for _ in range(steps):
        saved = _snapshot(run)                             # the last consistent, finite state
        try:
            t0 = time.perf_counter()
            primal, dual = iteration(run, data)
            run.seconds += time.perf_counter() - t0
            run.step += 1
            hist["step"].append(run.step)
            hist["primal"].append(primal)
            hist["dual"].append(dual)
            if track is not None and cfg.eval_every and run.step % cfg.eval_every == 0:
                ll = evaluation.log_likelihood(run.nets, run.params, track, n=100)   # exact, coarse grid
                hist["ll_step"].append(run.step)
                hist["log_likelihood"].append(ll)
        except (_NonFinite, FloatingPointError) as err:    # the latter from the evaluation, if at all
            _restore(run, saved)
            player, what = (err.player, err.what) if isinstance(err, _NonFinite) else (None, str(err))
            raise DivergenceError(_divergence_message(run, player, what), run.step + 1, player,
                                  _lrs_to_lower(run, player)) from None
        except KeyboardInterrupt:                          # Ctrl-C may land between two players' steps
            _restore(run, saved)
            raise Interrupted(f"training interrupted during iteration {run.step + 1}; the run was "
                              f"restored to the end of iteration {run.step}") from None
        if log and cfg.log_every and (run.step % cfg.log_every == 0 or run.step == last):
            now = time.perf_counter()
            rate = (run.step - step_log) / max(now - t_log, 1e-9)
            t_log, step_log = now, run.step
            ll = ""
            if hist["log_likelihood"]:                     # the latest exact value, and when it was taken
                at = "" if hist["ll_step"][-1] == run.step else f" (at {hist['ll_step'][-1]})"
                ll = f"  log p(x) {hist['log_likelihood'][-1]:.4f}{at}"
            dual_text = f"  dual {dual:.4f}" if run.method == "avb" else ""
            log(f"[{run.method}] iter {run.step:>6}  primal {primal:.4f}{dual_text}{ll}  {rate:.0f} it/s")
    return run
