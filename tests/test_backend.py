"""The backend module (NumPy path here), and NumPy/CuPy parity: on the strict CuPy stand-in
(tests/strict_cupy.py) always, and on CuPy where a GPU is visible."""
import re
from pathlib import Path

import numpy as np
import pytest

from avb_np import ac, ac_objectives, backend, gradcheck_suite, layers, likelihood, losses, methods, models, network, objectives
from avb_np.config import Config
from avb_np.optim import Adam

PACKAGE = Path(backend.__file__).parent


def test_load_numpy():
    assert backend.load("numpy") is np


def test_current_defaults_to_numpy(monkeypatch):
    """With nothing selected and AVB_BACKEND unset, current() is numpy."""
    monkeypatch.setattr(backend, "_xp", None)
    monkeypatch.delenv("AVB_BACKEND", raising=False)
    assert backend.current() is np


def test_current_reads_environment(monkeypatch):
    """AVB_BACKEND is read (case and spaces forgiven) the first time current() runs."""
    monkeypatch.setattr(backend, "_xp", None)
    monkeypatch.setenv("AVB_BACKEND", " NumPy ")
    assert backend.current() is np


def test_unknown_backend_is_named(monkeypatch):
    """An unknown name raises BackendError quoting it, from code and from the environment."""
    with pytest.raises(backend.BackendError, match="'torch'"):
        backend.load("torch")
    monkeypatch.setattr(backend, "_xp", None)
    monkeypatch.setenv("AVB_BACKEND", "jax")
    with pytest.raises(backend.BackendError, match="'jax'"):
        backend.current()


def test_missing_cupy_says_how_to_install():
    """Without CuPy, asking for it explains which wheel to install; with CuPy but no GPU, it
    says no GPU is visible."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(backend.BackendError, match="pip install cupy-cuda12x"):
            backend.load("cupy")
        return
    try:
        backend.load("cupy")
    except backend.BackendError as err:
        assert "no GPU" in str(err)
    else:
        pytest.skip("CuPy and a GPU are available here, so there is no error to test")


def test_array_module_and_transfers():
    """numpy arrays and numpy scalars give numpy; Python scalars and None are ignored; other
    types are refused; to_device/to_host round-trips exactly."""
    a = np.arange(3.0)
    assert backend.array_module(a, 2.0, 3, None, np.float32(1)) is np
    assert backend.array_module() is np
    with pytest.raises(TypeError):
        backend.array_module([1.0, 2.0])
    d = backend.to_device(a, np)
    h = backend.to_host(d)
    assert isinstance(h, np.ndarray)
    np.testing.assert_array_equal(h, a)
    assert backend.module_name(np) == "numpy"


def test_only_backend_imports_cupy():
    """`import cupy` / `from cupy` appears in avb_np/backend.py and nowhere else in the package."""
    pattern = re.compile(r"^\s*(import\s+cupy|from\s+cupy)\b", re.M)
    importers = {f.name for f in PACKAGE.glob("*.py") if pattern.search(f.read_text())}
    assert importers == {"backend.py"}


# ----------------------------------------------------------------------------- CuPy parity
# The gradcheck suite's cases cannot be rerun on CuPy as they are: their closures hold host
# arrays (the projection G, the data x, the weights w), and numpy * cupy is an error. So each
# component is listed again here as a function of arrays that all travel to the device.

def _forward_backward(fwd, bwd):
    """Run a layer forward and then backward with dout = G (the last input)."""
    def run(*args):
        *inputs, G = args
        out, cache = fwd(*inputs)
        grads = bwd(G, cache)
        return (out, *(grads if isinstance(grads, tuple) else (grads,)))
    return run


def _parity_components(rng, N=4, D=5, H=3):
    """name -> (function of arrays returning a tuple of arrays, float32 host inputs).

    Inputs are drawn on the host (NumPy and CuPy streams differ for one seed) and kept
    |x| >= 0.1 where a kink could otherwise flip between backends."""
    f32 = lambda *shape, scale=1.0: (scale * rng.standard_normal(shape)).astype(np.float32)
    off0 = lambda *shape: gradcheck_suite.moderate(rng, shape).astype(np.float32)
    comps = {"affine": (_forward_backward(layers.affine_forward, layers.affine_backward),
                        [f32(N, D), f32(D, H), f32(H), f32(N, H)])}
    for act, (fwd, bwd) in layers.ACTIVATIONS.items():
        comps[act] = (_forward_backward(fwd, bwd), [off0(N, D), f32(N, D)])
    for act in ("relu", "elu"):
        fwd = lambda h, W1, b1, W2, b2, act=act: layers.residual_forward(h, W1, b1, W2, b2, act)
        comps[f"residual ({act})"] = (_forward_backward(fwd, layers.residual_backward),
                                      [f32(N, H), f32(H, H), f32(H), f32(H, H), f32(H), f32(N, H)])
    x = (rng.random((N, D)) < 0.5).astype(np.float32)
    logits = f32(N, D, scale=3.0)
    logits[0, :2] = [1e4, -1e4]                                  # the stable-form limits too
    comps["bernoulli_log_likelihood"] = (losses.bernoulli_log_likelihood, [x, logits])
    comps["adversary_loss"] = (losses.adversary_loss, [f32(N, scale=3.0), f32(N, scale=3.0)])
    comps["gaussian_kl"] = (losses.gaussian_kl, [f32(N, 2), f32(N, 2, scale=0.5)])
    comps["standard_normal_log_density"] = (losses.standard_normal_log_density, [f32(N, 2)])
    dec = {"dec": network.mlp("dec", [2, 5, D], "elu")}             # AIS's log joint and its z-gradient
    names = sorted(network.param_shapes(dec["dec"]))
    dec_params = network.init_params(dec["dec"], rng, np, np.float32)
    comps["log_joint (z)"] = (lambda x, z, *p: likelihood.log_joint(dec, dict(zip(names, p)), x, z),
                              [x, f32(N, 2), *(dec_params[k] for k in names)])
    mixture = likelihood.Gaussian(None, None, prior_weight=0.3)   # only the weight is read
    comps["proposal_log_density (z)"] = (lambda z, m, s: likelihood.proposal_log_density(mixture, z, m, s),
                                         [f32(N, 2), f32(N, 2), np.abs(f32(N, 2)) + np.float32(0.5)])

    def adam(w, g1, g2):                                          # three steps, lr 0.01
        p, opt = {"w": w.copy()}, Adam(0.01)
        for g in (g1, g2, g1):
            opt.step(p, {"w": g})
        return p["w"], opt.m["w"], opt.v["w"]
    comps["adam"] = (adam, [f32(D, H), f32(D, H), f32(D, H)])
    comps.update(_objective_components(rng))
    return comps


OBJECTIVES = ("AVB primal loss", "AVB adversary loss", "VAE loss", "AC noise-basis encoder",
              "AVB+AC primal loss", "AVB+AC adversary loss")


def _objective_components(rng, N=6):
    """The training objectives (and AC's encoder) of small float32 networks: fn(x, noise, z_p, *params)."""
    cfg = Config(eps_dim=3, enc_hidden=(5, 5), dec_hidden=(5,), n_bases=2, basis_hidden=(4,),
                 adv_width=6, adv_blocks=1, out_gain=1.0)
    x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, N)]
    comps = {}
    for name, method, objective in zip(OBJECTIVES, ["avb", "avb", "vae", "avb-ac", "avb-ac", "avb-ac"],
                                       ["primal", "dual", "vae", "encoder", "ac primal", "ac dual"]):
        nets = methods.build_nets(cfg, method)
        params = models.init_all_params(nets, rng, np, np.float32)
        names = sorted(params)

        def fn(x, eps, z_p, *arrays, nets=nets, names=names, objective=objective):
            p = dict(zip(names, arrays))
            if objective == "primal":
                loss, grads = objectives.primal_loss(nets, p, x, eps, cfg.prior_term)
            elif objective == "dual":
                loss, grads = objectives.dual_loss(nets, p, x, eps, z_p, cfg.prior_term)
            elif objective == "encoder":                           # z and the grads of sum(z)
                loss, cache = ac.encode(nets, p, x, eps)
                grads = ac.encode_backward(nets, loss * 0 + 1, cache)
            elif objective == "ac primal":
                loss, grads = ac_objectives.primal_loss(nets, p, x, eps, cfg.prior_term)
            elif objective == "ac dual":
                loss, grads = ac_objectives.dual_loss(nets, p, x, eps, z_p, cfg.prior_term)
            else:
                loss, grads = objectives.vae_loss(nets, p, x, eps[:, :cfg.z_dim])
            return (loss, *(grads[k] for k in sorted(grads)))
        noise = rng.standard_normal((N, methods.noise_dim(cfg, method))).astype(np.float32)
        z_p = rng.standard_normal((N, cfg.z_dim)).astype(np.float32)
        comps[name] = (fn, [x, noise, z_p, *(params[k] + np.float32(0.3) * rng.standard_normal(
            params[k].shape).astype(np.float32) for k in names)])
    return comps


