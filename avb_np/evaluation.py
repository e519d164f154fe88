"""Evaluation of a trained run: encoder samples, the ELBO's two terms, and the demo's table.

A model with a 2-d latent is compared against exact answers (avb_np.quadrature): its
log-likelihood, and how far q(z|x) is from the exact posterior p(z|x). Everything here runs
on the host in float64, whatever backend the model was trained on.
"""
import numpy as np

from . import ac, losses, models, network, quadrature, validate, validate_run
from .backend import host_params
from .methods import METHODS, build_nets
from .quadrature import CHUNK


def _checked_run(run):
    """A run (training.Run, from new_run or checkpoint.load) whose configuration is valid and
    whose parameters fit its networks; returns its configuration."""
    if not all(hasattr(run, a) for a in ("cfg", "method", "nets", "params")):
        raise TypeError(f"run must be a training.Run (from new_run or checkpoint.load), got {type(run).__name__}")
    method = validate.choice("run.method", run.method, validate.METHOD_NAMES)
    cfg = validate_run.config(run.cfg, method, "run.cfg")
    validate_run.model(run.nets, run.params, tuple(build_nets(cfg, method)), ("run.nets", "run.params"))
    return cfg


def sample_q(run, data, n_samples, rng):
    """n_samples encoder samples per data row, z: (K, S, Dz), on the host in float64."""
    cfg = _checked_run(run)
    n_samples = validate.positive_int("n_samples", n_samples)
    data = validate.binary_data("data", data, cfg.x_dim)
    validate.generator("rng", rng)
    validate.memory("n_samples", n_samples, 8 * len(data) * n_samples * cfg.z_dim,
                    f"{n_samples} samples of z for each of the {len(data)} data rows")
    params = host_params(run.params)
    method = METHODS[run.method]
    noise_dim, encode = method.noise_dim(cfg), method.encode
    z = np.empty((len(data), n_samples, cfg.z_dim))
    for k, x in enumerate(np.asarray(data, dtype=np.float64)):            # one data row at a time,
        for i in range(0, n_samples, CHUNK):                               # CHUNK samples at a time
            m = min(CHUNK, n_samples - i)
            z[k, i:i + m] = encode(run.nets, params, np.broadcast_to(x, (m, len(x))),
                                   rng.standard_normal((m, noise_dim)))[0]
    return z


def contrast(run, data, rng, n_draws=CHUNK):
    """The moments of an AVB+AC encoder's q(z|x) per data row, mu, sigma: (K, Dz) host float64
    (ac.moments), with E[v], Var[v] of the basis network from n_draws noise draws of rng."""
    cfg = _checked_run(run)
    if not METHODS[run.method].contrast:
        raise ValueError(f"contrast needs an AVB+AC run (method 'avb-ac'), got method {run.method!r}")
    data = validate.binary_data("data", data, cfg.x_dim).astype(np.float64)
    params = host_params(run.params)
    v, _ = network.forward(run.nets["enc_v"], params, rng.standard_normal((validate.positive_int(
        "n_draws", n_draws), cfg.eps_dim)))                                # (n_draws, Dz)
    z0, a, _ = ac.scales(run.nets, params, data)                         # (K, Dz), (K, m, Dz)
    return ac.moments(z0, a, ac.basis_moments(v))


