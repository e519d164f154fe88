"""Checkpoints: everything a run needs to continue, in one .npz file, written atomically.

    checkpoint.save("avb_out/checkpoint.npz", {"avb": avb_run, "vae": vae_run})
    runs = checkpoint.load("avb_out/checkpoint.npz", expected_cfg=cfg)   # {"avb": Run, "vae": Run}

Resuming is exact: N iterations in one go equal k iterations, save, load, N - k iterations,
bit for bit on NumPy. Layout of the file (np.savez; read with allow_pickle=False):

    format                         FORMAT, to recognise the file and its version
    runs                           JSON list of run names, e.g. ["avb", "vae"]
    <run>/meta                     JSON: method, step, seconds, config, generator state, history,
                                   and each optimiser's step count t and constants
    <run>/param/<name>             every parameter, e.g. avb/param/enc.0.W
    <run>/<player>/<m|v>/<name>    Adam's moments; player "primal" (encoder + decoder) or
                                   "dual" (adversary, AVB only)

JSON text is stored as 0-d unicode arrays. The file is written to a temporary file in the same
folder, flushed to disk, then renamed over `path`, so a crash while saving leaves the previous
checkpoint as it was.
"""
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import replace

import numpy as np

from . import backend, models, network, validate
from .backend import to_host
from .config import Config
from .optim import Adam
from .training import PLAYERS, Run

