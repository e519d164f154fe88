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

JSON text is stored as 0-d unicode arrays. Saving writes a temporary file in the target's folder
(through a symbolic link: the link's target), flushes it to disk and renames it over the target,
so a crash, a full disk or Ctrl-C while saving leaves the previous checkpoint as it was.

Loading trusts nothing in the file: it reads the zip directory and each entry's .npy header
before any data, refuses an entry larger than the model of its run implies (a small file must
not expand to gigabytes), and checks the run it rebuilds like `train` does (training.check_run:
finite parameters, sane counters, optimiser state that fits). Every problem is a CheckpointError.
"""
import contextlib
import dataclasses
import json
import math
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import backend, network, training, validate, validate_run
from .backend import to_host
from .config import FIXED, Config
from .methods import METHODS, build_nets
from .optim import Adam
from .outputs import alive
from .training import PLAYERS, Run

FORMAT = "avb_np checkpoint 1"
MUST_MATCH = FIXED    # fields that must equal the expected configuration (see config.FIXED)
MAX_TEXT = 2**29      # bytes of one JSON entry (4 per character): the history of ~2.5 million iterations
HEADER = 65536        # room for an .npy entry's header beyond its data
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
               TypeError, AttributeError, IndexError, zlib.error, NotImplementedError, RuntimeError)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, or does not match the model."""


def save(path, runs):
    """Write the runs {name: Run} to `path` (exactly that name; no ".npz" is appended). Each run
    is checked first (training.check_run); a disk or folder problem is one OSError naming `path`."""
    path = validate.path("path", path)
    if not isinstance(runs, dict) or not runs:
        raise TypeError(f"runs must be a non-empty dict {{name: training.Run}}, got {runs!r}")
    arrays = {"format": np.array(FORMAT), "runs": _text(list(runs))}
    for name, run in runs.items():
        if not isinstance(name, str) or not name or not name.isprintable() or "/" in name or "\\" in name:
            raise ValueError(f"run names must be non-empty printable strings without '/' or '\\', got {name!r}")
        training.check_run(run, f"runs[{name!r}]")
        arrays.update(_pack(name, run))
    target = os.path.realpath(path)               # through a symbolic link: keep the link
    folder, base = os.path.split(target)
    tmp, renamed = None, False
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{base}.{os.getpid()}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)             # as open() would, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)                 # a file object: savez adds no suffix
            f.flush()
            os.fsync(f.fileno())                  # the bytes are on disk before the rename
        os.replace(tmp, target)                   # atomic: readers see the old file or the new one
        tmp, renamed = None, True
        if hasattr(os, "O_DIRECTORY"):            # POSIX: make the rename itself durable
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as err:                        # a full disk, a read-only or missing folder, ...
        if renamed:                               # the new file is in place: only its durability is in doubt
            raise OSError(err.errno, f"saved checkpoint {path!r}, but syncing its folder failed: "
                                     f"{err.strerror or err}; the new file may not survive a power loss") from None
        raise OSError(err.errno, f"cannot save checkpoint {path!r}: {err.strerror or err}; a checkpoint "
                                 "already there is unchanged") from None
    finally:                                      # Ctrl-C and errors alike: no temporary file stays
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _remove_stale_temporaries(folder, base)
    return path


def _remove_stale_temporaries(folder, base):
    """Delete the temporary files of saves to `base` whose process is gone (a save killed before
    it could clean up); load never reads them either way."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            pid = name[len(base) + 1:].split(".")[0]
            if name.startswith(base + ".") and name.endswith(".tmp") and pid.isdigit() and not alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


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
    path = validate.path("path", path)
    if expected_cfg is not None and not isinstance(expected_cfg, Config):
        raise TypeError(f"expected_cfg must be an avb_np.config.Config or None, got {type(expected_cfg).__name__}")
    xp = validate.array_library("xp", backend.current() if xp is None else xp)
    with _open(path) as zf:
        entries = _directory(path, zf)
        if _json(path, zf, entries, "format", raw=True) != FORMAT:
            raise CheckpointError(f"{path!r} is not an avb_np checkpoint of this version (format "
                                  f"{_json(path, zf, entries, 'format', raw=True)!r}, expected {FORMAT!r})")
        names = _json(path, zf, entries, "runs")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise CheckpointError(_corrupt(path, f"its list of runs is {names!r}"))
        return {name: _unpack(path, zf, entries, name, expected_cfg, xp) for name in names}


def _corrupt(path, why):
    return (f"cannot read checkpoint {path!r}: the file is truncated or corrupt ({why}). "
            "Load an earlier checkpoint or start a new run.")


@contextlib.contextmanager
def _open(path):
    """The file as an open zip archive; its directory is read, nothing else."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path!r} is a folder, not a checkpoint file") from None
    except PermissionError as err:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {err.strerror}") from None
    except READ_ERRORS as err:
        raise CheckpointError(_corrupt(path, f"{type(err).__name__}: {err}")) from None
    with zf:
        yield zf


def _directory(path, zf):
    """{entry name: ZipInfo} of the .npy entries, as np.savez names them (key + ".npy")."""
    infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
    entries = {i.filename[:-len(".npy")]: i for i in infos}
    if len(entries) != len(infos):
        raise CheckpointError(_corrupt(path, "an entry name occurs twice"))
    return entries


