"""Black-box variational inference for a density you write down: AVB, AVB with adaptive contrast
(AC), and mean-field and full-rank Gaussian VI, trained by one flat loop, scored against exact answers.

    import numpy as np
    from avb_np import targets, vi
    target = targets.banana()                     # or any log_density(z) -> (logp (N,), dlogp_dz (N, D))
    rng = np.random.default_rng(0)
    fit = vi.fit(target.log_density, target.dim, "avb_ac", vi.VIConfig(), rng)
    z = vi.samples(fit, 10_000, rng)              # (S, D) draws from q
    print(vi.elbo(fit, target.log_density, 10_000, rng), "<=", target.log_Z)

Methods (the objectives are in avb_np.vi_objectives):
    "avb"        z = g_phi(eps), adversary against the fixed contrast r = N(0, s^2 I), s = contrast_sd
    "avb_ac"     the same against r = N(batch mean, batch variance) of z, held constant
    "meanfield"  q = N(m, diag sigma^2)
    "fullrank"   q = N(m, L L^T), L lower-triangular with a positive (exp) diagonal
The ELBO of a Gaussian q is a Monte Carlo estimate of a true bound (log q is known); AVB's ELBO
replaces log q by the adversary's estimate, so it is an estimate that can exceed log Z.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import eight_schools, network, targets, validate
from .backend import host_params, to_device, to_host
from .gradcheck import TOL_OBJECTIVE, Case, moderate
from .network import Act, Affine, Residual
from .optim import Adam
from .vi_objectives import (LOG_2PI, adversary, avb_dual_loss, avb_primal_loss, batch_moments,
                            fixed_contrast, gaussian_loss, gaussian_sample, sampler)

METHODS = ("avb", "avb_ac", "meanfield", "fullrank")


@dataclass
class VIConfig:
    # --- AVB sampler eps -> hidden (ELU) -> D, as the official example: eps -> 2 x (128, ELU) -> D
    eps_dim: int = 16              # De, noise fed into the sampler
    gen_hidden: tuple = (128, 128)
    # --- AVB adversary: D -> width, leaky ReLU 0.2 -> blocks (each then leaky ReLU) -> 1 (official 256, 5)
    adv_width: int = 48
    adv_blocks: int = 2
    out_gain: float = 0.1          # initial std gain of the adversary's output layer (T starts near its extra term)
    contrast_sd: float = 3.0       # plain AVB's r = N(0, s^2 I): covers the bulk of every target here
                                   # (the 2-d ones within |z| < 5, Eight Schools' mu at 4.4 +- 3.3) without
                                   # being so wide that q's samples are rare under it; the official example
                                   # used its prior's sd (100). In 10 dims no single s overlaps a narrow q
                                   # well enough: that is what adaptive contrast fixes
    ac_floor: float = 1e-4         # AC: sigma = sqrt(batch variance + floor)
    # --- optimisation: Adam for each player (official: beta1 = 0.5, lr 1e-4 / 2e-4, 10k iterations, batch 512)
    batch_size: int = 256
    steps: int = 2000              # iterations: a primal step and dual_steps adversary steps (AVB), one step (Gaussian)
    dual_steps: int = 2
    lr_primal: float = 1e-3        # sampler
    lr_dual: float = 2e-3          # adversary
    lr_gaussian: float = 2e-2      # m, log sigma / L of the Gaussian baselines
    beta1: float = 0.5
    dtype: str = "float32"
    log_every: int = 500           # progress line every this many iterations (0: silent)


@dataclass
class Fit:
    method: str
    dim: int                       # D
    cfg: VIConfig
    nets: dict                     # {"gen", "adv"} layer lists (AVB), {} (Gaussian)
    params: dict                   # name -> array: "gen.", "adv." or "q."
    seconds: float = 0.0
    history: dict = field(default_factory=lambda: {"step": [], "primal": [], "dual": []})


class DivergenceError(FloatingPointError):
    """A VI loss became NaN or inf; training stopped before the step that would have used it."""


def build(method, dim, cfg, rng, xp=np, dtype=None):
    """The networks and initial parameters of `method` for a D = dim target (weights from rng)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dim, dtype = validate.positive_int("dim", dim), dtype or cfg.dtype
    if method in ("meanfield", "fullrank"):                  # start at q = N(0, I)
        params = {"q.mu": np.zeros(dim), ("q.log_sigma" if method == "meanfield" else "q.log_diag"): np.zeros(dim)}
        if method == "fullrank":
            params["q.L"] = np.zeros((dim, dim))             # strictly lower triangle used
        return {}, {k: xp.asarray(v, dtype=dtype) for k, v in params.items()}
    for name in ("eps_dim", "adv_width", "batch_size", "steps", "dual_steps"):
        validate.positive_int(f"VIConfig.{name}", getattr(cfg, name))
    gen = network.mlp("gen", [cfg.eps_dim, *cfg.gen_hidden, dim], "elu")
    adv = [Affine("adv.in", dim, cfg.adv_width), Act("leaky_relu")]
    for i in range(cfg.adv_blocks):
        adv += [Residual(f"adv.res{i}", cfg.adv_width, act="leaky_relu"), Act("leaky_relu")]
    nets = {"gen": gen, "adv": adv + [Affine("adv.out", cfg.adv_width, 1, cfg.out_gain)]}
    params = {}
    for net in nets.values():
        params.update(network.init_params(net, rng, xp, dtype))
    return nets, params