FORMAT = "avb_np checkpoint 1"
# Fields that must equal the expected configuration: they define the networks, the numbers
# they hold and the run's identity. The others (steps, learning rates, batch size, dual steps,
# logging, out_gain which only matters at initialisation) may change when a run is continued.
MUST_MATCH = ("x_dim", "z_dim", "eps_dim", "enc_hidden", "dec_hidden", "act", "adv_width",
              "adv_blocks", "prior_term", "dtype", "seed")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, or does not match the model."""


def save(path, runs):
    """Write the runs {name: Run} to `path` (exactly that name; no ".npz" is appended)."""
    path = os.fspath(path)
    arrays = {"format": np.array(FORMAT), "runs": _text(list(runs))}
    for name, run in runs.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"run names must be non-empty strings without '/', got {name!r}")
        if not isinstance(run, Run):
            raise TypeError(f"runs[{name!r}] must be a training.Run, got {type(run).__name__}")
        arrays.update(_pack(name, run))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)             # as open() would, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)                 # a file object: savez adds no suffix
            f.flush()
            os.fsync(f.fileno())                  # the bytes are on disk before the rename
        os.replace(tmp, path)                     # atomic: readers see the old file or the new one
    except BaseException:                         # Ctrl-C and full disks too
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):                # POSIX: make the rename itself durable
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def _text(obj):
    """JSON text as a 0-d unicode array (NaN in histories is written as NaN and read back)."""
    return np.array(json.dumps(obj))


def _pack(name, run):
    """The arrays of one run, keyed as in the module docstring, on the host."""
    opts = {"primal": run.opt_primal, "dual": run.opt_dual}
    meta = {"method": run.method, "step": run.step, "seconds": run.seconds,
            "config": run.cfg.to_dict(), "rng": run.rng.bit_generator.state, "history": run.history,
            "optimisers": {p: {"t": o.t, "beta1": o.beta1, "beta2": o.beta2, "eps": o.eps}
                           for p, o in opts.items() if o is not None}}
    out = {f"{name}/meta": _text(meta)}
    out.update({f"{name}/param/{k}": to_host(v) for k, v in run.params.items()})
    for player, opt in opts.items():
        for moment in ("m", "v") if opt is not None else ():
            out.update({f"{name}/{player}/{moment}/{k}": to_host(a) for k, a in getattr(opt, moment).items()})
    return out


def load(path, expected_cfg=None, xp=None):
    """The runs {name: Run} saved at `path`, with their arrays on `xp` (default: the current backend).

    With `expected_cfg`, the fields in MUST_MATCH must agree with it, and the runs continue with
    expected_cfg (so steps, learning rates, logging may differ from the saved ones).
    """
    path, xp = os.fspath(path), validate.array_library("xp", backend.current() if xp is None else xp)
    arrays = _read(path)
    try:
        if arrays.get("format") != FORMAT:
            raise CheckpointError(f"{path!r} is not an avb_np checkpoint of this version "
                                  f"(format {arrays.get('format')!r}, expected {FORMAT!r})")
        return {name: _unpack(path, name, arrays, expected_cfg, xp) for name in json.loads(arrays["runs"])}
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as err:   # entries missing or of the wrong kind
        raise CheckpointError(_corrupt(path, err)) from err


def _corrupt(path, err):
    return (f"cannot read checkpoint {path!r}: the file is truncated or corrupt "
            f"({type(err).__name__}: {err}). Load an earlier checkpoint or start a new run.")


def _read(path):
    """Every entry of the file, read into memory; JSON and format entries as str."""
    try:
        f = np.load(path, allow_pickle=False)
        if isinstance(f, np.ndarray):
            raise TypeError("the file holds a single array (.npy), not a checkpoint")
        with f:
            return {k: str(a) if a.dtype.kind == "U" else a for k, a in ((k, f[k]) for k in f.files)}
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError, zlib.error) as err:
        raise CheckpointError(_corrupt(path, err)) from err


def _unpack(path, name, arrays, expected_cfg, xp):
    """Rebuild run `name`, checking its configuration, names and shapes."""
    meta = json.loads(arrays[f"{name}/meta"])
    stored = meta["config"]
    stored = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})
    if expected_cfg is not None:
        diff = [f"{k}: checkpoint {getattr(stored, k)!r} vs expected {getattr(expected_cfg, k)!r}"
                for k in MUST_MATCH if getattr(stored, k) != getattr(expected_cfg, k)]
        if diff:
            raise CheckpointError(f"checkpoint {path!r} (run {name!r}) was saved with a different "
                                  "configuration: " + "; ".join(diff))
    cfg = stored if expected_cfg is None else replace(expected_cfg)
    nets = models.build_nets(cfg, meta["method"])             # validates the configuration
    shapes = {k: s for net in nets.values() for k, s in network.param_shapes(net).items()}
    params = _entries(arrays, f"{name}/param/")
    problems = _mismatches(f"{name}/param/", params, shapes, cfg.dtype, exact=True)
    players = ["primal", "dual"] if meta["method"] == "avb" else ["primal"]
    if sorted(meta["optimisers"]) != sorted(players):
        problems.append(f"{name} has optimisers {sorted(meta['optimisers'])}, expected {players}")
    opts = {}
    for player, consts in meta["optimisers"].items():
        own = {k: s for k, s in shapes.items() if k.startswith(PLAYERS[player])}
        state = {"t": consts["t"]}
        for moment in ("m", "v"):
            state[moment] = _entries(arrays, f"{name}/{player}/{moment}/")
            problems += _mismatches(f"{name}/{player}/{moment}/", state[moment], own, cfg.dtype, exact=False)
        opts[player] = (state, consts)
    if problems:
        raise CheckpointError(f"checkpoint {path!r} does not match the networks of its configuration: "
                              + "; ".join(problems))
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]                     # exactly where the saved run stopped
    optimisers = {}
    for player, (state, consts) in opts.items():
        lr = cfg.lr_primal if player == "primal" else cfg.lr_dual
        optimisers[player] = Adam(lr, consts["beta1"], consts["beta2"], consts["eps"])
        optimisers[player].load_state({"t": state["t"], "m": _on(xp, state["m"]), "v": _on(xp, state["v"])})
    return Run(cfg, meta["method"], nets, _on(xp, params), optimisers["primal"], optimisers.get("dual"),
               rng, xp, meta["step"], meta["seconds"], meta["history"])


def _on(xp, arrays):
    """Writable copies of host arrays on the backend `xp`."""
    return {k: xp.array(a) for k, a in arrays.items()}


def _entries(arrays, prefix):
    """The arrays whose key starts with `prefix`, keyed by the rest of the key."""
    return {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}


def _mismatches(prefix, got, shapes, dtype, exact):
    """Missing, unexpected and misshapen entries; `exact`: every name of `shapes` must be there
    (Adam creates its moments at the first step, so they may all be absent)."""
    problems = [f"{prefix}{k} is missing" for k in shapes if k not in got and (exact or got)]
    problems += [f"{prefix}{k} is not a parameter of this model" for k in got if k not in shapes]
    problems += [f"{prefix}{k} has shape {a.shape}, expected {shapes[k]}" for k, a in got.items()
                 if k in shapes and a.shape != shapes[k]]
    problems += [f"{prefix}{k} has dtype {a.dtype}, expected {dtype}" for k, a in got.items()
                 if a.dtype != np.dtype(dtype)]
    return problems
