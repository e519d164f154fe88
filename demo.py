"""Adversarial Variational Bayes against a VAE, on data where the answer can be checked.

    python demo.py                      # the 4-point toy problem, exact by quadrature (~70 s)
    python demo.py digits               # 8x8 binarised digits, 2-d latent: exact and AIS (~10 min)
    python demo.py digits --z-dim 8     # a larger latent: AIS and importance sampling only
    python demo.py digits --ac          # also AVB with adaptive contrast (AVB+AC); toy and mnist too
    python demo.py mnist --data-dir DIR [--download] [--source amat] [--z-dim 32]
    python demo.py vi                   # black-box variational inference on exact targets (~2 min)
    python demo.py EXPERIMENT --help    # the flags of one experiment

toy: AVB (Algorithm 1: adversary T(x, z), neural-sampler encoder) and the VAE baseline on the
four one-hot 2x2 images; both evaluated exactly by grid quadrature over the 2-d latent plane.
Prints the exact log-likelihood, ELBO and KL estimates, reconstruction error and the binned
KL(q || p(z|x)) beside the optimum -log 4, and writes to --out (default avb_out/):
    results.json, samples.png (the paper's toy figure), posterior.png, curves.png

--ac adds a third model to toy, digits and mnist: AVB with adaptive contrast (the noise-basis
encoder, contrasted with a Gaussian of its own moments; avb_np.ac, avb_np.ac_objectives).

digits / mnist: the same models on binarised images, scored on the test split by
annealed importance sampling (AIS) and importance sampling, and for a 2-d latent also
exactly by quadrature. Writes results.json, images.png (data, reconstructions, samples from
the prior) and, for a 2-d latent, latent.png (test codes coloured by digit) and curves.png.

vi: AVB (with and without adaptive contrast) against mean-field and full-rank Gaussian VI on
targets whose posteriors are known exactly: a banana, a two-component mixture and a ring in
2-d (binned KL(q || p)), and Eight Schools, classic and with two mirror modes (posterior
moments, log p(y), P(tau < 0) = 1/2). Writes vi_results.json, vi_2d.png and vi_schools.png.

The toy, digits and mnist experiments save checkpoint.npz in --out every --save-every iterations, at the end and
on Ctrl-C (which prints the command that resumes; the resumed run is bit for bit the
uninterrupted one on NumPy).
"""
import math
import os
import sys

import numpy as np

from avb_np import (backend, config, data, diagnostics, evaluation, outputs, quadrature, scoring, training,
                    validate, vi)
from avb_np.cli import (evaluating, load_partial, prepared, require_matplotlib, resume_command,
                        save_partial, table, train_models, write_json)
from avb_np.flags import parse_args
from avb_np.methods import METHODS
from avb_np.vi_config import check_config

# The figure modules (avb_np.plots, image_plots, vi_plots) need matplotlib: they are imported
# where the figures are drawn, so that --help and the rest work without it.

NAMES = {**{m: method.label for m, method in METHODS.items()}, "optimum": "OPTIMUM"}   # as tables and figures name them


def methods(args):
    """The models an experiment trains: AVB and the VAE, and AVB with adaptive contrast if --ac."""
    return ("avb", "avb-ac", "vae") if args.ac else ("avb", "vae")


# ----------------------------------------------------------------------------- training, shared

def configure(cfg, args):
    """The experiment's Config with the flags given applied."""
    cfg.seed = args.seed
    for field in ("steps", "lr_primal", "lr_dual", "adv_width", "adv_blocks", "threads"):   # flags given override the configuration
        if getattr(args, field) is not None:
            setattr(cfg, field, getattr(args, field))
    return cfg


# ----------------------------------------------------------------------------- experiments

TOY_FILES = ["results.json", "samples.png", "posterior.png", "curves.png"]
IMAGE_FILES = ["results.json", "images.png", "latent.png", "curves.png"]
BDMC_IMAGES = 50   # images simulated from each model for the forward/reverse AIS bracket (z_dim > 2)


