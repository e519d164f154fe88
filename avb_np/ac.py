"""The noise-basis encoder of AVB with adaptive contrast: a neural sampler whose mean and
standard deviation per x are known in closed form (Mescheder et al. 2017, section 4 and the
official code's MNIST encoder):

    z = z0(x) + sum_i a_i(x) * v_i,        i = 1..m,   v_i = MLP(eps_i),   eps_i ~ N(0, I)
    h = body(x),   z0 = h W0 + b0,   a_i = elu(h Wa_i + ba_i - 5) + 1  (> 0, about e^-5 at the start)

The v_i do not depend on x and are independent of each other, so with the moments of v,
    E[z|x]   = z0(x) + (sum_i a_i(x)) * E[v]
    Var[z|x] = (sum_i a_i(x)^2) * Var[v]          (elementwise, per latent dimension)
This package's one choice here: one basis network shared by all m bases (the v_i are i.i.d., so
E[v] and Var[v] are estimated from all N m draws of a batch); a_i(x) still weights each basis
per x and per dimension. sigma = sqrt(Var + 1e-4), as in the official code.

Shapes: N batch, Dx pixels, H the body's width, m bases, De noise per basis, Dz latent.
"""
import math

from . import layers, network
from .backend import array_module
from .network import Act, Affine

SHIFT = 5.0        # a_i = elu(linear - SHIFT) + 1 starts near exp(-5): z starts close to z0(x)
Z0_STD = 1e-5      # initial weight std of z0's layer (tiny, as in the official code)
VAR_FLOOR = 1e-4   # sigma = sqrt(Var[z|x] + VAR_FLOOR): a collapsed dimension stays finite


def build(cfg):
    """The encoder's layer lists: "enc" the body x -> h (ending in its activation), "enc_z0"
    h -> z0, "enc_a" h -> the m scale vectors a_i, "enc_v" the basis network eps_i -> v_i."""
    body = network.mlp("enc", [cfg.x_dim, *cfg.enc_hidden], cfg.act) + [Act(cfg.act)]   # h: last hidden layer
    H = cfg.enc_hidden[-1]
    return {"enc": body,
            "enc_z0": [Affine("enc.z0", H, cfg.z_dim, Z0_STD * math.sqrt(H))],
            "enc_a": [Affine("enc.a", H, cfg.n_bases * cfg.z_dim, cfg.out_gain)],
            "enc_v": network.mlp("enc.v", [cfg.eps_dim, *cfg.basis_hidden, cfg.z_dim], cfg.act, cfg.out_gain)}


def noise_width(cfg):
    """Columns of the encoder's noise: m bases of eps_dim each."""
    return cfg.n_bases * cfg.eps_dim


def scales(nets, params, x):
    """The per-x parts: z0(x) and the scales a_i(x) = elu(h Wa_i + ba_i - 5) + 1 > 0.
    x: (N, Dx) -> z0: (N, Dz), a: (N, m, Dz), cache."""
    N, Dz = x.shape[0], nets["enc_z0"][0].n_out
    h, body_cache = network.forward(nets["enc"], params, x)                     # (N, H)
    z0, z0_cache = network.forward(nets["enc_z0"], params, h)                   # (N, Dz)
    pre, a_cache = network.forward(nets["enc_a"], params, h)                    # (N, m Dz)
    a = layers.elu_forward(pre - SHIFT)[0].reshape(N, -1, Dz) + 1               # (N, m, Dz)
    return z0, a, (body_cache, z0_cache, a_cache)


def encode(nets, params, x, eps):
    """z = z0(x) + sum_i a_i(x) * v_i, v_i = MLP(eps_i).   x: (N, Dx), eps: (N, m De) -> z: (N, Dz), cache."""
    z0, a, scale_cache = scales(nets, params, x)
    N, m, Dz = a.shape
    v, v_cache = network.forward(nets["enc_v"], params, eps.reshape(N * m, -1))  # (N m, Dz): v_i = MLP(eps_i)
    v = v.reshape(N, m, Dz)
    z = z0 + (a * v).sum(axis=1)                                                # (N, Dz)
    return z, (scale_cache, v_cache, z0, a, v)


def moments(z0, a, v_moments):
    """mu(x), sigma(x) of q(z|x), (N, Dz) each, from z0: (N, Dz), a: (N, m, Dz) and the basis
    network's moments v_moments = (E[v], Var[v]), (Dz,) each (see `basis_moments`):

        mu = z0 + (sum_i a_i) * E[v],   sigma = sqrt((sum_i a_i^2) * Var[v] + VAR_FLOOR)

    No gradient flows through them: they are the contrast's constants."""
    mean_v, var_v = v_moments
    return z0 + a.sum(axis=1) * mean_v, array_module(a).sqrt((a * a).sum(axis=1) * var_v + VAR_FLOOR)


def batch_moments(cache):
    """mu(x), sigma(x) for the rows of an `encode` call, with E[v], Var[v] from all its N m basis
    draws (the contrast of a training step)."""
    _, _, z0, a, v = cache
    return moments(z0, a, basis_moments(v))


def basis_moments(v):
    """E[v], Var[v] over all draws: v (N, m, Dz) -> (Dz,), (Dz,)."""
    v = v.reshape(-1, v.shape[-1])
    mean = v.mean(axis=0)
    return mean, ((v - mean) ** 2).mean(axis=0)


def encode_backward(nets, dz, cache):
    """dz: (N, Dz) -> grads of every encoder parameter (none for x or eps):

        dL/dz0 = dz,   dL/dv_i = dz * a_i,   dL/da_i = dz * v_i,
        dL/d(pre_i) = dL/da_i * elu'(pre_i - 5) = dL/da_i * min(a_i, 1)   (elu' = e^u = a for u <= 0, else 1)
    """
    (body_cache, z0_cache, a_cache), v_cache, _, a, v = cache
    xp = array_module(dz)
    N, m, Dz = a.shape
    dh, grads = network.backward(nets["enc_z0"], dz, z0_cache)                   # (N, H)
    da = dz[:, None, :] * v                                                      # (N, m, Dz)
    dh_a, g = network.backward(nets["enc_a"], (da * xp.minimum(a, 1)).reshape(N, m * Dz), a_cache)
    grads.update(g)
    _, g = network.backward(nets["enc_v"], (dz[:, None, :] * a).reshape(N * m, Dz), v_cache, input_grad=False)
    grads.update(g)
    grads.update(network.backward(nets["enc"], dh + dh_a, body_cache, input_grad=False)[1])
    return grads
