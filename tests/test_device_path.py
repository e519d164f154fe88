"""The GPU path without a GPU: every experiment's code run on the strict CuPy stand-in
(tests/strict_cupy.py), which refuses what CuPy refuses and counts every host/device crossing.

The stand-in computes with NumPy, in the same order, so its results must equal NumPy's exactly
(compared at rtol 1e-12). The transfer budgets are those the design promises (docs/gpu.md):
a training iteration copies its host draws over and reads one vector back; an AIS temperature
copies its momenta and accept draws over and reads nothing back.
"""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import strict_cupy
from avb_np import ais, backend, evaluation, likelihood, losses, scoring, targets, training, vi
from avb_np.data import toy_data
from avb_np.vi_config import VIConfig
from common import tiny

ROOT = Path(__file__).parents[1]
SAME = {"rtol": 1e-12, "atol": 1e-12}         # the same NumPy operations in the same order


def on_device(params, cp):
    return {k: backend.to_device(v, cp) for k, v in params.items()}


def both(fn, cp):
    """fn(xp) on NumPy and on the stand-in (moving its own inputs)."""
    return fn(np), fn(cp)


# ----------------------------------------------------------------------------- the stand-in itself

def test_stand_in_refuses_what_cupy_refuses(strict_cupy_module):
    """Implicit conversion to NumPy, host arrays in device arithmetic or functions, and NumPy
    functions the stand-in lacks are TypeErrors; NumPy and Python scalars mix, as in CuPy."""
    cp = strict_cupy_module
    a, host = backend.to_device(np.arange(6.0).reshape(2, 3), cp), np.ones(3)
    for planted in (lambda: np.asarray(a), lambda: np.array(a), lambda: a + host, lambda: host * a,
                    lambda: cp.where(a > 1, host, a), lambda: cp.exp(host), lambda: np.concatenate([a, host[None]]),
                    lambda: np.linalg.norm(a), lambda: a + np.array(2.0)):
        with pytest.raises(TypeError):
            planted()
    b = np.float32(2) * a + 1                                      # scalars are fine
    assert backend.array_module(b) is cp and backend.array_module(np.exp(b)) is cp   # np.f dispatches
    np.testing.assert_array_equal(backend.to_host(b), 2 * np.arange(6.0).reshape(2, 3) + 1)
    with pytest.raises(TypeError, match="mixed"):
        backend.array_module(a, host)


def test_stand_in_counts_crossings(strict_cupy_module):
    """to_device and to_host are counted, and so are the implicit crossings CuPy allows (a scalar
    read by float(), a host index), each with the line that made it."""
    cp = strict_cupy_module
    a = backend.to_device(np.arange(4.0), cp)                      # 1 to the device
    float(a.sum())                                                 # 1 to the host (a sync)
    a[np.array([0, 1])]                                            # 1 to the device (the index)
    backend.to_host(a)                                             # 1 to the host
    assert [(c.to, c.how) for c in strict_cupy.crossings()] == [
        ("device", "asarray"), ("host", "float"), ("device", "index"), ("host", "get")]
    assert all(c.where.startswith("test_device_path.py:") for c in strict_cupy.crossings())


# ----------------------------------------------------------------------------- transfer budgets

def per_iteration(method, draws, cp):
    """Crossings of one training iteration (those of 3 iterations minus those of 1), and the run."""
    counts = []
    for steps in (1, 3):
        run = training.new_run(tiny(eval_every=0), method, cp)
        strict_cupy.reset()
        training.train(run, toy_data(), steps, draws=draws)
        counts.append((strict_cupy.count("host"), strict_cupy.count("device")))
    return ((counts[1][0] - counts[0][0]) / 2, (counts[1][1] - counts[0][1]) / 2), run


@pytest.mark.parametrize("method", ["avb", "avb-ac", "vae"])
@pytest.mark.parametrize("draws", ["host", "device"])
def test_training_iteration_transfers(method, draws, strict_cupy_module):
    """One iteration reads one vector back (the guard's checks and both losses) and copies over
    only its host draws: x and eps for the primal step, x, eps and z_p for each adversary step;
    with device draws, nothing."""
    cfg = tiny()
    dual = cfg.dual_steps if method != "vae" else 0
    expected_device = 2 + 3 * dual if draws == "host" else 0
    assert per_iteration(method, draws, strict_cupy_module)[0] == (1, expected_device), strict_cupy.report()


def test_ais_temperature_transfers(strict_cupy_module):
    """An AIS temperature copies over its host draws and reads nothing back (the acceptance rates
    are read once per batch): for HMC the momenta, accept draws and move scales, for the
    independence move its draw, its choice of mixture part and its accept draw. Without the
    pilots (target_accept=None), whose temperatures are moves of the same kind, so the
    difference counts the run's alone."""
    run = training.new_run(tiny(), "vae", np)
    params = on_device(run.params, strict_cupy_module)
    counts = []
    for n_temps in (3, 7):
        strict_cupy.reset()
        ais.ais(run.nets, params, toy_data(), None, np.random.default_rng(0), n_temps=n_temps, n_chains=2,
                target_accept=None)
        counts.append((strict_cupy.count("host"), strict_cupy.count("device")))
    assert ((counts[1][0] - counts[0][0]) / 4, (counts[1][1] - counts[0][1]) / 4) == (0, 6), strict_cupy.report()


