"""Tuning sweep for the digits defaults (avb_np.config.digits): exact log-likelihood over training.

    python benchmarks/digits_sweep.py                          # every setting below, both methods
    python benchmarks/digits_sweep.py --only default --methods avb --steps 6000

Each setting changes a few fields of config.digits() (z_dim 2, so quadrature gives log p(x)
exactly: 200 x 200 grid over [-6, 6]^2). Every --every iterations it prints the mean exact
log p(x) on the train, valid and test splits, and the training seconds so far. Choose on the
valid column; the test column is printed to show the gap, not to choose by.
"""
import argparse
import numpy as np

from avb_np import config, data, quadrature, training

SETTINGS = {  # name -> the Config fields it changes
    "default": {},
    "lr 1e-3 / 2e-3": {"lr_primal": 1e-3, "lr_dual": 2e-3},
    "lr 2e-3 / 8e-3": {"lr_dual": 8e-3},
    "adversary 256 x 2": {"adv_width": 256},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), help="settings to run")
    p.add_argument("--methods", nargs="+", choices=("avb", "vae"), default=["avb", "vae"])
    p.add_argument("--steps", type=int, default=config.digits().steps, help="iterations per run")
    p.add_argument("--every", type=int, default=500, help="print every this many iterations")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ds = data.load("digits")
    print(f"{'setting':<20} {'method':<6} {'iter':>6} {'train':>9} {'valid':>9} {'test':>9} {'train s':>8}")
    for name in args.only:
        for method in args.methods:
            cfg = config.digits()
            cfg.log_every, cfg.eval_every, cfg.seed = 0, 0, args.seed
            for field, value in SETTINGS[name].items():
                setattr(cfg, field, value)
            run = training.new_run(cfg, method, np)
            while run.step < args.steps:
                training.train(run, ds.train, min(args.every, args.steps - run.step))
                ll = [quadrature.log_likelihood(run.nets, run.params, split, n=200)
                      for split in (ds.train, ds.valid, ds.test)]
                print(f"{name:<20} {method:<6} {run.step:>6} " + " ".join(f"{v:>9.3f}" for v in ll)
                      + f" {run.seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
