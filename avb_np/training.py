"""Training: Algorithm 1 of the paper (AVB, with or without adaptive contrast) and the VAE
baseline, in one loop (`iteration`, `train`).

A `Run` holds everything a run needs to continue (configuration, parameters, both optimisers,
the random generator, the iteration count and the history), so training can be resumed
(avb_np.checkpoint saves and loads it). All randomness (minibatches, eps, z_p) comes from
`draws` (avb_np.draws): by default from the run's NumPy generator, so a seed gives the same
numbers on NumPy and (up to rounding) on CuPy.

The divergence guard (avb_np.guard) watches every loss and every step: a run that diverges is
put back to its last sane state and DivergenceError says which player and learning rate to blame.
"""
import math
import time
from dataclasses import dataclass, field, fields, is_dataclass, replace

import numpy as np

from . import models, parallel, quadrature, validate, validate_run
from .config import FIXED
from .draws import DRAWS
from .guard import PLAYERS, Guard
from .guard import PLAYER_NAMES, DivergenceError, Interrupted, loss_bound  # noqa: F401 (training.DivergenceError, ...)
from .methods import METHODS, build_nets
from .network import Affine, Residual, param_shapes
from .optim import Adam, lr_scale

SIZE_FIELDS = ("x_dim", "z_dim", "eps_dim", "enc_hidden", "dec_hidden", "n_bases", "basis_hidden",
               "adv_width", "adv_blocks")


@dataclass
class Run:
    cfg: object                # Config; steps, learning rates, batch size, dual steps, logging may change
    method: str                # "avb", "avb-ac" (adaptive contrast) or "vae"
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
    applied: dict = None       # cfg as last applied: the FIXED fields at creation, the optimisers' learning rates

    def __post_init__(self):
        if self.applied is None:
            self.applied = {k: getattr(self.cfg, k, None) for k in FIXED + ("lr_primal", "lr_dual")}


def new_run(cfg, method, xp):
    """A fresh run: parameters initialised from cfg.seed, optimisers with zero state. The run
    keeps a checked copy of cfg (plain ints, floats, strs, tuples)."""
    cfg = validate_run.config(cfg, method)
    nets = build_nets(cfg, method)
    check_size(cfg, nets)
    validate.array_library("xp", xp)
    rng = np.random.default_rng(cfg.seed)
    params = models.init_all_params(nets, rng, xp, cfg.dtype)
    opt_dual = Adam(cfg.lr_dual) if METHODS[method].dual else None        # the adversary's
    return Run(cfg, method, nets, params, Adam(cfg.lr_primal), opt_dual, rng, xp)


def check_size(cfg, nets, name="Config"):
    """Refuse a configuration whose arrays would exceed validate.MAX_BYTES, before any exists.

    Each parameter is held 10 times (itself, its gradient, Adam's two moments and the guard's
    two copies of all three); one step holds about 2 N rows of activations (the adversary sees
    encoder and prior samples) across the inputs and outputs of every layer of every network.
    """
    itemsize = np.dtype(cfg.dtype).itemsize
    counts = {net: sum(math.prod(s) for s in param_shapes(layers).values()) for net, layers in nets.items()}
    biggest, n_params = max(counts, key=counts.get), sum(counts.values())
    sizes = ", ".join(f"{name}.{k}={getattr(cfg, k)!r}" for k in SIZE_FIELDS)
    validate.memory(f"{name} network sizes", sizes, 10 * n_params * itemsize,
                    f"the networks' {n_params:.3g} parameters ({counts[biggest]:.3g} in {biggest}), held "
                    f"in {cfg.dtype} with their gradients, Adam's moments and the guard's copies,")
    per_row = sum((layer.n_in + layer.n_out if isinstance(layer, Affine) else 4 * layer.width)
                  * (cfg.n_bases if key == "enc_v" else 1)            # the basis net sees m rows per row
                  for key, net in nets.items() for layer in net if isinstance(layer, (Affine, Residual)))
    bases = f" with {name}.n_bases={cfg.n_bases} basis rows per row" if "enc_v" in nets else ""
    validate.memory(f"{name}.batch_size", cfg.batch_size, 2 * cfg.batch_size * per_row * itemsize,
                    f"one step's activations (2 x {cfg.batch_size} rows x {per_row} values of {cfg.dtype}{bases})")


