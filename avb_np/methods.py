"""The three methods avb_np trains, in one table: what each one needs.

    method    encoder q_phi(z|x)                       primal loss (theta, phi)                 adversary psi     KL(q(z|x) || p(z)) in the ELBO
    "vae"     Gaussian: x -> (mu, log sigma)           KL - log p(x|z), analytic KL            none              analytic
    "avb"     neural sampler z = g(x, eps)             T(x, z) - log p(x|z)                    T(x, z)           E_q[T(x, z)]
    "avb-ac"  noise-basis sampler (avb_np.ac)          T(x, z~) + log r - log p(z) - log p(x|z)  T(x, z~)        E_q[T(x, z~) + log r(z|x) - log p(z)]

Training (avb_np.training), evaluation, scoring, checkpoints and the figures read what they need
from METHODS[run.method] rather than comparing method names (only validate_run's checks of a
Config name the two methods with extra requirements).
"""
from dataclasses import dataclass
from typing import Callable, Optional

from . import ac, ac_objectives, models, objectives, validate


@dataclass(frozen=True)
class Method:
    name: str                  # "vae", "avb" or "avb-ac": one spelling everywhere
    label: str                 # how tables and figures name it
    encoder: Callable          # cfg -> the encoder's layer lists {"enc"[, "enc_z0", "enc_a", "enc_v"]}
    noise_dim: Callable        # cfg -> columns of the encoder noise eps per row
    encode: Callable           # (nets, params, x, eps) -> (z: (N, Dz), ...): samples of q(z|x)
    primal: Callable           # (nets, params, x, eps, prior_term) -> (loss, grads of theta and phi)
    dual: Optional[Callable]   # (nets, params, x, eps, z_p, prior_term) -> (loss, grads of psi); None: no adversary
    kl: Optional[Callable]     # (nets, params, x, z, moments, prior_term) -> (N,): the adversary's KL estimate
                               # per sample, KL = E_q[kl]; None: KL(q(z|x) || p(z)) in closed form (the VAE)
    contrast: bool = False     # the adversary sees standardised samples: needs q's moments (mu(x), sigma(x))
    ignores: tuple = ()        # Config fields this method does not use (a checkpoint need not match them)
    by_rows: bool = True       # every loss is a mean of terms of single rows, so a minibatch splits into
                               # row shares (avb_np.parallel); AVB+AC's contrast uses the whole batch's moments


def _adversary_kl(nets, params, x, z, moments, prior_term):
    """AVB: T(x, z), whose optimum is log q(z|x) - log p(z).   x: (N, Dx), z: (N, Dz) -> (N,)."""
    return models.adversary(nets, params, x, z, prior_term)[0]


def _contrast_kl(nets, params, x, z, moments, prior_term):
    """AVB+AC: T(x, z~) + log r(z|x) - log p(z), z~ = (z - mu) / sigma, moments = (mu, sigma): (N, Dz) each."""
    mu, sigma = moments
    zt = ac_objectives.standardise(z, mu, sigma)
    T, _ = models.adversary(nets, params, x, zt, prior_term)
    return ac_objectives.kl_estimate(T, z, zt, sigma)


def _vae_primal(nets, params, x, eps, prior_term):
    """The VAE's negative ELBO (it has no adversary, so prior_term plays no part)."""
    return objectives.vae_loss(nets, params, x, eps)


METHODS = {
    "avb": Method("avb", "AVB", models.sampler_encoder, lambda cfg: cfg.eps_dim,
                  models.encode, objectives.primal_loss, objectives.dual_loss, _adversary_kl,
                  ignores=("n_bases", "basis_hidden")),
    "avb-ac": Method("avb-ac", "AVB+AC", ac.build, ac.noise_width,
                     ac.encode, ac_objectives.primal_loss, ac_objectives.dual_loss, _contrast_kl, contrast=True,
                  by_rows=False),
    "vae": Method("vae", "VAE", models.gaussian_encoder, lambda cfg: cfg.z_dim,
                  models.encode_gaussian, _vae_primal, None, None,
                  ignores=("eps_dim", "n_bases", "basis_hidden", "adv_width", "adv_blocks", "prior_term")),
}
assert tuple(METHODS) == validate.METHOD_NAMES


def build_nets(cfg, method="avb"):
    """The layer lists of `method`: its encoder's, the decoder "dec" and, unless the method has no
    adversary, "adv". cfg as validate_run.config returns it (training.new_run checks it once)."""
    nets = METHODS[method].encoder(cfg)
    nets["dec"] = models.decoder(cfg)
    if METHODS[method].dual is not None:
        nets["adv"] = models.adversary_net(cfg)
    return nets


def noise_dim(cfg, method):
    """Columns of the encoder noise eps per row: De for AVB, m De for AVB+AC, Dz for the VAE."""
    return METHODS[method].noise_dim(cfg)
