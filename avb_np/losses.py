"""Losses and log-densities with their gradients, computed stably from logits.

Per-example quantities come back with shape (N,); their gradients are those of the sum over
the batch, i.e. row n of a gradient is d value_n / d input_n. Nothing is clipped: every
formula taking logits stays finite and correct at any magnitude (tested at +-1e4); the
Gaussian KL overflows only for log_sigma above ~350 (sigma^2 > 1e308).
"""
import math

import numpy as np

from .backend import array_module
from .layers import sigmoid, softplus


def bernoulli_log_likelihood(x, logits):
    """log p(x|z) for independent Bernoulli pixels with logits l = f_theta(z).

        log p(x|z) = sum_i [ x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i)) ]
                   = sum_i [ x_i l_i - softplus(l_i) ]          (stable form)
        d/dl_i     = x_i - sigmoid(l_i)

    x: (N, D) in {0, 1}, logits: (N, D) -> logp: (N,), dlogits: (N, D).
    """
    logp = (x * logits - softplus(logits)).sum(axis=1)     # (N,)
    dlogits = x - sigmoid(logits)                           # (N, D)
    return logp, dlogits


def adversary_loss(T_q, T_p):
    """The adversary's logistic loss, minimised over psi (the paper's adversary objective).

        loss = mean_n [ -log sigmoid(T(x_n, z_q)) - log(1 - sigmoid(T(x_n, z_p))) ]
             = mean_n [ softplus(-T_q) + softplus(T_p) ]
        dloss/dT_q = (sigmoid(T_q) - 1) / N = -sigmoid(-T_q) / N,   dloss/dT_p = sigmoid(T_p) / N

    Encoder samples z_q are the positive class, prior samples z_p (paired with the same x)
    the negative class. T_q, T_p: (N,) -> loss: scalar, dT_q: (N,), dT_p: (N,).
    """
    N = T_q.shape[0]
    loss = (softplus(-T_q) + softplus(T_p)).mean()
    return loss, -sigmoid(-T_q) / N, sigmoid(T_p) / N


def gaussian_kl(mu, log_sigma):
    """KL( N(mu, diag sigma^2) || N(0, I) ) per example, with sigma = exp(log_sigma).

        KL = sum_k [ 0.5 (mu_k^2 + sigma_k^2) - log sigma_k - 0.5 ]
        dKL/dmu = mu,   dKL/dlog_sigma = sigma^2 - 1

    mu, log_sigma: (N, K) -> kl: (N,), dmu: (N, K), dlog_sigma: (N, K).
    """
    xp = array_module(mu, log_sigma)
    sigma2 = xp.exp(2 * log_sigma)                          # sigma^2, (N, K)
    kl = (0.5 * (mu * mu + sigma2) - log_sigma - 0.5).sum(axis=1)
    return kl, mu, sigma2 - 1


def standard_normal_log_density(z):
    """log N(z; 0, I) = -0.5 ||z||^2 - (K/2) log(2 pi).   z: (N, K) -> logp: (N,), dz = -z."""
    K = z.shape[1]
    return -0.5 * (z * z).sum(axis=1) - 0.5 * K * math.log(2 * math.pi), -z


def logsumexp(a, axis):
    """log sum_i exp(a_i) along `axis`, shifted by the max m so nothing overflows:
    m + log sum_i exp(a_i - m).   NumPy arrays (host)."""
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))
