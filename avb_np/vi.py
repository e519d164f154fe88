"""Black-box variational inference for a density you write down: AVB, AVB with adaptive contrast
(AC), and mean-field and full-rank Gaussian VI, trained by training's Algorithm 1 and its
divergence guard, scored against exact answers.

    import numpy as np
    from avb_np import targets, vi
    target = targets.banana()                     # or any log_density(z) -> (logp (N,), dlogp_dz (N, D))
    rng = np.random.default_rng(0)
    fit = vi.fit(target.log_density, target.dim, "avb-ac", vi.VIConfig(), rng)
    z = vi.samples(fit, 10_000, rng)              # (S, D) draws from q
    print(vi.elbo(fit, target.log_density, 10_000, rng), "<=", target.log_Z)

Methods (the objectives are in avb_np.vi_objectives):
    "avb"        z = g_phi(eps), adversary against the fixed contrast r = N(0, s^2 I), s = contrast_sd
    "avb-ac"     the same against r = N(batch mean, batch variance) of z, held constant
    "meanfield"  q = N(m, diag sigma^2)
    "fullrank"   q = N(m, L L^T), L lower-triangular with a positive (exp) diagonal
The ELBO of a Gaussian q is a Monte Carlo estimate of a true bound (log q is known); AVB's ELBO
replaces log q by the adversary's estimate, so it is an estimate that can exceed log Z.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import eight_schools, kl_estimates, network, targets, training, validate
from .backend import host_params, to_device, to_host
from .draws import HostDraws
from .guard import LOSS_SCALE, Guard
from .optim import Adam
from .vi_config import VIConfig, check_config
from .vi_objectives import (LOG_2PI, adaptive_contrast, avb_dual_loss, avb_primal_loss, contrast_adversary,
                            fixed_contrast, gaussian_loss, gaussian_q_init, gaussian_q_sample, networks, sampler)

VI_METHODS = ("avb", "avb-ac", "meanfield", "fullrank")
TARGETS = {"banana": targets.banana, "mixture": targets.mixture, "ring": targets.ring,   # name -> Target
           "eight_schools": eight_schools.eight_schools, "eight_schools_mirror": eight_schools.eight_schools_mirror}
LOSS_BOUND = LOSS_SCALE * 100   # |loss| beyond 1e6 nats per sample is a runaway (log p~ of every target
#                                 here is within a few hundred nats over its plotting box)


@dataclass
class Fit:
    method: str                    # one of VI_METHODS
    dim: int                       # D
    cfg: VIConfig
    nets: dict                     # {"gen", "adv"} layer lists (AVB), {} (Gaussian)
    params: dict                   # name -> array: "gen.", "adv." or "q."
    opt_primal: Adam = None        # the sampler's (or the Gaussian's) optimiser
    opt_dual: Adam = None          # the adversary's; None for the Gaussian baselines
    rng: np.random.Generator = None
    xp: object = np
    log_density: object = None     # the target: z -> (logp, dlogp_dz)
    step: int = 0
    seconds: float = 0.0
    history: dict = field(default_factory=lambda: {"step": [], "primal": [], "dual": []})


def build_q(method, dim, cfg, rng, xp=np, dtype=None):
    """The networks and initial parameters of `method` for a D = dim target (weights from rng)."""
    validate.choice("method", method, VI_METHODS)
    dim, dtype = validate.positive_int("dim", dim), dtype or cfg.dtype
    if method in ("meanfield", "fullrank"):                  # start at q = N(0, I)
        return {}, {k: xp.asarray(v, dtype=dtype) for k, v in gaussian_q_init(method == "fullrank", dim).items()}
    nets = networks(dim, cfg.eps_dim, cfg.gen_hidden, cfg.adv_width, cfg.adv_blocks, cfg.out_gain)
    params = {}
    for net in nets.values():
        params.update(network.init_params(net, rng, xp, dtype))
    return nets, params


def contrast_of(method, cfg):
    """The contrast function z -> (mu, sigma) of AVB ("avb": fixed, "avb-ac": batch moments)."""
    return adaptive_contrast(cfg.ac_floor) if method == "avb-ac" else fixed_contrast(cfg.contrast_sd)


def primal_loss(fit, draws):
    """The sampler's loss on fresh noise eps (AVB), or the Gaussian's negative ELBO."""
    if not fit.nets:
        return gaussian_loss(fit.params, draws.normal(fit.dim), fit.log_density)
    eps = draws.normal(fit.cfg.eps_dim)                                    # (N, De)
    return avb_primal_loss(fit.nets, fit.params, eps, fit.log_density, contrast_of(fit.method, fit.cfg))


def dual_loss(fit, draws):
    """The adversary's loss on fresh eps and u ~ N(0, I): q's standardised samples against u."""
    eps, u = draws.normal(fit.cfg.eps_dim), draws.normal(fit.dim)          # (N, De), (N, D)
    return avb_dual_loss(fit.nets, fit.params, eps, u, contrast_of(fit.method, fit.cfg))


def fit(log_density, dim, method, cfg, rng, xp=np, log=print, name=""):
    """Train q for the target log_density in R^dim by `method`; all noise from the NumPy generator
    rng. Each iteration is training.iteration (Algorithm 1; the Gaussian baselines take its primal
    step only), watched by the divergence guard: a loss, gradient or parameter that is NaN, inf or
    runaway raises guard.DivergenceError naming the learning rate to lower, and Ctrl-C raises
    guard.Interrupted."""
    cfg = check_config(cfg)
    validate.choice("method", method, VI_METHODS)
    validate.generator("rng", rng)
    validate.array_library("xp", xp)
    nets, params = build_q(method, dim, cfg, rng, xp)
    _check_log_density(log_density, dim, xp, cfg.dtype)
    avb = bool(nets)
    run = Fit(method, dim, cfg, nets, params, Adam(cfg.lr_primal if avb else cfg.lr_gaussian, beta1=cfg.beta1),
              Adam(cfg.lr_dual, beta1=cfg.beta1) if avb else None, rng, xp, log_density)
    draws = HostDraws(run, None)                                           # noise only: no data
    guard = Guard(run, draws, primal_loss, max_loss=LOSS_BOUND, cfg_name="VIConfig",
                  lr_names={"primal": "lr_primal" if avb else "lr_gaussian", "dual": "lr_dual"},
                  start_hint="look at the target's log density, which q's first samples make NaN, inf or huge")
    t0 = time.perf_counter()
    quiet = {k: "ignore" for k, how in np.geterr().items() if how == "warn"}   # the guard reports them
    with np.errstate(**{**quiet, "under": "ignore"}), guard.restoring():
        for _ in range(cfg.steps):
            guard.snapshot()
            primal, dual = guard.read(*training.iteration(run, draws, guard, (primal_loss, dual_loss)))
            run.step += 1
            for key, value in (("step", run.step), ("primal", primal), ("dual", dual)):
                run.history[key].append(value)
            if log and cfg.log_every and (run.step % cfg.log_every == 0 or run.step == cfg.steps):
                extra = f"  adversary {dual:.4f}" if avb else ""
                log(f"[{name or 'vi'} {method}] iter {run.step:>6}  loss {primal:.4f}{extra}  "
                    f"{run.step / (time.perf_counter() - t0):.0f} it/s")
        guard.probe()                                      # the last step, checked as the next would
    run.seconds = time.perf_counter() - t0
    return run


def _check_log_density(log_density, dim, xp, dtype):
    """log_density must map z: (N, D) to (logp: (N,), dlogp_dz: (N, D)); tried on 3 points."""
    if not callable(log_density):
        raise TypeError(f"log_density must be a function z -> (logp, dlogp_dz), got {type(log_density).__name__}")
    out = log_density(xp.zeros((3, dim), dtype=dtype))
    shapes = tuple(getattr(a, "shape", None) for a in out) if isinstance(out, tuple) else None
    if shapes != ((3,), (3, dim)):
        raise ValueError(f"log_density(z) with z: (3, {dim}) must return (logp: (3,), dlogp_dz: (3, {dim})), "
                         f"got {'shapes ' + str(shapes) if shapes else type(out).__name__}")


def samples(fit, n, rng, chunk=65536):
    """n draws from q as a float64 host array (n, D), computed in float64 from the host parameters."""
    params, out = host_params(fit.params), []
    for i in range(0, validate.positive_int("n", n), chunk):
        m = min(chunk, n - i)
        if fit.nets:
            out.append(sampler(fit.nets, params, rng.standard_normal((m, fit.cfg.eps_dim)))[0])
        else:
            out.append(gaussian_q_sample(params, rng.standard_normal((m, fit.dim)))[0])
    return np.concatenate(out)


def elbo(fit, log_density, n, rng):
    """ELBO = E_q[log p~(z) - log q(z)] from n draws, in float64 on the host.

    Gaussian: log q(z) = log N(eps; 0, I) - sum_k log L_kk exactly (a Monte Carlo estimate of a bound).
    AVB: log q(z) ~ T(w) + log r(z) with r from the contrast of all n draws (an estimate, not a bound).
    """
    params, n = host_params(fit.params), validate.positive_int("n", n)
    if fit.nets:
        z = sampler(fit.nets, params, rng.standard_normal((n, fit.cfg.eps_dim)))[0]
        mu, sigma = contrast_of(fit.method, fit.cfg)(z)
        w = (z - mu) / sigma
        T = contrast_adversary(fit.nets, params, w)[0]
        log_q = T - 0.5 * (w * w).sum(1) - np.log(sigma).sum() - 0.5 * fit.dim * LOG_2PI
    else:
        eps = rng.standard_normal((n, fit.dim))
        z, L = gaussian_q_sample(params, eps)
        log_q = -0.5 * (eps * eps).sum(1) - np.log(np.diag(L)).sum() - 0.5 * fit.dim * LOG_2PI
    return float(np.mean(to_host(log_density(to_device(z, fit.xp))[0]) - log_q))


def compare(fit, target, rng, n_kl=200_000, n_elbo=20_000):
    """The experiment's numbers for one fit against a targets.Target's exact answers:

    kl         KL(q || p) for a 2-d target: for the Gaussian baselines, whose log q is known, the
               exact Monte Carlo E_q[log q - log p~] + log Z from n_kl draws (kl_estimates; its
               standard error kl_se); for AVB, binned from n_kl draws on cells that count every
               sample (targets.binned_kl). For D > 2 the binned KL of the (z1, z2) marginals, a
               lower bound on the full KL, for every method (comparable across them)
    kl_method  "exact" or "binned";  kl_binned  the binned estimate, for every fit
    outside    fraction of the draws outside target.box (counted by the binning, in cells of their own)
    elbo       the ELBO from n_elbo draws (see `elbo`), beside log_Z, the exact log normaliser
    stats      target.summarise of the n_kl draws, beside target.exact
    Draws that are NaN or infinite raise a ValueError (a diverged q has no KL).
    """
    with np.errstate(under="ignore"):              # underflow to 0 is a correct result, not an error
        return _compare(fit, target, rng, n_kl, n_elbo)


def _compare(fit, target, rng, n_kl, n_elbo):
    z = targets.check_finite(samples(fit, n_kl, rng))                         # (n_kl, D) draws of q
    out = {"kl_binned": targets.binned_kl(target, z), "outside": targets.fraction_outside(target, z)}
    if not fit.nets and target.dim == 2:                                      # log q known: exact
        eps = to_device(rng.standard_normal((n_kl, fit.dim)), fit.xp)
        out["kl"], out["kl_se"] = kl_estimates.gaussian_kl(fit.params, target.log_density, target.log_Z, eps)
        out["kl_method"] = "exact"
    else:
        out["kl"], out["kl_method"] = out["kl_binned"], "binned"
    return {**out, "elbo": elbo(fit, target.log_density, n_elbo, rng), "log_Z": target.log_Z,
            "stats": target.summarise(z), "seconds": round(fit.seconds, 2)}
