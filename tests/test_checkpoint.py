"""Checkpoints: exact resume, atomic saves, and clear errors for broken or mismatched files."""
import dataclasses
import os

import numpy as np
import pytest

from avb_np import checkpoint, training
from avb_np.data import toy_data
from common import assert_same_state, tiny, trained


@pytest.mark.parametrize("method", ["avb", "vae"])
def test_resume_is_exact(method, tmp_path):
    """12 iterations in one go equal 5, save, load, 7 more: parameters, Adam moments and step
    counts, generator state and history (losses and exact log-likelihoods) bit for bit."""
    path = tmp_path / "checkpoint.npz"
    first = trained(tiny(), method, 5)
    checkpoint.save(path, {method: first})
    resumed = checkpoint.load(path, expected_cfg=tiny())[method]
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
    loaded = checkpoint.load(path)
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
    with pytest.raises(ValueError, match="run names"):
        checkpoint.save(tmp_path / "c.npz", {"a/b": run})
    with pytest.raises(TypeError, match=r"runs\['vae'\]"):
        checkpoint.save(tmp_path / "c.npz", {"vae": dataclasses.asdict(tiny())})
    assert os.listdir(tmp_path) == []
