"""Training loops: AVB (Algorithm 1 of the paper) and the VAE baseline.

A `Run` holds everything a run needs to continue (configuration, parameters, both optimisers,
the random generator, the iteration count and the history), so training can be resumed.
All randomness (minibatches, eps, z_p) is drawn on the host from one NumPy generator and then
moved to the backend, so a seed gives the same numbers on NumPy and (up to rounding) on CuPy.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import evaluation, models
from .backend import to_device
from .data import sample_batch
from .objectives import dual_loss, primal_loss, vae_loss
from .optim import Adam


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
    rng = np.random.default_rng(cfg.seed)
    nets = models.build_nets(cfg, method)
    params = models.init_params(nets, rng, xp, cfg.dtype)
    opt_dual = Adam(cfg.lr_dual) if method == "avb" else None
    return Run(cfg, method, nets, params, Adam(cfg.lr_primal), opt_dual, rng, xp)


def _draw(run, data, noise_dim):
    """A fresh minibatch x: (N, Dx) and standard normal noise: (N, noise_dim), on the backend."""
    cfg = run.cfg
    x = sample_batch(run.rng, data, cfg.batch_size)
    noise = run.rng.standard_normal((cfg.batch_size, noise_dim))
    return to_device(x.astype(cfg.dtype), run.xp), to_device(noise.astype(cfg.dtype), run.xp)


def avb_iteration(run, data):
    """One iteration of Algorithm 1: a primal step, then cfg.dual_steps adversary steps."""
    cfg = run.cfg
    # Primal step: minimise mean[T(x, z_q) - log p(x|z_q)] over theta, phi; psi fixed.
    x, eps = _draw(run, data, cfg.eps_dim)
    primal, grads = primal_loss(run.nets, run.params, x, eps, cfg.prior_term)
    run.opt_primal.step(run.params, grads)
    # Dual steps: minimise mean[softplus(-T(x, z_q)) + softplus(T(x, z_p))] over psi; phi fixed.
    for _ in range(cfg.dual_steps):
        x, eps = _draw(run, data, cfg.eps_dim)
        z_p = to_device(run.rng.standard_normal((cfg.batch_size, cfg.z_dim)).astype(cfg.dtype), run.xp)
        dual, grads = dual_loss(run.nets, run.params, x, eps, z_p, cfg.prior_term)
        run.opt_dual.step(run.params, grads)
    return float(primal), float(dual)


def vae_iteration(run, data):
    """One VAE step: minimise mean[KL(q(z|x) || p(z)) - log p(x|z)], z = mu + sigma * eps."""
    x, eps = _draw(run, data, run.cfg.z_dim)
    loss, grads = vae_loss(run.nets, run.params, x, eps)
    run.opt_primal.step(run.params, grads)
    return float(loss), float("nan")


def train(run, data, steps, log=print):
    """Advance `run` by `steps` iterations on host array `data`, logging progress and history."""
    cfg, hist = run.cfg, run.history
    iteration = avb_iteration if run.method == "avb" else vae_iteration
    last = run.step + steps
    t_log, step_log = time.perf_counter(), run.step
    for _ in range(steps):
        t0 = time.perf_counter()
        primal, dual = iteration(run, data)
        run.seconds += time.perf_counter() - t0
        run.step += 1
        hist["step"].append(run.step)
        hist["primal"].append(primal)
        hist["dual"].append(dual)
        if cfg.eval_every and run.step % cfg.eval_every == 0:   # exact log p(x), coarse grid
            ll = evaluation.log_likelihood(run.nets, run.params, data, n=100)
            hist["ll_step"].append(run.step)
            hist["log_likelihood"].append(ll)
        if log and cfg.log_every and (run.step % cfg.log_every == 0 or run.step == last):
            now = time.perf_counter()
            rate = (run.step - step_log) / max(now - t_log, 1e-9)
            t_log, step_log = now, run.step
            ll = f"  log p(x) {hist['log_likelihood'][-1]:.4f}" if hist["log_likelihood"] else ""
            dual_text = f"  dual {dual:.4f}" if run.method == "avb" else ""
            log(f"[{run.method}] iter {run.step:>6}  primal {primal:.4f}{dual_text}{ll}  {rate:.0f} it/s")
    return run
