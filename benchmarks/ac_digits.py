"""Adaptive contrast on the digits: the VAE, AVB and AVB+AC at z_dim 2, 8 and 32, over seeds.

    python benchmarks/ac_digits.py                                # 3 latent sizes x 3 methods x 3 seeds
    python benchmarks/ac_digits.py --z-dims 2 --seeds 0 --methods avb-ac
    python benchmarks/ac_digits.py --table                        # the summary of the runs saved so far

Every run uses avb_np.config.digits(z_dim): the same networks for the decoder, the same 4,000
iterations of batch 128 for every method. It is scored on the 360 test images by
avb_np.scoring.score (AIS at scoring.AIS_TEMPS x AIS_CHAINS, importance sampling with 1,000
samples; exactly by quadrature at z_dim 2). At z_dim 2, on the first 100 test images, the
adversary's KL estimate E_q[T] (AVB) or E_q[T + log r - log p] (AVB+AC) stands beside the true
KL(q(z|x) || p(z)) = E_q[log p(x|z)] - log p(x) + KL(q || p(z|x)), with log p(x) exact and
KL(q || p(z|x)) binned (avb_np.evaluation.evaluate: 20,000 samples per image, 200 x 200 bins).

Each run appends one JSON line to --out as it finishes (two processes may share the file: run
them with OPENBLAS_NUM_THREADS=1 on a 2-core machine), and the summary table (mean, and the
spread min..max over seeds) is printed from all lines in --out.
"""
import argparse
import json
import os
import time

import numpy as np

from avb_np import config, data, evaluation, scoring, training

METHODS = ("vae", "avb", "avb-ac")
NAMES = {"vae": "VAE", "avb": "AVB", "avb-ac": "AVB+AC"}
KL_IMAGES = 100   # test images for the true KL at z_dim 2


def one_run(z_dim, method, seed, dataset, log):
    cfg = config.digits(z_dim)
    cfg.seed, cfg.log_every = seed, 1000
    run = training.new_run(cfg, method, np)
    training.train(run, dataset.train, cfg.steps, log=log, valid=dataset.valid)
    t0 = time.perf_counter()
    r = scoring.score(run, dataset.test, np.random.default_rng(seed + 1))
    row = {"z_dim": z_dim, "method": method, "seed": seed, "ais": r["ais"][0], "ais_se": r["ais"][1],
           "is": r["is"][0], "elbo": r["elbo"], "kl": r["kl"], "train_s": r["seconds"]}
    if z_dim == 2:
        row["exact"] = r["log_likelihood"]
        e = evaluation.evaluate(run, dataset.test[:KL_IMAGES], n_samples=20_000, n_mc=2_000, seed=seed)
        row["kl_100"] = e["kl"]                                   # the estimate (analytic for the VAE)
        row.update(rec_100=e["reconstruction_error"], exact_100=e["log_likelihood"], posterior_kl_100=e["posterior_kl"])
        row["true_kl_100"] = -e["reconstruction_error"] - e["log_likelihood"] + e["posterior_kl"]
    row["score_s"] = round(time.perf_counter() - t0, 1)
    return row


def spread(values, digits=2):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ({values.min():.{digits}f}..{values.max():.{digits}f})"


def summary(rows):
    """Markdown table: one row per (z_dim, method), mean (min..max) over its seeds."""
    lines = ["| z_dim | method | seeds | exact log p(x) | AIS | IS | ELBO est. | KL est. "
             "| KL est. / true KL (100 images) | train s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for z in sorted({r["z_dim"] for r in rows}):
        for m in METHODS:
            rs = [r for r in rows if r["z_dim"] == z and r["method"] == m]
            if not rs:
                continue
            col = lambda k, d=2: spread([r[k] for r in rs], d) if k in rs[0] else "-"
            kl = (f"{spread([r['kl_100'] for r in rs])} / {spread([r['true_kl_100'] for r in rs])}"
                  if "kl_100" in rs[0] else "-")
            lines.append(f"| {z} | {NAMES[m]} | {len(rs)} | {col('exact')} | {col('ais')} | {col('is')} "
                         f"| {col('elbo')} | {col('kl')} | {kl} | {col('train_s', 0)} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--z-dims", type=int, nargs="+", default=[2, 8, 32], help="latent sizes (default 2 8 32)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="models (default all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="random seeds (default 0 1 2)")
    p.add_argument("--out", default="ac_digits.jsonl", help="JSON lines file the runs append to (default ac_digits.jsonl)")
    p.add_argument("--table", action="store_true", help="only print the summary of the runs in --out")
    args = p.parse_args(argv)
    if not args.table:
        dataset = data.load("digits")
        for z in args.z_dims:
            for seed in args.seeds:
                for method in args.methods:
                    row = one_run(z, method, seed, dataset, log=lambda line: print(f"z={z} seed={seed} {line}", flush=True))
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    if not os.path.exists(args.out):
        p.error(f"--out {args.out!r} does not exist yet: run some experiments first")
    with open(args.out) as f:
        print(summary([json.loads(line) for line in f if line.strip()]))


if __name__ == "__main__":
    main()
