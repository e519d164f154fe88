"""Adam against hand-computed values, its per-name state, and SGD."""
import copy

import numpy as np
import pytest

from avb_np.optim import SGD, Adam

G1, G2 = np.array([0.5, -3.0]), np.array([0.1, 1.0])   # the gradients of steps 1 and 2


def test_adam_by_hand():
    """Two Adam steps (lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8) from p = [1, -2], the
    arithmetic written out; rtol 1e-12 (the only differences are rounding)."""
    p = {"w": np.array([1.0, -2.0])}
    opt = Adam(lr=0.1)

    # t = 1, g = [0.5, -3]:  m = 0.1 g = [0.05, -0.3],  v = 0.001 g^2 = [0.00025, 0.009]
    # m_hat = m / (1 - 0.9) = g,  v_hat = v / (1 - 0.999) = g^2, so the step is
    # lr g / (|g| + eps): each entry moves by ~lr against the sign of its gradient.
    opt.step(p, {"w": G1})
    np.testing.assert_allclose(opt.m["w"], [0.05, -0.3], rtol=1e-12)
    np.testing.assert_allclose(opt.v["w"], [0.00025, 0.009], rtol=1e-12)
    p1 = np.array([1 - 0.1 * 0.5 / (0.5 + 1e-8), -2 + 0.1 * 3.0 / (3.0 + 1e-8)])
    np.testing.assert_allclose(p["w"], p1, rtol=1e-12)
    np.testing.assert_allclose(p["w"], [0.9, -1.9], rtol=1e-7)            # ~ lr * sign(g)

    # t = 2, g = [0.1, 1]:  m = 0.9 m + 0.1 g = [0.045 + 0.01, -0.27 + 0.1] = [0.055, -0.17]
    # v = 0.999 v + 0.001 g^2 = [0.00024975 + 0.00001, 0.008991 + 0.001] = [0.00025975, 0.009991]
    # m_hat = m / (1 - 0.9^2) = m / 0.19,  v_hat = v / (1 - 0.999^2) = v / 0.001999
    opt.step(p, {"w": G2})
    m_hat = np.array([0.055, -0.17]) / 0.19
    v_hat = np.array([0.00025975, 0.009991]) / 0.001999
    np.testing.assert_allclose(opt.m["w"], [0.055, -0.17], rtol=1e-12)
    np.testing.assert_allclose(opt.v["w"], [0.00025975, 0.009991], rtol=1e-12)
    np.testing.assert_allclose(p["w"], p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_adam_state_is_per_name():
    """Two names in one optimiser evolve exactly as in two separate optimisers."""
    both, pa, pb = Adam(0.1), Adam(0.1), Adam(0.1)
    p = {"a": np.ones(2), "b": np.ones(2)}
    qa, qb = {"a": np.ones(2)}, {"b": np.ones(2)}
    for g in (G1, G2):
        both.step(p, {"a": g, "b": -2 * g})
        pa.step(qa, {"a": g})
        pb.step(qb, {"b": -2 * g})
    np.testing.assert_array_equal(p["a"], qa["a"])
    np.testing.assert_array_equal(p["b"], qb["b"])


def test_adam_late_name_starts_at_zero_moments():
    """A name first seen at t = 2 gets m = 0.1 g and v = 0.001 g^2 (zero moments before), with
    the optimiser's bias corrections for t = 2 (0.19 and 0.001999); rtol 1e-12."""
    opt = Adam(0.1)
    p = {"a": np.ones(2), "b": np.ones(2)}
    opt.step(p, {"a": G1})
    opt.step(p, {"a": G2, "b": G1})
    np.testing.assert_allclose(opt.m["b"], 0.1 * G1, rtol=1e-12)
    np.testing.assert_allclose(opt.v["b"], 0.001 * G1 ** 2, rtol=1e-12)
    step = 0.1 * (0.1 * G1 / 0.19) / (np.sqrt(0.001 * G1 ** 2 / 0.001999) + 1e-8)
    np.testing.assert_allclose(p["b"], 1 - step, rtol=1e-12)


def _two_steps():
    opt, p = Adam(0.1), {"w": np.array([1.0, -2.0])}
    opt.step(p, {"w": G1})
    opt.step(p, {"w": G2})
    return opt, p


def test_adam_load_state_round_trip():
    """A fresh Adam loaded with a (deep-copied) state continues exactly as the original."""
    a, p = _two_steps()
    b, q = Adam(0.1), copy.deepcopy(p)
    b.load_state(copy.deepcopy(a.state()))
    for g in (np.array([0.3, 0.3]), np.array([-1.0, 2.0])):
        a.step(p, {"w": g})
        b.step(q, {"w": g})
    np.testing.assert_array_equal(q["w"], p["w"])


def test_adam_state_is_a_snapshot():
    """state() taken now and loaded later continues from *now*, even if the original optimiser
    has stepped in between (as when a checkpoint is saved in memory and training goes on)."""
    a, p = _two_steps()
    saved, q = a.state(), copy.deepcopy(p)
    g3 = np.array([0.3, 0.3])
    a.step(p, {"w": g3})                        # the original goes on ...
    b = Adam(0.1)
    b.load_state(saved)                         # ... and the checkpoint is restored elsewhere
    b.step(q, {"w": g3})
    np.testing.assert_array_equal(q["w"], p["w"])


def test_adam_load_state_copies():
    """Two optimisers restored from one checkpoint state evolve independently."""
    a, p = _two_steps()
    saved = copy.deepcopy(a.state())
    b, c = Adam(0.1), Adam(0.1)
    b.load_state(saved)
    c.load_state(saved)
    q, r = copy.deepcopy(p), copy.deepcopy(p)
    b.step(q, {"w": G1})
    c.step(r, {"w": G1})
    np.testing.assert_array_equal(q["w"], r["w"])


@pytest.mark.parametrize("opt", [SGD(0.1), Adam(0.1)], ids=["sgd", "adam"])
def test_update_is_in_place(opt):
    """The parameter array is updated in place (the same object), so views of it see the step."""
    w = np.array([1.0, -2.0])
    p = {"w": w}
    opt.step(p, {"w": G1})
    assert p["w"] is w and not np.array_equal(w, [1.0, -2.0])


def test_sgd_step():
    """SGD: p - lr g, exact up to one rounding."""
    p = {"w": np.array([1.0, -2.0])}
    SGD(0.1).step(p, {"w": G1})
    np.testing.assert_allclose(p["w"], [1 - 0.1 * 0.5, -2 + 0.1 * 3.0], rtol=1e-15)
    assert SGD(0.1).state() == {}
