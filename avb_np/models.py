"""The encoder, decoder and adversary of AVB, and the Gaussian encoder of the VAE baseline.

Each network is a list of layers (avb_np.network) whose parameters live in one flat dict under
the prefixes "enc.", "dec." and "adv.". Every function here is deterministic given its inputs:
the noise eps is an argument, never drawn inside. Shapes: N batch, Dx pixels, Dz latent,
De noise.
"""
from . import network
from .backend import array_module
from .network import Act, Affine, Residual


def sampler_encoder(cfg):
    """AVB's neural sampler g_phi: concat(x, eps) -> hidden (cfg.act) -> z.   {"enc": layers}"""
    return {"enc": network.mlp("enc", [cfg.x_dim + cfg.eps_dim, *cfg.enc_hidden, cfg.z_dim], cfg.act, cfg.out_gain)}


def gaussian_encoder(cfg):
    """The VAE's encoder: x -> hidden (cfg.act) -> (mu, log sigma).   {"enc": layers}"""
    return {"enc": network.mlp("enc", [cfg.x_dim, *cfg.enc_hidden, 2 * cfg.z_dim], cfg.act, cfg.out_gain)}


def decoder(cfg):
    """The decoder p_theta(x|z): z -> hidden (cfg.act) -> Bernoulli logits of the Dx pixels."""
    return network.mlp("dec", [cfg.z_dim, *cfg.dec_hidden, cfg.x_dim], cfg.act, cfg.out_gain)


def adversary_net(cfg):
    """The adversary's network NN_psi: concat(x, z) -> width, ELU -> residual blocks (each then ELU) -> 1."""
    adv = [Affine("adv.in", cfg.x_dim + cfg.z_dim, cfg.adv_width), Act("elu")]
    for i in range(cfg.adv_blocks):
        adv += [Residual(f"adv.res{i}", cfg.adv_width), Act("elu")]
    return adv + [Affine("adv.out", cfg.adv_width, 1, cfg.out_gain)]


def init_all_params(nets, rng, xp, dtype):
    """All parameters of all networks in one flat dict."""
    params = {}
    for net in nets.values():
        params.update(network.init_params(net, rng, xp, dtype))
    return params


# ----------------------------------------------------------------------------- AVB encoder

def encode(nets, params, x, eps):
    """The neural sampler z = g_phi(x, eps).   x: (N, Dx), eps: (N, De) -> z: (N, Dz)."""
    xp = array_module(x, eps)
    return network.forward(nets["enc"], params, xp.concatenate([x, eps], axis=1))


def encode_backward(nets, dz, cache):
    """dz: (N, Dz) -> grads of the encoder parameters phi (the gradients for x and eps are not computed)."""
    _, grads = network.backward(nets["enc"], dz, cache, input_grad=False)
    return grads


# ----------------------------------------------------------------------------- VAE encoder

def encode_gaussian(nets, params, x, eps):
    """q_phi(z|x) = N(mu, diag sigma^2), sampled by reparameterisation z = mu + sigma * eps.

    x: (N, Dx), eps: (N, Dz) -> z, mu, log_sigma: (N, Dz) each, and a cache.
    """
    xp = array_module(x, eps)
    h, cache = network.forward(nets["enc"], params, x)     # (N, 2 Dz)
    mu, log_sigma = xp.split(h, 2, axis=1)                 # the network outputs log sigma, not log var
    sigma = xp.exp(log_sigma)
    z = mu + sigma * eps
    return z, mu, log_sigma, (cache, sigma, eps)


def encode_gaussian_backward(nets, dz, dmu, dlog_sigma, cache):
    """Gradients of phi from dL/dz, dL/dmu and dL/dlog_sigma (the last two from the KL term)."""
    net_cache, sigma, eps = cache
    xp = array_module(dz)
    dmu = dmu + dz                                          # z = mu + sigma * eps
    dlog_sigma = dlog_sigma + dz * eps * sigma              # dz/dlog_sigma = sigma * eps
    dh = xp.concatenate([dmu, dlog_sigma], axis=1)          # (N, 2 Dz)
    _, grads = network.backward(nets["enc"], dh, net_cache, input_grad=False)   # no dL/dx
    return grads


# ----------------------------------------------------------------------------- decoder

def decode(nets, params, z):
    """Bernoulli logits of p_theta(x|z).   z: (N, Dz) -> logits: (N, Dx), cache."""
    return network.forward(nets["dec"], params, z)


def decode_backward(nets, dlogits, cache, param_grads=True):
    """dlogits: (N, Dx) -> dz: (N, Dz), grads of theta ({} if param_grads=False: only dz wanted)."""
    return network.backward(nets["dec"], dlogits, cache, param_grads)


# ----------------------------------------------------------------------------- adversary

def adversary(nets, params, x, z, prior_term):
    """T_psi(x, z) = NN_psi(concat(x, z)) + prior_term * ||z||^2.

    With prior_term = 0.5 the added term is -log p(z) up to a constant, so the network only has
    to learn log q(z|x) (the optimum is T* = log q(z|x) - log p(z)).
    x: (N, Dx), z: (N, Dz) -> T: (N,), cache.
    """
    xp = array_module(x, z)
    out, cache = network.forward(nets["adv"], params, xp.concatenate([x, z], axis=1))  # (N, 1)
    T = out[:, 0] + prior_term * (z * z).sum(axis=1)
    return T, (cache, z, prior_term)


def adversary_backward(nets, dT, cache, param_grads=True, input_grad=True):
    """dT: (N,) -> dx: (N, Dx), dz: (N, Dz), grads of psi.

    The primal step holds psi fixed and needs only dz (param_grads=False: grads = {}); the
    adversary's own step needs only its parameters (input_grad=False: dx = dz = None).
    """
    net_cache, z, prior_term = cache
    dxz, grads = network.backward(nets["adv"], dT[:, None], net_cache, param_grads, input_grad)
    if not input_grad:
        return None, None, grads
    Dz = z.shape[1]                                                       # dxz: (N, Dx + Dz)
    dx, dz = dxz[:, :-Dz], dxz[:, -Dz:] + 2 * prior_term * dT[:, None] * z  # d(c ||z||^2)/dz = 2 c z
    return dx, dz, grads
