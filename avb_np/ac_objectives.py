"""The objectives of AVB with adaptive contrast (AC; Mescheder et al. 2017, section 4), each
returning (loss, grads) for one player.

The adversary does not tell q(z|x) from the prior but from a Gaussian r(z|x) = N(mu(x),
diag sigma(x)^2) with q's moments (avb_np.ac), after standardising both: it sees
z~ = (z - mu) / sigma against u ~ N(0, I), with T(x, w) = NN(x, w) + 1/2 ||w||^2 as for plain
AVB, so its optimum is T*(x, z~) = log q~(z~|x) - log N(z~; 0, I) = log q(z|x) - log r(z|x).
Then, with the 2 pi terms of log r and log p cancelling,

    KL(q(z|x) || p(z)) = E_q[ T*(x, z~) + log r(z|x) - log p(z) ]
    log r(z|x) - log p(z) = -1/2 ||z~||^2 - sum_k log sigma_k + 1/2 ||z||^2

mu and sigma are held constant: only the path through z carries gradient (the moments' own
dependence on phi drops out in expectation at T = T*, as in the paper's Proposition 2; the
tests show it numerically). With mu = 0, sigma = 1 everything reduces to plain AVB.
Shapes: N batch, Dx pixels, Dz latent.
"""
import numpy as np

from . import ac, losses, models
from .backend import array_module
from .config import Config
from .gradcheck import TOL_OBJECTIVE, Case, moderate
from .models import adversary, adversary_backward, decode, decode_backward
from .objectives import discriminate


def standardise(z, mu, sigma):
    """z~ = (z - mu) / sigma.   (N, Dz) each -> (N, Dz)."""
    return (z - mu) / sigma


def kl_estimate(T, z, zt, sigma):
    """Per row: T(x, z~) + log r(z|x) - log p(z) = T - 1/2 ||z~||^2 - sum_k log sigma_k + 1/2 ||z||^2.
    T: (N,), z, zt, sigma: (N, Dz) -> (N,)."""
    xp = array_module(z)
    return T - 0.5 * (zt * zt).sum(axis=1) - xp.log(sigma).sum(axis=1) + 0.5 * (z * z).sum(axis=1)


def kl_estimate_grad(dT_dzt, z, zt, sigma):
    """d kl_estimate / dz with mu, sigma constant (z~ = (z - mu) / sigma, so dz~/dz = 1 / sigma):
    (dT/dz~ - z~) / sigma + z.   All (N, Dz)."""
    return (dT_dzt - zt) / sigma + z


def primal_terms(nets, params, x, z, mu, sigma, prior_term):
    """The AC primal loss at given encoder samples z and constants mu, sigma (all (N, Dz)):

        loss = mean_n [ T(x_n, z~_n) + log r(z_n|x_n) - log p(z_n) - log p_theta(x_n | z_n) ]

    Returns (loss, dL/dz (N, Dz), grads of every "dec." parameter), like objectives.primal_terms."""
    N = x.shape[0]
    zt = standardise(z, mu, sigma)                                  # (N, Dz)
    T, adv_cache = adversary(nets, params, x, zt, prior_term)       # T(x, z~): (N,)
    logits, dec_cache = decode(nets, params, z)                     # (N, Dx)
    logp, dlogp_dlogits = losses.bernoulli_log_likelihood(x, logits)    # log p(x|z): (N,)
    loss = (kl_estimate(T, z, zt, sigma) - logp).mean()
    xp = array_module(T)
    _, dT_dzt, _ = adversary_backward(nets, xp.ones_like(T), adv_cache, param_grads=False)   # psi fixed
    dz_dec, grads = decode_backward(nets, -dlogp_dlogits / N, dec_cache)
    return loss, kl_estimate_grad(dT_dzt, z, zt, sigma) / N + dz_dec, grads


