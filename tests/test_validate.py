"""Bad input at every public entry point fails early, with the error type the documentation
promises (TypeError for a wrong type, ValueError for a wrong value, BackendError for the
backend switch) and a message that names the argument and says what was expected."""
import math
import sys
import types

import numpy as np
import pytest

from avb_np import backend, evaluation, training, validate
from avb_np.data import toy_data
from common import tiny


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
    raises(error, lambda: evaluation.log_likelihood(run.nets, run.params, data, n=20), *words)
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
    ("prior_term", math.nan, ValueError),
]


@pytest.mark.parametrize("field, value, error", BAD_CONFIG, ids=[f"{f}={v!r}" for f, v, _ in BAD_CONFIG])
def test_bad_config_field_is_named(field, value, error):
    """new_run (through models.build_nets) names the field and the value given:
    "Config.batch_size must be a positive integer, got 0"."""
    raises(error, lambda: training.new_run(tiny(**{field: value}), "avb", np), f"Config.{field}", "got")


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


def test_bad_evaluation_arguments():
    run = training.new_run(tiny(), "avb", np)
    raises(ValueError, lambda: evaluation.log_likelihood(run.nets, run.params, toy_data(), n=0), "n ", "got 0")
    raises(ValueError, lambda: evaluation.log_likelihood(run.nets, run.params, toy_data(), lim=-1.0), "lim", "-1")
    raises(ValueError, lambda: evaluation.evaluate(run, toy_data(), n_samples=0), "n_samples", "got 0")
    wide = training.new_run(tiny(z_dim=3), "avb", np)
    raises(ValueError, lambda: evaluation.log_likelihood(wide.nets, wide.params, toy_data()), "z_dim=2", "z_dim=3")


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
