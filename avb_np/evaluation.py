"""Exact evaluation of a model with a 2-d latent by grid quadrature.

With Dz = 2 the marginal likelihood is a 2-d integral, computed on an n x n grid of cell
centres over [-lim, lim]^2 by the midpoint rule:

    log p(x) = log sum_cells exp( log p(x|z_c) + log N(z_c; 0, I) + log(cell area) )

which is the ground truth the adversary's estimates are compared against. Everything here
runs on the host in float64, whatever backend the model was trained on.
"""
import math

import numpy as np

from . import ac, ac_objectives, backend, losses, models, network, validate
from .backend import to_host
from .layers import softplus


CHUNK = 65536  # rows per network pass in evaluation, to bound memory (~100 MB per pass)


def host_params(params):
    """A float64 NumPy copy of a parameter dict."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict {{parameter name: array}}, got {type(params).__name__}")
    return {k: to_host(v).astype(np.float64) for k, v in params.items()}


def _checked_model(nets, params, need=("dec",), names=("nets", "params")):
    """Check the networks `need` of `nets` (layer lists, as models.build_nets makes them) and
    that `params` holds each of their parameters with its shape, finite and within
    validate.PARAM_BOUND (other entries are ignored)."""
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
    validate.arrays(names[1], own, shapes, None, xp, writable=False)


def _checked_run(run):
    """A run (training.Run, from new_run or checkpoint.load) whose configuration is valid and
    whose parameters fit its networks; returns its configuration."""
    if not all(hasattr(run, a) for a in ("cfg", "method", "nets", "params")):
        raise TypeError(f"run must be a training.Run (from new_run or checkpoint.load), got {type(run).__name__}")
    method = validate.choice("run.method", run.method, validate.METHODS)
    cfg = validate.config(run.cfg, method, "run.cfg")
    _checked_model(run.nets, run.params, tuple(models.build_nets(cfg, method)), ("run.nets", "run.params"))
    return cfg


def _lim(lim):
    """The grid's half-width, within validate.LIM."""
    return validate.finite_float("lim", lim, *validate.LIM)


def _grid_memory(n, columns):
    """Refuse an n x n grid whose float64 arrays, `columns` values per cell, exceed validate.MAX_BYTES."""
    validate.memory("n", n, 8 * n * n * columns, f"a {n} x {n} grid with {columns} values per cell")


def logsumexp(a, axis):
    """log sum exp(a) along `axis`, shifted by the max so nothing overflows (host arrays)."""
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))


def grid(n=400, lim=6.0):
    """Cell centres z: (n*n, 2), row-major with z[:, 0] varying slowest; and the cell area."""
    n, lim = validate.positive_int("n", n), _lim(lim)
    _grid_memory(n, 2)
    h = 2 * lim / n
    c = -lim + h * (np.arange(n) + 0.5)                   # (n,) centres along one axis
    z = np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)
    return z, h * h


def decoded_grid(nets, params, n=400, lim=6.0):
    """The decoder run once over the grid: cell centres z: (G, 2), logits: (G, Dx), and
    log p(z_c) + log(cell area) - sum_i softplus(l_ci): (G,), the part of the log joint that
    does not depend on x. G = n * n."""
    n, lim = validate.positive_int("n", n), _lim(lim)
    _checked_model(nets, params)
    _grid_memory(n, 4 + 2 * nets["dec"][-1].n_out)        # z, logits and their softplus, per-cell terms
    if nets["dec"][0].n_in != 2:                          # the grid covers a 2-d latent plane only
        raise ValueError(f"exact evaluation by quadrature needs z_dim=2, this decoder takes "
                         f"z_dim={nets['dec'][0].n_in}; use avb_np.ais for larger latents")
    params = host_params(params)
    z, area = grid(n, lim)
    logits = np.concatenate([models.decode(nets, params, z[i:i + CHUNK])[0]   # (G, Dx), one decoder
                             for i in range(0, len(z), CHUNK)])                 # pass serves all x
    log_prior, _ = losses.standard_normal_log_density(z)  # (G,)
    return z, logits, log_prior + math.log(area) - softplus(logits).sum(axis=1)


