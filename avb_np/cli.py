"""The command-line plumbing that demo.py's experiments share: flags checked by avb_np.validate,
the output folder, training with checkpoints, interrupts and divergence, and the printed table.
None of it is AVB; a reader of the math can skip this file.
"""
import argparse
import importlib.util
import json
import math
import os
import shlex
import sys

from . import backend, checkpoint, methods, network, outputs, training, validate_run

FIGURE_BYTES = 2**21    # room asked for each figure and results file (they are a few hundred kB)


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


def resume_command(args, path, **changes):
    """The command line that continues from `path` with the same flags (and `changes` applied)."""
    cmd = ["python", "demo.py"] + ([] if args.experiment == "toy" else [args.experiment])
    for key, value in {**vars(args), **changes, "resume": path}.items():
        flag = "--" + key.replace("_", "-")
        if key in ("experiment", "overwrite") or value is None or value is False or (key == "save_every" and not value):
            continue
        cmd += [flag] if value is True else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(cmd)


def prepared(args, files, resume=None, need_bytes=0):
    """outputs.prepare for the experiment's --out, --resume and --overwrite; a refusal ends the
    program in one line. Returns the path of files[0]."""
    try:
        return outputs.prepare(args.out, files, resume=getattr(args, "resume", resume),
                               overwrite=args.overwrite, need_bytes=need_bytes + FIGURE_BYTES * len(files))
    except (outputs.OutputError, TypeError, ValueError) as err:
        sys.exit(f"demo.py: error: {err}")


def output_bytes(cfg, models):
    """About the size of a checkpoint of the runs `models`: each parameter with Adam's two moments."""
    count = sum(math.prod(shape) for m in models for net in methods.build_nets(cfg, m).values()
                for shape in network.param_shapes(net).values())
    return 3 * count * (8 if cfg.dtype == "float64" else 4)


def train_models(args, cfg, models, train_data, xp, files, valid=None):
    """Train (or resume) the runs of `models` (method names), saving OUT/checkpoint.npz as they
    go; returns {method: Run}.

    The output folder is checked first (`files` are the outputs the experiment will write): no
    output already there is replaced without --overwrite, and there must be room for them. Every
    run is created before the first iteration, so a configuration too large for memory stops
    here in one line. Ctrl-C, SIGTERM or SIGHUP saves and prints the command that resumes (exit
    code 130); a divergence saves the last sane state and prints the command that continues with
    a lower learning rate (exit code 1).
    """
    try:                                                  # sizes first: a network too large for memory
        for method in models:                             # stops here, before anything is written
            checked_cfg = validate_run.config(cfg, method)
            training.check_size(checked_cfg, methods.build_nets(checked_cfg, method))
    except (TypeError, ValueError) as err:
        sys.exit(f"demo.py: error: {err}")
    path = prepared(args, ["checkpoint.npz", *files], need_bytes=output_bytes(cfg, models))
    runs = {}
    if args.resume:
        try:
            runs = checkpoint.load(args.resume, expected_cfg=cfg, xp=xp)
        except checkpoint.CheckpointError as err:
            hint = ("\nPass the flags the run was started with, or rerun without --resume."
                    if "different configuration" in str(err) else "")
            sys.exit(f"demo.py: error: {err}{hint}")
        if set(runs) - set(models):                # runs not yet started are trained fresh
            sys.exit(f"demo.py: error: the checkpoint holds the runs {sorted(runs)}, among them AVB with "
                     "adaptive contrast; pass --ac to resume it")
        for method, run in runs.items():
            if run.step > cfg.steps:
                sys.exit(f"demo.py: error: the checkpoint's {method} run is at iteration {run.step}, "
                         f"beyond --steps {cfg.steps}; pass --steps {run.step} or more")
        print(f"resuming from {args.resume}: " + ", ".join(f"{m} at iteration {r.step}" for m, r in runs.items()))
    print(f"backend {backend.module_name(xp)}, {cfg.steps} iterations per model, seed {cfg.seed}")

    def interrupted():                                    # train restored the last whole iteration
        checkpoint.save(path, runs)
        return (f"\ninterrupted: saved {path} (" + ", ".join(f"{m} at iteration {r.step}" for m, r in runs.items())
                + f"). Resume with:\n  {resume_command(args, path)}")
    runs = {m: runs.get(m) or training.new_run(cfg, m, xp) for m in models}   # all exist before any trains
    with outputs.exit_on_interrupt(interrupted):
        try:
            for method, run in runs.items():
                while run.step < cfg.steps:                 # in chunks of --save-every: train
                    chunk = cfg.steps - run.step            # continues a run exactly where it stopped
                    if args.save_every:
                        chunk = min(chunk, args.save_every - run.step % args.save_every)
                    training.train(run, train_data, chunk, valid=valid)
                    checkpoint.save(path, runs)
        except training.DivergenceError as err:           # the run is sane again: keep it
            checkpoint.save(path, runs)
            print(f"{err}\nSaved {path}. Continue with a lower learning rate:\n  "
                  f"{resume_command(args, path, **err.lower)}")
            raise SystemExit(1)
    return runs