def toy(args, xp):
    """The paper's synthetic example: 4 one-hot 2x2 images, a 2-d latent, exact evaluation."""
    cfg = configure(config.official_toy() if args.full else config.Config(), args)
    runs = train_models(args, cfg, methods(args), data.toy_data(), xp, TOY_FILES)
    with evaluating(args):
        return report(runs, data.toy_data(), cfg, args.out)


def report(runs, toy_data, cfg, out):
    """Evaluate the toy runs exactly, print the table, write results.json and the figures."""
    print("evaluating by quadrature on a 400 x 400 grid over [-6, 6]^2 ...")
    results = {m: evaluation.evaluate(run, toy_data) for m, run in runs.items()}
    fine = quadrature.log_likelihood(runs["avb"].nets, runs["avb"].params, toy_data, n=800, lim=8.0)
    results["quadrature_check"] = {"avb_800x800_on_8": fine,
                                   "difference": fine - results["avb"]["log_likelihood"]}
    results["optimum"] = {"log_likelihood": -math.log(4), "elbo": -math.log(4), "kl": math.log(4),
                          "reconstruction_error": 0.0, "posterior_kl": 0.0}
    results["config"] = cfg.to_dict()
    print(table({NAMES[m]: results[m] for m in (*runs, "optimum")},
                [("log_likelihood", "log p(x) exact"), ("elbo", "ELBO est."), ("kl", "KL(q||p(z))"),
                 ("reconstruction_error", "recon. error"), ("posterior_kl", "KL(q||p(z|x))"),
                 ("seconds", "train s")]))
    print(f"quadrature check: AVB log p(x) on an 800 x 800 grid over [-8, 8]^2 differs by "
          f"{results['quadrature_check']['difference']:.1e}")
    from avb_np import plots                               # needs matplotlib (require_matplotlib)
    order = ["vae", "avb", "avb-ac"]                       # the paper's figure: VAE beside AVB
    plots.figure_samples({NAMES[m]: runs[m] for m in order if m in runs}, toy_data, os.path.join(out, "samples.png"))
    plots.figure_posterior(runs["avb"], toy_data, os.path.join(out, "posterior.png"))
    plots.figure_curves({NAMES[m]: run for m, run in runs.items()}, os.path.join(out, "curves.png"),
                        reference={"optimum -log 4": -math.log(4)})   # 4 equally likely images
    write_json(out, results)
    print(f"wrote results.json, samples.png, posterior.png, curves.png to {out}/")
    return results


def images(args, xp):
    """Binarised images (digits, MNIST): train the models, score the test split."""
    try:                                                   # a missing or bad file, no scikit-learn
        if args.experiment == "digits":
            dataset, cfg = data.load("digits"), config.digits(args.z_dim)
        else:
            name = "mnist" if args.source == "idx" else "binarized_mnist"
            dataset, cfg = data.load(name, args.data_dir, args.download), config.mnist(args.z_dim)
    except (data.mnist.DataError, ImportError, OSError) as err:
        sys.exit(f"demo.py: error: {err}")
    cfg.dynamic = dataset.dynamic
    cfg = configure(cfg, args)
    n_test = len(dataset.test[:args.n_test])
    chains = args.ais_chains or scoring.AIS_CHAINS                # AIS keeps every chain's state: check
    try:                                                          # its memory before training, not after
        validate.memory("--ais-chains", chains, 8 * n_test * chains * (8 * cfg.z_dim + 2 * cfg.x_dim),
                        f"AIS with {chains} chains for each of {n_test} test images at z_dim {cfg.z_dim}")
    except ValueError as err:
        sys.exit(f"demo.py: error: {err}; lower --ais-chains, --n-test or --z-dim")
    print(f"{dataset.name}: {len(dataset.train)} training, {len(dataset.valid)} validation and "
          f"{len(dataset.test)} test images of {dataset.image_shape[0]}x{dataset.image_shape[1]}; z_dim {cfg.z_dim}")
    runs = train_models(args, cfg, methods(args), dataset.train, xp, IMAGE_FILES, valid=dataset.valid)
    with evaluating(args):
        return report_images(runs, dataset, cfg, args)