def contrast_of(method, cfg):
    """The contrast function z -> (mu, sigma) of AVB ("avb": fixed, "avb_ac": batch moments)."""
    return batch_moments(cfg.ac_floor) if method == "avb_ac" else fixed_contrast(cfg.contrast_sd)


def fit(log_density, dim, method, cfg, rng, xp=np, log=print, name=""):
    """Train q for the target log_density in R^dim by `method`; all noise from the NumPy generator rng.

    Raises DivergenceError (naming the method and the learning rate to lower) if a loss is NaN or inf.
    """
    if not isinstance(cfg, VIConfig):
        raise TypeError(f"cfg must be an avb_np.vi.VIConfig, got {type(cfg).__name__}")
    nets, params = build(method, dim, cfg, rng, xp)
    _check_log_density(log_density, dim, xp, cfg.dtype)
    avb, B = method.startswith("avb"), validate.positive_int("VIConfig.batch_size", cfg.batch_size)
    opt_primal = Adam(cfg.lr_primal if avb else cfg.lr_gaussian, beta1=cfg.beta1)
    opt_dual = Adam(cfg.lr_dual, beta1=cfg.beta1)
    contrast = contrast_of(method, cfg)
    run = Fit(method, dim, cfg, nets, params)
    noise = lambda *shape: to_device(rng.standard_normal(shape).astype(cfg.dtype), xp)   # drawn on the host
    t0 = time.perf_counter()
    for step in range(1, validate.positive_int("VIConfig.steps", cfg.steps) + 1):
        dual = float("nan")
        if avb:
            # Primal step: minimise mean[T(w) + log r(z) - log p~(z)] over phi; psi fixed.
            primal, grads = avb_primal_loss(nets, params, noise(B, cfg.eps_dim), log_density, contrast)
            _check(primal, method, "primal", step, "lr_primal", cfg.lr_primal)
            opt_primal.step(params, grads)
            # Dual steps: minimise mean[softplus(-T(w_q)) + softplus(T(u))] over psi; phi fixed.
            for _ in range(cfg.dual_steps):
                dual, grads = avb_dual_loss(nets, params, noise(B, cfg.eps_dim), noise(B, dim), contrast)
                _check(dual, method, "adversary", step, "lr_dual", cfg.lr_dual)
                opt_dual.step(params, grads)
        else:
            # One step on the negative ELBO -mean log p~(m + L eps) - H[q].
            primal, grads = gaussian_loss(params, noise(B, dim), log_density)
            _check(primal, method, "negative ELBO", step, "lr_gaussian", cfg.lr_gaussian)
            opt_primal.step(params, grads)
        run.history["step"].append(step)
        run.history["primal"].append(float(primal))
        run.history["dual"].append(float(dual))
        if log and cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
            extra = f"  adversary {float(dual):.4f}" if avb else ""
            log(f"[{name or 'vi'} {method}] iter {step:>6}  loss {float(primal):.4f}{extra}  "
                f"{step / (time.perf_counter() - t0):.0f} it/s")
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


def _check(loss, method, what, step, lr_name, lr):
    if not math.isfinite(float(loss)):
        raise DivergenceError(f"{method}: the {what} loss became {float(loss)} at iteration {step}; training "
                              f"stopped before using it. Try a lower learning rate ({lr_name}={lr:g} now, e.g. half).")


def samples(fit, n, rng, chunk=65536):
    """n draws from q as a float64 host array (n, D), computed in float64 from the host parameters."""
    params, out = host_params(fit.params), []
    for i in range(0, validate.positive_int("n", n), chunk):
        m = min(chunk, n - i)
        if fit.method.startswith("avb"):
            out.append(sampler(fit.nets, params, rng.standard_normal((m, fit.cfg.eps_dim)))[0])
        else:
            out.append(gaussian_sample(params, rng.standard_normal((m, fit.dim)))[0])
    return np.concatenate(out)


