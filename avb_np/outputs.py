"""Where a program's outputs go, checked before any training, and a clean exit on Ctrl-C, SIGTERM
or SIGHUP.

A long run must not lose what it trained, nor what an earlier run wrote. So, before the first
iteration:
- `prepare` checks the output folder: it exists or can be created, a file can be written in it,
  none of the output paths is a folder or a read-only file, there is room for the outputs; it
  refuses to replace any output that is already there (a checkpoint, results, figures) unless
  the run continues the checkpoint in that folder (resume) or the caller asks for it
  (overwrite=True, the demo's --overwrite); and it claims the folder (a lock file holding the
  process id), so a second run started into the same folder stops instead of racing the first;
and while the program runs:
- `sigterm_as_ctrl_c` makes SIGTERM (kill, a batch system's time limit) and SIGHUP (a closed
  terminal, a dropped ssh session) raise KeyboardInterrupt as Ctrl-C does, so the same handler
  saves the runs;
- `exit_on_interrupt` turns any of the three into a message (which may save first) and exit
  code 130, the shell's code for Ctrl-C, instead of a traceback.

    path = outputs.prepare("avb_out", ["checkpoint.npz", "results.json"], resume=None)
    with outputs.exit_on_interrupt(lambda: f"interrupted; saved {checkpoint.save(path, runs)}"):
        training.train(run, data, steps)
"""
import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading

from . import validate


class OutputError(ValueError):
    """An output location that cannot take the files, or earlier outputs that would be overwritten."""


LOCK = ".avb_np.lock"     # in an output folder while a run writes there: the run's process id
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def prepare(out, files, resume=None, overwrite=False, need_bytes=0):
    """Check the folder `out` for the files `files` (names inside it; files[0] is the checkpoint,
    or the main result where there is none) before any work, creating the folder if needed and
    claiming it for this process (`claim`); return the path of files[0].

    resume: the checkpoint this program continues: when it is files[0] itself, the outputs beside
    it are that run's and may be written again. overwrite: allow replacing outputs already there.
    need_bytes: the free space the outputs need. Raises OutputError naming the path and what to
    do, TypeError/ValueError for bad arguments.
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
    earlier = [name for name in files[1:] if os.path.lexists(os.path.join(out, name))]
    if earlier and not overwrite and not _same_file(checkpoint, resume):
        raise OutputError(f"--out {out!r} already holds {', '.join(earlier)} from an earlier run, which this "
                          "command would replace; write elsewhere with --out, or replace them with --overwrite")
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise OutputError(f"--out {out!r} has {free / 2**20:.1f} MiB free, the outputs need about "
                          f"{need_bytes / 2**20:.1f} MiB; free some space or choose another --out")
    claim(out)
    return checkpoint


def claim(out):
    """Claim the folder `out` for this process until it exits: write its id into out/LOCK, which
    must not exist already (O_EXCL, so of two runs started together exactly one wins). A lock
    left by a process that is gone is taken over. OutputError if a live process holds it."""
    path = os.path.join(out, LOCK)
    for _ in range(2):                                     # a stale lock is removed, then one retry
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if owner == os.getpid():
                return
            if owner is not None and alive(owner):
                raise OutputError(f"another run (process {owner}) is writing into --out {out!r}; wait for it "
                                  f"to finish or choose another --out (if no such run exists, delete {path})") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        except OSError as err:
            raise OutputError(f"cannot write into {out!r} ({err.strerror or err}); choose another --out") from None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        atexit.register(_release, path, os.getpid())
        return
    raise OutputError(f"cannot claim --out {out!r}: {path} keeps reappearing; choose another --out")


def _owner(path):
    """The process id in a lock file, or None when it cannot be read (being written, or garbage)."""
    try:
        with open(path) as f:
            return int(f.read().strip() or -1)
    except (OSError, ValueError):
        return None


def alive(pid):
    """Whether a process with id `pid` exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)                                    # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):               # someone else's process; a number beyond pids
        return True
    return True


def _release(path, pid):
    """Remove the lock at exit, if it is still this process's."""
    if _owner(path) == pid:
        with contextlib.suppress(OSError):
            os.unlink(path)


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
    """Inside the block SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does; the previous
    handlers are put back on leaving. Outside the main thread it changes nothing."""
    if not _main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")
    previous = {s: signal.signal(s, interrupt) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _signals_ignored():
    """Ctrl-C, SIGTERM and SIGHUP are ignored inside the block (while the work they asked to save is saved)."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *SIGNALS)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def exit_on_interrupt(message):
    """Ctrl-C, SIGTERM or SIGHUP inside the block prints message() and exits with code 130, no traceback.

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