def report_images(runs, dataset, cfg, args):
    """Score the runs on the test split, print the table, write results.json and the figures."""
    from avb_np import image_plots, plots                  # need matplotlib (require_matplotlib)
    test = dataset.test[:args.n_test]
    if args.n_test and args.n_test > len(test):
        print(f"--n-test {args.n_test} is more than the test split holds: scoring all {len(test)} images")
    settings = {k: v for k, v in (("n_temps", args.ais_temps), ("n_chains", args.ais_chains)) if v}
    results = {}
    for method, run in runs.items():
        print(f"scoring {NAMES[method]} on {len(test)} test images ...")
        results[method] = scoring.score(run, test, np.random.default_rng(args.seed + 1), log=print, **settings)
        if cfg.z_dim == 2:                                 # overfitting shows as train >> test
            results[method]["train_log_likelihood"] = quadrature.log_likelihood(   # a 200 x 200 grid:
                run.nets, run.params, dataset.valid if cfg.dynamic else dataset.train, n=200)   # 1e-4 from 400 x 400
    columns = [("log_likelihood", "log p(x) exact"), ("ais", "AIS"), ("is", "IS"),
               ("elbo", "ELBO est."), ("kl", "KL(q||p(z))"), ("reconstruction_error", "recon. error"),
               ("seconds", "train s")]
    print(f"test split, nats per image ({len(test)} images; AIS and IS as estimate+-standard error):")
    lines = table({NAMES[m]: r for m, r in results.items()},
                  [c for c in columns if c[0] != "log_likelihood" or cfg.z_dim == 2]).splitlines()
    flags = [f"{results[m]['ais_flags']['any']:>10}{results[m]['is_flags']['any']:>10}" for m in results]
    print("\n".join([lines[0] + f"{'AIS flags':>10}{'IS flags':>10}"] + [a + b for a, b in zip(lines[1:], flags)]))
    print("flags: images whose estimate is in doubt (avb_np.diagnostics: low ESS, a proposal that misses "
          "posterior mass, IS against AIS); their standard errors are least to be trusted")
    if cfg.z_dim != 2:                                     # no exact answer: bracket it on simulated images
        n_sim = min(BDMC_IMAGES, len(test))
        for method, run in runs.items():
            b = results[method]["bdmc"] = scoring.bdmc(run, n_sim, np.random.default_rng(args.seed + 2), **settings)
            print(f"BDMC, {NAMES[method]}, {n_sim} images simulated from the model: forward AIS {b['forward']:.3f}, "
                  f"reverse AIS {b['reverse']:.3f}, which bracket log p(x) in expectation (gap {b['gap']:.3f}, "
                  "below 0 only by Monte Carlo noise; "
                  f"{b['wide']} images wider than {diagnostics.GAP_NATS})")
    results["config"] = cfg.to_dict()
    write_json(args.out, results)
    named = {NAMES[m]: run for m, run in runs.items()}
    image_plots.figure_images(named, dataset, os.path.join(args.out, "images.png"))
    written = ["results.json", "images.png"]
    if cfg.z_dim == 2:
        image_plots.figure_latent(named, dataset, os.path.join(args.out, "latent.png"))
        plots.figure_curves(named, os.path.join(args.out, "curves.png"))   # no known optimum to draw
        written += ["latent.png", "curves.png"]
    print(f"wrote {', '.join(written)} to {args.out}/")
    return results


# ----------------------------------------------------------------------------- variational inference

VI_FILES = ["vi_partial.json", "vi_results.json", "vi_2d.png", "vi_schools.png"]   # the first: fits so far


