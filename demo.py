"""Adversarial Variational Bayes against a VAE on the 4-point toy problem, evaluated exactly.

    python demo.py                  # about a minute on a 2-core CPU
    python demo.py --full           # the authors' configuration (100k iterations: hours)

Trains AVB (Algorithm 1: adversary T(x, z), neural-sampler encoder) and the VAE baseline on the
four one-hot 2x2 images, then evaluates both exactly by grid quadrature over the 2-d latent
plane and prints a table (exact log-likelihood, ELBO estimate, KL estimate, reconstruction error,
training seconds) beside the optimum -log 4. Writes into --out (default avb_out/):
    results.json     the table's numbers
    samples.png      the seed's Figure 3: encoder samples over the decoder's regions, VAE | AVB
    posterior.png    exact posterior p(z|x) beside AVB's samples for the same x
    curves.png       training losses and exact log-likelihood over iterations
"""
import argparse
import json
import math
import os
import sys

from avb_np import backend, evaluation, plots, training
from avb_np.config import Config, official_toy
from avb_np.data import toy_data


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " See the module docstring.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="training iterations for each model (default 2000; --full: 100000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--backend", choices=backend.NAMES, default=None,
                   help="array backend (default: $AVB_BACKEND, else numpy)")
    p.add_argument("--out", default="avb_out", help="output folder for results.json and figures (default avb_out)")
    p.add_argument("--full", action="store_true",
                   help="the official toy configuration: 256-wide 5-block adversary, lr 2e-5 / 1e-4, 100k iterations")
    return p.parse_args(argv)


def table(results):
    """The printed table: one row per model and one for the optimum."""
    cols = ["log_likelihood", "elbo", "kl", "reconstruction_error", "posterior_kl", "seconds"]
    head = ["log p(x) exact", "ELBO est.", "KL(q||p(z))", "recon. error", "KL(q||p(z|x))", "train s"]
    lines = [f"{'':<8}" + "".join(f"{h:>15}" for h in head)]
    for name in ("avb", "vae", "optimum"):
        row = results[name]
        lines.append(f"{name.upper():<8}" + "".join(
            f"{row[c]:>15.4f}" if isinstance(row.get(c), float) else f"{'-':>15}" for c in cols))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    xp = backend.use(args.backend) if args.backend else backend.current()
    cfg = official_toy() if args.full else Config()
    cfg.seed = args.seed
    if args.steps is not None:
        cfg.steps = args.steps
    data = toy_data()
    os.makedirs(args.out, exist_ok=True)
    print(f"backend {backend.module_name(xp)}, {cfg.steps} iterations per model, seed {cfg.seed}")

    runs = {}
    for method in ("avb", "vae"):
        runs[method] = training.train(training.new_run(cfg, method, xp), data, cfg.steps)

    print("evaluating by quadrature on a 400 x 400 grid over [-6, 6]^2 ...")
    results = {m: evaluation.evaluate(run, data) for m, run in runs.items()}
    fine = evaluation.log_likelihood(runs["avb"].nets, runs["avb"].params, data, n=800, lim=8.0)
    results["quadrature_check"] = {"avb_800x800_on_8": fine,
                                   "difference": fine - results["avb"]["log_likelihood"]}
    results["optimum"] = {"log_likelihood": -math.log(4), "elbo": -math.log(4), "kl": math.log(4),
                          "reconstruction_error": 0.0, "posterior_kl": 0.0}
    results["config"] = cfg.to_dict()
    print(table(results))
    print(f"quadrature check: AVB log p(x) on an 800 x 800 grid over [-8, 8]^2 differs by "
          f"{results['quadrature_check']['difference']:.1e}")

    plots.figure_samples({"VAE": runs["vae"], "AVB": runs["avb"]}, data, os.path.join(args.out, "samples.png"))
    plots.figure_posterior(runs["avb"], data, os.path.join(args.out, "posterior.png"))
    plots.figure_curves({"AVB": runs["avb"], "VAE": runs["vae"]}, os.path.join(args.out, "curves.png"))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote results.json, samples.png, posterior.png, curves.png to {args.out}/")
    return results


if __name__ == "__main__":
    main()
