"""KL(q || p) for a variational q whose log density is known, against an unnormalised target p~.

    KL(q || p) = E_q[ log q(z) - log p~(z) ] + log Z,          Z = int p~(z) dz (known exactly)

With S draws z_s ~ q this is a plain Monte Carlo mean, unbiased, with standard error
sd_s(log q(z_s) - log p~(z_s)) / sqrt(S); every draw counts wherever it lands, unlike a binned
estimate (avb_np.targets.binned_kl), which implicit samplers such as AVB's need. Used by
avb_np.vi.compare for the Gaussian baselines (mean-field, full-rank): z = m + L eps, eps ~ N(0, I),

    log q(z) = log N(eps; 0, I) - sum_k log L_kk          (the change of variables z = m + L eps)
"""
import math

import numpy as np

from .backend import array_module, to_host
from .vi_objectives import LOG_2PI, gaussian_q_sample


def monte_carlo_kl(log_q, log_p, log_Z):
    """KL and its standard error from per-draw log q(z_s): (S,) and log p~(z_s): (S,), host arrays.
    Non-finite values (a q that has diverged, or z outside p~'s support) raise a ValueError."""
    d = np.asarray(log_q, dtype=np.float64) - np.asarray(log_p, dtype=np.float64)   # (S,)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"need at least 2 draws as (S,) arrays, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError(f"{int((~np.isfinite(d)).sum())} of {len(d)} draws give a NaN or infinite "
                         "log q - log p~: q has diverged or put mass where p~ has none")
    return float(d.mean() + log_Z), float(d.std(ddof=1) / math.sqrt(len(d)))


def gaussian_kl(params, log_density, log_Z, eps):
    """KL(q || p) of a Gaussian q (vi_objectives.gaussian_q_sample's parameters `params`, host
    float64, NumPy or CuPy) from the noise eps: (S, D) ~ N(0, I) on the same module;
    log_density(z) -> (log p~: (S,), grad). Returns (KL, standard error) as floats."""
    xp = array_module(eps)
    z, L = gaussian_q_sample(params, eps)                                    # (S, D), (D, D)
    log_q = -0.5 * (eps * eps).sum(axis=1) - xp.log(xp.diag(L)).sum() - 0.5 * eps.shape[1] * LOG_2PI
    return monte_carlo_kl(to_host(log_q), to_host(log_density(z)[0]), log_Z)
