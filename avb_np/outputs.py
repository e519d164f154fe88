"""Where a program's outputs go, checked before any training, and a clean exit on Ctrl-C or SIGTERM.

A long run must not lose what it trained. So, before the first iteration:
- `prepare` checks the output folder: it exists or can be created, a file can be written in it,
  none of the output paths is a folder or a read-only file, there is room for the checkpoint;
  and it refuses to replace a checkpoint that is already there unless that checkpoint is the
  one being resumed or the caller asks for it (overwrite=True, the demo's --overwrite);
and while the program runs:
- `sigterm_as_ctrl_c` makes SIGTERM (kill, a batch system's time limit) raise KeyboardInterrupt
  as Ctrl-C does, so the same handler saves the runs;
- `exit_on_interrupt` turns Ctrl-C or SIGTERM into a message (which may save first) and exit
  code 130, the shell's code for Ctrl-C, instead of a traceback.

    path = outputs.prepare("avb_out", ["checkpoint.npz", "results.json"], resume=None)
    with outputs.exit_on_interrupt(lambda: f"interrupted; saved {checkpoint.save(path, runs)}"):
        training.train(run, data, steps)
"""
import contextlib
import os
import shutil
import signal
import tempfile
import threading

from . import validate


class OutputError(ValueError):
    """An output location that cannot take the files, or a saved run that would be overwritten."""


def prepare(out, files, resume=None, overwrite=False, need_bytes=0):
    """Check the folder `out` for the files `files` (names inside it; files[0] is the checkpoint)
    before any training, creating the folder if needed; return the checkpoint's path.

    resume: the checkpoint this program continues (it may be files[0] itself); overwrite: allow
    replacing a checkpoint already at files[0]; need_bytes: the free space the outputs need.
    Raises OutputError naming the path and what to do, TypeError/ValueError for bad arguments.
    """
    out = validate.path("out", out)
    if not isinstance(files, (list, tuple)) or not files:
        raise TypeError(f"files must be a non-empty list of file names, got {files!r}")
    for i, name in enumerate(files):
        if validate.path(f"files[{i}]", name) != os.path.basename(name):
            raise ValueError(f"files[{i}] must be a file name inside out, got {name!r}")
    resume = None if resume is None else validate.path("resume", resume)
    overwrite = validate.flag("overwrite", overwrite)
    need_bytes = validate.non_negative_int("need_bytes", need_bytes)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"--out {out!r} is a file, not a folder; choose another --out")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the output folder --out {out!r}: {err.strerror or err}") from None
    for name in files:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            raise OutputError(f"{path!r} is a folder, so {name} cannot be written there; remove or rename "
                              "it, or choose another --out")
        if name != files[0] and os.path.exists(path) and not os.access(path, os.W_OK):
            raise OutputError(f"{path!r} is read-only, so {name} cannot be written there; choose another --out")
        _can_write(os.path.dirname(os.path.realpath(path)))      # a link's target folder
    checkpoint = os.path.join(out, files[0])
    if os.path.lexists(checkpoint) and not overwrite and not _same_file(checkpoint, resume):
        raise OutputError(f"{checkpoint!r} holds a saved run that this command would overwrite. Continue it "
                          f"with --resume {checkpoint}, write elsewhere with --out, or replace it with --overwrite")
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise OutputError(f"--out {out!r} has {free / 2**20:.1f} MiB free, the outputs need about "
                          f"{need_bytes / 2**20:.1f} MiB; free some space or choose another --out")
    return checkpoint


def _can_write(folder):
    """Create and delete a file in `folder`, as saving will; OutputError if that fails."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into {folder!r} ({err.strerror or err}); choose another --out "
                          "or make it writable") from None


def _same_file(path, other):
    try:
        return other is not None and os.path.samefile(path, other)
    except OSError:                                # either is missing or unreadable
        return False


def _main_thread():
    """Python sets signal handlers in the main thread only."""
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """Inside the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does; the previous handler
    is put back on leaving. Outside the main thread it changes nothing."""
    if not _main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def _signals_ignored():
    """Ctrl-C and SIGTERM are ignored inside the block (while the work they asked to save is saved)."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def exit_on_interrupt(message):
    """Ctrl-C or SIGTERM inside the block prints message() and exits with code 130, no traceback.

    message() runs with both signals ignored, so it may save work without being cut short; if it
    fails (a full disk), its error is printed on one line instead."""
    if not callable(message):
        raise TypeError(f"message must be a function returning the text to print, got {message!r}")
    with sigterm_as_ctrl_c():
        try:
            yield
        except KeyboardInterrupt:
            with _signals_ignored():
                try:
                    text = message()
                except Exception as err:           # noqa: BLE001 - reported, then the exit goes on
                    text = f"\ninterrupted; and then: {type(err).__name__}: {err}"
            print(text, flush=True)
            raise SystemExit(130) from None
