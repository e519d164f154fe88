"""Bad input at every public entry point fails early, with the error type the documentation
promises (TypeError for a wrong type, ValueError for a wrong value, BackendError for the
backend switch) and a message that names the argument and says what was expected."""
import math
import sys
import types
from fractions import Fraction

import numpy as np
import pytest

from avb_np import backend, checkpoint, evaluation, quadrature, training, validate
from avb_np.data import toy_data
from common import tiny, trained


def raises(error, call, *words):
    """Assert that call() raises `error` and that its message contains each of `words`."""
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    return str(info.value)


# ----------------------------------------------------------------------------- data

NAN = np.eye(4)
NAN[1, 2] = np.nan
BAD_DATA = {  # name -> (data, error, words the message must contain); x_dim is 4
    "rank 1": (np.ones(4), ValueError, ["data", "2-d", "(4,)"]),
    "rank 3": (np.ones((2, 2, 4)), ValueError, ["data", "2-d", "(2, 2, 4)"]),
    "wrong width": (np.eye(5), ValueError, ["data", "x_dim=4", "(5, 5)"]),
    "not binary": (np.full((4, 4), 0.3), ValueError, ["data", "{0, 1}", "(x > 0.5).astype(float)",
                                                      "rng.random(x.shape) < x"]),
    "NaN": (NAN, ValueError, ["data", "NaN", "row 1, column 2"]),
    "inf": (np.full((2, 4), np.inf), ValueError, ["data", "inf"]),
    "empty": (np.zeros((0, 4)), ValueError, ["data", "empty"]),
    "strings": (np.array([["0", "1", "0", "0"]]), TypeError, ["data", "dtype"]),
    "ragged list": ([[0, 1, 0, 0], [1]], TypeError, ["data"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_by_training_and_evaluation(case):
    """train, evaluate, log_likelihood and sample_q all check the data before using it."""
    data, error, words = BAD_DATA[case]
    run = training.new_run(tiny(), "avb", np)
    raises(error, lambda: training.train(run, data, 1), *words)
    raises(error, lambda: evaluation.evaluate(run, data, n_samples=10, n=20), *words)
    raises(error, lambda: quadrature.log_likelihood(run.nets, run.params, data, n=20), *words)
    raises(error, lambda: evaluation.sample_q(run, data, 5, np.random.default_rng(0)), *words)
    assert run.step == 0


def test_good_data_in_other_forms_is_accepted():
    """A list of rows, a bool array and an int array are all binary data."""
    for data in (toy_data().tolist(), toy_data() > 0, toy_data().astype(int)):
        assert validate.binary_data("data", data, 4).shape == (4, 4)


# ----------------------------------------------------------------------------- configuration

BAD_CONFIG = [  # (field, value, error)
    ("batch_size", 0, ValueError), ("batch_size", 2.5, TypeError), ("batch_size", True, TypeError),
    ("steps", -1, ValueError), ("steps", 0, ValueError), ("dual_steps", 0, ValueError),
    ("x_dim", 0, ValueError), ("z_dim", 0, ValueError), ("adv_width", 0, ValueError),
    ("adv_blocks", -1, ValueError), ("enc_hidden", (8, 0), ValueError), ("dec_hidden", 8, TypeError),
    ("lr_primal", 0.0, ValueError), ("lr_dual", -1e-3, ValueError), ("lr_primal", math.nan, ValueError),
    ("lr_dual", math.inf, ValueError), ("lr_primal", "1e-3", TypeError),
    ("act", "gelu", ValueError), ("dtype", "float16", ValueError), ("seed", -1, ValueError),
    ("log_every", -1, ValueError), ("eval_every", 1.5, TypeError), ("out_gain", -1.0, ValueError),
    ("prior_term", math.nan, ValueError), ("act", ["elu"], TypeError), ("dtype", ["float32"], TypeError),
    ("dtype", np.float32, TypeError), ("dynamic", "yes", TypeError), ("dynamic", 1, TypeError),
    ("out_gain", 1e9, ValueError), ("lr_dual", 10**400, ValueError), ("lr_primal", Fraction(1, 0 + 10**400), ValueError),
    ("batch_size", 10**12, ValueError), ("enc_hidden", (10**6, 10**6), ValueError), ("adv_width", 10**6, ValueError),
    ("adv_blocks", 10**12, ValueError), ("prior_term", 1e6, ValueError), ("dec_hidden", (4,) * 10**5, ValueError), ("x_dim", 10**30, ValueError),
    ("enc_hidden", [8, "8"], TypeError), ("seed", np.float64(1.0), TypeError),
]


@pytest.mark.parametrize("field, value, error", BAD_CONFIG, ids=[f"{f}={v!r}" for f, v, _ in BAD_CONFIG])
def test_bad_config_field_is_named(field, value, error):
    """new_run (through models.build_nets) names the field and the value given:
    "Config.batch_size must be a positive integer, got 0"."""
    raises(error, lambda: training.new_run(tiny(**{field: value}), "avb", np), f"Config.{field}", "got")


def test_numpy_scalars_fractions_and_lists_are_normalised(tmp_path):
    """Values that are harmless in another type are converted at the door to plain int, float,
    str, bool and tuples, so the run saves (JSON has no NumPy types), loads with the very same
    configuration (a list of widths compares equal to the saved tuple) and trains."""
    cfg = tiny(batch_size=np.int64(16), lr_dual=np.float32(4e-3), lr_primal=Fraction(1, 500),
               enc_hidden=[16, np.int32(16)], act=np.str_("elu"), dynamic=np.bool_(False), seed=np.uint8(3))
    run = training.train(training.new_run(cfg, "avb", np), toy_data(), 2)
    for field, kind in (("batch_size", int), ("lr_dual", float), ("lr_primal", float), ("enc_hidden", tuple),
                        ("act", str), ("dynamic", bool), ("seed", int)):
        assert type(getattr(run.cfg, field)) is kind, field
    assert run.cfg.enc_hidden == (16, 16) and run.cfg.lr_primal == 0.002
    checkpoint.save(tmp_path / "c.npz", {"avb": run})
    loaded = checkpoint.load(tmp_path / "c.npz", expected_cfg=cfg)["avb"]
    assert loaded.step == 2 and loaded.cfg == run.cfg


def test_sizes_beyond_the_memory_limit_are_refused_before_allocating():
    """A batch or networks whose arrays would exceed validate.MAX_BYTES are refused with the
    argument, the estimate and the limit, instead of a MemoryError from NumPy (or swapping)."""
    message = raises(ValueError, lambda: training.new_run(tiny(batch_size=10**9), "avb", np),
                     "Config.batch_size: too large, got 1000000000", "GiB", "avb_np.validate.MAX_BYTES")
    assert "one step's activations" in message
    raises(ValueError, lambda: training.new_run(tiny(dec_hidden=(10**5, 10**5)), "vae", np),
           "Config network sizes: too large, got", "Config.dec_hidden=(100000, 100000)", "1e+10 parameters", "MAX_BYTES")
    run = training.new_run(tiny(), "avb", np)
    run.cfg.batch_size = 10**9                             # changed after new_run: checked by train
    raises(ValueError, lambda: training.train(run, toy_data(), 1), "run.cfg.batch_size: too large, got 1000000000", "GiB")


def test_unknown_config_attribute_is_refused():
    """A misspelt field (cfg.lr_dul = ...) would be silently ignored by every reader: refused."""
    cfg = tiny()
    cfg.lr_dul = 1e-4
    raises(ValueError, lambda: training.new_run(cfg, "avb", np), "Config has no field 'lr_dul'")


@pytest.mark.parametrize("field, value, error, words", [
    ("dual_steps", 0, ValueError, ["run.cfg.dual_steps", "positive integer", "got 0"]),
    ("batch_size", 0, ValueError, ["run.cfg.batch_size", "got 0"]),
    ("dtype", "float16", ValueError, ["run.cfg.dtype", "float16"]),
    ("dtype", "float64", ValueError, ["run.cfg changed dtype from 'float32' to 'float64'", "new_run"]),
    ("adv_width", 32, ValueError, ["run.cfg changed adv_width from 16 to 32"]),
    ("seed", 5, ValueError, ["run.cfg changed seed from 0 to 5"]),
    ("lr_dual", "0.1", TypeError, ["run.cfg.lr_dual", "'0.1'"]),
    ("act", ["relu"], TypeError, ["run.cfg.act", "['relu']"]),
])
def test_config_edited_after_new_run_is_checked_when_training_starts(field, value, error, words, tmp_path):
    """train re-checks run.cfg: bad values are named as run.cfg fields, and the fields that define
    the networks, their dtype and the seed may not change once the run exists (a changed dtype
    would otherwise train silently in the old one). checkpoint.save refuses the run the same way."""
    run = trained(tiny(), "avb", 1)
    setattr(run.cfg, field, value)
    raises(error, lambda: training.train(run, toy_data(), 1), *words)
    assert run.step == 1
    raises(error, lambda: checkpoint.save(tmp_path / "c.npz", {"avb": run}), words[0].replace("run.", "runs['avb'].", 1))
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("damage, error, words", [
    (lambda run: run.params.pop("dec.0.W"), ValueError, ["run.params['dec.0.W'] is missing"]),
    (lambda run: run.params.update({"dec.0.W": np.zeros((3, 3), np.float32)}), ValueError,
     ["run.params['dec.0.W'] has shape (3, 3), expected (2, 16)"]),
    (lambda run: run.params.update({"dec.0.W": run.params["dec.0.W"].astype(np.float64)}), ValueError,
     ["run.params['dec.0.W'] has dtype float64, expected float32"]),
    (lambda run: run.params["adv.in.b"].fill(1e7), ValueError, ["run.params['adv.in.b'] reaches 1e+07", "PARAM_BOUND"]),
    (lambda run: setattr(run, "step", -1), ValueError, ["run.step", "got -1"]),
    (lambda run: setattr(run, "step", 7), ValueError, ["run.opt_primal.t=2 does not fit run.step=7"]),
    (lambda run: setattr(run, "rng", None), TypeError, ["run.rng", "numpy.random.Generator"]),
    (lambda run: run.opt_dual.v["adv.in.W"].fill(-1.0), ValueError, ["run.opt_dual.v", "negative"]),
    (lambda run: run.opt_dual.m.pop("adv.in.W"), ValueError, ["run.opt_dual.m['adv.in.W'] is missing"]),
    (lambda run: run.history["primal"].append(1.0), ValueError, ["run.history", "one length"]),
    (lambda run: run.history.update(primal=[np.float32(1)] * 2), TypeError, ["run.history['primal']", "float32"]),
    (lambda run: setattr(run, "opt_dual", None), TypeError, ["run.opt_dual", "Adam", "NoneType"]),
    (lambda run: setattr(run, "nets", None), ValueError, ["run.nets are not the networks of run.cfg"]),
    (lambda run: run.params.update({"dec.0.b": np.broadcast_to(np.float32(0), (16,))}), ValueError,
     ["run.params['dec.0.b'] is read-only", "copy"]),
    (lambda run: run.params.update({"dec.0.b": [0.0] * 16}), TypeError,
     ["run.params['dec.0.b'] must be a NumPy or CuPy array, got list"]),
])
def test_damaged_run_is_refused_before_training(damage, error, words):
    """train (and checkpoint.save, through check_run) refuse a run whose parameters, optimiser
    state, generator, counters or history do not fit its networks, naming the part."""
    run = trained(tiny(), "avb", 2)
    damage(run)
    raises(error, lambda: training.train(run, toy_data(), 1), *words)


def test_avb_needs_encoder_noise():
    """eps_dim = 0 makes q(z|x) a point mass with infinite KL: refused for AVB, allowed for the
    VAE (whose noise has z_dim entries)."""
    raises(ValueError, lambda: training.new_run(tiny(eps_dim=0), "avb", np), "Config.eps_dim", "point mass")
    training.new_run(tiny(eps_dim=0), "vae", np)


def test_bad_method_cfg_and_xp():
    raises(ValueError, lambda: training.new_run(tiny(), "gan", np), "method", "'gan'")
    raises(TypeError, lambda: training.new_run({"x_dim": 4}, "avb", np), "cfg", "dict")
    raises(TypeError, lambda: training.new_run(tiny(), "avb", "numpy"), "xp", "'numpy'")


def test_bad_steps_and_run():
    run = training.new_run(tiny(), "vae", np)
    raises(ValueError, lambda: training.train(run, toy_data(), 0), "steps", "got 0")
    raises(TypeError, lambda: training.train(run, toy_data(), 2.5), "steps", "2.5")
    raises(TypeError, lambda: training.train(run, toy_data(), True), "steps", "True")
    raises(TypeError, lambda: training.train(vars(run), toy_data(), 1), "run", "dict")


def test_non_finite_parameters_are_refused_before_training():
    run = training.new_run(tiny(), "vae", np)
    run.params["dec.1.b"][0] = np.nan
    raises(ValueError, lambda: training.train(run, toy_data(), 1), "run.params['dec.1.b']", "NaN")


def test_bad_log_argument():
    raises(TypeError, lambda: training.train(training.new_run(tiny(), "vae", np), toy_data(), 1, log="print"),
           "log", "'print'")


def test_bad_evaluation_arguments():
    run = training.new_run(tiny(), "avb", np)
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, run.params, toy_data(), n=0), "n ", "got 0")
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, run.params, toy_data(), lim=-1.0), "lim", "-1")
    raises(ValueError, lambda: evaluation.evaluate(run, toy_data(), n_samples=0), "n_samples", "got 0")
    wide = training.new_run(tiny(z_dim=3), "avb", np)
    raises(ValueError, lambda: quadrature.log_likelihood(wide.nets, wide.params, toy_data()), "z_dim=2", "z_dim=3")