def check_run(run, name="run"):
    """Check everything `train` and `checkpoint.save` rely on, naming what is wrong (TypeError
    or ValueError): the configuration, its FIXED fields as at creation; the parameters (names,
    shapes, dtype and backend of the networks; finite, within validate.PARAM_BOUND); both
    optimisers' state; the generator, the counters and the history. Then normalise run.cfg in
    place (plain ints, floats, strs, tuples) and give the optimisers its learning rates.
    """
    if not isinstance(run, Run):
        raise TypeError(f"{name} must be a training.Run (from new_run or checkpoint.load), got {type(run).__name__}")
    method = validate.choice(f"{name}.method", run.method, validate.METHOD_NAMES)
    cfg = validate_run.config(run.cfg, method, f"{name}.cfg")
    changed = [f"{k} from {run.applied.get(k)!r} to {getattr(cfg, k)!r}" for k in FIXED
               if getattr(cfg, k) != run.applied.get(k) and k not in METHODS[method].ignores]
    if changed:
        raise ValueError(f"{name}.cfg changed {', '.join(changed)} after the run was created; these fields "
                         "define its networks, the numbers they hold and its seed. Start a new run "
                         "(training.new_run) for another model")
    nets = build_nets(cfg, method)
    check_size(cfg, nets, f"{name}.cfg")
    if not isinstance(run.nets, dict) or _without_gains(run.nets) != _without_gains(nets):
        raise ValueError(f"{name}.nets are not the networks of {name}.cfg; keep the layer lists that "
                         "new_run or checkpoint.load made")
    xp = validate.array_library(f"{name}.xp", run.xp)
    shapes = {k: s for net in nets.values() for k, s in param_shapes(net).items()}
    validate_run.arrays(f"{name}.params", run.params, shapes, cfg.dtype, xp)
    step = validate.non_negative_int(f"{name}.step", run.step)
    seconds = validate.finite_float(f"{name}.seconds", run.seconds, minimum=0.0)
    adversary = METHODS[method].dual is not None
    if not adversary and run.opt_dual is not None:
        raise ValueError(f"{name}.opt_dual must be None for the {METHODS[method].label}, which has no adversary")
    for player in ("primal", "dual") if adversary else ("primal",):
        opt, lr = getattr(run, f"opt_{player}"), f"lr_{player}"
        own = {k: s for k, s in shapes.items() if k.startswith(PLAYERS[player])}
        validate_run.adam(f"{name}.opt_{player}", opt, own, cfg.dtype, xp)
        if opt.lr != run.applied.get(lr) and opt.lr != getattr(cfg, lr):  # set by hand on the optimiser
            raise ValueError(f"{name}.opt_{player}.lr was set to {opt.lr:g}, but training takes the learning "
                             f"rate from {name}.cfg.{lr} ({getattr(cfg, lr):g}); set that instead")
        if opt.t < step or (player == "primal" and opt.t != step):      # one primal step per iteration,
            raise ValueError(f"{name}.opt_{player}.t={opt.t} does not fit {name}.step={step}: "   # >= 1 dual step
                             "each iteration takes one primal step and at least one adversary step")
    validate.generator(f"{name}.rng", run.rng)
    validate_run.history(f"{name}.history", run.history, step)
    for f in fields(cfg):                                  # all is well: normalise and apply
        setattr(run.cfg, f.name, getattr(cfg, f.name))
    run.step, run.seconds = step, seconds
    for player, opt in (("primal", run.opt_primal), ("dual", run.opt_dual)):
        if opt is not None:
            opt.lr = run.applied[f"lr_{player}"] = getattr(cfg, f"lr_{player}")
    return run