def primal_loss(nets, params, x, eps, prior_term, fixed=None):
    """AVB+AC primal loss, minimised over theta and phi with psi held fixed; z = the noise-basis
    encoder's samples, (mu, sigma) its batch moments (ac.batch_moments), or `fixed` = (mu, sigma) when
    given (a gradient check holds them fixed this way). x: (N, Dx), eps: (N, m De).
    Returns (loss, grads) with grads for every "enc." and "dec." parameter."""
    z, enc_cache = ac.encode(nets, params, x, eps)                  # (N, Dz)
    mu, sigma = ac.batch_moments(enc_cache) if fixed is None else fixed   # (N, Dz) each: constants
    loss, dz, grads = primal_terms(nets, params, x, z, mu, sigma, prior_term)
    grads.update(ac.encode_backward(nets, dz, enc_cache))
    return loss, grads


def dual_loss(nets, params, x, eps, u, prior_term):
    """AVB+AC adversary loss, minimised over psi with the encoder held fixed:

        loss = mean_n [ softplus(-T(x_n, z~_n)) + softplus(T(x_n, u_n)) ],   u ~ N(0, I)

    z~ = (z - mu) / sigma from the encoder's samples and batch moments. x: (N, Dx),
    eps: (N, m De), u: (N, Dz). Returns (loss, grads) with grads for every "adv." parameter."""
    z, enc_cache = ac.encode(nets, params, x, eps)                  # no gradient to phi here
    return dual_terms(nets, params, x, z, *ac.batch_moments(enc_cache), u, prior_term)


def dual_terms(nets, params, x, z, mu, sigma, u, prior_term):
    """The AC adversary loss at given encoder samples z and moments mu, sigma (all (N, Dz)):
    z~ = (z - mu) / sigma is the positive class, u ~ N(0, I) the negative, each with its x.
    Returns (loss, grads of every "adv." parameter)."""
    return discriminate(nets, params, x, standardise(z, mu, sigma), u, prior_term)


def gradcheck_cases(rng, N=6):
    """Gradient checks (avb_np.gradcheck_suite.Case) of the noise-basis encoder (through
    L = sum(z * G) for a fixed random G), and of the AC primal and adversary losses with the
    batch's moments computed once and then held fixed, as the objectives treat them. The
    scales a_i are moved near elu's bend (pre - 5 around 0) so both of its branches are checked."""
    cfg = Config(eps_dim=2, enc_hidden=(5, 5), dec_hidden=(5,), n_bases=3, basis_hidden=(4, 4),
                 adv_width=6, adv_blocks=1, out_gain=1.0)
    nets = {**ac.build(cfg), "dec": models.decoder(cfg), "adv": models.adversary_net(cfg)}   # as methods.build_nets
    params = models.init_all_params(nets, rng, np, np.float64)
    for p in params.values():                               # off the initial values (zero biases, zero W2)
        p += 0.3 * rng.standard_normal(p.shape)
    params["enc.a.b"] += ac.SHIFT
    x = np.eye(4)[rng.integers(0, 4, N)]
    eps, u = rng.standard_normal((N, ac.noise_width(cfg))), rng.standard_normal((N, cfg.z_dim))
    G = moderate(rng, (N, cfg.z_dim))
    enc = {k: v for k, v in params.items() if k.startswith("enc.")}
    adv = {k: v for k, v in params.items() if k.startswith("adv.")}
    primal = {k: v for k, v in params.items() if not k.startswith("adv.")}
    moments = ac.batch_moments(ac.encode(nets, params, x, eps)[1])   # this batch's, then held fixed

    def encoder(p):
        z, cache = ac.encode(nets, p, x, eps)
        return float(np.sum(z * G)), ac.encode_backward(nets, G, cache)

    return [Case("AC noise-basis encoder", encoder, enc, TOL_OBJECTIVE, directional=True),
            Case("AVB+AC primal loss", lambda p: primal_loss(nets, {**adv, **p}, x, eps, cfg.prior_term, moments),
                 primal, TOL_OBJECTIVE, directional=True),
            Case("AVB+AC adversary loss", lambda p: dual_loss(nets, {**primal, **p}, x, eps, u, cfg.prior_term),
                 adv, TOL_OBJECTIVE, directional=True)]
