"""Tuning sweep for the demo's AVB defaults: exact log-likelihood reached per setting.

    python benchmarks/sweep.py                       # every setting below, 2000 iterations each
    python benchmarks/sweep.py --steps 1000 --only default lr_x2

Each setting changes a few fields of avb_np.config.Config; the table gives the exact
log-likelihood (quadrature, 400 x 400 on [-6, 6]^2) after the given number of iterations,
at the halfway point, and the training seconds. Timings are comparable only within one run.
"""
import argparse
import time

from avb_np import backend, evaluation, training
from avb_np.config import Config
from avb_np.data import toy_data

SETTINGS = {
    "default": {},
    "lr_x2": {"lr_primal": 1e-3, "lr_dual": 4e-3},
    "lr_x4": {"lr_primal": 2e-3, "lr_dual": 8e-3},
    "lr_half": {"lr_primal": 2.5e-4, "lr_dual": 1e-3},
    "out_gain_1": {"out_gain": 1.0},
    "dual_steps_1": {"dual_steps": 1},
    "adv_64x2": {"adv_width": 64},
    "adv_128x5": {"adv_blocks": 5},
}


def main(argv=None):
    p = argparse.ArgumentParser(description="Sweep AVB settings on the toy problem.")
    p.add_argument("--steps", type=int, default=2000, help="iterations per setting (default 2000)")
    p.add_argument("--only", nargs="*", default=None, help=f"settings to run, of {list(SETTINGS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="random seeds (default 0)")
    args = p.parse_args(argv)
    data, xp = toy_data(), backend.current()
    print(f"| setting | changes | seed | log p(x) at {args.steps // 2} | log p(x) at {args.steps} | train s |")
    print("|---|---|---|---|---|---|")
    for name, seed in [(n, s) for n in args.only or SETTINGS for s in args.seeds]:
        cfg = Config(steps=args.steps, seed=seed, log_every=0, eval_every=args.steps // 2,
                     **SETTINGS[name])
        run = training.new_run(cfg, "avb", xp)
        t0 = time.perf_counter()
        training.train(run, data, args.steps)
        seconds = time.perf_counter() - t0
        ll = evaluation.log_likelihood(run.nets, run.params, data)
        half = run.history["log_likelihood"][0]
        print(f"| {name} | {SETTINGS[name] or '-'} | {seed} | {half:.4f} | {ll:.4f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