def _read(path, zf, entries, key, shape, dtype):
    """Read entry `key` once its declared size and header say it holds `shape` and `dtype`."""
    if key not in entries:
        raise CheckpointError(_corrupt(path, f"entry {key!r} is missing"))
    info, nbytes = entries[key], math.prod(shape) * np.dtype(dtype).itemsize
    if info.file_size > nbytes + HEADER:           # before reading a byte of it
        raise CheckpointError(f"checkpoint {path!r}: entry {key!r} declares {info.file_size} bytes, more than "
                              f"the {nbytes} its model implies; the file is corrupt or not a checkpoint")
    got = _header(path, zf, info)
    if got != (tuple(shape), np.dtype(dtype)):
        raise CheckpointError(f"checkpoint {path!r}: entry {key!r} holds {got[1]} of shape {got[0]}, "
                              f"expected {np.dtype(dtype)} of shape {tuple(shape)}")
    try:
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except READ_ERRORS as err:
        raise CheckpointError(_corrupt(path, f"entry {key!r}: {type(err).__name__}: {err}")) from None


def _header(path, zf, info):
    """(shape, dtype) from an .npy entry's header, reading only the header."""
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, dtype = read[version](f)
        return tuple(shape), np.dtype(dtype)
    except READ_ERRORS as err:
        raise CheckpointError(_corrupt(path, f"entry {info.filename!r}: {type(err).__name__}: {err}")) from None


def _json(path, zf, entries, key, raw=False):
    """A JSON entry (a 0-d unicode array of at most MAX_TEXT bytes), parsed; raw=True: the text."""
    if key not in entries:
        raise CheckpointError(_corrupt(path, f"entry {key!r} is missing"))
    shape, dtype = _header(path, zf, entries[key])
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_TEXT:
        raise CheckpointError(_corrupt(path, f"entry {key!r} holds {dtype} of shape {shape}, not JSON text "
                                             f"of at most {MAX_TEXT} bytes"))
    text = str(_read(path, zf, entries, key, (), dtype))
    if raw:
        return text
    try:
        return json.loads(text)
    except ValueError as err:
        raise CheckpointError(_corrupt(path, f"entry {key!r}: {err}")) from None


def _unpack(path, zf, entries, name, expected_cfg, xp):
    """Rebuild run `name`: its configuration, then its arrays (headers first), then check it."""
    meta = _json(path, zf, entries, f"{name}/meta")
    where = f"checkpoint {path!r} (run {name!r})"
    try:
        method = validate.choice("method", meta["method"], validate.METHOD_NAMES)
        saved = dict(meta["config"])
        saved = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
        saved = validate_run.config(saved, method, "config")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where} has no usable configuration ({type(err).__name__}: {err}). "
                              "Load an earlier checkpoint or start a new run.") from None
    cfg = saved
    if expected_cfg is not None:                                       # the caller's argument, with the
        cfg = validate_run.config(expected_cfg, method, "expected_cfg")    # fields the method uses as saved
        cfg = dataclasses.replace(cfg, **{k: getattr(saved, k) for k in METHODS[method].ignores})
        diff = [f"{k}: checkpoint {getattr(saved, k)!r} vs expected {getattr(cfg, k)!r}"
                for k in MUST_MATCH if getattr(saved, k) != getattr(cfg, k) and k not in METHODS[method].ignores]
        if diff:
            raise CheckpointError(f"{where} was saved with a different configuration: " + "; ".join(diff))
    nets = build_nets(cfg, method)
    try:
        training.check_size(cfg, nets, "config")
    except ValueError as err:
        raise CheckpointError(f"{where}: {err}") from None
    shapes = {k: s for net in nets.values() for k, s in network.param_shapes(net).items()}
    players = ["primal", "dual"] if METHODS[method].dual else ["primal"]
    moments = [f"{name}/{p}/{m}/" for p in players for m in ("m", "v")]
    headers = {k: _header(path, zf, i) for k, i in entries.items() if k.startswith(f"{name}/") and k != f"{name}/meta"}
    problems = validate_run.layout(lambda k: f"{name}/param/{k}", _under(headers, f"{name}/param/"), shapes, cfg.dtype)
    for prefix in moments:                            # Adam creates its moments at its first step
        own = {k: s for k, s in shapes.items() if k.startswith(PLAYERS[prefix.split("/")[1]])}
        problems += validate_run.layout(lambda k: prefix + k, _under(headers, prefix), own, cfg.dtype, complete=False)
    problems += [f"{k} is not part of a run" for k in headers if not k.startswith((f"{name}/param/", *moments))]
    if problems:
        raise CheckpointError(f"checkpoint {path!r} does not match the networks of its configuration: "
                              + "; ".join(problems))
    read = {k: xp.array(_read(path, zf, entries, k, *headers[k])) for k in headers}   # writable, on xp
    try:
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]         # exactly where the saved run stopped
        optimisers = {}
        for player in players:
            consts = meta["optimisers"][player]
            optimisers[player] = Adam(getattr(cfg, f"lr_{player}"), consts["beta1"], consts["beta2"], consts["eps"])
            optimisers[player].load_state({"t": consts["t"], "m": _under(read, f"{name}/{player}/m/"),
                                           "v": _under(read, f"{name}/{player}/v/")})
        run = Run(cfg, method, nets, _under(read, f"{name}/param/"), optimisers["primal"],
                  optimisers.get("dual"), rng, xp, meta["step"], meta["seconds"], meta["history"])
        return training.check_run(run, name)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        raise CheckpointError(f"{where} holds a run that cannot continue ({type(err).__name__}: {err}). "
                              "Load an earlier checkpoint or start a new run.") from None


def _under(entries, prefix):
    """The entries whose key starts with `prefix`, keyed by the rest of the key."""
    return {k[len(prefix):]: a for k, a in entries.items() if k.startswith(prefix)}