def elbo(fit, log_density, n, rng):
    """ELBO = E_q[log p~(z) - log q(z)] from n draws, in float64 on the host.

    Gaussian: log q(z) = log N(eps; 0, I) - sum_k log L_kk exactly (a Monte Carlo estimate of a bound).
    AVB: log q(z) ~ T(w) + log r(z) with r from the contrast of all n draws (an estimate, not a bound).
    """
    params, n = host_params(fit.params), validate.positive_int("n", n)
    if fit.method.startswith("avb"):
        z = sampler(fit.nets, params, rng.standard_normal((n, fit.cfg.eps_dim)))[0]
        mu, sigma = contrast_of(fit.method, fit.cfg)(z)
        w = (z - mu) / sigma
        log_q = adversary(fit.nets, params, w)[0] - 0.5 * (w * w).sum(1) - np.log(sigma).sum() - 0.5 * fit.dim * LOG_2PI
    else:
        eps = rng.standard_normal((n, fit.dim))
        z, L = gaussian_sample(params, eps)
        log_q = -0.5 * (eps * eps).sum(1) - np.log(np.diag(L)).sum() - 0.5 * fit.dim * LOG_2PI
    return float(np.mean(to_host(log_density(z)[0]) - log_q))


def evaluate(fit, target, rng, n_kl=200_000, n_elbo=20_000):
    """The experiment's numbers for one fit against a targets.Target's exact answers:

    kl         KL(q || p) of the (z1, z2) marginals from n_kl draws, binned (targets.binned_kl):
               the full KL for a 2-d target, a lower bound on it otherwise
    outside    fraction of those draws outside target.box (dropped by the binning)
    elbo       the ELBO from n_elbo draws (see `elbo`), beside log_Z, the exact log normaliser
    stats      target.summarise of the n_kl draws, beside target.exact
    """
    z = samples(fit, n_kl, rng)
    return {"kl": targets.binned_kl(target, z), "outside": targets.fraction_outside(target, z),
            "elbo": elbo(fit, target.log_density, n_elbo, rng), "log_Z": target.log_Z,
            "stats": target.summarise(z), "seconds": round(fit.seconds, 2)}


def gradcheck_cases(rng, N=6):
    """The VI objectives and the targets' hand-written gradients as avb_np.gradcheck_suite cases:
    AVB's primal and dual (adversary) losses with a fixed contrast r and with adaptive contrast
    (AC: one batch's moments, then held fixed, as the objectives treat them), the Gaussian
    baselines' negative ELBO, and every target's log density (L = sum_n w_n log p~(z_n)), in float64.
    All along random directions: log p~ is tens of nats, so the difference's rounding floor
    (~1e-16 |L| / h) would swamp a gradient entry that is near 0 by chance."""
    cases, cfg = [], VIConfig(eps_dim=3, gen_hidden=(5, 5), adv_width=6, adv_blocks=1, out_gain=1.0)
    D2 = targets.banana().log_density
    nets, params = build("avb", 2, cfg, rng, np, np.float64)
    for p in params.values():                               # off the initial values (zero biases, zero W2)
        p += 0.3 * rng.standard_normal(p.shape)
    gen = {k: v for k, v in params.items() if k.startswith("gen.")}
    adv = {k: v for k, v in params.items() if k.startswith("adv.")}
    eps, u = rng.standard_normal((N, cfg.eps_dim)), rng.standard_normal((N, 2))
    moments = batch_moments()(sampler(nets, params, eps)[0])  # AC's moments of this batch, then held fixed
    for label, contrast in (("fixed r", fixed_contrast(1.5)), ("AC", lambda z: moments)):
        primal = lambda p, c=contrast: avb_primal_loss(nets, {**adv, **p}, eps, D2, c)
        dual = lambda p, c=contrast: avb_dual_loss(nets, {**gen, **p}, eps, u, c)
        cases.append(Case(f"VI primal ({label})", primal, gen, TOL_OBJECTIVE, directional=True))
        cases.append(Case(f"VI dual ({label})", dual, adv, TOL_OBJECTIVE, directional=True))
    mirror = eight_schools.eight_schools_mirror().log_density  # 10-d, log p~ ~ -15: a moderate loss
    for method, label in (("meanfield", "mean-field"), ("fullrank", "full-rank")):
        _, q = build(method, 10, cfg, rng, np, np.float64)
        for p in q.values():
            p += 0.3 * rng.standard_normal(p.shape)
        e = rng.standard_normal((N, 10))
        loss = lambda p, e=e: gaussian_loss(p, e, mirror)
        cases.append(Case(f"VI {label} -ELBO", loss, q, TOL_OBJECTIVE, directional=True))
    for t in (targets.banana(), targets.mixture(), targets.ring(), eight_schools.eight_schools(),
              eight_schools.eight_schools_mirror()):
        w = moderate(rng, N)                                  # L = sum_n w_n log p~(z_n)
        z = rng.standard_normal((N, t.dim)) + (2.5 if t.name == "ring" else 0.0)   # off the ring's centre

        def loss(p, f=t.log_density, w=w):
            logp, dz = f(p["z"])
            return float(w @ logp), {"z": w[:, None] * dz}
        cases.append(Case(f"target {t.name}", loss, {"z": z}, TOL_OBJECTIVE, directional=True))
    return cases