def vi_table(results):
    """Two tables: the 2-d targets (KL(q || p): exact Monte Carlo where log q is known, else binned
    over cells that count every sample) and Eight Schools (posterior mean and sd)."""
    lines = [f"{'2-d target':<22}{'method':<11}{'KL(q||p)':>9}{'KL by':>7}{'q outside':>10}{'ELBO':>9}{'log Z':>9}"
             f"{'train s':>8}"]
    for name, res in results.items():
        for m, r in res["methods"].items():
            if "mu_mean" not in res["exact"]:
                lines.append(f"{name:<22}{m:<11}{r['kl']:>9.3f}{r.get('kl_method', 'binned'):>7}{r['outside']:>10.1%}"
                             f"{r['elbo']:>9.3f}{res['log_Z']:>9.3f}{r['seconds']:>8.1f}")
    cols = ["mu_mean", "mu_sd", "tau_mean", "tau_sd", "log_tau_sd", "p_tau_negative"]
    heads = ["mu mean", "mu sd", "tau mean", "tau sd", "log tau sd", "P(tau<0)"]
    if any("mu_mean" in res["exact"] for res in results.values()):   # only when a schools target ran
        lines += ["", f"{'Eight Schools':<22}{'method':<11}" + "".join(f"{h:>11}" for h in heads)
                  + f"{'ELBO':>9}{'log p(y)':>9}{'KL(marg.)':>10}{'train s':>8}"]
    optimistic = []                                        # ELBO estimates above what any true ELBO can be
    for name, res in results.items():
        if "mu_mean" in res["exact"]:
            rows = [("exact", res["exact"], None)] + [(m, r["stats"], r) for m, r in res["methods"].items()]
            for m, stats, r in rows:
                vals = "".join(f"{stats[c]:>11.3f}" if c in stats else f"{'-':>11}" for c in cols)
                tail = (f"{r['elbo']:>9.3f}{res['log_Z']:>9.3f}{r['kl']:>10.3f}{r['seconds']:>8.1f}" if r
                        else f"{'':>9}{res['log_Z']:>9.3f}")
                over = r["elbo"] - (res["log_Z"] - r["kl"]) if r else 0.0   # ELBO <= log Z - KL <= log Z - KL(marg.)
                if over > 0:
                    optimistic.append(f"{name} {m} by at least {over:.3f} nats")
                lines.append(f"{name:<22}{m:<11}{vals}{tail}" + (" *" if over > 0 else ""))
    lines.append("KL by: exact = E_q[log q - log p~] + log Z (log q known); binned = over cells that count every "
                 "sample, outside the box too.")
    lines.append("ELBO: Monte Carlo of a true bound for the Gaussians; for AVB the adversary's estimate "
                 "(can exceed log Z). KL(marg.): binned KL of the (mu, tau) marginals, a lower bound on KL(q || p).")
    if optimistic:
        lines.append("* ELBO above log p(y) - KL(marg.), the most a true ELBO can be: the adversary's estimate is "
                     "optimistic, " + "; ".join(optimistic) + ".")
    return "\n".join(lines)