def _without_gains(nets):
    """The layer lists with their initial gains set to 0: gains act at initialisation only."""
    return {key: [replace(layer, gain=0.0) if is_dataclass(layer) and hasattr(layer, "gain") else layer
                  for layer in (layers if isinstance(layers, list) else [layers])]
            for key, layers in nets.items()}


def primal_loss(run, draws):
    """The primal loss on a fresh draw x ~ data, eps ~ N(0, I), and its gradients for theta and phi
    (psi held fixed): AVB's mean[T(x, z_q) - log p(x|z_q)] with z_q = g_phi(x, eps), AVB+AC's
    (avb_np.ac_objectives), or the VAE's negative ELBO."""
    method = METHODS[run.method]
    x, eps = draws.batch(), draws.normal(method.noise_dim(run.cfg))        # (N, Dx), (N, De)
    return method.primal(run.nets, run.params, x, eps, run.cfg.prior_term)


def dual_loss(run, draws):
    """The adversary's loss on a fresh draw x, eps and z_p ~ N(0, I), and its gradients for psi
    (theta, phi held fixed): mean[softplus(-T(x, z_q)) + softplus(T(x, z_p))] (AVB+AC: standardised
    z~ against u = z_p)."""
    method = METHODS[run.method]
    x, eps = draws.batch(), draws.normal(method.noise_dim(run.cfg))
    z_p = draws.normal(run.cfg.z_dim)                                      # z_p ~ p(z) = N(0, I)
    return method.dual(run.nets, run.params, x, eps, z_p, run.cfg.prior_term)


def iteration(run, draws, guard, losses=None):
    """One iteration of Algorithm 1 (Mescheder et al. 2017):

        theta, phi <- Adam step on the primal loss                 (one step)
        psi        <- Adam step on the adversary's loss             (cfg.dual_steps steps)

    each on a fresh minibatch and fresh noise. The VAE takes the primal step only. The guard
    only watches: it checks each loss and each update (avb_np.guard). Returns both losses.

    Beside the paper's box: Algorithm 1 draws one minibatch x, z_p and eps, computes the
    gradients of both players on it and updates theta, phi and psi together, once. Here, as in
    the authors' code, the players take turns (the adversary's steps see the encoder that the
    primal step just moved), each step draws afresh, and the adversary takes dual_steps steps
    (2, the official code's) per primal step; with dual_steps=1 it is the box taken in turn.
    losses: (primal_loss, dual_loss), functions (run, draws) -> (loss, grads); default this
    module's (avb_np.vi passes its own).
    """
    primal_fn, dual_fn = losses or (primal_loss, dual_loss)
    scale = lr_scale(run.cfg, run.step)                # the learning-rate schedule's factor
    primal, grads = primal_fn(run, draws)
    guard.check_loss("primal", primal, grads)
    run.opt_primal.step(run.params, grads, scale)      # theta, phi
    guard.check_step("primal", run.params, grads)
    dual = float("nan")                                # the VAE has no adversary
    for _ in range(run.cfg.dual_steps if run.opt_dual else 0):
        dual, grads = dual_fn(run, draws)
        guard.check_loss("dual", dual, grads)
        run.opt_dual.step(run.params, grads, scale)    # psi
        guard.check_step("dual", run.params, grads)
    return primal, dual


