"""The objectives of variational inference for an unnormalised target p~(z), z in R^D, each
returning (loss, grads) for one player.

AVB (Mescheder et al. 2017, arXiv:1701.04722v4, the paper's black-box VI example): a neural sampler
z = g_phi(eps) with no x (the encoder's layer code), and an adversary T_psi that tells q's samples
from those of a Gaussian contrast r = N(mu, diag sigma^2). The adversary sees standardised points
w = (z - mu) / sigma against u ~ N(0, I), and its extra term is the contrast's log density:

    T(w) = NN_psi(w) - log N(w; 0, I) = NN_psi(w) + 1/2 ||w||^2 + (D/2) log 2 pi
    optimum  T*(w) = log q~(w) - log N(w; 0, I) = log q(z) - log r(z),   so NN* = log q~ itself
    KL(q || p) = E_q[T(w) + log r(z) - log p~(z)] + log Z,   log r(z) = log N(w; 0, I) - sum_k log sigma_k

Adaptive contrast: mu, sigma are the batch's moments of z, held constant (no gradient through
them). Plain AVB: mu = 0, sigma = s fixed, i.e. z against z_r = s u with the first layer's weights
scaled by 1/s. Either way the moments come from `contrast(z) -> (mu, sigma)`, so a gradient check
can hold them fixed. Gaussian baselines: z = m + L eps with the entropy in closed form.
Shapes: N batch, D latent, De sampler noise.
"""
import math

import numpy as np

from . import eight_schools, losses, models, network
from .ac_objectives import standardise
from .backend import array_module
from .gradcheck import TOL_OBJECTIVE, Case
from .network import Act, Affine, Residual
from .targets import banana

LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- AVB players

def networks(dim, eps_dim, gen_hidden, adv_width, adv_blocks, out_gain):
    """The sampler "gen": eps (De) -> gen_hidden (ELU) -> z (D), and the adversary "adv":
    w (D) -> adv_width, leaky ReLU 0.2 -> adv_blocks residual blocks (each then leaky ReLU) -> 1."""
    adv = [Affine("adv.in", dim, adv_width), Act("leaky_relu")]
    for i in range(adv_blocks):
        adv += [Residual(f"adv.res{i}", adv_width, act="leaky_relu"), Act("leaky_relu")]
    return {"gen": network.mlp("gen", [eps_dim, *gen_hidden, dim], "elu"),
            "adv": adv + [Affine("adv.out", adv_width, 1, out_gain)]}


def sampler(nets, params, eps):
    """z = g_phi(eps).   eps: (N, De) -> z: (N, D), cache."""
    return network.forward(nets["gen"], params, eps)


def contrast_adversary(nets, params, w):
    """T(w) = NN_psi(w) + 1/2 ||w||^2 + (D/2) log 2 pi: the models' adversary T(x, w) with no x
    and prior_term 1/2 (models.adversary), plus the constant.   w: (N, D) -> T: (N,), cache."""
    xp = array_module(w)
    T, cache = models.adversary(nets, params, xp.zeros((len(w), 0), dtype=w.dtype), w, 0.5)
    return T + 0.5 * w.shape[1] * LOG_2PI, cache


def contrast_adversary_backward(nets, dT, cache, param_grads=True):
    """dT: (N,) -> dw: (N, D) (with d(1/2 ||w||^2)/dw = w), grads of psi ({} if not param_grads)."""
    _, dw, grads = models.adversary_backward(nets, dT, cache, param_grads)
    return dw, grads


def fixed_contrast(s):
    """r = N(0, s^2 I) for every batch (plain AVB)."""
    def contrast(z):
        xp = array_module(z)
        return xp.zeros_like(z[0]), xp.full_like(z[0], s)          # mu: (D,), sigma: (D,)
    return contrast


def adaptive_contrast(floor=1e-4):
    """r = N(mu, diag sigma^2) from the batch: mu = mean_n z_n, sigma = sqrt(var_n z_n + floor)
    (adaptive contrast; the floor keeps a collapsing coordinate finite, as in the official code)."""
    def contrast(z):
        xp = array_module(z)
        mu = z.mean(axis=0)                                        # (D,)
        return mu, xp.sqrt(((z - mu) ** 2).mean(axis=0) + floor)
    return contrast