def log_joint(nets, params, data, n=400, lim=6.0):
    """log p(x_k|z_c) + log p(z_c) + log(area) for every data row k and grid cell c: (K, n*n).

    log p(x|z_c) = sum_i [x_i l_ci - softplus(l_ci)] (losses.bernoulli_log_likelihood), so for
    all rows at once it is one matmul, data @ logits.T, plus a term per cell.
    """
    _checked_model(nets, params)
    data = validate.binary_data("data", data, nets["dec"][-1].n_out)
    _grid_memory(validate.positive_int("n", n), 2 * len(data))   # the (K, G) result and a temporary
    _, logits, per_cell = decoded_grid(nets, params, n, lim)
    return data.astype(np.float64) @ logits.T + per_cell   # (K, Dx) @ (Dx, G) + (G,) -> (K, G)


def log_likelihood_per_point(nets, params, data, n=400, lim=6.0):
    """log p(x_k) = logsumexp over cells of the log joint, for each data row: (K,).

    Rows are taken in blocks of (rows, G) with about 128 * CHUNK floats (64 MB), whatever K is."""
    _checked_model(nets, params)
    data = validate.binary_data("data", data, nets["dec"][-1].n_out).astype(np.float64)
    _, logits, per_cell = decoded_grid(nets, params, n, lim)
    rows = max(1, 128 * CHUNK // len(per_cell))           # data rows per (rows, G) block
    return np.concatenate([logsumexp(data[i:i + rows] @ logits.T + per_cell, axis=1)
                           for i in range(0, len(data), rows)])


def log_likelihood(nets, params, data, n=400, lim=6.0):
    """Mean log p(x) over the data set (uniform over its rows); the optimum for the toy is -log 4."""
    return float(log_likelihood_per_point(nets, params, data, n, lim).mean())


def log_posterior(nets, params, data, n=400, lim=6.0):
    """log P(cell c | x_k), the exact posterior mass of each cell: (K, n, n), indexed [k, i(z0), j(z1)]."""
    return _normalise(log_joint(nets, params, data, n, lim), n)[1]


def _normalise(lj, n):
    """From log_joint's (K, n*n): log p(x_k) = logsumexp over cells, (K,), and the posterior (K, n, n)."""
    log_px = logsumexp(lj, axis=1)
    return log_px, (lj - log_px[:, None]).reshape(-1, n, n)


def sample_q(run, data, n_samples, rng):
    """n_samples encoder samples per data row, z: (K, S, Dz), on the host in float64."""
    cfg = _checked_run(run)
    n_samples = validate.positive_int("n_samples", n_samples)
    data = validate.binary_data("data", data, cfg.x_dim)
    validate.generator("rng", rng)
    validate.memory("n_samples", n_samples, 8 * len(data) * n_samples * cfg.z_dim,
                    f"{n_samples} samples of z for each of the {len(data)} data rows")
    params = host_params(run.params)
    noise_dim = models.noise_dim(cfg, run.method)
    encode = {"avb": models.encode, "avb-ac": ac.encode, "vae": models.encode_gaussian}[run.method]
    z = np.empty((len(data), n_samples, cfg.z_dim))
    for k, x in enumerate(np.asarray(data, dtype=np.float64)):            # one data row at a time,
        for i in range(0, n_samples, CHUNK):                               # CHUNK samples at a time
            m = min(CHUNK, n_samples - i)
            z[k, i:i + m] = encode(run.nets, params, np.broadcast_to(x, (m, len(x))),
                                   rng.standard_normal((m, noise_dim)))[0]
    return z


def posterior_kl(log_post, z, lim=6.0, bins=200):
    """KL(q(z|x) || p(z|x)) per data row, between the two distributions binned on a coarse grid.

    log_post: (K, n, n) exact cell posteriors, n a multiple of `bins`; z: (K, S, 2) encoder
    samples. The fine cells are summed into bins x bins blocks; q's bin masses are sample
    frequencies (samples outside [-lim, lim]^2 are dropped). Binning can only lower a KL, while
    the plug-in estimate from S samples is biased upwards by about (occupied bins - 1) / (2 S):
    the defaults, 200 x 200 bins of width 0.06 and 200k samples, keep both small (for the demo's
    AVB run, 50 / 100 / 200 bins give 0.16 / 0.21 / 0.23 nats: q's sharp edges need fine bins).
    """
    if not isinstance(log_post, np.ndarray) or log_post.ndim != 3 or log_post.shape[1] != log_post.shape[2]:
        raise ValueError(f"log_post must be a (K, n, n) array from log_posterior, got {getattr(log_post, 'shape', log_post)!r}")
    if not isinstance(z, np.ndarray) or z.ndim != 3 or z.shape[0] != log_post.shape[0] or z.shape[2] != 2:
        raise ValueError(f"z must be a (K={log_post.shape[0]}, S, 2) array from sample_q, got "
                         f"{getattr(z, 'shape', z)!r}")
    lim, bins = _lim(lim), validate.positive_int("bins", bins)
    K, n, _ = log_post.shape
    if n % bins:
        raise ValueError(f"bins must divide the grid size n={n}, got bins={bins}")
    r = n // bins
    blocks = log_post.reshape(K, bins, r, bins, r).transpose(0, 1, 3, 2, 4).reshape(K, bins, bins, -1)
    log_p = logsumexp(blocks, axis=3)                      # (K, bins, bins) posterior mass per bin
    edges = np.linspace(-lim, lim, bins + 1)
    kls = []
    for k in range(K):
        counts, _, _ = np.histogram2d(z[k, :, 0], z[k, :, 1], bins=[edges, edges])
        q = counts / z.shape[1]
        m = q > 0
        kls.append(float(np.sum(q[m] * (np.log(q[m]) - log_p[k][m]))))
    return np.array(kls)


def contrast(run, data, rng, n_draws=CHUNK):
    """The moments of an AVB+AC encoder's q(z|x) per data row, mu, sigma: (K, Dz) host float64
    (ac.moments), with E[v], Var[v] of the basis network from n_draws noise draws of rng."""
    cfg = _checked_run(run)
    if run.method != "avb-ac":
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
    if (run.method == "avb-ac") != (moments is not None):
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
        if run.method == "avb":                                           # E_q[T(x, z)]
            kl[i:i + rows] = models.adversary(run.nets, params, x, zk, cfg.prior_term)[0].reshape(-1, S).mean(axis=1)
        elif run.method == "avb-ac":                                      # E_q[T(x, z~) + log r - log p]
            mu, sigma = (np.repeat(m[i:i + rows], S, axis=0) for m in moments)
            zt = ac_objectives.standardise(zk, mu, sigma)
            T, _ = models.adversary(run.nets, params, x, zt, cfg.prior_term)
            kl[i:i + rows] = ac_objectives.kl_estimate(T, zk, zt, sigma).reshape(-1, S).mean(axis=1)
    if run.method == "vae":                                               # analytic KL
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
    n, lim, bins = validate.positive_int("n", n), _lim(lim), validate.positive_int("bins", bins)
    if n % bins:                                          # before the work, not after it
        raise ValueError(f"bins must divide the grid size n={n}, got bins={bins}")
    if n_mc > n_samples:
        raise ValueError(f"n_mc must be at most n_samples={n_samples} (it uses the first n_mc of them), got {n_mc}")
    rng = np.random.default_rng(validate.non_negative_int("seed", seed))
    z = sample_q(run, data, n_samples, rng)                               # (K, S, 2)
    moments = contrast(run, data, rng) if run.method == "avb-ac" else None
    rec, kl = elbo_terms(run, data, z[:, :validate.positive_int("n_mc", n_mc)], moments)
    rec, kl = rec.mean(), kl.mean()
    params = host_params(run.params)
    log_px, log_post = _normalise(log_joint(run.nets, params, data, n, lim), n)   # one grid pass
    return {"log_likelihood": float(log_px.mean()),
            "elbo": float(-(rec + kl)), "kl": float(kl), "reconstruction_error": float(rec),
            "posterior_kl": float(posterior_kl(log_post, z, lim, bins).mean()),
            "seconds": round(run.seconds, 2)}
