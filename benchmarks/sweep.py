"""Tuning sweep for the toy demo's defaults: exact log-likelihood and posterior fit per setting.

    python benchmarks/sweep.py                       # every setting below, 5,000 iterations each
    python benchmarks/sweep.py --only default --seeds 0 1 2 3 4
    python benchmarks/sweep.py --only default --steps 20000 --seeds 0 1 2 3 4
    python benchmarks/sweep.py --method vae --only default "lr 4e-3 / 1.6e-2"

Each setting changes a few fields of avb_np.config.Config. The table gives, for each setting and
seed, the exact log-likelihood halfway (quadrature on the 100 x 100 grid that training records)
and at the end (400 x 400 on [-6, 6]^2), the binned KL(q(z|x) || p(z|x)) at the end (200 x 200
bins, 200,000 encoder samples per point: evaluation.evaluate) and the training seconds.
Timings are comparable only within one run.
"""
import argparse
import time

from avb_np import backend, evaluation, training
from avb_np.config import Config
from avb_np.data import toy_data

SETTINGS = {  # name -> the Config fields it changes; the defaults: lr 2e-3 / 8e-3 with a cosine
    "default": {},                                        # schedule, a 64 x 2 adversary
    "constant learning rates": {"lr_schedule": "constant"},
    "lr 5e-4 / 2e-3": {"lr_primal": 5e-4, "lr_dual": 2e-3},
    "lr 1e-3 / 4e-3": {"lr_primal": 1e-3, "lr_dual": 4e-3},
    "lr 4e-3 / 1.6e-2": {"lr_primal": 4e-3, "lr_dual": 1.6e-2},
    "lr 2e-3 / 2e-3": {"lr_dual": 2e-3},
    "1 adversary step": {"dual_steps": 1},
    "output gain 1": {"out_gain": 1.0},
    "adversary 128 x 2": {"adv_width": 128},
    "adversary 64 x 5": {"adv_blocks": 5},
    "adversary 256 x 2": {"adv_width": 256},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=Config().steps,
                   help=f"iterations per setting (default {Config().steps})")
    p.add_argument("--only", nargs="*", default=None, help=f"settings to run, of {list(SETTINGS)}")
    p.add_argument("--method", choices=("avb", "vae"), default="avb",
                   help="model to train (default avb; the VAE uses only lr_primal)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="random seeds (default 0)")
    args = p.parse_args(argv)
    if args.steps < 2 or any(name not in SETTINGS for name in args.only or ()):
        p.error(f"--steps must be at least 2 and --only names among {list(SETTINGS)}")
    data, xp = toy_data(), backend.current()
    print(f"| setting | changes | seed | log p(x) at {args.steps // 2} | log p(x) at {args.steps} "
          f"| KL(q \\|\\| p(z\\|x)) | train s |")
    print("|---|---|---|---|---|---|---|")
    for name, seed in [(n, s) for n in args.only or SETTINGS for s in args.seeds]:
        cfg = Config(steps=args.steps, seed=seed, log_every=0, eval_every=args.steps // 2,
                     **SETTINGS[name])
        run = training.new_run(cfg, args.method, xp)
        t0 = time.perf_counter()
        training.train(run, data, args.steps)
        seconds = time.perf_counter() - t0
        r = evaluation.evaluate(run, data)
        half = run.history["log_likelihood"][0]
        print(f"| {name} | {SETTINGS[name] or '-'} | {seed} | {half:.4f} | {r['log_likelihood']:.4f} "
              f"| {r['posterior_kl']:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
