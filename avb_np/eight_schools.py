"""Eight Schools (Rubin 1981; Gelman et al., Bayesian Data Analysis, ch. 5) as VI targets, with
exact answers from a 1-d integral.

Model, non-centred: theta_j = mu + tau * eta_j, y_j ~ N(theta_j, sigma_j^2), j = 1..8, with
    classic   mu ~ N(0, 5^2), tau ~ HalfCauchy(0, 5), eta_j ~ N(0, 1); sampled in
              z = (mu, log tau, eta_1..8): p~(z) carries the log-Jacobian log tau of tau = exp(log tau)
    mirror    the official AVB example's variant: N(0, s^2) priors on all ten (s = 1 here; the
              example's notebook sets s = 100), tau unconstrained, z = (mu, tau, eta_1..8), and
              its rescaled data. p(y | tau) depends on tau^2 only, so the posterior has two mirror
              modes (tau, eta) <-> (-tau, -eta) and P(tau < 0 | y) = 1/2 exactly.

p~(z) is the full joint p(y, z), so its normaliser is the evidence: log Z = log p(y).
Exact answers: given tau, eta_j integrates out to y_j ~ N(mu, v_j), v_j = sigma_j^2 + s_eta^2 tau^2,
and mu ~ N(0, s_mu^2) is conjugate. With P = 1/s_mu^2 + sum_j 1/v_j, B = sum_j y_j / v_j and
C = sum_j y_j^2 / v_j:
    log p(y | tau) = -1/2 log(2 pi s_mu^2) - 1/2 sum_j log(2 pi v_j) + 1/2 log(2 pi / P) - 1/2 (C - B^2 / P)
    mu | tau, y ~ N(B / P, 1 / P)
and everything else is a 1-d integral over tau, done by the trapezoid rule on a fine grid
(log tau in [-40, 8] step 0.005 for the classic model, tau in [-12, 12] step 0.002 for the mirror).
"""
import math

import numpy as np

from .backend import array_module
from .losses import logsumexp
from .targets import Target, target_case

Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)              # Rubin (1981)
SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
Y_MIRROR = (2.8, 0.8, -0.3, 0.7, -0.1, 0.1, 1.8, 1.2)          # the official AVB example's copy
SIGMA_MIRROR = (0.8, 0.5, 0.8, 0.6, 0.5, 0.6, 0.5, 0.4)
LOG_2PI = math.log(2 * math.pi)


def log_density_fn(y, sigma, s_mu, s_eta, s_tau, log_tau):
    """log p(y, z) and its gradient: s_tau is HalfCauchy(0, s_tau)'s scale when log_tau, else the
    sd of tau ~ N(0, s_tau^2).  With r_j = (y_j - theta_j) / sigma_j^2 (d loglik / d theta_j):
        d/dmu = sum_j r_j - mu / s_mu^2,    d/deta_j = tau r_j - eta_j / s_eta^2
        d/dtau = sum_j r_j eta_j - tau / s_tau^2                                  (mirror)
        d/dlog tau = tau sum_j r_j eta_j - 2 tau^2 / (s_tau^2 + tau^2) + 1        (classic)
    """
    y, s2 = np.asarray(y), np.asarray(sigma) ** 2
    J = len(y)
    const = -0.5 * (math.log(s_mu ** 2) + J * math.log(s_eta ** 2) + float(np.log(s2).sum()) + (2 * J + 1) * LOG_2PI)
    if log_tau:                                                # HalfCauchy's 2 / (pi s)
        const += math.log(2 / (math.pi * s_tau))
    else:                                                      # N(tau; 0, s^2)'s 1 / sqrt(2 pi s^2)
        const -= 0.5 * (math.log(s_tau ** 2) + LOG_2PI)

    def log_density(z):
        xp = array_module(z)
        mu, t, eta = z[:, 0], z[:, 1], z[:, 2:]               # (N,), (N,), (N, J)
        tau = xp.exp(t) if log_tau else t
        res = xp.asarray(y, dtype=z.dtype) - (mu[:, None] + tau[:, None] * eta)   # (N, J): y_j - theta_j
        r = res / xp.asarray(s2, dtype=z.dtype)
        logp = const - 0.5 * (mu / s_mu) ** 2 - 0.5 * ((eta / s_eta) ** 2).sum(axis=1) - 0.5 * (res * r).sum(axis=1)
        dtau = (r * eta).sum(axis=1)                           # d loglik / dtau
        if log_tau:   # log HalfCauchy(tau) = log(2 / (pi s)) - log(1 + tau^2 / s^2), plus log tau
            logp = logp - xp.log1p((tau / s_tau) ** 2) + t
            dt = tau * dtau - 2 * tau * tau / (s_tau ** 2 + tau * tau) + 1
        else:         # log N(tau; 0, s_tau^2)
            logp, dt = logp - 0.5 * (tau / s_tau) ** 2, dtau - tau / s_tau ** 2
        dmu = r.sum(axis=1) - mu / s_mu ** 2
        deta = tau[:, None] * r - eta / s_eta ** 2
        return logp, xp.concatenate([dmu[:, None], dt[:, None], deta], axis=1)
    return log_density


def log_lik_given_tau(tau, y, sigma, s_mu, s_eta):
    """log p(y | tau) and the Gaussian mu | tau, y: mean B/P, variance 1/P; tau: (T,) -> (T,) each."""
    y, s2 = np.asarray(y), np.asarray(sigma) ** 2
    v = s2 + (s_eta * np.asarray(tau)[:, None]) ** 2          # (T, J) marginal variances of y_j
    P, B, C = 1 / s_mu ** 2 + (1 / v).sum(axis=1), (y / v).sum(axis=1), (y * y / v).sum(axis=1)
    logp = (-0.5 * (math.log(s_mu ** 2) + LOG_2PI) - 0.5 * np.log(2 * np.pi * v).sum(axis=1)
            + 0.5 * np.log(2 * np.pi / P) - 0.5 * (C - B * B / P))
    return logp, B / P, 1 / P