def require_matplotlib():
    """Every experiment draws figures: without matplotlib, stop in one line before training."""
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit('demo.py: error: the figures need matplotlib; install it with: pip install -e ".[plot]"')


def evaluating(args):
    """Ctrl-C or SIGTERM while scoring and drawing: exit code 130 and the command that redoes it."""
    path = os.path.join(args.out, "checkpoint.npz")
    return outputs.exit_on_interrupt(lambda: f"\ninterrupted during evaluation; the trained runs are saved in "
                                             f"{path}. Evaluate them with:\n  {resume_command(args, path)}")


def table(rows, columns):
    """A fixed-width table: `rows` {name: {key: value}}, `columns` [(key, header)]; a missing
    value prints as '-', a (value, se) pair as value+-se."""
    def cell(v):
        if isinstance(v, (tuple, list)):
            return f"{v[0]:.3f}+-{v[1]:.3f}"
        return f"{v:.4f}" if isinstance(v, float) else "-"

    def shown(key, v):                                     # seconds to a tenth, the rest as cell()
        return f"{v:.1f}" if key.endswith("seconds") and isinstance(v, float) else cell(v)
    lines = [f"{'':<8}" + "".join(f"{h:>16}" for _, h in columns)]
    lines += [f"{name:<8}" + "".join(f"{shown(k, row.get(k)):>16}" for k, _ in columns)
              for name, row in rows.items()]
    return "\n".join(lines)


def write_json(out, results, name="results.json"):
    """Write results as JSON into out/name, through a temporary file, so a reader never sees half a file."""
    path = os.path.join(out, name)
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=2, default=list)
    os.replace(path + ".tmp", path)


def save_partial(path, flags, results, draws):
    """Keep finished results (and the samples the figures draw) of an interrupted experiment in
    path, as JSON, beside the flags that made them."""
    state = {"flags": flags, "results": {n: r for n, r in results.items() if r.get("methods")},
             "draws": {m: {n: z.tolist() for n, z in d.items()} for m, d in draws.items()}}
    with open(path + ".tmp", "w") as f:
        json.dump(state, f, default=list)
    os.replace(path + ".tmp", path)


def load_partial(path, flags):
    """The state save_partial wrote, if its flags equal `flags`; else one line and exit 2."""
    try:
        with open(path) as f:
            state = json.load(f)
        if state["flags"] != flags:
            diff = ", ".join(f"--{k.replace('_', '-')} {state['flags'].get(k)!r} (given {v!r})"
                             for k, v in flags.items() if state["flags"].get(k) != v)
            sys.exit(f"demo.py: error: {path} was saved with other flags: {diff}; pass those to resume it")
        return {"results": dict(state["results"]), "draws": dict(state["draws"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        sys.exit(f"demo.py: error: cannot resume from {path}: {type(err).__name__}: {err}")
