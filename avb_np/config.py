"""The configuration of a run: network sizes, optimisation and numerics, one comment per field."""
from dataclasses import asdict, dataclass


@dataclass
class Config:
    # --- data and latent space (the toy experiment: 4 one-hot 2x2 images, a 2-d latent)
    x_dim: int = 4                 # Dx, pixels per image
    z_dim: int = 2                 # Dz, latent dimension (2 makes exact evaluation possible)
    eps_dim: int = 64              # De, noise fed into the AVB encoder g_phi(x, eps); must be >= 1
    # --- encoder and decoder: MLPs with `hidden` units per layer
    enc_hidden: tuple = (64, 64, 64)   # encoder body, shared by AVB (x, eps -> z) and VAE (x -> mu, log_sigma)
    dec_hidden: tuple = (64, 64, 64)   # decoder body, z -> Bernoulli logits
    act: str = "elu"               # activation of the encoder and decoder bodies
    out_gain: float = 0.1          # initial std gain of the output layers of all three networks (small helps early training)
    # --- adversary T_psi(x, z) = NN_psi(x, z) + prior_term * ||z||^2
    adv_width: int = 128           # width of the adversary's residual trunk (official toy: 256)
    adv_blocks: int = 2            # residual blocks h + W2 relu(W1 h + b1) + b2, each followed by ELU (official: 5)
    prior_term: float = 0.5        # coefficient c of c ||z||^2 in T (-log p(z) up to a constant when 0.5)
    # --- optimisation (Algorithm 1): Adam for each player
    batch_size: int = 512          # minibatch size; every step draws a fresh minibatch
    lr_primal: float = 2e-3        # Adam learning rate of encoder + decoder (official toy: 2e-5)
    lr_dual: float = 8e-3          # Adam learning rate of the adversary (official toy: 1e-4)
    dual_steps: int = 2            # adversary steps per primal step (official: 2)
    steps: int = 1500              # iterations (one primal step + dual_steps adversary steps each)
    # --- numerics and bookkeeping
    dtype: str = "float32"         # "float32" (default) or "float64"
    seed: int = 0                  # seeds the generator for weights, minibatches and noise
    log_every: int = 300           # print progress every this many iterations (0: silent)
    eval_every: int = 100          # record the exact log-likelihood every this many iterations (0: never)

    def to_dict(self):
        return asdict(self)


def official_toy():
    """The authors' toy configuration (the official code's synthetic example): 256-wide, 5-block adversary, lr 2e-5/1e-4, 100k iterations."""
    return Config(adv_width=256, adv_blocks=5, lr_primal=2e-5, lr_dual=1e-4, steps=100_000)