def vi_experiment(args, xp):
    """Fit every method to every target, score against the exact answers, print, save, plot."""
    names, methods = args.targets.split(","), args.methods.split(",")
    for n in names:
        if n not in vi.TARGETS:
            sys.exit(f"demo.py vi: error: --targets must be among {', '.join(vi.TARGETS)}, got {n!r}")
    for m in methods:
        if m not in vi.VI_METHODS:
            sys.exit(f"demo.py vi: error: --methods must be among {', '.join(vi.VI_METHODS)}, got {m!r}")
    try:
        cfg = check_config(vi.VIConfig(steps=args.steps, adv_width=args.adv_width, adv_blocks=args.adv_blocks))
    except (TypeError, ValueError) as err:                         # e.g. a width too large for memory
        sys.exit(f"demo.py vi: error: {err}")
    partial = prepared(args, VI_FILES)                             # outputs checked, folder claimed
    flags = {k: getattr(args, k) for k in ("steps", "seed", "targets", "methods", "adv_width", "adv_blocks")}
    saved = load_partial(args.resume, flags) if args.resume else {"results": {}, "draws": {}}
    built = {name: vi.TARGETS[name]() for name in names}            # exact answers computed here
    results, draws = {}, {m: {} for m in methods}
    done = {(n, m) for n, r in saved["results"].items() for m in r["methods"]}

    def interrupted():                                             # the finished fits are kept
        save_partial(partial, flags, results, draws)
        return (f"\ninterrupted: saved the finished fits ({len(done)}) in {partial}. Resume with:\n  "
                f"{resume_command(args, partial)}")
    with outputs.exit_on_interrupt(interrupted):
        for i, (name, target) in enumerate(built.items()):
            results[name] = {"log_Z": target.log_Z, "exact": target.exact, "methods": {}}
            for j, method in enumerate(methods):
                if (name, method) in done:                         # fitted before the interrupt
                    results[name]["methods"][method] = saved["results"][name]["methods"][method]
                    draws[method][name] = np.array(saved["draws"][method][name])
                    continue
                rng = np.random.default_rng([args.seed, i, j])      # one stream per (target, method)
                try:
                    fit = vi.fit(target.log_density, target.dim, method, cfg, rng, xp, name=name)
                except training.DivergenceError as err:
                    print(f"{name} {method}: {err}")
                    continue
                try:                                                # a diverged q has no KL
                    results[name]["methods"][method] = vi.compare(fit, target, rng)
                except ValueError as err:
                    print(f"{name} {method}: {err}")
                    continue
                draws[method][name] = vi.samples(fit, 2000, rng)
                done.add((name, method))
                r = results[name]["methods"][method]
                print(f"{name} {method}: KL {r['kl']:.3f}  ELBO {r['elbo']:.3f}  (log Z {target.log_Z:.3f})  {r['seconds']:.1f} s")
    print(vi_table(results))
    results["config"] = vars(cfg) | {"seed": args.seed}
    write_json(args.out, results, "vi_results.json")
    from avb_np import vi_plots                            # needs matplotlib (require_matplotlib)
    for file, kind in (("vi_2d.png", 2), ("vi_schools.png", 10)):
        tgts = [t for t in built.values() if t.dim == kind]
        done = {m: d for m, d in draws.items() if all(t.name in d for t in tgts)}
        if tgts and done:
            if kind == 2:                                          # the binned KL in each panel's title
                kls = {m: {t.name: results[t.name]["methods"][m]["kl"] for t in tgts} for m in done}
                vi_plots.figure_2d(tgts, done, os.path.join(args.out, file), kls)
            else:
                vi_plots.figure_marginals(tgts, done, os.path.join(args.out, file))
    if os.path.exists(partial):                                    # complete now: the partial save is spent
        os.unlink(partial)
    print(f"wrote vi_results.json and figures to {args.out}/")
    return results


EXPERIMENTS = {"toy": toy, "digits": images, "mnist": images, "vi": vi_experiment}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    experiment = argv.pop(0) if argv and argv[0] in EXPERIMENTS else "toy"
    late = [a for a in argv if a in EXPERIMENTS]
    if late:                                              # `demo.py --steps 2 digits`
        sys.exit(f"demo.py: error: the experiment comes first: python demo.py {late[0]} {' '.join(a for a in argv if a != late[0])}")
    args = parse_args(argv, experiment, __doc__)          # --help ends here, matplotlib or not
    require_matplotlib()
    try:
        xp = backend.use(args.backend) if getattr(args, "backend", None) else backend.current()
    except backend.BackendError as err:
        sys.exit(f"demo.py: error: {err}")
    return EXPERIMENTS[experiment](args, xp)


if __name__ == "__main__":
    main()
