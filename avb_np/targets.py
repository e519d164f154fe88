"""Target densities for variational inference, each with its exact answers.

A target is an unnormalised density p~(z) on R^D, given as a function written by hand with its
gradient (the same on NumPy and CuPy):

    log_density(z) -> (logp: (N,), dlogp_dz: (N, D))        z: (N, D)

and the answers VI should recover, computed exactly here (and tested two independent ways):

    log_Z     log of the normaliser Z = int p~(z) dz, so that for any q
              KL(q || p) = E_q[log q(z) - log p~(z)] + log Z   and   ELBO = log Z - KL <= log Z
    exact     posterior statistics {name: value}; summarise(z) computes the same from samples
    marginal  the exact log density of (z1, z2) on a grid, inside the plotting box `box`

For the 2-d targets (banana, mixture, ring) the marginal is the whole posterior, and binned_kl
turns it into KL(q || p) from samples, counting every sample. Where log q is known (the Gaussian
baselines) avb_np.vi.compare uses the exact Monte Carlo KL instead. The Eight Schools targets are in avb_np.eight_schools.
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import losses, quadrature, validate
from .backend import array_module
from .gradcheck import TOL_OBJECTIVE, Case, moderate


@dataclass
class Target:
    name: str
    dim: int                  # D
    log_density: Callable     # z: (N, D) -> logp: (N,), dlogp_dz: (N, D)
    log_Z: float              # log int p~(z) dz, exact
    exact: dict               # statistic -> exact posterior value
    summarise: Callable       # samples z: (S, D) -> {statistic: value}, the keys of `exact`
    marginal: Callable        # (a: (n1,), b: (n2,)) -> exact log p(z1 = a_i, z2 = b_j): (n1, n2)
    box: tuple                # (lo1, hi1, lo2, hi2): where (z1, z2) has its mass, for grids and plots
    labels: tuple = ("z1", "z2")


def _moments_2d(z):
    """Mean (2,) and covariance (2, 2) of samples z: (S, 2), as lists (for JSON)."""
    return {"mean": z.mean(axis=0).tolist(), "cov": np.cov(z.T, bias=True).tolist()}


def _two_d(name, log_density, log_Z, mean, cov, box):
    """A 2-d target whose mass lies in `box`; its (z1, z2) marginal is p~(z) / Z itself."""
    def marginal(a, b):
        z = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)   # (n1 n2, 2)
        return log_density(z)[0].reshape(len(a), len(b)) - log_Z
    return Target(name, 2, log_density, log_Z, {"mean": list(mean), "cov": np.asarray(cov).tolist()},
                  _moments_2d, marginal, tuple(box))


def _box(box):
    """(lo1, hi1, lo2, hi2): four finite numbers with lo < hi."""
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise ValueError(f"box must be (lo1, hi1, lo2, hi2), got {box!r}")
    lo1, hi1, lo2, hi2 = (validate.finite_float(f"box[{i}]", v) for i, v in enumerate(box))
    if not (lo1 < hi1 and lo2 < hi2):
        raise ValueError(f"box must have lo < hi on both axes, got {box!r}")
    return (lo1, hi1, lo2, hi2)


def banana(s1=1.0, s2=0.35, b=0.5, box=(-5.0, 5.0, -3.0, 12.0)):
    """A Rosenbrock-like banana: z1 ~ N(0, s1^2), z2 | z1 ~ N(b (z1^2 - s1^2), s2^2).

        log p~(z) = -z1^2 / (2 s1^2) - (z2 - m(z1))^2 / (2 s2^2),   m(z1) = b (z1^2 - s1^2)
        log Z     = log(2 pi s1 s2)                    (the Gaussian integral over z2, then z1)
        E z = 0,  Var z1 = s1^2,  Var z2 = s2^2 + 2 b^2 s1^4  (Var z1^2 = 2 s1^4),  Cov = b E z1^3 = 0
    """
    s1, s2 = validate.positive_float("s1", s1), validate.positive_float("s2", s2)
    b, box = validate.finite_float("b", b), _box(box)

    def log_density(z):
        xp = array_module(z)
        z1, z2 = z[:, 0], z[:, 1]
        d = z2 - b * (z1 * z1 - s1 ** 2)                     # (N,) z2 - m(z1)
        logp = -0.5 * z1 * z1 / s1 ** 2 - 0.5 * d * d / s2 ** 2
        dz1 = -z1 / s1 ** 2 + (d / s2 ** 2) * 2 * b * z1    # dm/dz1 = 2 b z1
        return logp, xp.stack([dz1, -d / s2 ** 2], axis=1)
    cov = [[s1 ** 2, 0.0], [0.0, s2 ** 2 + 2 * b ** 2 * s1 ** 4]]
    return _two_d("banana", log_density, math.log(2 * math.pi * s1 * s2), [0.0, 0.0], cov, box)


def mixture(means=((-2.0, -2.0), (2.0, 2.0)), scales=(0.6, 0.9), box=(-6.0, 6.0, -6.0, 6.0)):
    """Two well-separated isotropic Gaussian bumps, unnormalised:

        p~(z) = sum_k exp(-||z - m_k||^2 / (2 s_k^2))
        log Z = log sum_k 2 pi s_k^2,   weights w_k = s_k^2 / sum_j s_j^2
        E z = sum_k w_k m_k,   Cov = sum_k w_k (s_k^2 I + m_k m_k^T) - E z E z^T
        dlogp/dz = sum_k r_k(z) (m_k - z) / s_k^2, r_k the responsibilities (softmax of the terms)
    """
    m, s2 = np.asarray(means, dtype=float), np.asarray(scales, dtype=float) ** 2   # (K, 2), (K,)
    if m.ndim != 2 or m.shape[1] != 2 or s2.shape != (len(m),) or not len(m):
        raise ValueError(f"means must be K points in 2-d and scales K numbers, got {means!r} and {scales!r}")
    if not (np.isfinite(m).all() and np.isfinite(s2).all() and (s2 > 0).all()):
        raise ValueError(f"means must be finite and scales positive and finite, got {means!r} and {scales!r}")
    box = _box(box)

    def log_density(z):
        xp = array_module(z)
        mk, s2k = xp.asarray(m, dtype=z.dtype), xp.asarray(s2, dtype=z.dtype)
        diff = mk[None] - z[:, None]                          # (N, K, 2): m_k - z
        a = -0.5 * (diff * diff).sum(axis=2) / s2k            # (N, K): log of each term
        top = a.max(axis=1, keepdims=True)
        logp = top[:, 0] + xp.log(xp.exp(a - top).sum(axis=1))   # logsumexp over k
        r = xp.exp(a - logp[:, None])                         # (N, K) responsibilities
        return logp, ((r / s2k)[:, :, None] * diff).sum(axis=1)
    w = s2 / s2.sum()
    mean = w @ m
    cov = sum(wk * (s2k * np.eye(2) + np.outer(mk, mk)) for wk, s2k, mk in zip(w, s2, m)) - np.outer(mean, mean)
    return _two_d("mixture", log_density, math.log(2 * math.pi * s2.sum()), mean.tolist(), cov, box)


def mixture_sample(rng, n, means=((-2.0, -2.0), (2.0, 2.0)), scales=(0.6, 0.9)):
    """Exact samples of `mixture` with the same arguments: (n, 2)."""
    m, s = np.asarray(means, dtype=float), np.asarray(scales, dtype=float)
    k = rng.choice(len(s), size=n, p=s ** 2 / (s ** 2).sum())
    return m[k] + s[k, None] * rng.standard_normal((n, 2))


def ring_radial_integral(r0, w, power, n=200_001):
    """int_0^inf r^power exp(-(r - r0)^2 / (2 w^2)) dr by the trapezoid rule on [0, r0 + 12 w]."""
    r = np.linspace(0.0, r0 + 12 * w, n)
    f = r ** power * np.exp(-0.5 * ((r - r0) / w) ** 2)
    return float((f.sum() - 0.5 * (f[0] + f[-1])) * (r[1] - r[0]))


def ring(r0=2.5, w=0.3, box=(-4.0, 4.0, -4.0, 4.0)):
    """A ring of radius r0 and width w: p~(z) = exp(-(||z|| - r0)^2 / (2 w^2)).

    In polar form the radius has density proportional to r exp(-(r - r0)^2 / (2 w^2)) (close to
    N(r0, w^2) for r0 >> w) and the angle is uniform, so
        Z      = 2 pi int_0^inf r exp(-(r - r0)^2 / (2 w^2)) dr            (1-d quadrature)
               = 2 pi [ w^2 exp(-r0^2 / (2 w^2)) + r0 w sqrt(2 pi) Phi(r0 / w) ]   (closed form, tested)
        E z = 0,   Cov = (E r^2 / 2) I,   E r^2 = int r^3 (...) dr / int r (...) dr
        dlogp/dz = -(r - r0) / w^2 * z / r      (set to 0 at z = 0 exactly, where p~ has a cone point)
    """
    r0, w, box = validate.finite_float("r0", r0, 0.0, 1e3), validate.finite_float("w", w, 1e-3, 1e3), _box(box)

    def log_density(z):
        xp = array_module(z)
        r = xp.sqrt((z * z).sum(axis=1))                      # (N,)
        g = -(r - r0) / w ** 2 / xp.where(r > 0, r, 1.0)      # (N,) d logp/dr divided by r
        return -0.5 * ((r - r0) / w) ** 2, xp.where(r > 0, g, 0.0)[:, None] * z
    Z1, Z3 = ring_radial_integral(r0, w, 1), ring_radial_integral(r0, w, 3)
    return _two_d("ring", log_density, math.log(2 * math.pi * Z1), [0.0, 0.0], 0.5 * Z3 / Z1 * np.eye(2), box)


def ring_log_Z_closed_form(r0=2.5, w=0.3):
    """log Z of `ring` from the closed form in its docstring (Phi(x) = (1 + erf(x / sqrt 2)) / 2)."""
    Phi = 0.5 * (1 + math.erf(r0 / w / math.sqrt(2)))
    return math.log(2 * math.pi * (w * w * math.exp(-0.5 * (r0 / w) ** 2) + r0 * w * math.sqrt(2 * math.pi) * Phi))


def grid_log_mass(target, n=400):
    """The exact mass of each cell of an n x n grid over target.box, from its (z1, z2) marginal.

    Midpoint rule: log P(cell) = log p(z1, z2 at the centre) + log(cell area). Returns the log
    masses: (n, n), indexed [i(z1), j(z2)], and the centres a: (n,), b: (n,). Their total is 1
    minus the mass outside the box (minus the midpoint rule's error): tested.
    """
    lo1, hi1, lo2, hi2 = target.box
    a = lo1 + (hi1 - lo1) * (np.arange(n) + 0.5) / n
    b = lo2 + (hi2 - lo2) * (np.arange(n) + 0.5) / n
    area = (hi1 - lo1) * (hi2 - lo2) / n ** 2
    return target.marginal(a, b) + math.log(area), a, b


def check_finite(z):
    """z: (S, D) samples of q as a float64 host array; NaN or infinite samples are refused with a
    ValueError (a KL from the finite ones alone would hide a q that has diverged)."""
    z = np.asarray(z, dtype=np.float64)
    bad = ~np.isfinite(z).all(axis=1) if z.ndim == 2 else None
    if bad is None or len(z) == 0:
        raise ValueError(f"samples must be a non-empty (samples, dim) array, got shape {z.shape}")
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {len(z)} samples of q are NaN or infinite: q has diverged, "
                         "and no KL can be computed from its samples (fit again with a lower learning rate)")
    return z


def binned_kl(target, z, bins=100, sub=4):
    """KL(q || p) between the (z1, z2) marginals of samples z: (S, D) and the exact posterior,
    binned on cells that count every sample:

        KL ~= sum over occupied cells c of (n_c / S) log[ (n_c / S) / P(c) ]
        P(c) = (cell area / sub^2) sum over sub x sub midpoints m of p(m)     (the exact cell mass)

    The cells are those of a bins x bins grid over target.box, continued as a lattice over the
    whole plane: a sample outside the box falls into a cell of its own, whose exact mass P(c) is
    tiny, and adds its (large) share to the KL rather than vanishing. Only occupied cells are
    evaluated, so the cost is O(S log S) wherever the samples are. Non-finite samples raise a
    ValueError (check_finite).
    For a 2-d target this is the binned KL(q || p) itself; for D > 2 it is the KL of the (z1, z2)
    marginals, a lower bound on the full KL (marginalising can only lower a KL). The plug-in
    estimate is biased upwards by about (occupied cells - 1) / (2 S): exact samples of the 2-d
    targets score 0.004 to 0.015 nats with 200k samples and 100 x 100 cells over the box.
    """
    z = check_finite(z)
    lo, hi = np.array(target.box[0::2]), np.array(target.box[1::2])
    width = (hi - lo) / bins                                   # (2,) cell sides
    cell = np.floor((z[:, :2] - lo) / width).astype(np.int64)   # (S, 2) lattice index of each sample
    cells, counts = np.unique(cell, axis=0, return_counts=True)  # (M, 2) occupied cells, (M,)
    offsets = (np.arange(sub) + 0.5) / sub                      # (sub,) midpoints within a cell
    log_mass = np.empty(len(cells))
    for j in np.unique(cells[:, 1]):                            # one column of cells at a time
        here = np.flatnonzero(cells[:, 1] == j)
        a = (lo[0] + width[0] * (cells[here, 0][:, None] + offsets)).reshape(-1)    # (m sub,)
        b = lo[1] + width[1] * (j + offsets)                                        # (sub,)
        lp = target.marginal(a, b).reshape(len(here), sub * sub)                    # (m, sub^2)
        log_mass[here] = losses.logsumexp(lp, axis=1) + math.log(width.prod() / sub ** 2)
    q = counts / len(z)                                          # (M,) q's mass per cell
    return float(np.sum(q * (np.log(q) - log_mass)))


def fraction_outside(target, z):
    """The fraction of samples z: (S, D) whose (z1, z2) fall outside target.box (NaN counts as
    outside). binned_kl counts them in cells of their own; the fraction says how far q spills."""
    z = np.asarray(z)
    lo1, hi1, lo2, hi2 = target.box
    inside = (z[:, 0] >= lo1) & (z[:, 0] <= hi1) & (z[:, 1] >= lo2) & (z[:, 1] <= hi2)
    return float(1 - inside.mean())


def target_case(t, rng, N=6):
    """A gradient check (gradcheck.Case) of a target's hand-written dlogp/dz, through
    L = sum_n w_n log p~(z_n) with per-row weights w, along a random direction (log p~ is tens of
    nats, so the difference's rounding floor ~1e-16 |L| / h would swamp an entry near 0 by chance)."""
    w = moderate(rng, N)
    z = rng.standard_normal((N, t.dim)) + (2.5 if t.name == "ring" else 0.0)   # off the ring's centre

    def loss(p):
        logp, dz = t.log_density(p["z"])
        return float(w @ logp), {"z": w[:, None] * dz}
    return Case(f"target {t.name}", loss, {"z": z}, TOL_OBJECTIVE, directional=True)


def gradcheck_cases(rng, N=6):
    """The 2-d targets' log densities, checked by target_case."""
    return [target_case(t, rng, N) for t in (banana(), mixture(), ring())]
