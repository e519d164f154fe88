"""Output locations checked before training, saved runs never overwritten by accident, SIGTERM
handled like Ctrl-C, and Ctrl-C anywhere ending in a message and exit code 130."""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from avb_np import checkpoint, outputs, training
from common import tiny, trained

FILES = ["checkpoint.npz", "results.json", "curves.png"]
REPO = Path(__file__).resolve().parents[1]


def refused(call, *words, error=outputs.OutputError):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_a_fresh_folder_is_created_and_the_checkpoint_path_returned(tmp_path):
    out = tmp_path / "a" / "b"
    assert outputs.prepare(out, FILES) == str(out / "checkpoint.npz")
    assert out.is_dir() and os.listdir(out) == [outputs.LOCK]    # the claim; the write test left nothing


def test_bad_locations_are_found_before_training(tmp_path, monkeypatch):
    """--out that is a file, a checkpoint or results path that is a folder, a read-only output
    file, a folder where no file can be created, too little space: each is an OutputError that
    names the path, raised before anything trains."""
    (tmp_path / "file").write_text("x")
    refused(lambda: outputs.prepare(tmp_path / "file", FILES), "--out", "is a file, not a folder")
    refused(lambda: outputs.prepare(tmp_path / "file" / "sub", FILES), "cannot create the output folder")
    (tmp_path / "out" / "checkpoint.npz").mkdir(parents=True)
    refused(lambda: outputs.prepare(tmp_path / "out", FILES), "checkpoint.npz' is a folder")
    os.rmdir(tmp_path / "out" / "checkpoint.npz")
    (tmp_path / "out" / "results.json").mkdir()
    refused(lambda: outputs.prepare(tmp_path / "out", FILES), "results.json' is a folder")
    os.rmdir(tmp_path / "out" / "results.json")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    (tmp_path / "out" / "curves.png").write_bytes(b"")
    refused(lambda: outputs.prepare(tmp_path / "out", FILES), "curves.png' is read-only")
    monkeypatch.undo()
    os.remove(tmp_path / "out" / "curves.png")

    def no_room(*args, **kwargs):                             # a read-only folder, as any user sees it
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    refused(lambda: outputs.prepare(tmp_path / "out", FILES), "cannot write into", str(tmp_path / "out"),
            "Permission denied")
    monkeypatch.undo()
    refused(lambda: outputs.prepare(tmp_path / "out", FILES, need_bytes=2**62), "MiB free", "need about")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    refused(lambda: outputs.prepare(out, FILES), "cannot write into", str(out))


def test_a_saved_run_is_never_overwritten_without_asking(tmp_path):
    """A checkpoint already in --out may be replaced only by the run that resumes it, or with
    overwrite=True; a fresh run, or one resumed from another file, is refused with the three
    ways out. The check follows links: resuming the link's target is resuming the checkpoint."""
    out = tmp_path / "out"
    out.mkdir()
    checkpoint.save(out / "checkpoint.npz", {"vae": trained(tiny(), "vae", 1)})
    refused(lambda: outputs.prepare(out, FILES), "holds a saved run that this command would overwrite",
            f"--resume {out / 'checkpoint.npz'}", "--out", "--overwrite")
    checkpoint.save(tmp_path / "other.npz", {"vae": trained(tiny(), "vae", 1)})
    refused(lambda: outputs.prepare(out, FILES, resume=tmp_path / "other.npz"), "would overwrite")
    assert outputs.prepare(out, FILES, resume=out / "checkpoint.npz") == str(out / "checkpoint.npz")
    assert outputs.prepare(out, FILES, overwrite=True) == str(out / "checkpoint.npz")
    os.replace(out / "checkpoint.npz", tmp_path / "real.npz")
    (out / "checkpoint.npz").symlink_to(tmp_path / "real.npz")
    assert outputs.prepare(out, FILES, resume=tmp_path / "real.npz") == str(out / "checkpoint.npz")