def test_more_bad_evaluation_arguments():
    """Every argument of the evaluation functions is checked before any work, by name; a model
    with NaN or missing parameters is refused instead of giving NaN metrics."""
    run, data = trained(tiny(), "avb", 1), toy_data()
    quick = dict(n_samples=10, n_mc=5, n=20, bins=10)
    raises(ValueError, lambda: evaluation.evaluate(run, data, **{**quick, "bins": 0}), "bins", "got 0")
    raises(ValueError, lambda: evaluation.evaluate(run, data, **{**quick, "bins": 7}), "bins must divide", "n=20")
    raises(ValueError, lambda: evaluation.evaluate(run, data, seed=-1, **quick), "seed", "got -1")
    raises(TypeError, lambda: evaluation.evaluate(run, data, seed=None, **quick), "seed", "None")
    raises(TypeError, lambda: evaluation.evaluate(run, data, **{**quick, "n_mc": 2.5}), "n_mc", "2.5")
    raises(ValueError, lambda: evaluation.evaluate(run, data, **{**quick, "n_mc": 11}), "n_mc must be at most n_samples=10",
           "got 11")
    raises(ValueError, lambda: evaluation.evaluate(run, data, lim=1e300, **quick), "lim", "<= 40", "1e+300")
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, run.params, data, n=20, lim=1e-300), "lim", ">= 0.001")
    raises(TypeError, lambda: evaluation.sample_q(run, data, 5, None), "rng", "numpy.random.Generator")
    raises(TypeError, lambda: evaluation.sample_q(run, data, 5, 0), "rng", "numpy.random.Generator")
    raises(ValueError, lambda: evaluation.sample_q(run, data, 10**12, np.random.default_rng(0)),
           "n_samples: too large, got 1000000000000", "GiB")
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, run.params, data, n=10**6), "n: too large, got 1000000", "GiB")
    raises(TypeError, lambda: evaluation.evaluate(vars(run), data, **quick), "run must be a training.Run", "dict")
    raises(TypeError, lambda: quadrature.log_likelihood(None, run.params, data, n=20), "nets", "NoneType")
    raises(TypeError, lambda: quadrature.log_likelihood(run.nets, [1, 2], data, n=20), "params", "list")
    missing = {k: v for k, v in run.params.items() if k != "dec.0.W"}
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, missing, data, n=20), "params['dec.0.W'] is missing")
    misshapen = {**run.params, "dec.1.b": np.zeros(3, np.float32)}
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, misshapen, data, n=20),
           "params['dec.1.b'] has shape (3,), expected (4,)")
    run.params["dec.0.b"][1] = np.nan
    raises(ValueError, lambda: quadrature.log_likelihood(run.nets, run.params, data, n=20), "params['dec.0.b']", "NaN")
    raises(ValueError, lambda: evaluation.evaluate(run, data, **quick), "run.params['dec.0.b']", "NaN")
    log_post = np.zeros((4, 20, 20))
    raises(ValueError, lambda: quadrature.posterior_kl(log_post[0], np.zeros((4, 5, 2))), "log_post", "(K, n, n)")
    raises(ValueError, lambda: quadrature.posterior_kl(log_post, np.zeros((3, 5, 2)), bins=10), "z must be", "(3, 5, 2)")
    raises(ValueError, lambda: quadrature.posterior_kl(log_post, np.zeros((4, 5, 2)), bins=0), "bins", "got 0")


