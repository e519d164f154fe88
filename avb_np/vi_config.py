"""The configuration of a variational-inference fit (avb_np.vi), one comment per field, and its
check: every field is validated before anything is built, with a message that names the field."""
import dataclasses
from dataclasses import dataclass

from . import validate

MAX_BATCH_VALUES = 2**28   # batch_size x widest layer: one (N, H) float array stays below ~1 GB


@dataclass
class VIConfig:
    # --- AVB sampler eps -> hidden (ELU) -> D, as the official example: eps -> 2 x (128, ELU) -> D
    eps_dim: int = 16              # De, noise fed into the sampler
    gen_hidden: tuple = (128, 128)
    # --- AVB adversary: D -> width, leaky ReLU 0.2 -> blocks (each then leaky ReLU) -> 1 (official 256, 5)
    adv_width: int = 48
    adv_blocks: int = 2
    out_gain: float = 0.1          # initial std gain of the adversary's output layer (T starts near its extra term)
    contrast_sd: float = 3.0       # plain AVB's r = N(0, s^2 I): covers the bulk of every target here
                                   # (the 2-d ones within |z| < 5, Eight Schools' mu at 4.4 +- 3.3) without
                                   # being so wide that q's samples are rare under it; the official example
                                   # used its prior's sd (100). In 10 dims no single s overlaps a narrow q
                                   # well enough: that is what adaptive contrast fixes
    ac_floor: float = 1e-4         # AC: sigma = sqrt(batch variance + floor)
    # --- optimisation: Adam for each player (official: beta1 = 0.5, lr 1e-4 / 2e-4, 10k iterations, batch 512)
    batch_size: int = 256
    steps: int = 2000              # iterations: a primal step and dual_steps adversary steps (AVB), one step (Gaussian)
    dual_steps: int = 2
    lr_primal: float = 1e-3        # sampler
    lr_dual: float = 2e-3          # adversary
    lr_gaussian: float = 2e-2      # m, log sigma / L of the Gaussian baselines
    lr_schedule: str = "constant"  # or "cosine" (optim.lr_scale), as in training
    beta1: float = 0.5
    dtype: str = "float32"
    log_every: int = 500           # progress line every this many iterations (0: silent)


def check_config(cfg, name="VIConfig"):
    """A checked, normalised copy of cfg (plain ints, floats, strs, tuples), or TypeError /
    ValueError naming the field, the value given and what is allowed."""
    if not isinstance(cfg, VIConfig):
        raise TypeError(f"cfg must be an avb_np.vi_config.VIConfig, got {type(cfg).__name__}")
    unknown = sorted(set(vars(cfg)) - {f.name for f in dataclasses.fields(VIConfig)})
    if unknown:                                    # e.g. cfg.lr_dul = 1e-4, which nothing would read
        raise ValueError(f"{name} has no field {unknown[0]!r}")
    out = {k: validate.positive_int(f"{name}.{k}", getattr(cfg, k))
           for k in ("eps_dim", "adv_width", "batch_size", "steps", "dual_steps")}
    out["adv_blocks"] = validate.non_negative_int(f"{name}.adv_blocks", cfg.adv_blocks)
    out["log_every"] = validate.non_negative_int(f"{name}.log_every", cfg.log_every)
    if out["adv_blocks"] > validate.MAX_DEPTH:
        raise ValueError(f"{name}.adv_blocks must be at most {validate.MAX_DEPTH}, got {out['adv_blocks']}")
    out["gen_hidden"] = validate.widths(f"{name}.gen_hidden", cfg.gen_hidden)
    for k in ("lr_primal", "lr_dual", "lr_gaussian", "contrast_sd", "ac_floor"):
        out[k] = validate.positive_float(f"{name}.{k}", getattr(cfg, k))
    out["out_gain"] = validate.finite_float(f"{name}.out_gain", cfg.out_gain, 0.0, validate.OUT_GAIN_MAX)
    out["beta1"] = validate.finite_float(f"{name}.beta1", cfg.beta1, 0.0, 0.999)
    out["dtype"] = validate.choice(f"{name}.dtype", cfg.dtype, validate.DTYPES)
    out["lr_schedule"] = validate.choice(f"{name}.lr_schedule", cfg.lr_schedule, validate.LR_SCHEDULES)
    widest = max((out["adv_width"], out["eps_dim"], *out["gen_hidden"]))
    if out["batch_size"] * widest > MAX_BATCH_VALUES:
        raise ValueError(f"{name}.batch_size x the widest layer ({out['batch_size']} x {widest}) is above "
                         f"{MAX_BATCH_VALUES:.3g} values per array (avb_np.vi_config.MAX_BATCH_VALUES): "
                         "lower batch_size or the widths")
    return dataclasses.replace(cfg, **out)
