"""AIS and importance sampling against the exact log-likelihood on the digits at z_dim 2, per image.

    python benchmarks/ais_digits.py                         # VAE, AVB, AVB+AC x seeds 0-2
    python benchmarks/ais_digits.py --methods avb --seeds 0
    python benchmarks/ais_digits.py --table                 # the table of the runs saved so far

Each model is config.digits(2) trained for its 4,000 iterations (the demo's configuration),
its parameters kept in --models (so a rerun scores without training again), and scored on the
360 test images by avb_np.scoring.score at the demo's settings, with the per-image numbers.
Against quadrature, per model:

    AIS - exact      mean over images, nats
    z(mean)          (mean AIS - mean exact) / the printed standard error of the mean
    mean |z|         mean over images of |AIS_k - exact_k| / s.e._k  (0.8 for honest normal errors)
    > 3 s.e.         share of images more than 3 of their standard errors from exact
    flagged          images flagged by avb_np.diagnostics, and how many of the > 3 s.e. ones are
and the same for IS. One JSON line per model is appended to --out.
"""
import argparse
import json
import os

import numpy as np

from avb_np import config, data, scoring, training

NAMES = {"vae": "VAE", "avb": "AVB", "avb-ac": "AVB+AC"}


def model(method, seed, dataset, folder):
    """The trained run of (method, seed), from folder/METHOD_SEED.npz or trained and saved there."""
    cfg = config.digits(2)
    cfg.seed, cfg.log_every, cfg.dynamic = seed, 1000, dataset.dynamic
    run = training.new_run(cfg, method, np)
    path = os.path.join(folder, f"{method}_{seed}.npz")
    if os.path.exists(path):
        run.params.update(dict(np.load(path)))
    else:
        training.train(run, dataset.train, cfg.steps, log=print, valid=dataset.valid)
        np.savez(path, **run.params)
    return run


def row(method, seed, r):
    """The per-model summary of scoring.score(..., per_image=True)."""
    pi = {k: np.asarray(v, dtype=float) for k, v in r["per_image"].items()}
    out = {"method": method, "seed": seed, "exact": r["exact"], "score_s": r["score_seconds"]}
    for est in ("ais", "is"):
        z = (pi[est] - pi["exact"]) / pi[est + "_se"]
        far = np.abs(z) > 3
        flag = pi[est + "_flag"].astype(bool)
        out.update({est: r[est][0], est + "_se": r[est + "_se"],
                    est + "_z_mean": (r[est][0] - r["exact"]) / r[est + "_se"],
                    est + "_mean_abs_z": float(np.abs(z).mean()), est + "_far": float(far.mean()),
                    est + "_flagged": int(flag.sum()), est + "_far_flagged": int((far & flag).sum()),
                    est + "_worst": float((pi[est] - pi["exact"]).min())})
    return out


def table(rows):
    lines = ["| model | seed | exact | AIS - exact | z(mean) | mean abs z | > 3 s.e. | flagged (of > 3 s.e.) "
             "| IS - exact | IS z(mean) | IS > 3 s.e. | IS flagged | score s |", "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {NAMES[r['method']]} | {r['seed']} | {r['exact']:.3f} | {r['ais'] - r['exact']:+.3f} "
                     f"| {r['ais_z_mean']:+.2f} | {r['ais_mean_abs_z']:.2f} | {r['ais_far']:.1%} "
                     f"| {r['ais_flagged']} ({r['ais_far_flagged']}) | {r['is'] - r['exact']:+.3f} "
                     f"| {r['is_z_mean']:+.2f} | {r['is_far']:.1%} | {r['is_flagged']} | {r['score_s']:.0f} |")
    if len(rows) > 1:                          # do the printed standard errors hold across models and seeds?
        z = np.array([r["ais_z_mean"] for r in rows])
        far = np.mean([r["ais_far"] for r in rows])
        lines.append(f"\nover the {len(rows)} models: AIS z(mean) mean {z.mean():+.2f}, root mean square "
                     f"{np.sqrt((z ** 2).mean()):.2f} (1 when the standard errors are honest), largest "
                     f"|z| {np.abs(z).max():.2f}; images beyond 3 s.e. {far:.1%}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(NAMES), choices=list(NAMES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--models", default="avb_out/ais_digits", help="folder of the trained models")
    p.add_argument("--out", default="avb_out/ais_digits/ais_digits.jsonl")
    p.add_argument("--table", action="store_true", help="only print the table of --out")
    args = p.parse_args(argv)
    os.makedirs(args.models, exist_ok=True)
    if not args.table:
        dataset = data.load("digits")
        for seed in args.seeds:
            for method in args.methods:
                run = model(method, seed, dataset, args.models)
                r = scoring.score(run, dataset.test, np.random.default_rng(seed + 1), per_image=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row(method, seed, r)) + "\n")
                print(table([row(method, seed, r)]).splitlines()[-1], flush=True)
    with open(args.out) as f:
        print(table([json.loads(line) for line in f]))


if __name__ == "__main__":
    main()