def elbo_terms(run, data, z, moments=None):
    """Per data row: the reconstruction error E_q[-log p(x|z)] from encoder samples z: (K, S, Dz),
    and KL(q(z|x) || p(z)): E_q[T(x, z)] for AVB and E_q[T(x, z~) + log r(z|x) - log p(z)] for
    AVB+AC (the adversary's estimates; AC needs moments = contrast(run, data, rng)), analytic for
    the VAE. Returns (reconstruction error (K,), kl (K,)), host float64, chunked to bound memory."""
    cfg = _checked_run(run)
    data = validate.binary_data("data", data, cfg.x_dim).astype(np.float64)
    if not isinstance(z, np.ndarray) or z.ndim != 3 or z.shape[0] != len(data) or z.shape[2] != cfg.z_dim:
        raise ValueError(f"z must be a (K={len(data)}, S, Dz={cfg.z_dim}) array from sample_q, got "
                         f"{getattr(z, 'shape', z)!r}")
    method = METHODS[run.method]
    if method.contrast != (moments is not None):
        raise ValueError("moments (mu, sigma from evaluation.contrast) are needed for an AVB+AC run, "
                         f"and only for one; this run's method is {run.method!r}")
    params = host_params(run.params)
    K, S, Dz = z.shape
    rec, kl = np.empty(K), np.empty(K)
    rows = max(1, CHUNK // S)                                             # data rows per pass
    for i in range(0, K, rows):
        x = np.repeat(data[i:i + rows], S, axis=0)                        # (R * S, Dx), x_k S times
        zk = z[i:i + rows].reshape(-1, Dz)                                # (R * S, Dz)
        logits, _ = models.decode(run.nets, params, zk)
        rec[i:i + rows] = -losses.bernoulli_log_likelihood(x, logits)[0].reshape(-1, S).mean(axis=1)
        if method.kl is not None:                                         # the adversary's estimate
            mk = None if moments is None else tuple(np.repeat(m[i:i + rows], S, axis=0) for m in moments)
            kl[i:i + rows] = method.kl(run.nets, params, x, zk, mk, cfg.prior_term).reshape(-1, S).mean(axis=1)
    if method.kl is None:                                                 # analytic KL
        _, mu, log_sigma, _ = models.encode_gaussian(run.nets, params, data, np.zeros((K, cfg.z_dim)))
        kl = losses.gaussian_kl(mu, log_sigma)[0]
    return rec, kl


def evaluate(run, data, n_samples=200_000, n_mc=20_000, n=400, lim=6.0, bins=200, seed=1):
    """The metrics of the demo's table for a trained run, all in nats per data point.

    log_likelihood        exact mean log p(x) (quadrature on an n x n grid over [-lim, lim]^2)
    reconstruction_error  E_q[-log p(x|z)] (Monte Carlo, the first n_mc samples per point)
    kl                    KL(q(z|x) || p(z)): the adversary's estimate for AVB and AVB+AC
                          (see elbo_terms), analytic for the VAE
    elbo                  -(reconstruction_error + kl): an estimate for AVB, exact up to MC for the VAE
    posterior_kl          KL(q(z|x) || p(z|x)) from all n_samples samples, binned (see posterior_kl)
    """
    cfg = _checked_run(run)
    data = validate.binary_data("data", data, cfg.x_dim).astype(np.float64)
    n_samples, n_mc = validate.positive_int("n_samples", n_samples), validate.positive_int("n_mc", n_mc)
    n, lim, bins = validate.positive_int("n", n), validate.finite_float("lim", lim, *validate.LIM_RANGE), validate.positive_int("bins", bins)
    if n % bins:                                          # before the work, not after it
        raise ValueError(f"bins must divide the grid size n={n}, got bins={bins}")
    if n_mc > n_samples:
        raise ValueError(f"n_mc must be at most n_samples={n_samples} (it uses the first n_mc of them), got {n_mc}")
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    z = sample_q(run, data, n_samples, rng)                               # (K, S, 2)
    moments = contrast(run, data, rng) if METHODS[run.method].contrast else None
    rec, kl = elbo_terms(run, data, z[:, :validate.positive_int("n_mc", n_mc)], moments)
    rec, kl = rec.mean(), kl.mean()
    params = host_params(run.params)
    log_px, log_post = quadrature.normalise(quadrature.log_joint_on_grid(run.nets, params, data, n, lim), n)   # one grid pass
    return {"log_likelihood": float(log_px.mean()),
            "elbo": float(-(rec + kl)), "kl": float(kl), "reconstruction_error": float(rec),
            "posterior_kl": float(quadrature.posterior_kl(log_post, z, lim, bins).mean()),
            "seconds": round(run.seconds, 2)}