# ----------------------------------------------------------------------------- planted bugs are caught

def test_planted_host_conversion_is_caught(strict_cupy_module, monkeypatch):
    """A log density that quietly converts z to NumPy passes on NumPy and fails on the stand-in."""
    real = likelihood.gaussian_log_density
    monkeypatch.setattr(likelihood, "gaussian_log_density",
                        lambda z, mean, std: real(np.asarray(z), np.asarray(mean), np.asarray(std)))
    run = training.new_run(tiny(), "vae", np)
    likelihood.importance_sampling(run.nets, run.params, toy_data(), None, 4, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        likelihood.importance_sampling(run.nets, on_device(run.params, strict_cupy_module), toy_data(), None, 4,
                                       np.random.default_rng(0))


def test_planted_numpy_device_mix_is_caught(strict_cupy_module, monkeypatch):
    """A Bernoulli log-likelihood that adds a host array (a pixel bias kept in NumPy) to the
    logits trains on NumPy and fails on the stand-in."""
    real = losses.bernoulli_log_likelihood

    def biased(x, logits):
        return real(x, logits + np.zeros(logits.shape[1], dtype=logits.dtype))
    monkeypatch.setattr(losses, "bernoulli_log_likelihood", biased)
    training.train(training.new_run(tiny(eval_every=0), "vae", np), toy_data(), 1)
    with pytest.raises(TypeError, match="Unsupported type numpy.ndarray"):
        training.train(training.new_run(tiny(eval_every=0), "vae", strict_cupy_module), toy_data(), 1)


def test_planted_extra_transfer_is_caught(strict_cupy_module, monkeypatch):
    """A primal loss read with float() each iteration (a sync) breaks the budget of one transfer
    to the host per iteration."""
    real = training.primal_loss

    def eager(run, draws):
        loss, grads = real(run, draws)
        print(f"primal {float(loss):.3f}")
        return loss, grads
    monkeypatch.setattr(training, "primal_loss", eager)
    (to_host, _), _ = per_iteration("vae", "device", strict_cupy_module)
    assert to_host == 2
    assert any(c.how == "float" and "eager" in c.where for c in strict_cupy.crossings())


# ----------------------------------------------------------------------------- every path, equal to NumPy

@pytest.mark.parametrize("method", ["avb", "avb-ac", "vae"])
def test_training_and_scoring_equal_numpy(method, strict_cupy_module):
    """Training (host draws), the toy table's evaluation (quadrature, encoder samples, ELBO
    terms) and the image tables' scoring (IS, AIS, quadrature) give NumPy's numbers."""
    cp, x = strict_cupy_module, toy_data()
    runs = both(lambda xp: training.train(training.new_run(tiny(eval_every=2), method, xp), x, 4), cp)
    np.testing.assert_allclose(runs[1].history["primal"], runs[0].history["primal"], **SAME)
    np.testing.assert_allclose(runs[1].history["log_likelihood"], runs[0].history["log_likelihood"], **SAME)
    assert backend.array_module(*runs[1].params.values()) is cp
    small = dict(n_samples=500, n_mc=100, n=40, bins=20)
    ev = [evaluation.evaluate(r, x, **small) for r in runs]
    assert ev[0].keys() == ev[1].keys()
    for k in ev[0].keys() - {"seconds"}:
        np.testing.assert_allclose(ev[1][k], ev[0][k], **SAME, err_msg=k)
    sc = [scoring.score(r, x, np.random.default_rng(1), n_temps=3, n_chains=2, n_is=10, n_q=4) for r in runs]
    for k in ("ais", "is", "elbo", "kl", "log_likelihood"):
        np.testing.assert_allclose(sc[1][k], sc[0][k], **SAME, err_msg=k)


def test_reverse_ais_equals_numpy(strict_cupy_module):
    """Reverse AIS from given posterior samples runs on the device and gives NumPy's bound."""
    run = training.new_run(tiny(), "vae", np)
    z_star = np.random.default_rng(2).standard_normal((4, 2))
    out = [ais.reverse_ais(run.nets, p, toy_data(), None, z_star, np.random.default_rng(3), n_temps=4, n_chains=2)
           for p in (run.params, on_device(run.params, strict_cupy_module))]
    np.testing.assert_allclose(out[1].log_px, out[0].log_px, **SAME)


@pytest.mark.parametrize("method", vi.VI_METHODS)
def test_vi_equals_numpy(method, strict_cupy_module):
    """Variational inference on a target with device constants (the mixture): fit, samples,
    ELBO and the binned KL give NumPy's numbers."""
    target, cfg = targets.mixture(), VIConfig(steps=3, log_every=0, batch_size=64)
    fits = both(lambda xp: vi.fit(target.log_density, 2, method, cfg, np.random.default_rng(0), xp, log=None),
                strict_cupy_module)
    assert backend.array_module(*fits[1].params.values()) is strict_cupy_module
    np.testing.assert_allclose(fits[1].history["primal"], fits[0].history["primal"], **SAME)
    res = [vi.compare(f, target, np.random.default_rng(1), n_kl=2000, n_elbo=500) for f in fits]
    for k in ("kl", "elbo"):
        np.testing.assert_allclose(res[1][k], res[0][k], **SAME, err_msg=k)


# ----------------------------------------------------------------------------- AVB_BACKEND=cupy without a GPU

EXPERIMENT_ARGS = {"toy": [], "digits": ["digits"], "mnist": ["mnist", "--data-dir", "{tmp}"], "vi": ["vi"]}


@pytest.mark.parametrize("experiment", sorted(EXPERIMENT_ARGS))
def test_cupy_without_gpu_stops_every_experiment(experiment, strict_cupy_module, monkeypatch, tmp_path):
    """With AVB_BACKEND=cupy and no GPU visible, every experiment ends in the backend's one-line
    error before it trains, fits or writes anything."""
    sys.path.insert(0, str(ROOT))
    demo = importlib.import_module("demo")

    def no_gpu():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setattr(strict_cupy_module.cuda.runtime, "getDeviceCount", no_gpu)
    monkeypatch.setenv("AVB_BACKEND", "cupy")
    for name, module in (("new_run", training), ("fit", vi)):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("work started before the backend error"))
    argv = [a.format(tmp=tmp_path) for a in EXPERIMENT_ARGS[experiment]] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        demo.main(argv)
    message = str(stop.value.code)
    assert message.startswith("demo.py: error: backend 'cupy' was asked for but no GPU is visible")
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_cupy_without_gpu_from_the_shell():
    """The same from the shell, in a fresh process (CuPy missing or no GPU): one line, no traceback."""
    out = subprocess.run([sys.executable, "demo.py", "vi", "--out", "/nonexistent/avb"], cwd=ROOT,
                         capture_output=True, text=True, env={"AVB_BACKEND": "cupy", "PATH": "/usr/bin:/bin"})
    try:
        backend.load("cupy")
        pytest.skip("a GPU is visible here, so there is no error to see")
    except backend.BackendError:
        pass
    assert out.returncode != 0 and out.stdout == ""
    assert re.fullmatch(r"demo\.py: error: backend 'cupy' was asked for but [^\n]*\n", out.stderr), out.stderr