def avb_primal_loss(nets, params, eps, log_density, contrast):
    """AVB primal loss, minimised over phi (the sampler) with psi held fixed:

        loss = mean_n [ T(w_n) + log r(z_n) - log p~(z_n) ],  z_n = g_phi(eps_n),  w_n = (z_n - mu) / sigma
             = mean_n [ T(w_n) - 1/2 ||w_n||^2 - sum_k log sigma_k - (D/2) log 2 pi - log p~(z_n) ]

    (mu, sigma) = contrast(z) are constants; the gradient reaches phi only through z:
        dloss/dz_n = (dT/dw_n - w_n) / sigma / N - dlog p~/dz_n / N
    Returns (loss, grads) with grads for every "gen." parameter.
    """
    N, xp = eps.shape[0], array_module(eps)
    z, gen_cache = sampler(nets, params, eps)                      # (N, D)
    mu, sigma = contrast(z)                                        # (D,), (D,): held constant
    w = standardise(z, mu, sigma)                                  # (N, D)
    T, adv_cache = contrast_adversary(nets, params, w)             # (N,)
    log_r = -0.5 * (w * w).sum(axis=1) - xp.log(sigma).sum() - 0.5 * w.shape[1] * LOG_2PI   # (N,)
    logp, dlogp = log_density(z)                                   # (N,), (N, D)
    dlogp = dlogp.astype(z.dtype, copy=False)                      # keep float32 runs in float32
    loss = (T + log_r - logp).mean()
    dw, _ = contrast_adversary_backward(nets, xp.full_like(T, 1 / N), adv_cache, False)   # psi held fixed
    dz = (dw - w / N) / sigma - dlogp / N                          # dlog r/dz = -w / sigma
    _, grads = network.backward(nets["gen"], dz, gen_cache)
    return loss, grads


def avb_dual_loss(nets, params, eps, u, contrast):
    """AVB adversary loss, minimised over psi with phi held fixed:

        loss = mean_n [ softplus(-T(w_n)) + softplus(T(u_n)) ],  w_n = (g_phi(eps_n) - mu) / sigma,  u_n ~ N(0, I)

    q's standardised samples are the positive class, the contrast's the negative class; both go
    through T as one batch of 2N. eps: (N, De), u: (N, D). Returns (loss, grads) for "adv.".
    """
    N, xp = eps.shape[0], array_module(eps, u)
    z, _ = sampler(nets, params, eps)                              # no gradient to phi here
    mu, sigma = contrast(z)
    T, cache = contrast_adversary(nets, params, xp.concatenate([standardise(z, mu, sigma), u]))   # (2N,)
    loss, dT_q, dT_r = losses.adversary_loss(T[:N], T[N:])
    _, grads = contrast_adversary_backward(nets, xp.concatenate([dT_q, dT_r]), cache)
    return loss, grads


# ----------------------------------------------------------------------------- Gaussian baselines

def gaussian_q_init(full_rank, dim):
    """q = N(0, I) in D = dim: "q.mu" and "q.log_sigma" (mean-field) or "q.log_diag" and "q.L"
    (full-rank; only L's strict lower triangle is used), as float64 host arrays."""
    params = {"q.mu": np.zeros(dim), ("q.log_diag" if full_rank else "q.log_sigma"): np.zeros(dim)}
    if full_rank:
        params["q.L"] = np.zeros((dim, dim))
    return params


def gaussian_q_sample(params, eps):
    """z = m + L eps with L = diag(exp(log_sigma)) (mean-field, "q.log_sigma") or
    L = strict_tril("q.L") + diag(exp("q.log_diag")) (full-rank).   eps: (N, D) -> z: (N, D), L: (D, D)."""
    xp = array_module(eps)
    if "q.log_sigma" in params:
        return params["q.mu"] + eps * xp.exp(params["q.log_sigma"]), xp.diag(xp.exp(params["q.log_sigma"]))
    L = xp.tril(params["q.L"], -1) + xp.diag(xp.exp(params["q.log_diag"]))
    return params["q.mu"] + eps @ L.T, L                           # (N, D) @ (D, D)