def train(run, data, steps, log=print, valid=None, draws="host"):
    """Advance `run` by `steps` iterations on host array `data`, logging progress and history.

    Every cfg.eval_every iterations a model with z_dim = 2 records its exact log-likelihood
    (quadrature, 100 x 100 grid) on `valid` if given (a binary host array), else on `data`.
    run.cfg is checked first (check_run); its learning rates are the ones used.
    draws: "host" (minibatches and noise from run.rng, copied to the backend: the same numbers
    on NumPy and CuPy, exact resume) or "device" (drawn by the backend's generator; see DeviceDraws).
    One transfer to the host per iteration carries the guard's checks and both losses.

    Raises DivergenceError when a step diverges (see the module docstring), and Interrupted on
    Ctrl-C; either way `run` is left at the end of a whole iteration that trains on.
    """
    check_run(run)
    steps = validate.positive_int("steps", steps)
    if run.cfg.lr_schedule == "cosine" and run.step + steps > run.cfg.steps:
        raise ValueError(f"steps={steps} would take the run from iteration {run.step} beyond run.cfg.steps="
                         f"{run.cfg.steps}, where the cosine schedule has brought the learning rates to 0; "
                         f"raise run.cfg.steps to at least {run.step + steps} (the schedule then stretches "
                         "over it), or set run.cfg.lr_schedule = 'constant'")
    if log is not None and log is not False and not callable(log):
        raise TypeError(f"log must be a function that takes a line of text (e.g. print), or None, got {log!r}")
    data = validate.binary_data("data", data, run.cfg.x_dim, intensities=run.cfg.dynamic)
    track = data if valid is None else validate.binary_data("valid", valid, run.cfg.x_dim)
    track = track if run.cfg.z_dim == 2 and not (valid is None and run.cfg.dynamic) else None
    draws = DRAWS[validate.choice("draws", draws, tuple(DRAWS))](run, data)
    cfg, hist, guard = run.cfg, run.history, Guard(run, draws, primal_loss)
    shares = parallel.used(run)                            # the minibatch computed in row shares at once
    losses = (parallel.split(primal_loss, shares), parallel.split(dual_loss, shares)) if shares > 1 else None
    last = run.step + steps
    t_log, step_log = time.perf_counter(), run.step
    # Underflow to 0 is a correct result, not divergence; the guard reports overflow and invalid
    # values itself, so NumPy's default warnings about them would only repeat it ("raise" stays).
    quiet = {k: "ignore" for k, how in np.geterr().items() if how == "warn"}
    with np.errstate(**{**quiet, "under": "ignore"}), guard.restoring(), parallel.one_blas_thread(shares):
        for _ in range(steps):
            guard.snapshot()
            t0 = time.perf_counter()
            primal, dual = guard.read(*iteration(run, draws, guard, losses))   # floats: one transfer
            run.seconds += time.perf_counter() - t0
            ll = None                                      # before the iteration counts as done, so that
            if track is not None and cfg.eval_every and (run.step + 1) % cfg.eval_every == 0:   # Ctrl-C here
                with guard.blaming(guard.mover, "the exact log-likelihood raised"):        # redoes it whole
                    ll = quadrature.log_likelihood(run.nets, run.params, track, n=100)   # exact, coarse grid
            run.step += 1
            hist["step"].append(run.step)
            hist["primal"].append(primal)
            hist["dual"].append(dual)
            if ll is not None:
                hist["ll_step"].append(run.step)
                hist["log_likelihood"].append(ll)
            if log and cfg.log_every and (run.step % cfg.log_every == 0 or run.step == last):
                now = time.perf_counter()
                rate = (run.step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, run.step
                ll = ""
                if hist["log_likelihood"]:                 # the latest exact value, and when it was taken
                    at = "" if hist["ll_step"][-1] == run.step else f" (at {hist['ll_step'][-1]})"
                    ll = f"  log p(x) {hist['log_likelihood'][-1]:.4f}{at}"
                dual_text = f"  dual {hist['dual'][-1]:.4f}" if run.opt_dual else ""
                log(f"[{run.method}] iter {run.step:>6}  primal {hist['primal'][-1]:.4f}{dual_text}{ll}  {rate:.0f} it/s")
        guard.probe()                                      # the last step, checked as the next iteration would
    return run
