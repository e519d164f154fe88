"""Exact evaluation of a decoder with a 2-d latent by grid quadrature.

With Dz = 2 the marginal likelihood is a 2-d integral, computed on an n x n grid of cell
centres over [-lim, lim]^2 by the midpoint rule:

    log p(x) = log sum_cells exp( log p(x|z_c) + log N(z_c; 0, I) + log(cell area) )

which is the ground truth the adversary's estimates are compared against. Everything here
runs on the host in float64, whatever backend the model was trained on. Run-level evaluation
(encoder samples, the ELBO's terms, the demo's table) is in avb_np.evaluation.
"""
import math

import numpy as np

from . import losses, models, validate, validate_run
from .backend import host_params
from .layers import softplus
from .losses import logsumexp

CHUNK = 65536  # rows per network pass, to bound memory (~100 MB per pass)


def _lim(lim):
    """The grid's half-width, within validate.LIM_RANGE."""
    return validate.finite_float("lim", lim, *validate.LIM_RANGE)


def _grid_memory(n, columns):
    """Refuse an n x n grid whose float64 arrays, `columns` values per cell, exceed validate.MAX_BYTES."""
    validate.memory("n", n, 8 * n * n * columns, f"a {n} x {n} grid with {columns} values per cell")


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
    validate_run.model(nets, params)
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


def log_joint_on_grid(nets, params, data, n=400, lim=6.0):
    """log p(x_k|z_c) + log p(z_c) + log(area) for every data row k and grid cell c: (K, n*n).

    log p(x|z_c) = sum_i [x_i l_ci - softplus(l_ci)] (losses.bernoulli_log_likelihood), so for
    all rows at once it is one matmul, data @ logits.T, plus a term per cell.
    """
    validate_run.model(nets, params)
    data = validate.binary_data("data", data, nets["dec"][-1].n_out)
    _grid_memory(validate.positive_int("n", n), 2 * len(data))   # the (K, G) result and a temporary
    _, logits, per_cell = decoded_grid(nets, params, n, lim)
    return data.astype(np.float64) @ logits.T + per_cell   # (K, Dx) @ (Dx, G) + (G,) -> (K, G)


def log_likelihood_per_point(nets, params, data, n=400, lim=6.0):
    """log p(x_k) = logsumexp over cells of the log joint, for each data row: (K,).

    Rows are taken in blocks of (rows, G) with about 128 * CHUNK floats (64 MB), whatever K is."""
    validate_run.model(nets, params)
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
    return normalise(log_joint_on_grid(nets, params, data, n, lim), n)[1]


def normalise(lj, n):
    """From log_joint_on_grid's (K, n*n): log p(x_k) = logsumexp over cells, (K,), and the posterior (K, n, n)."""
    log_px = logsumexp(lj, axis=1)
    return log_px, (lj - log_px[:, None]).reshape(-1, n, n)


def posterior_kl(log_post, z, lim=6.0, bins=200):
    """KL(q(z|x) || p(z|x)) per data row, between the two distributions binned on a coarse grid.

    log_post: (K, n, n) exact cell posteriors, n a multiple of `bins`; z: (K, S, 2) encoder
    samples. The fine cells are summed into bins x bins blocks; q's bin masses are sample
    frequencies (samples outside [-lim, lim]^2 are dropped). Binning can only lower a KL, while
    the plug-in estimate from S samples is biased upwards by about (occupied bins - 1) / (2 S):
    the defaults, 200 x 200 bins of width 0.06 and 200k samples, keep both small. Coarser bins
    smooth over q's sharp edges and so report a lower KL.
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
