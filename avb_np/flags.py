"""The flags of demo.py's experiments, each checked by avb_np.validate as it is parsed, so a bad
value is a usage error (exit code 2) that names the flag. `python demo.py EXPERIMENT --help`
prints them.
"""
import argparse

from . import backend, config, scoring, validate, vi
from .cli import checked


def add_training_flags(p, default, out):
    """The flags every experiment shares; `default` is its Config, for the help text."""
    p.add_argument("--steps", type=checked("steps", validate.positive_int), default=None,
                   help=f"training iterations for each model (default {default.steps})")
    p.add_argument("--seed", type=checked("seed", validate.non_negative_int), default=0,
                   help="random seed (default 0)")
    p.add_argument("--lr-primal", type=checked("lr_primal", validate.positive_float, float), default=None,
                   help=f"Adam learning rate of encoder + decoder (default {default.lr_primal:g})")
    p.add_argument("--lr-dual", type=checked("lr_dual", validate.positive_float, float), default=None,
                   help=f"Adam learning rate of the adversary (default {default.lr_dual:g})")
    p.add_argument("--adv-width", type=checked("adv_width", validate.positive_int), default=None,
                   help=f"width of the adversary's residual trunk (default {default.adv_width})")
    p.add_argument("--adv-blocks", type=checked("adv_blocks", validate.non_negative_int), default=None,
                   help=f"residual blocks of the adversary (default {default.adv_blocks})")
    p.add_argument("--threads", type=checked("threads", validate.positive_int), default=None,
                   help="split each minibatch into this many row shares computed at once, one thread "
                        f"each (default {default.threads}: the plain loop; docs/speed.md measures it)")
    p.add_argument("--backend", choices=backend.BACKENDS, default=None,
                   help="array backend (default: $AVB_BACKEND, else numpy)")
    p.add_argument("--out", default=out, help=f"output folder for results, figures and checkpoint (default {out})")
    p.add_argument("--save-every", type=checked("save_every", validate.non_negative_int), default=0,
                   help="save OUT/checkpoint.npz every this many iterations (default 0: at the end and on Ctrl-C only)")
    p.add_argument("--resume", metavar="PATH", default=None, type=checked("resume", validate.path, str),
                   help="continue the runs saved in PATH to --steps; the other flags must match the saved run's")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint, results and figures of an earlier run in --out")
    p.add_argument("--ac", action="store_true", help="also train AVB with adaptive contrast (AVB+AC: the "
                   f"noise-basis encoder with {default.n_bases} bases, contrasted with its own Gaussian moments)")


def parse_args(argv, experiment="toy", description=None):
    """The flags of one experiment (`python demo.py EXPERIMENT --help` lists them)."""
    p = argparse.ArgumentParser(prog=f"demo.py {experiment}" if experiment != "toy" else "demo.py",
                                description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if experiment == "vi":
        add_vi_arguments(p)
    elif experiment == "toy":
        default, full = config.Config(), config.official_toy()
        add_training_flags(p, default, "avb_out")
        p.add_argument("--full", action="store_true", help=f"the official toy configuration: 256-wide "
                       f"5-block adversary, lr {full.lr_primal:g} / {full.lr_dual:g}, {full.steps} iterations")
    else:
        default = config.digits() if experiment == "digits" else config.mnist()
        add_training_flags(p, default, f"avb_out/{experiment}")
        p.add_argument("--z-dim", type=checked("z_dim", validate.positive_int), default=default.z_dim,
                       help=f"latent dimension (default {default.z_dim}; 2 adds exact quadrature)")
        p.add_argument("--ais-temps", type=checked("ais_temps", validate.positive_int), default=None,
                       help=f"AIS temperatures (default {scoring.AIS_TEMPS})")
        p.add_argument("--ais-chains", type=checked("ais_chains", validate.positive_int), default=None,
                       help=f"AIS chains per test image (default {scoring.AIS_CHAINS})")
        p.add_argument("--n-test", type=checked("n_test", validate.positive_int), default=None,
                       help="score only the first N test images (default: all)")
    if experiment == "mnist":
        p.add_argument("--data-dir", required=True, type=checked("data_dir", validate.path, str),
                       help="folder holding the MNIST files (or to download them into)")
        p.add_argument("--download", action="store_true", help="download missing files into --data-dir, checked against checksums")
        p.add_argument("--source", choices=("idx", "amat"), default="idx",
                       help="idx: the MNIST IDX files, binarised dynamically (default); "
                            "amat: Larochelle's fixed binarisation")
    args = p.parse_args(argv)
    args.experiment = experiment
    return args


def add_vi_arguments(p):
    """The flags of `python demo.py vi`."""
    d = vi.VIConfig()
    p.add_argument("--steps", type=checked("steps", validate.positive_int), default=d.steps,
                   help=f"iterations per method and target (default {d.steps})")
    p.add_argument("--seed", type=checked("seed", validate.non_negative_int), default=0, help="random seed (default 0)")
    p.add_argument("--targets", default=",".join(vi.TARGETS),
                   help=f"comma-separated subset of {', '.join(vi.TARGETS)} (default: all)")
    p.add_argument("--methods", default=",".join(vi.VI_METHODS),
                   help=f"comma-separated subset of {', '.join(vi.VI_METHODS)} (default: all)")
    p.add_argument("--adv-width", type=checked("adv_width", validate.positive_int), default=d.adv_width,
                   help=f"adversary width (default {d.adv_width}; official 256)")
    p.add_argument("--adv-blocks", type=checked("adv_blocks", validate.non_negative_int), default=d.adv_blocks,
                   help=f"adversary residual blocks (default {d.adv_blocks}; official 5)")
    p.add_argument("--out", default="avb_out/vi", help="output folder (default avb_out/vi)")
    p.add_argument("--resume", metavar="PATH", default=None, type=checked("resume", validate.path, str),
                   help="continue an interrupted run from the fits saved in PATH (OUT/vi_partial.json); "
                        "the other flags must match")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