PARITY = _parity_components(np.random.default_rng(0))


def test_parity_list_covers_the_gradcheck_suite():
    """Runs without a GPU: the parity list has every model component the gradcheck suite has
    (variational inference's objectives are not in it), and its residual inputs stay >= 1e-3
    from the ReLU kink (so rounding cannot flip a sign)."""
    suite = {c.component for c in gradcheck_suite.model_cases(np.random.default_rng(0))}
    assert suite <= set(PARITY)
    h, W1, b1 = PARITY["residual (relu)"][1][:3]
    assert np.abs(h @ W1 + b1).min() >= 1e-3


@pytest.mark.parametrize("device", ["stand-in", "cupy"])
@pytest.mark.parametrize("name", sorted(PARITY))
def test_cupy_matches_numpy(name, device, request):
    """float32 outputs and gradients agree between NumPy and CuPy to rtol 1e-5, atol 1e-6
    (float32 eps is 1.2e-7; GPU exp/log and summation order differ by a few ulps); whole
    objectives, which chain a dozen layers, to rtol 1e-4, atol 1e-5. On the strict stand-in
    (tests/strict_cupy.py, no GPU needed) each component must also keep to device arrays."""
    if device == "stand-in":
        cp = request.getfixturevalue("strict_cupy_module")
    else:
        try:
            cp = backend.load("cupy")
        except backend.BackendError as reason:
            pytest.skip(str(reason))
    fn, inputs = PARITY[name]
    on_host = fn(*inputs)
    on_device = fn(*(backend.to_device(a, cp) for a in inputs))
    assert len(on_host) == len(on_device)
    for i, (a, b) in enumerate(zip(on_host, on_device)):
        assert backend.array_module(b) is cp, f"{name}: output {i} left the GPU"
        tol = {"rtol": 1e-4, "atol": 1e-5} if name in OBJECTIVES else {"rtol": 1e-5, "atol": 1e-6}
        np.testing.assert_allclose(backend.to_host(b), a, **tol,
                                   err_msg=f"{name}: output {i}")
