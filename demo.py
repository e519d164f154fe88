"""Adversarial Variational Bayes against a VAE on the 4-point toy problem, evaluated exactly.

    python demo.py                  # about 30 s on a 2-core CPU
    python demo.py --full           # the authors' configuration (100k iterations: hours)
    python demo.py --resume avb_out/checkpoint.npz   # continue a saved or interrupted run

Trains AVB (Algorithm 1: adversary T(x, z), neural-sampler encoder) and the VAE baseline on the
four one-hot 2x2 images, then evaluates both exactly by grid quadrature over the 2-d latent
plane and prints a table (exact log-likelihood, ELBO estimate, KL estimate, reconstruction error,
training seconds) beside the optimum -log 4. Writes into --out (default avb_out/):
    results.json     the table's numbers
    samples.png      the paper's toy figure: encoder samples over the decoder's regions, VAE | AVB
    posterior.png    exact posterior p(z|x) beside AVB's samples for the same x
    curves.png       training losses and exact log-likelihood over iterations
    checkpoint.npz   both runs, saved every --save-every iterations, at the end and on Ctrl-C
                     (Ctrl-C prints the command that resumes; the resumed run is bit for bit
                     the uninterrupted one on NumPy)
"""
import argparse
import json
import math
import os
import shlex
import sys

from avb_np import backend, checkpoint, evaluation, plots, training, validate
from avb_np.config import Config, official_toy
from avb_np.data import toy_data

METHODS = ("avb", "vae")


