"""The training objectives of AVB and the VAE, each returning (loss, grads) for one player
(adaptive contrast: avb_np.ac_objectives).

Notation (Mescheder et al. 2017, arXiv:1701.04722v4): x data, eps ~ N(0, I) encoder noise,
z_q = g_phi(x, eps) encoder samples, z_p ~ p(z) = N(0, I) prior samples, T = T_psi(x, z) the
adversary.
Both primal terms are per-example sums (over pixels, over latent dims) averaged over the batch.
"""
from . import losses
from .backend import array_module
from .models import (adversary, adversary_backward, decode, decode_backward, encode,
                     encode_backward, encode_gaussian, encode_gaussian_backward)


def primal_loss(nets, params, x, eps, prior_term):
    """AVB primal loss, minimised over theta (decoder) and phi (encoder) with psi held fixed:

        loss = mean_n [ T(x_n, z_q) - log p_theta(x_n | z_q) ],   z_q = g_phi(x_n, eps_n)

    The gradient reaches phi only through z_q: dL/dz = dT/dz - d log p(x|z)/dz.
    Returns (loss, grads) with grads for every "enc." and "dec." parameter.
    """
    z, enc_cache = encode(nets, params, x, eps)                    # z_q: (N, Dz)
    loss, dz, grads = primal_terms(nets, params, x, z, prior_term)
    grads.update(encode_backward(nets, dz, enc_cache))
    return loss, grads


def primal_terms(nets, params, x, z, prior_term):
    """The primal loss at given encoder samples z: (N, Dz), and its gradients: the decoder's and
    dL/dz = (dT/dz - d log p(x|z)/dz) / N, which the encoder's backward pass takes.
    Returns (loss, dz, grads of every "dec." parameter)."""
    N = x.shape[0]
    T, adv_cache = adversary(nets, params, x, z, prior_term)       # T(x, z_q): (N,)
    logits, dec_cache = decode(nets, params, z)                    # (N, Dx)
    logp, dlogp_dlogits = losses.bernoulli_log_likelihood(x, logits)   # log p(x|z_q): (N,)
    xp = array_module(T)
    _, dz_T, _ = adversary_backward(nets, xp.full_like(T, 1 / N), adv_cache,
                                    param_grads=False)            # dT/dz only: psi is held fixed
    dz_dec, grads = decode_backward(nets, -dlogp_dlogits / N, dec_cache)
    return (T - logp).mean(), dz_T + dz_dec, grads


def dual_loss(nets, params, x, eps, z_p, prior_term):
    """AVB adversary loss, minimised over psi with the encoder held fixed:

        loss = mean_n [ softplus(-T(x_n, z_q)) + softplus(T(x_n, z_p)) ]

    Encoder samples z_q = g_phi(x, eps) are the positive class, prior samples z_p the negative
    class, each paired with the SAME x (see `discriminate`).
    Returns (loss, grads) with grads for every "adv." parameter.
    """
    z_q, _ = encode(nets, params, x, eps)                          # (N, Dz); no gradient to phi here
    return discriminate(nets, params, x, z_q, z_p, prior_term)


def discriminate(nets, params, x, z_pos, z_neg, prior_term):
    """The logistic loss of T telling (x_n, z_pos_n) (label 1) from (x_n, z_neg_n) (label 0):

        loss = mean_n [ softplus(-T(x_n, z_pos_n)) + softplus(T(x_n, z_neg_n)) ]

    x: (N, Dx), z_pos, z_neg: (N, Dz). Both halves go through T as one batch of 2N.
    Returns (loss, grads) with grads for every "adv." parameter.
    """
    N = x.shape[0]
    xp = array_module(x, z_pos, z_neg)
    x2 = xp.concatenate([x, x])                                    # (2N, Dx): the same x for both halves
    z2 = xp.concatenate([z_pos, z_neg])                            # (2N, Dz): positives, then negatives
    T, cache = adversary(nets, params, x2, z2, prior_term)         # (2N,)
    loss, dT_q, dT_p = losses.adversary_loss(T[:N], T[N:])
    dT = xp.concatenate([dT_q, dT_p])                              # (2N,)
    _, _, grads = adversary_backward(nets, dT, cache, input_grad=False)   # psi's grads only
    return loss, grads


def vae_loss(nets, params, x, eps):
    """The VAE's negative ELBO, with the analytic KL and a reparameterised sample:

        loss = mean_n [ KL(q(z|x_n) || p(z)) - log p_theta(x_n | z) ],   z = mu + sigma * eps

    Returns (loss, grads) with grads for every "enc." and "dec." parameter.
    """
    N = x.shape[0]
    z, mu, log_sigma, enc_cache = encode_gaussian(nets, params, x, eps)
    logits, dec_cache = decode(nets, params, z)
    logp, dlogp_dlogits = losses.bernoulli_log_likelihood(x, logits)
    kl, dkl_dmu, dkl_dlog_sigma = losses.gaussian_kl(mu, log_sigma)
    loss = (kl - logp).mean()
    dz, grads = decode_backward(nets, -dlogp_dlogits / N, dec_cache)
    grads.update(encode_gaussian_backward(nets, dz, dkl_dmu / N, dkl_dlog_sigma / N, enc_cache))
    return loss, grads
