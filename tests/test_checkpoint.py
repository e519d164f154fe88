"""Checkpoints: exact resume, atomic saves, and clear errors for broken or mismatched files."""
import dataclasses
import io
import json
import os
import zipfile

import numpy as np
import pytest

from avb_np import checkpoint, training
from avb_np.data import toy_data
from common import assert_same_state, tiny, trained


@pytest.mark.parametrize("method", ["avb", "avb-ac", "vae"])
def test_resume_is_exact(method, tmp_path):
    """12 iterations in one go equal 5, save, load, 7 more: parameters, Adam moments and step
    counts, generator state and history (losses and exact log-likelihoods) bit for bit."""
    path = tmp_path / "checkpoint.npz"
    first = trained(tiny(), method, 5)
    checkpoint.save(path, {method: first})
    resumed = checkpoint.load(path, expected_cfg=tiny(), xp=np)[method]   # beside NumPy runs
    assert_same_state(resumed, first)
    training.train(resumed, toy_data(), 7)
    assert_same_state(resumed, trained(tiny(), method, 12))
    assert resumed.history["ll_step"] == [2, 4, 6, 8, 10, 12]


def test_both_runs_in_one_file_and_a_fresh_run(tmp_path):
    """The demo's layout: {"avb", "vae"} in one file; a run that never stepped (empty Adam
    moments) round-trips too; the path is used as given, with no ".npz" appended."""
    path = tmp_path / "both"
    runs = {"avb": trained(tiny(), "avb", 3), "vae": training.new_run(tiny(), "vae", np)}
    checkpoint.save(path, runs)
    assert os.listdir(tmp_path) == ["both"]
    loaded = checkpoint.load(path, xp=np)
    assert list(loaded) == ["avb", "vae"]
    for name in runs:
        assert_same_state(loaded[name], runs[name])


def test_fields_that_may_differ_are_taken_from_the_expected_config(tmp_path):
    """Continuing with more steps or a lower learning rate is allowed; the run adopts them."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"avb": trained(tiny(), "avb", 2)})
    run = checkpoint.load(path, expected_cfg=tiny(steps=50, lr_dual=1e-4))["avb"]
    assert run.cfg.steps == 50 and run.cfg.lr_dual == 1e-4 and run.opt_dual.lr == 1e-4


def test_config_mismatch_lists_the_fields(tmp_path):
    """A checkpoint from adv_width=16 loaded for adv_width=32 (and another seed) says which."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"avb": training.new_run(tiny(adv_width=16), "avb", np)})
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path, expected_cfg=tiny(adv_width=32, seed=3))
    message = str(info.value)
    assert "adv_width: checkpoint 16 vs expected 32" in message and "seed: checkpoint 0 vs expected 3" in message
    assert str(path) in message


def rewrite(path, change):
    """Apply change(dict of arrays) to a checkpoint file, bypassing `save`'s own checks."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_wrong_names_and_shapes_are_listed(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"avb": trained(tiny(), "avb", 1)})

    def damage(arrays):
        arrays["avb/param/adv.in.W"] = np.zeros((3, 3), np.float32)
        arrays["avb/dual/m/adv.extra"] = np.zeros(2, np.float32)
        del arrays["avb/param/dec.0.b"]
        arrays["avb/param/enc.0.b"] = arrays["avb/param/enc.0.b"].astype(np.float64)
    rewrite(path, damage)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    for text in ("avb/param/adv.in.W has shape (3, 3), expected (6, 16)", "avb/param/dec.0.b is missing",
                 "avb/dual/m/adv.extra is not a parameter", "avb/param/enc.0.b has dtype float64"):
        assert text in message, text


@pytest.mark.parametrize("damage", ["cut in half", "random bytes", "empty", "an .npy array",
                                    "no format entry", "missing entry"])
def test_broken_files_give_a_clear_error(damage, tmp_path):
    """Each kind of damage is a CheckpointError naming the file, never a zipfile/NumPy traceback."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"vae": trained(tiny(), "vae", 1)})
    data = path.read_bytes()
    if damage == "cut in half":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "an .npy array":
        with open(path, "wb") as f:
            np.save(f, np.ones(3))
    elif damage == "no format entry":
        rewrite(path, lambda arrays: arrays.pop("format"))
    else:
        rewrite(path, lambda arrays: arrays.pop("vae/meta"))
    with pytest.raises(checkpoint.CheckpointError, match=str(path)):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "Ctrl-C"])