def tau_grid(log_tau, s_tau):
    """The quadrature nodes t (z's coordinate: log tau or tau): (T,), tau at each node: (T,), and
    log p(t) + log(step): (T,), the prior part of each node's weight (p(log tau) includes the
    Jacobian tau)."""
    if log_tau:
        t, h = np.arange(-40.0, 8.0, 0.005), 0.005
        tau = np.exp(t)                                        # p(log tau) = HalfCauchy(tau) * tau
        log_prior = math.log(2 / (math.pi * s_tau)) - np.log1p((tau / s_tau) ** 2) + t
    else:
        h = 0.002
        t = (np.arange(12_000) - 5999.5) * h                   # exactly symmetric about 0, no node at 0
        tau, log_prior = t, -0.5 * (t / s_tau) ** 2 - 0.5 * (math.log(s_tau ** 2) + LOG_2PI)
    return t, tau, log_prior + math.log(h)


def exact_answers(y, sigma, s_mu, s_eta, s_tau, log_tau):
    """log p(y) and the posterior statistics by 1-d quadrature over tau (see the module docstring)."""
    t, tau, log_w = tau_grid(log_tau, s_tau)
    ll, m, V = log_lik_given_tau(tau, y, sigma, s_mu, s_eta)
    log_w = log_w + ll
    log_Z = float(logsumexp(log_w, axis=0))                    # trapezoid: the end nodes weigh ~1e-17
    w = np.exp(log_w - log_Z)                                  # posterior weights of the nodes, sum 1

    def mean_sd(f, f2):                                        # from E f and E f^2
        Ef = float(w @ f)
        return Ef, math.sqrt(max(float(w @ f2) - Ef * Ef, 0.0))
    exact = {}
    exact["mu_mean"], exact["mu_sd"] = mean_sd(m, V + m * m)   # E mu^2 = E[1/P + (B/P)^2]
    exact["tau_mean"], exact["tau_sd"] = mean_sd(tau, tau * tau)
    if log_tau:
        exact["log_tau_mean"], exact["log_tau_sd"] = mean_sd(t, t * t)
    else:
        exact["abs_tau_mean"] = float(w @ np.abs(tau))
        exact["p_tau_negative"] = float(w[tau < 0].sum())      # 1/2 by symmetry
    return log_Z, exact


def _summarise(log_tau):
    def summarise(z):
        mu, tau = z[:, 0], np.exp(z[:, 1]) if log_tau else z[:, 1]
        out = {"mu_mean": mu.mean(), "mu_sd": mu.std(), "tau_mean": tau.mean(), "tau_sd": tau.std()}
        if log_tau:
            out.update(log_tau_mean=z[:, 1].mean(), log_tau_sd=z[:, 1].std())
        else:
            out.update(abs_tau_mean=np.abs(tau).mean(), p_tau_negative=(tau < 0).mean())
        return {k: float(v) for k, v in out.items()}
    return summarise


def _marginal(y, sigma, s_mu, s_eta, s_tau, log_tau, log_Z):
    """Exact log density of (mu, t) on a grid: log p(t | y) + log N(mu; B/P, 1/P)."""
    def marginal(a, b):
        tau = np.exp(b) if log_tau else b
        ll, m, V = log_lik_given_tau(tau, y, sigma, s_mu, s_eta)   # (n2,) each
        if log_tau:
            log_prior = math.log(2 / (math.pi * s_tau)) - np.log1p((tau / s_tau) ** 2) + b
        else:
            log_prior = -0.5 * (b / s_tau) ** 2 - 0.5 * (math.log(s_tau ** 2) + LOG_2PI)
        log_mu = -0.5 * (a[:, None] - m) ** 2 / V - 0.5 * np.log(2 * np.pi * V)   # (n1, n2)
        return log_mu + (ll + log_prior - log_Z)[None, :]
    return marginal


def _target(name, y, sigma, s_mu, s_eta, s_tau, log_tau, box):
    log_Z, exact = exact_answers(y, sigma, s_mu, s_eta, s_tau, log_tau)
    labels = ("mu", "log tau" if log_tau else "tau")
    return Target(name, 2 + len(y), log_density_fn(y, sigma, s_mu, s_eta, s_tau, log_tau), log_Z, exact,
                  _summarise(log_tau), _marginal(y, sigma, s_mu, s_eta, s_tau, log_tau, log_Z), box, labels)


def eight_schools():
    """The classic model in z = (mu, log tau, eta_1..8); box for (mu, log tau): [-20, 30] x [-10, 5]."""
    return _target("eight_schools", Y, SIGMA, 5.0, 1.0, 5.0, True, (-20.0, 30.0, -10.0, 5.0))


def eight_schools_mirror(s=1.0):
    """The official example's variant in z = (mu, tau, eta_1..8), N(0, s^2) priors on all ten."""
    return _target("eight_schools_mirror", Y_MIRROR, SIGMA_MIRROR, s, s, s, False, (-1.5, 3.0, -3.0, 3.0))


def gradcheck_cases(rng, N=6):
    """Both Eight Schools log densities, checked by targets.target_case."""
    return [target_case(t, rng, N) for t in (eight_schools(), eight_schools_mirror())]