def gaussian_loss(params, eps, log_density):
    """Negative ELBO of q = N(m, L L^T), reparameterised, with the entropy in closed form:

        loss = -mean_n log p~(m + L eps_n) - H[q],   H[q] = sum_k log L_kk + (D/2)(1 + log 2 pi)
        with G = dloss/dz = -dlog p~/dz / N: (N, D),
        dm = sum_n G_n,   dL = G^T eps (D, D),   dlog L_kk = dL_kk L_kk - 1

    Mean-field (params "q.mu", "q.log_sigma") or full-rank ("q.mu", "q.L", "q.log_diag": only
    L's strictly lower triangle is used, and its gradient is zero elsewhere).
    """
    N, D = eps.shape
    xp = array_module(eps)
    z, L = gaussian_q_sample(params, eps)
    logp, dlogp = log_density(z)
    log_diag = params.get("q.log_sigma", params.get("q.log_diag"))
    loss = -logp.mean() - log_diag.sum() - 0.5 * D * (1 + LOG_2PI)
    G = -dlogp.astype(z.dtype, copy=False) / N                     # (N, D)
    dL = G.T @ eps                                                 # (D, N) @ (N, D) -> (D, D)
    grads = {"q.mu": G.sum(axis=0)}
    if "q.log_sigma" in params:
        grads["q.log_sigma"] = xp.diag(dL) * xp.exp(log_diag) - 1
    else:
        grads["q.L"], grads["q.log_diag"] = xp.tril(dL, -1), xp.diag(dL) * xp.exp(log_diag) - 1
    return loss, grads


def gradcheck_cases(rng, N=6):
    """AVB's primal and dual (adversary) losses with a fixed contrast r and with adaptive contrast
    (AC: one batch's moments, then held fixed, as the objectives treat them) on the banana's log
    density, and the Gaussian baselines' negative ELBO on a 10-d Gaussian-like log density, in
    float64, along random directions (the targets' own gradients: targets.gradcheck_cases)."""
    nets = networks(2, 3, (5, 5), 6, 1, 1.0)
    params = {}
    for net in nets.values():
        params.update(network.init_params(net, rng, np, np.float64))
    for p in params.values():                               # off the initial values (zero biases, zero W2)
        p += 0.3 * rng.standard_normal(p.shape)
    gen = {k: v for k, v in params.items() if k.startswith("gen.")}
    adv = {k: v for k, v in params.items() if k.startswith("adv.")}
    eps, u, D2 = rng.standard_normal((N, 3)), rng.standard_normal((N, 2)), banana().log_density
    moments = adaptive_contrast()(sampler(nets, params, eps)[0])   # AC's moments of this batch, then held fixed
    cases = []
    for label, contrast in (("fixed r", fixed_contrast(1.5)), ("AC", lambda z: moments)):
        primal = lambda p, c=contrast: avb_primal_loss(nets, {**adv, **p}, eps, D2, c)
        dual = lambda p, c=contrast: avb_dual_loss(nets, {**gen, **p}, eps, u, c)
        cases.append(Case(f"VI primal ({label})", primal, gen, TOL_OBJECTIVE, directional=True))
        cases.append(Case(f"VI dual ({label})", dual, adv, TOL_OBJECTIVE, directional=True))
    mirror = eight_schools.eight_schools_mirror().log_density  # 10-d, log p~ ~ -15: a moderate loss
    for full_rank, label in ((False, "mean-field"), (True, "full-rank")):
        q = gaussian_q_init(full_rank, 10)
        for p in q.values():
            p += 0.3 * rng.standard_normal(p.shape)
        e = rng.standard_normal((N, 10))
        loss = lambda p, e=e: gaussian_loss(p, e, mirror)
        cases.append(Case(f"VI {label} -ELBO", loss, q, TOL_OBJECTIVE, directional=True))
    return cases
