"""The configuration of a run: network sizes, optimisation and numerics, one comment per field."""
from dataclasses import asdict, dataclass

# The fields that define a run's networks, the numbers they hold and its random stream: fixed
# once a run exists (train refuses a run whose cfg changed them; a checkpoint must match them).
# The others may change between calls of train: steps, learning rates, batch size, adversary
# steps, logging, dynamic binarisation, and out_gain, which acts at initialisation only.
FIXED = ("x_dim", "z_dim", "eps_dim", "enc_hidden", "dec_hidden", "act", "n_bases", "basis_hidden",
         "adv_width", "adv_blocks", "prior_term", "dtype", "seed")


@dataclass
class Config:
    # --- data and latent space (the toy experiment: 4 one-hot 2x2 images, a 2-d latent)
    x_dim: int = 4                 # Dx, pixels per image
    z_dim: int = 2                 # Dz, latent dimension (2 makes exact evaluation possible)
    dynamic: bool = False          # training rows are intensities in [0, 1], binarised afresh in every minibatch (MNIST)
    eps_dim: int = 64              # De, noise fed into the AVB encoder g_phi(x, eps); must be >= 1
    # --- encoder and decoder: MLPs with `hidden` units per layer
    enc_hidden: tuple = (64, 64, 64)   # encoder body, shared by AVB (x, eps -> z) and VAE (x -> mu, log_sigma)
    dec_hidden: tuple = (64, 64, 64)   # decoder body, z -> Bernoulli logits
    act: str = "elu"               # activation of the encoder and decoder bodies
    # --- the noise-basis encoder of AVB with adaptive contrast ("avb-ac"; avb_np.ac)
    n_bases: int = 8               # m, bases z = z0(x) + sum_i a_i(x) v_i(eps_i); each eps_i has eps_dim entries (official: 16-32)
    basis_hidden: tuple = (64, 64)  # the basis network v = MLP(eps_i), shared by the bases (official: 3 x 128)
    out_gain: float = 0.1          # initial std gain of the output layers of all three networks (small helps early training)
    # --- adversary T_psi(x, z) = NN_psi(x, z) + prior_term * ||z||^2
    adv_width: int = 64            # width of the adversary's residual trunk (official toy: 256)
    adv_blocks: int = 2            # residual blocks h + W2 relu(W1 h + b1) + b2, each followed by ELU (official: 5)
    prior_term: float = 0.5        # coefficient c of c ||z||^2 in T (-log p(z) up to a constant when 0.5)
    # --- optimisation (Algorithm 1): Adam for each player
    batch_size: int = 512          # minibatch size; every step draws a fresh minibatch
    lr_primal: float = 2e-3        # Adam learning rate of encoder + decoder, at the start (official toy: 2e-5)
    lr_dual: float = 8e-3          # Adam learning rate of the adversary (official toy: 1e-4)
    dual_steps: int = 2            # adversary steps per primal step (official: 2)
    steps: int = 5000              # iterations (one primal step + dual_steps adversary steps each)
    lr_schedule: str = "cosine"    # "cosine": both rates times (1 + cos(pi t / steps)) / 2 at iteration t; "constant"
    # --- numerics and bookkeeping
    dtype: str = "float32"         # "float32" (default) or "float64"
    threads: int = 1               # 1: the plain loop; n > 1: each minibatch in n row shares computed at once (avb_np.parallel; NumPy, AVB and VAE only)
    seed: int = 0                  # seeds the generator for weights, minibatches and noise
    log_every: int = 300           # print progress every this many iterations (0: silent)
    eval_every: int = 250          # record the exact log-likelihood every this many iterations (0: never; z_dim = 2 only)

    def to_dict(self):
        return asdict(self)


def official_toy():
    """The authors' toy configuration (the official code's synthetic example): 256-wide, 5-block
    adversary, constant lr 2e-5/1e-4, 100k iterations."""
    return Config(adv_width=256, adv_blocks=5, lr_primal=2e-5, lr_dual=1e-4, steps=100_000, lr_schedule="constant")


def digits(z_dim=2):
    """The digits experiment (8x8 binarised digits, x_dim 64): 2 x 128 ELU encoder and decoder,
    16 noise inputs (for AVB+AC per basis: 16 bases, a 3 x 128 basis network as in the official
    code), a 128-wide adversary with 2 residual blocks, batch 128, constant lr 2e-3 / 4e-3, 4,000
    iterations. Chosen by the validation log-likelihood in benchmarks/digits_sweep.py (the README
    has the numbers): the models are still improving at 4,000 iterations, so a decaying schedule
    only stops them early."""
    return Config(x_dim=64, z_dim=z_dim, eps_dim=16, enc_hidden=(128, 128), dec_hidden=(128, 128),
                  n_bases=16, basis_hidden=(128, 128, 128),
                  adv_width=128, adv_blocks=2, batch_size=128, lr_primal=2e-3, lr_dual=4e-3,
                  lr_schedule="constant", steps=4000, log_every=500, eval_every=250)


def mnist(z_dim=8):
    """Binarised MNIST (x_dim 784, dynamic binarisation) with the official scripts' batch size
    and learning rates (batch 128, Adam lr 5e-5 primal, 1e-4 adversary); the 2 x 300 ELU
    networks and 32 noise inputs are this package's choice; AVB+AC's 16 bases and 3 x 128 basis
    network follow the official code. Dz = 8 or 32 as in the paper."""
    return Config(x_dim=784, z_dim=z_dim, dynamic=True, eps_dim=32, enc_hidden=(300, 300),
                  dec_hidden=(300, 300), n_bases=16, basis_hidden=(128, 128, 128), adv_width=300,
                  adv_blocks=2, batch_size=128, lr_primal=5e-5, lr_dual=1e-4, steps=100_000, log_every=1000, eval_every=0)