def checked(name, check, parse=int):
    """An argparse `type=`: parse the text, then check it with avb_np.validate; a bad value
    becomes a usage error (exit code 2) that names the flag, not a traceback."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text!r}") from None
        try:
            return check(name, value)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default, full = Config(), official_toy()                # for the defaults quoted in the help
    p.add_argument("--steps", type=checked("steps", validate.positive_int), default=None,
                   help=f"training iterations for each model (default {default.steps}; --full: {full.steps})")
    p.add_argument("--seed", type=checked("seed", validate.non_negative_int), default=0,
                   help="random seed (default 0)")
    p.add_argument("--lr-primal", type=checked("lr_primal", validate.positive_float, float), default=None,
                   help=f"Adam learning rate of encoder + decoder "
                        f"(default {default.lr_primal:g}; --full: {full.lr_primal:g})")
    p.add_argument("--lr-dual", type=checked("lr_dual", validate.positive_float, float), default=None,
                   help=f"Adam learning rate of the adversary (default {default.lr_dual:g}; --full: {full.lr_dual:g})")
    p.add_argument("--backend", choices=backend.NAMES, default=None,
                   help="array backend (default: $AVB_BACKEND, else numpy)")
    p.add_argument("--out", default="avb_out", help="output folder for results.json and figures (default avb_out)")
    p.add_argument("--full", action="store_true",
                   help="the official toy configuration: 256-wide 5-block adversary, lr 2e-5 / 1e-4, 100k iterations")
    p.add_argument("--save-every", type=checked("save_every", validate.non_negative_int), default=0,
                   help="save OUT/checkpoint.npz every this many iterations "
                        "(default 0: at the end and on Ctrl-C only)")
    p.add_argument("--resume", metavar="PATH", default=None,
                   help="continue the runs saved in PATH to --steps; the other flags must match the saved run's")
    return p.parse_args(argv)


def resume_command(args, path, **lrs):
    """The command line that continues from `path` with the same flags (and `lrs` changed)."""
    cmd = ["python", "demo.py"] + (["--full"] if args.full else [])
    flags = {"--steps": args.steps, "--seed": args.seed, "--backend": args.backend,
             "--lr-primal": lrs.get("lr_primal", args.lr_primal), "--lr-dual": lrs.get("lr_dual", args.lr_dual),
             "--save-every": args.save_every or None, "--out": args.out, "--resume": path}
    for flag, value in flags.items():
        cmd += [flag, f"{value:g}" if isinstance(value, float) else str(value)] if value is not None else []
    return shlex.join(cmd)


def train_and_save(runs, method, data, steps, save_every, path):
    """Train runs[method] up to iteration `steps`, saving all runs to `path` every `save_every`
    iterations (in chunks: `train` continues a run exactly where it stopped) and at the end."""
    run = runs[method]
    while run.step < steps:
        chunk = steps - run.step
        if save_every:
            chunk = min(chunk, save_every - run.step % save_every)
        training.train(run, data, chunk)
        checkpoint.save(path, runs)


def table(results):
    """The printed table: one row per model and one for the optimum."""
    cols = ["log_likelihood", "elbo", "kl", "reconstruction_error", "posterior_kl", "seconds"]
    head = ["log p(x) exact", "ELBO est.", "KL(q||p(z))", "recon. error", "KL(q||p(z|x))", "train s"]
    lines = [f"{'':<8}" + "".join(f"{h:>15}" for h in head)]
    for name in ("avb", "vae", "optimum"):
        row = results[name]
        lines.append(f"{name.upper():<8}" + "".join(
            f"{row[c]:>15.{1 if c == 'seconds' else 4}f}" if isinstance(row.get(c), float) else f"{'-':>15}"
            for c in cols))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        xp = backend.use(args.backend) if args.backend else backend.current()
    except backend.BackendError as err:
        sys.exit(f"demo.py: error: {err}")
    cfg = official_toy() if args.full else Config()
    cfg.seed = args.seed
    for field in ("steps", "lr_primal", "lr_dual"):       # flags given override the configuration
        if getattr(args, field) is not None:
            setattr(cfg, field, getattr(args, field))
    data = toy_data()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "checkpoint.npz")
    runs = {}
    if args.resume:
        try:
            runs = checkpoint.load(args.resume, expected_cfg=cfg, xp=xp)
        except checkpoint.CheckpointError as err:
            sys.exit(f"demo.py: error: {err}\nPass the flags the run was started with, or rerun without --resume.")
        for method, run in runs.items():
            if run.step > cfg.steps:
                sys.exit(f"demo.py: error: the checkpoint's {method} run is at iteration {run.step}, "
                         f"beyond --steps {cfg.steps}; pass --steps {run.step} or more")
        print(f"resuming from {args.resume}: " + ", ".join(f"{m} at iteration {r.step}" for m, r in runs.items()))
    print(f"backend {backend.module_name(xp)}, {cfg.steps} iterations per model, seed {cfg.seed}")

    try:
        for method in METHODS:
            if method not in runs:
                runs[method] = training.new_run(cfg, method, xp)
            train_and_save(runs, method, data, cfg.steps, args.save_every, path)
    except KeyboardInterrupt:                             # train restored the last whole iteration
        checkpoint.save(path, runs)
        print(f"\ninterrupted: saved {path} (" + ", ".join(f"{m} at iteration {r.step}" for m, r in runs.items())
              + f"). Resume with:\n  {resume_command(args, path)}")
        raise SystemExit(130)
    except training.DivergenceError as err:               # parameters are finite again: keep them
        checkpoint.save(path, runs)
        lower = {k: getattr(cfg, k) / 2 for k in err.lrs}
        print(f"{err}\nSaved {path}. Continue with lower learning rates:\n  {resume_command(args, path, **lower)}")
        raise SystemExit(1)
    return report(runs, data, cfg, args.out)


def report(runs, data, cfg, out):
    """Evaluate both runs exactly, print the table, write results.json and the figures."""
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

    plots.figure_samples({"VAE": runs["vae"], "AVB": runs["avb"]}, data, os.path.join(out, "samples.png"))
    plots.figure_posterior(runs["avb"], data, os.path.join(out, "posterior.png"))
    plots.figure_curves({"AVB": runs["avb"], "VAE": runs["vae"]}, os.path.join(out, "curves.png"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote results.json, samples.png, posterior.png, curves.png to {out}/")
    return results


if __name__ == "__main__":
    main()