def test_interrupted_save_keeps_the_previous_checkpoint(error, monkeypatch, tmp_path):
    """A save that fails halfway through writing leaves the previous file byte for byte, still
    loadable, and no temporary file behind."""
    path = tmp_path / "checkpoint.npz"
    run = trained(tiny(), "avb", 2)
    checkpoint.save(path, {"avb": run})
    before = path.read_bytes()
    training.train(run, toy_data(), 1)

    def savez_halfway(f, **arrays):
        f.write(before[:len(before) // 2])                    # some bytes reach the disk, then ...
        raise error
    monkeypatch.setattr(np, "savez", savez_halfway)
    with pytest.raises(type(error)):
        checkpoint.save(path, {"avb": run})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    assert checkpoint.load(path)["avb"].step == 2


def test_save_refuses_bad_runs(tmp_path):
    run = training.new_run(tiny(), "vae", np)
    for name in ("a/b", "", "a\0b", 3):
        with pytest.raises(ValueError, match="run names"):
            checkpoint.save(tmp_path / "c.npz", {name: run})
    with pytest.raises(TypeError, match=r"runs\['vae'\]"):
        checkpoint.save(tmp_path / "c.npz", {"vae": dataclasses.asdict(tiny())})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- what a loaded file may hold

def change_meta(name, change):
    """A `rewrite` step that edits the JSON meta of run `name` with change(dict)."""
    def edit(arrays):
        meta = json.loads(str(arrays[f"{name}/meta"]))
        change(meta)
        arrays[f"{name}/meta"] = np.array(json.dumps(meta))
    return edit


def set_array(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key]) if callable(value) else value
    return edit


DAMAGED = {  # damage -> (edit of the file, words the CheckpointError must contain)
    "NaN parameter": (set_array("avb/param/dec.0.b", lambda a: np.full_like(a, np.nan)),
                      ["avb.params['dec.0.b'] holds 16 NaN or inf"]),
    "runaway parameter": (set_array("avb/param/adv.out.W", lambda a: a + 1e8), ["avb.params['adv.out.W'] reaches", "PARAM_BOUND"]),
    "NaN moment": (set_array("avb/dual/m/adv.in.b", lambda a: a * np.nan), ["avb.opt_dual.m['adv.in.b'] holds"]),
    "negative second moment": (set_array("avb/primal/v/enc.0.b", lambda a: -1 - a), ["avb.opt_primal.v", "negative"]),
    "negative step": (change_meta("avb", lambda m: m.update(step=-1)), ["avb.step", "got -1"]),
    "float step": (change_meta("avb", lambda m: m.update(step=2.5)), ["avb.step", "2.5"]),
    "step beyond Adam's count": (change_meta("avb", lambda m: m.update(step=9)), ["avb.opt_primal.t=3 does not fit avb.step=9"]),
    "negative Adam count": (change_meta("avb", lambda m: m["optimisers"]["dual"].update(t=-4)), ["avb.opt_dual.t", "-4"]),
    "Adam beta of 2": (change_meta("avb", lambda m: m["optimisers"]["primal"].update(beta1=2.0)), ["avb.opt_primal.beta1"]),
    "Adam constants missing": (change_meta("avb", lambda m: m["optimisers"]["primal"].pop("eps")), ["cannot continue", "eps"]),
    "history of strings": (change_meta("avb", lambda m: m["history"].update(primal=["a", "b", "c"])),
                           ["avb.history['primal']", "'a'"]),
    "history not a dict": (change_meta("avb", lambda m: m.update(history=[1, 2])), ["avb.history", "list"]),
    "history too long": (change_meta("avb", lambda m: m["history"].update(step=[1, 2, 3, 4], primal=[1.0] * 4, dual=[1.0] * 4)),
                         ["avb.history['step']", "from 1 to the run's step 3, got [1, 2, 3] ... [2, 3, 4]"]),
    "generator state": (change_meta("avb", lambda m: m.update(rng={"bit_generator": "MT19937"})), ["cannot continue"]),
    "negative seconds": (change_meta("avb", lambda m: m.update(seconds=-1.0)), ["avb.seconds", "-1"]),
    "unknown config field": (change_meta("avb", lambda m: m["config"].update(colour="red")), ["no usable configuration", "colour"]),
    "bad config value": (change_meta("avb", lambda m: m["config"].update(batch_size=0)), ["config.batch_size", "got 0"]),
    "unknown method": (change_meta("avb", lambda m: m.update(method="gan")), ["no usable configuration", "'gan'"]),
    "list of runs": (set_array("runs", np.array(json.dumps({"avb": 1}))), ["list of runs"]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_loaded_runs_are_checked(damage, tmp_path):
    """A checkpoint is checked like a run handed to train: finite parameters and moments within
    bounds, sane counters, Adam state that fits, a well-formed history and configuration. Each
    damage is a CheckpointError naming the file and the part, never a traceback or a run that
    fails later."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"avb": trained(tiny(), "avb", 3)})
    edit, words = DAMAGED[damage]
    rewrite(path, edit)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    for word in [str(path)] + words:
        assert word in message, (word, message)


def write_npz(path, entries):
    """A zip archive of raw .npy entries {key: bytes}, as np.savez would name them."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, data in entries.items():
            zf.writestr(key + ".npy", data)


def npy(array=None, header=None, data=b""):
    """The bytes of an .npy file for `array`, or a hand-made `header` followed by `data`."""
    f = io.BytesIO()
    if array is not None:
        np.save(f, array)
    else:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data)
    return f.getvalue()


def raw_entries(path):
    with zipfile.ZipFile(path) as zf:
        return {i.filename[:-4]: zf.read(i) for i in zf.infolist()}


@pytest.mark.parametrize("how", ["header claims 4 TB", "entry expands to 5 MB", "JSON beyond MAX_TEXT"])
def test_sizes_are_checked_before_reading(how, tmp_path, monkeypatch):
    """Loading reads the zip directory and the .npy headers first: an entry whose header claims
    a shape the model does not have (here 10^12 floats), or whose declared size is beyond what
    the model implies (a 64-byte bias whose entry inflates from 5 kB compressed to 5 MB), is
    refused before a byte of its data is read; so is JSON text beyond MAX_TEXT."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"vae": trained(tiny(), "vae", 2)})
    entries = raw_entries(path)
    guarded = "vae/meta" if how == "JSON beyond MAX_TEXT" else "vae/param/dec.0.b"
    if how == "header claims 4 TB":
        entries["vae/param/dec.0.b"] = npy(header={"descr": "<f4", "fortran_order": False, "shape": (10**12,)},
                                           data=b"\0" * 64)
        words = ["vae/param/dec.0.b has shape (1000000000000,), expected (16,)"]
    elif how == "entry expands to 5 MB":
        entries["vae/param/dec.0.b"] = npy(header={"descr": "<f4", "fortran_order": False, "shape": (16,)},
                                           data=b"\0" * 5 * 10**6)
        words = ["entry 'vae/param/dec.0.b' declares 5000128 bytes, more than the 64 its model implies"]
    else:
        monkeypatch.setattr(checkpoint, "MAX_TEXT", 1000)
        words = ["entry 'vae/meta'", "not JSON text of at most 1000 bytes"]
    write_npz(path, entries)
    assert path.stat().st_size < 200_000
    read_array = np.lib.format.read_array

    def read_checked(f, **kwargs):                             # reading the entry's data fails the test
        assert not f.name.startswith(guarded), f"{f.name} was read before its size was checked"
        return read_array(f, **kwargs)
    monkeypatch.setattr(np.lib.format, "read_array", read_checked)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path)
    for word in [str(path)] + words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_arguments_of_save_and_load(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"vae": trained(tiny(), "vae", 1)})
    with pytest.raises(TypeError, match="expected_cfg must be an avb_np.config.Config"):
        checkpoint.load(path, expected_cfg={"x_dim": 4})
    with pytest.raises(ValueError, match="expected_cfg.batch_size must be a positive integer, got 0"):
        checkpoint.load(path, expected_cfg=tiny(batch_size=0))
    with pytest.raises(TypeError, match="path must be a path"):
        checkpoint.load(3)
    with pytest.raises(ValueError, match="path must be a path, got ''"):
        checkpoint.load("")
    with pytest.raises(TypeError, match="xp must be the numpy or cupy module"):
        checkpoint.load(path, xp="numpy")
    with pytest.raises(checkpoint.CheckpointError, match="is a folder, not a checkpoint file"):
        checkpoint.load(tmp_path)
    with pytest.raises(TypeError, match="runs must be a non-empty dict"):
        checkpoint.save(path, {})
    with pytest.raises(TypeError, match="path must be a path"):
        checkpoint.save(None, {"vae": trained(tiny(), "vae", 1)})


def test_save_problems_are_one_line_naming_the_path(tmp_path):
    """A checkpoint path that is a folder, a missing folder, and a full disk each give one
    OSError whose message names the path (no chained traceback); nothing else is written."""
    run = trained(tiny(), "vae", 1)
    (tmp_path / "folder.npz").mkdir()
    for path in (tmp_path / "folder.npz", tmp_path / "missing" / "c.npz"):
        with pytest.raises(OSError) as info:
            checkpoint.save(path, {"vae": run})
        assert f"cannot save checkpoint {str(path)!r}" in str(info.value) and "\n" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__
    assert os.listdir(tmp_path) == ["folder.npz"] and os.listdir(tmp_path / "folder.npz") == []


def test_save_through_a_symbolic_link_keeps_the_link(tmp_path):
    """Saving to a link writes the file the link points to (in the target's folder) and leaves
    the link a link."""
    (tmp_path / "store").mkdir()
    link = tmp_path / "checkpoint.npz"
    link.symlink_to(tmp_path / "store" / "real.npz")
    for steps in (1, 2):
        checkpoint.save(link, {"vae": trained(tiny(), "vae", steps)})
        assert link.is_symlink() and checkpoint.load(link)["vae"].step == steps
    assert os.listdir(tmp_path / "store") == ["real.npz"]


def test_temporary_files_of_killed_saves_are_removed(tmp_path):
    """A save killed before it could clean up leaves "<name>.<pid>.<random>.tmp". Loading never
    reads it; the next save removes those whose process is gone and keeps those of a live one
    (a save in progress elsewhere)."""
    path = tmp_path / "c.npz"
    dead = tmp_path / f"c.npz.{2**22 + 1}.x1y2.tmp"            # beyond Linux's largest pid
    live = tmp_path / f"c.npz.{os.getpid()}.a1b2.tmp"
    checkpoint.save(path, {"vae": trained(tiny(), "vae", 1)})
    dead.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert checkpoint.load(path)["vae"].step == 1
    checkpoint.save(path, {"vae": trained(tiny(), "vae", 2)})
    assert sorted(os.listdir(tmp_path)) == sorted(["c.npz", live.name])


def test_a_failed_folder_sync_after_the_rename_says_the_file_was_replaced(tmp_path, monkeypatch):
    """If only the folder's fsync (after the atomic rename) fails, the message says the new
    checkpoint was saved, not that the old one is unchanged."""
    run, real_fsync, calls = trained(tiny(), "vae", 1), os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:                                     # the folder's, after the rename
            raise OSError(5, "Input/output error")
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="saved checkpoint .* but syncing its folder failed") as info:
        checkpoint.save(tmp_path / "c.npz", {"vae": run})
    assert "unchanged" not in str(info.value)
    monkeypatch.undo()
    assert checkpoint.load(tmp_path / "c.npz")["vae"].step == 1


def test_fields_a_method_does_not_use_need_not_match(tmp_path):
    """A plain AVB (or VAE) checkpoint resumes under a configuration with other n_bases and
    basis_hidden, which only AVB+AC uses; a field AVB uses (adv_width) must still match."""
    path = checkpoint.save(tmp_path / "c.npz", {"avb": trained(tiny(), "avb", 2)})
    runs = checkpoint.load(path, expected_cfg=tiny(n_bases=3, basis_hidden=(7,)))
    assert runs["avb"].step == 2
    with pytest.raises(checkpoint.CheckpointError, match="adv_width"):
        checkpoint.load(path, expected_cfg=tiny(adv_width=8))
