"""Exact evaluation of a model with a 2-d latent by grid quadrature.

With Dz = 2 the marginal likelihood is a 2-d integral, computed on an n x n grid of cell
centres over [-lim, lim]^2 by the midpoint rule:

    log p(x) = log sum_cells exp( log p(x|z_c) + log N(z_c; 0, I) + log(cell area) )

which is the ground truth the adversary's estimates are compared against. Everything here
runs on the host in float64, whatever backend the model was trained on.
"""
import math

import numpy as np

from . import losses, models, validate
from .backend import to_host
from .layers import softplus


CHUNK = 65536  # rows per network pass in evaluation, to bound memory (~100 MB per pass)


def host_params(params):
    """A float64 NumPy copy of a parameter dict."""
    return {k: to_host(v).astype(np.float64) for k, v in params.items()}


def logsumexp(a, axis):
    """log sum exp(a) along `axis`, shifted by the max so nothing overflows (host arrays)."""
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))


def grid(n=400, lim=6.0):
    """Cell centres z: (n*n, 2), row-major with z[:, 0] varying slowest; and the cell area."""
    h = 2 * lim / n
    c = -lim + h * (np.arange(n) + 0.5)                   # (n,) centres along one axis
    z = np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)
    return z, h * h


def decoded_grid(nets, params, n=400, lim=6.0):
    """The decoder run once over the grid: cell centres z: (G, 2), logits: (G, Dx), and
    log p(z_c) + log(cell area) - sum_i softplus(l_ci): (G,), the part of the log joint that
    does not depend on x. G = n * n."""
    n, lim = validate.positive_int("n", n), validate.positive_float("lim", lim)
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
    data = validate.binary_data("data", data, nets["dec"][-1].n_out)
    _, logits, per_cell = decoded_grid(nets, params, n, lim)
    return data.astype(np.float64) @ logits.T + per_cell   # (K, Dx) @ (Dx, G) + (G,) -> (K, G)


def log_likelihood_per_point(nets, params, data, n=400, lim=6.0):
    """log p(x_k) = logsumexp over cells of the log joint, for each data row: (K,).

    Rows are taken a few at a time, so memory stays near CHUNK * 8 floats whatever K is."""
    data = validate.binary_data("data", data, nets["dec"][-1].n_out).astype(np.float64)
    _, logits, per_cell = decoded_grid(nets, params, n, lim)
    rows = max(1, 8 * CHUNK // len(per_cell))             # data rows per (rows, G) block
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
    n_samples = validate.positive_int("n_samples", n_samples)
    data = validate.binary_data("data", data, run.cfg.x_dim)
    params, cfg = host_params(run.params), run.cfg
    noise_dim = cfg.eps_dim if run.method == "avb" else cfg.z_dim
    encode = models.encode if run.method == "avb" else models.encode_gaussian
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


def elbo_terms(run, data, z):
    """Per data row: the reconstruction error E_q[-log p(x|z)] from encoder samples z: (K, S, Dz),
    and KL(q(z|x) || p(z)): E_q[T(x, z)] for AVB (the adversary's estimate), analytic for the
    VAE. Returns (reconstruction error (K,), kl (K,)), host float64, chunked to bound memory."""
    data = validate.binary_data("data", data, run.cfg.x_dim).astype(np.float64)
    params, cfg = host_params(run.params), run.cfg
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
    if run.method == "vae":                                               # analytic KL
        _, mu, log_sigma, _ = models.encode_gaussian(run.nets, params, data, np.zeros((K, cfg.z_dim)))
        kl = losses.gaussian_kl(mu, log_sigma)[0]
    return rec, kl


def evaluate(run, data, n_samples=200_000, n_mc=20_000, n=400, lim=6.0, bins=200, seed=1):
    """The metrics of the demo's table for a trained run, all in nats per data point.

    log_likelihood        exact mean log p(x) (quadrature on an n x n grid over [-lim, lim]^2)
    reconstruction_error  E_q[-log p(x|z)] (Monte Carlo, the first n_mc samples per point)
    kl                    KL(q(z|x) || p(z)): E_q[T(x, z)] for AVB (the adversary's estimate),
                          analytic for the VAE
    elbo                  -(reconstruction_error + kl): an estimate for AVB, exact up to MC for the VAE
    posterior_kl          KL(q(z|x) || p(z|x)) from all n_samples samples, binned (see posterior_kl)
    """
    data = validate.binary_data("data", data, run.cfg.x_dim).astype(np.float64)
    rng = np.random.default_rng(seed)
    z = sample_q(run, data, n_samples, rng)                               # (K, S, 2)
    rec, kl = elbo_terms(run, data, z[:, :validate.positive_int("n_mc", n_mc)])
    rec, kl = rec.mean(), kl.mean()
    params = host_params(run.params)
    log_px, log_post = _normalise(log_joint(run.nets, params, data, n, lim), n)   # one grid pass
    return {"log_likelihood": float(log_px.mean()),
            "elbo": float(-(rec + kl)), "kl": float(kl), "reconstruction_error": float(rec),
            "posterior_kl": float(posterior_kl(log_post, z, lim, bins).mean()),
            "seconds": round(run.seconds, 2)}