# ----------------------------------------------------------------------------- CuPy's namespace

def names_used():
    """Every `xp.NAME`, `array_module(...).NAME` (and `xp.random.NAME`) the package and demo.py
    call, read from the source."""
    text = "\n".join(p.read_text() for p in [*sorted((ROOT / "avb_np").glob("*.py")), ROOT / "demo.py"])
    names = set(re.findall(r"(?:\bxp|\barray_module\([^()]*\))\.([A-Za-z_]\w*)", text)) - {"__name__"}
    return names, set(re.findall(r"\bxp\.random\.([A-Za-z_]\w*)", text))


def test_stand_in_has_every_name_the_package_calls():
    """A new xp.NAME in the package fails here until the stand-in has it (and then the next test
    checks it against CuPy)."""
    names, random_names = names_used()
    assert names - {"random"} <= set(strict_cupy.FUNCTIONS) | set(strict_cupy.CONSTANTS) | {"asarray", "array"}
    assert random_names <= {"RandomState"}


def test_cupy_has_every_name_of_the_stand_in():
    """Every function, constant, array method and attribute and RandomState method of the stand-in
    exists in CuPy (its wheel imports without a GPU; skipped where it is not installed)."""
    if sys.modules.get("cupy") is strict_cupy.CUPY:
        pytest.skip("the stand-in is installed as cupy (AVB_STRICT_CUPY=1)")
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        pytest.skip(f"CuPy is not installed ({err}); the stand-in's lists were checked against CuPy 14.2")
    missing = [n for n in strict_cupy.FUNCTIONS + strict_cupy.CONSTANTS + ("asarray", "array", "asnumpy",
               "get_array_module") if not hasattr(cupy, n)]
    missing += [f"ndarray.{n}" for n in strict_cupy.METHODS + strict_cupy.ATTRIBUTES + ("get", "item", "tolist")
                if not hasattr(cupy.ndarray, n)]
    missing += [f"random.RandomState.{n}" for n in strict_cupy.RANDOM_METHODS if not hasattr(cupy.random.RandomState, n)]
    assert not missing