def test_bad_arguments_are_named(tmp_path):
    refused(lambda: outputs.prepare("", FILES), "out must be a path, got ''", "unset", error=ValueError)
    refused(lambda: outputs.prepare(tmp_path, FILES, resume=""), "resume must be a path, got ''", error=ValueError)
    refused(lambda: outputs.prepare(tmp_path, []), "files must be a non-empty list", error=TypeError)
    refused(lambda: outputs.prepare(tmp_path, ["sub/c.npz"]), "files[0] must be a file name", error=ValueError)
    refused(lambda: outputs.prepare(tmp_path, FILES, overwrite="yes"), "overwrite", error=TypeError)
    refused(lambda: outputs.exit_on_interrupt("text").__enter__(), "message must be a function", error=TypeError)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_raises_keyboard_interrupt_inside_and_the_old_handler_comes_back(name):
    """SIGTERM (kill) and SIGHUP (a closed terminal) act as Ctrl-C inside the block."""
    sig = getattr(signal, name)
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match=name):
        with outputs.sigterm_as_ctrl_c():
            os.kill(os.getpid(), sig)
            for _ in range(10**6):                             # the handler runs between bytecodes
                pass
    assert signal.getsignal(sig) is before


def test_exit_on_interrupt_prints_the_message_and_exits_130(capsys):
    """Ctrl-C inside the block: message() runs (with Ctrl-C and SIGTERM ignored, so a second
    signal cannot cut a save short), its text is printed, the exit code is 130. A message that
    fails is reported on one line, and the exit code is still 130."""
    def save_then_describe():
        os.kill(os.getpid(), signal.SIGTERM)                   # ignored while saving
        return "interrupted: saved"
    with pytest.raises(SystemExit) as info:
        with outputs.exit_on_interrupt(save_then_describe):
            raise KeyboardInterrupt
    assert info.value.code == 130 and capsys.readouterr().out == "interrupted: saved\n"

    def full_disk():
        raise OSError(28, "No space left on device")
    with pytest.raises(SystemExit) as info:
        with outputs.exit_on_interrupt(full_disk):
            raise KeyboardInterrupt
    assert info.value.code == 130 and "OSError: [Errno 28] No space left on device" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_during_training_saves_the_run(tmp_path):
    """A program that trains inside exit_on_interrupt, killed with SIGTERM mid-training, saves a
    checkpoint of its last whole iteration, prints so and exits with 130, as with Ctrl-C."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
        from avb_np import checkpoint, outputs, training
        from avb_np.data import toy_data
        from common import tiny
        run = training.new_run(tiny(steps=10**6 + 5), "avb", np)
        path = outputs.prepare({str(tmp_path)!r}, ["checkpoint.npz"])
        with outputs.exit_on_interrupt(lambda: f"interrupted: saved {{checkpoint.save(path, {{'avb': run}})}}"):
            training.train(run, toy_data(), 5)
            print("training", flush=True)
            training.train(run, toy_data(), 10**6)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "training\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.strip() == f"interrupted: saved {tmp_path / 'checkpoint.npz'}" and "Traceback" not in err
    run = checkpoint.load(tmp_path / "checkpoint.npz")["avb"]
    assert run.step >= 5 and len(run.history["step"]) == run.step
    training.train(run, np.eye(4), 2)                          # and it trains on


def test_no_earlier_output_is_replaced_without_overwrite(tmp_path):
    """results.json or a figure left by an earlier run (with no checkpoint beside it) is refused,
    naming the files and --overwrite; --overwrite, or resuming the checkpoint in that folder,
    allows writing them again."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "curves.png").write_bytes(b"png")
    refused(lambda: outputs.prepare(out, FILES), "already holds results.json, curves.png", "--overwrite")
    assert outputs.prepare(out, FILES, overwrite=True) == str(out / "checkpoint.npz")
    (out / "checkpoint.npz").write_bytes(b"x")
    assert outputs.prepare(out, FILES, resume=out / "checkpoint.npz") == str(out / "checkpoint.npz")


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    """The folder is claimed by a lock file with the process id: a live other process's claim
    (here the parent's) stops a second run with a message naming it; a claim left by a process
    that is gone is taken over; this process's own claim is kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / outputs.LOCK).write_text(str(os.getppid()))
    refused(lambda: outputs.prepare(out, FILES), f"another run (process {os.getppid()})", "choose another --out")
    (out / outputs.LOCK).write_text("999999999")                   # no such process
    assert outputs.prepare(out, FILES) == str(out / "checkpoint.npz")
    assert (out / outputs.LOCK).read_text() == str(os.getpid())
    assert outputs.prepare(out, FILES, overwrite=True) == str(out / "checkpoint.npz")