# ----------------------------------------------------------------------------- backends

def test_unknown_backend_names_it():
    raises(backend.BackendError, lambda: backend.use("torch"), "backend", "'torch'", "numpy")


def test_missing_cupy_says_how_to_install(monkeypatch):
    """With `import cupy` failing (sys.modules entry None), asking for CuPy explains which wheel
    to install, on any machine."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    raises(backend.BackendError, lambda: backend.use("cupy"), "backend 'cupy'", "pip install cupy-cuda12x")


def fake_cupy(monkeypatch):
    """A stand-in `cupy` module whose ndarray class the backend recognises (no GPU needed)."""
    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def test_mixed_backends_are_refused(monkeypatch):
    """One call with NumPy and CuPy arrays names the positions; a run whose parameter lives on the
    other backend names the parameter; device data is refused with the way to bring it home."""
    cupy = fake_cupy(monkeypatch)
    raises(TypeError, lambda: backend.array_module(np.ones(2), cupy.ndarray()), "mixed",
           "argument 0 is numpy", "argument 1 is cupy")
    run = training.new_run(tiny(), "avb", np)
    run.params["dec.0.W"] = cupy.ndarray()
    raises(TypeError, lambda: training.train(run, toy_data(), 1), "run.params['dec.0.W']", "cupy", "numpy")
    raises(TypeError, lambda: validate.binary_data("data", cupy.ndarray(), 4), "data", "to_host")
