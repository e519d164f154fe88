"""Gradient checks: every hand-written backward against central differences, in float64.

Tolerances: gradcheck_suite gives each case its own (1e-7 for smooth functions, where the
observed relative error is ~1e-10). A broken backward must show an error above 1e-3, four
orders of magnitude above that tolerance.
"""
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avb_np import gradcheck, gradcheck_suite, layers, losses, network

REPO = Path(__file__).resolve().parents[1]
CASES = gradcheck_suite.cases(np.random.default_rng(0))


@pytest.mark.parametrize("case", CASES, ids=[c.component for c in CASES])
def test_gradient(case):
    """Every parameter's relative error is within the case's tolerance: the worst entry for
    layers and losses, along a random direction for the whole objectives (as in the table)."""
    if case.directional:
        errors = gradcheck.check_directional(case.loss_fn, case.params, np.random.default_rng(1))
    else:
        errors = gradcheck.check(case.loss_fn, case.params)
    for name, err in errors.items():
        assert err <= case.tol, f"{case.component}: d/d{name} relative error {err:.2e} > {case.tol:.0e}"


def test_every_component_has_a_case():
    """Every activation, every layer `*_forward` and every public loss has a case, so a new
    component without a gradient check fails here."""
    def stem(component):                      # "residual (relu)" -> "residual"
        return component.split(" (")[0]

    checked = {stem(c.component) for c in CASES}
    own = lambda module: {n for n, f in inspect.getmembers(module, inspect.isfunction)
                          if f.__module__ == module.__name__ and not n.startswith("_")}
    layer_names = {n[:-len("_forward")] for n in own(layers) if n.endswith("_forward")}
    values_only = {"logsumexp"}               # a log-space sum of host arrays, with no gradient (tests/test_losses.py)
    required = set(layers.ACTIVATIONS) | layer_names | {"affine", "residual"} | (own(losses) - values_only)
    assert required - checked == set()


def test_residual_cases_stay_off_the_relu_kink():
    """The residual cases' pre-activations h W1 + b1 are at least 1e-3 from 0.

    A finite difference moves a pre-activation by h = 1e-5 times an input entry (a few units),
    far less than 1e-3, so no difference straddles the ReLU kink, where the check would be
    meaningless (see test_relu_kink_is_reported)."""
    for case in CASES:
        if case.component.startswith("residual"):
            p = case.params
            a = p["h"] @ p["W1"] + p["b1"]                    # (N, H)
            assert np.abs(a).min() >= 1e-3, case.component


def test_relu_kink_is_reported():
    """At x = 0 exactly, ReLU's analytic derivative is 0 by convention while the central
    difference gives (h - 0) / 2h = 0.5, so the relative error there is |0 - 0.5| / 0.5 = 1.
    The checker flags kinks rather than hiding them; this is why the suite keeps |x| >= 0.1."""
    x = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, -0.5]])
    G = np.array([[1.0, -2.0, 0.5], [0.3, 1.5, 1.0]])     # nonzero everywhere
    loss_fn = gradcheck_suite.projected(layers.relu_forward, layers.relu_backward, ["x"], G)
    params = {"x": x}
    err = gradcheck.rel_error(loss_fn(params)[1]["x"],
                              gradcheck.numerical_gradient(loss_fn, params, "x"))
    np.testing.assert_allclose(err[x == 0], 1.0, atol=1e-9)   # flagged at the kink
    assert err[x != 0].max() < 1e-9                           # exact elsewhere (piecewise linear)
    assert gradcheck.check(loss_fn, params)["x"] > 0.99


# ----------------------------------------------------------------------------- broken backwards

def _broken_cases(rng):
    """Three deliberately wrong gradients, each a classic slip."""
    N, D, H = 4, 5, 3
    x = gradcheck_suite.moderate(rng, (N, D))

    def tanh_backward_wrong(dout, out):
        return dout * (1 - out)                               # should be 1 - out**2

    def affine_backward_wrong(dout, cache):
        dx, dW, db = layers.affine_backward(dout, cache)
        return dx, 1.01 * dW, db                              # dW off by 1%

    def adversary_wrong(p):
        loss, dT_q, dT_p = losses.adversary_loss(p["T_q"], p["T_p"])
        return loss, {"T_q": dT_q, "T_p": -dT_p}               # sign of dT_p flipped

    return {
        "tanh": (gradcheck_suite.projected(layers.tanh_forward, tanh_backward_wrong, ["x"],
                                           rng.standard_normal((N, D))), {"x": x}, "x"),
        "affine": (gradcheck_suite.projected(layers.affine_forward, affine_backward_wrong,
                                             ["x", "W", "b"], rng.standard_normal((N, H))),
                   {"x": rng.standard_normal((N, D)), "W": rng.standard_normal((D, H)),
                    "b": rng.standard_normal(H)}, "W"),
        "adversary": (adversary_wrong, {"T_q": rng.standard_normal(N),
                                        "T_p": rng.standard_normal(N)}, "T_p"),
    }


@pytest.mark.parametrize("which", ["tanh", "affine", "adversary"])
def test_broken_backward_is_caught(which):
    """Both checkers report relative error > 1e-3 for the broken parameter.

    Expected sizes: affine's 1% scaling gives 0.01 / 2.01 = 5.0e-3 on every entry; the
    flipped sign gives exactly 1; the tanh slip gives order 0.1-1."""
    loss_fn, params, bad = _broken_cases(np.random.default_rng(1))[which]
    assert gradcheck.check(loss_fn, params)[bad] > 1e-3
    assert gradcheck.check_directional(loss_fn, params, np.random.default_rng(2))[bad] > 1e-3
    if which == "affine":
        assert gradcheck.check(loss_fn, params)["W"] == pytest.approx(0.01 / 2.01, rel=1e-4)


def test_directional_check_on_a_network():
    """check_directional agrees to <= 1e-7 on a 6-16-16-3 ELU MLP with an ELU residual block,
    every weight and the input x checked, float64. W2 is made nonzero so W1 gets a gradient."""
    rng = np.random.default_rng(3)
    net = network.mlp("body", [6, 16, 16], "elu") + [network.Act("elu"),
                                                     network.Residual("res", 16, act="elu"),
                                                     network.Affine("out", 16, 3)]
    params = network.init_params(net, rng, np, np.float64)
    params["res.W2"] = 0.3 * rng.standard_normal((16, 16))
    params["res.b2"] = 0.1 * rng.standard_normal(16)
    params["x"] = rng.standard_normal((8, 6))
    G = rng.standard_normal((8, 3))

    def loss_fn(p):                                           # L = sum(out * G)
        out, caches = network.forward(net, p, p["x"])
        dx, grads = network.backward(net, G, caches)
        return float(np.sum(out * G)), {**grads, "x": dx}

    errors = gradcheck.check_directional(loss_fn, params, np.random.default_rng(4))
    assert set(errors) == set(params)
    assert max(errors.values()) <= 1e-7, errors


@pytest.mark.parametrize("check", [gradcheck.check,
                                   lambda f, p: gradcheck.check_directional(f, p, np.random.default_rng(0))],
                         ids=["check", "check_directional"])
def test_float32_is_refused(check):
    """float32 rounding (~1e-7 |L|) divided by 2h swamps the difference, so it is refused."""
    case = CASES[0]
    params = {k: v.astype(np.float32) for k, v in case.params.items()}
    with pytest.raises(TypeError, match="float64"):
        check(case.loss_fn, params)


def test_main_prints_a_passing_table(capsys):
    """`python -m avb_np.gradcheck` in-process: exit status 0, one 'pass' row per parameter."""
    assert gradcheck_suite.main([]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.endswith("pass")]
    assert len(rows) == sum(len(c.params) for c in CASES)
    assert "FAIL" not in out and "0 failed" in out


def test_main_passes_for_another_seed(capsys):
    """Correct gradients pass for other seeds too, not just the default one (seeds 1-10)."""
    for seed in range(1, 11):
        assert gradcheck_suite.main(["--seed", str(seed)]) == 0, f"seed {seed}"


def test_main_exits_non_zero_when_a_gradient_is_wrong(monkeypatch, capsys):
    """With tanh's backward broken (1 - out instead of 1 - out^2), the table shows FAIL and
    `python -m avb_np.gradcheck` returns exit status 1."""
    monkeypatch.setitem(layers.ACTIVATIONS, "tanh", (layers.tanh_forward, lambda dout, out: dout * (1 - out)))
    assert gradcheck_suite.main([]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("tanh") and line.endswith("FAIL") for line in out.splitlines())


def test_module_help_runs():
    """`python -m avb_np.gradcheck --help` exits 0 and describes itself."""
    res = subprocess.run([sys.executable, "-m", "avb_np.gradcheck", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--seed" in res.stdout
