"""Semantic tests of the layers: forwards against their definitions, not against finite differences."""
import math

import numpy as np
import pytest

from avb_np import layers, network

RAISE = dict(over="raise", invalid="raise", divide="raise")   # any overflow/NaN/inf is an error


def test_affine_matches_a_loop():
    """out[n, j] = sum_d x[n, d] W[d, j] + b[j], written as a loop; rtol 1e-12 (rounding only)."""
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    out, _ = layers.affine_forward(x, W, b)
    loop = [[sum(x[n, d] * W[d, j] for d in range(4)) + b[j] for j in range(2)] for n in range(3)]
    np.testing.assert_allclose(out, loop, rtol=1e-12)


# Each activation at a few scalars, the expected value computed with `math` from its definition.
SCALARS = [-2.0, -1.0, 0.0, 0.5, 3.0]
DEFINITIONS = {
    "elu": lambda x: x if x > 0 else math.exp(x) - 1,            # ELU(-1) = e^-1 - 1
    "relu": lambda x: max(x, 0.0),
    "leaky_relu": lambda x: x if x > 0 else 0.2 * x,             # slope 0.2
    "tanh": math.tanh,
    "softplus": lambda x: math.log(1 + math.exp(x)),             # softplus(0) = log 2
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),                 # sigmoid(0) = 0.5
    "identity": lambda x: x,
}


@pytest.mark.parametrize("act", sorted(layers.ACTIVATIONS))
def test_activation_definition(act):
    """Forward equals the textbook definition to rtol 1e-14 (a few ulps)."""
    out, _ = layers.ACTIVATIONS[act][0](np.array(SCALARS))
    np.testing.assert_allclose(out, [DEFINITIONS[act](s) for s in SCALARS], rtol=1e-14, atol=1e-15)


def test_named_values():
    """The special values quoted in the docstrings, exactly or to 1 ulp."""
    one = lambda f, v: float(f(np.array([v]))[0][0])
    assert one(layers.elu_forward, -1.0) == pytest.approx(math.exp(-1) - 1, rel=1e-15)
    assert one(layers.leaky_relu_forward, -1.0) == -0.2
    assert one(layers.softplus_forward, 0.0) == pytest.approx(math.log(2), rel=1e-15)
    assert one(layers.sigmoid_forward, 0.0) == 0.5


def test_extreme_inputs_are_exact():
    """softplus, sigmoid and ELU at +-800 and +-1e4 (exp overflows above ~709): no overflow,
    no NaN, and the exact limits softplus(x) = x or 0, sigmoid = 1 or 0, ELU = x or -1."""
    x = np.array([-1e4, -800.0, 800.0, 1e4])
    with np.errstate(**RAISE):
        sp, sg = layers.softplus(x), layers.sigmoid(x)
        elu, _ = layers.elu_forward(x)
        d_sp = layers.softplus_backward(np.ones(4), x)
    np.testing.assert_array_equal(sp[2:], x[2:])
    np.testing.assert_allclose(sp[:2], 0.0, atol=1e-300)
    np.testing.assert_array_equal(sg, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(d_sp, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(elu, [-1.0, -1.0, 800.0, 1e4])


@pytest.mark.parametrize("act", ["relu", "elu"])
def test_residual_with_zero_branch_is_identity(act):
    """W2 = 0, b2 = 0 (the initial state) gives out = h exactly, and dh = dout."""
    rng = np.random.default_rng(1)
    h, W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    out, cache = layers.residual_forward(h, W1, b1, np.zeros((3, 3)), np.zeros(3), act)
    np.testing.assert_array_equal(out, h)
    dout = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(layers.residual_backward(dout, cache)[0], dout)


def test_network_matches_layers_by_hand():
    """network.forward/backward on mlp [5, 4, 2] with tanh equals affine, tanh, affine composed
    by hand, and the gradients come back under the parameter names; exact (same operations)."""
    rng = np.random.default_rng(2)
    net = network.mlp("dec", [5, 4, 2], "tanh")
    p = network.init_params(net, rng, np, np.float64)
    assert sorted(p) == ["dec.0.W", "dec.0.b", "dec.1.W", "dec.1.b"]
    x, dout = rng.standard_normal((3, 5)), rng.standard_normal((3, 2))
    out, caches = network.forward(net, p, x)
    dx, grads = network.backward(net, dout, caches)

    a, c1 = layers.affine_forward(x, p["dec.0.W"], p["dec.0.b"])      # (3, 4)
    r, c2 = layers.tanh_forward(a)                                     # (3, 4)
    y, c3 = layers.affine_forward(r, p["dec.1.W"], p["dec.1.b"])      # (3, 2)
    dr, dW1, db1 = layers.affine_backward(dout, c3)
    dx0, dW0, db0 = layers.affine_backward(layers.tanh_backward(dr, c2), c1)
    np.testing.assert_array_equal(out, y)
    np.testing.assert_array_equal(dx, dx0)
    for name, g in {"dec.0.W": dW0, "dec.0.b": db0, "dec.1.W": dW1, "dec.1.b": db1}.items():
        np.testing.assert_array_equal(grads[name], g)


# ----------------------------------------------------------------------------- initialiser

def test_init_affine_statistics():
    """400 x 400 weights with gain 2: mean 0 and std gain / sqrt(400) = 0.1.

    With n = 160,000 normal draws of std s, the sample mean has standard error s / sqrt(n)
    (2.5e-4) and the sample std has standard error ~ s / sqrt(2 n) (1.8e-4); allow 5 of each."""
    n_in, gain = 400, 2.0
    W, b = layers.init_affine(np.random.default_rng(3), n_in, 400, np, np.float64, gain)
    s, n = gain / math.sqrt(n_in), W.size
    assert W.shape == (400, 400) and b.shape == (400,)
    assert abs(W.mean()) <= 5 * s / math.sqrt(n)
    assert abs(W.std() - s) <= 5 * s / math.sqrt(2 * n)
    assert not b.any()                                                  # b = 0


def test_init_affine_gain_zero_seed_and_dtype():
    """gain 0 gives zeros; the same seed gives identical weights; dtype is respected."""
    W0, _ = layers.init_affine(np.random.default_rng(4), 5, 3, np, np.float64, gain=0.0)
    assert not W0.any()
    Wa, _ = layers.init_affine(np.random.default_rng(5), 5, 3, np, np.float64)
    Wb, _ = layers.init_affine(np.random.default_rng(5), 5, 3, np, np.float64)
    np.testing.assert_array_equal(Wa, Wb)
    for dtype in (np.float32, np.float64):
        W, b = layers.init_affine(np.random.default_rng(6), 5, 3, np, dtype)
        assert W.dtype == dtype and b.dtype == dtype


@pytest.mark.parametrize("act", sorted(layers.ACTIVATIONS))
def test_activation_keeps_float32(act):
    """float32 in gives float32 out and float32 gradient (no silent float64 on a GPU)."""
    x = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    fwd, bwd = layers.ACTIVATIONS[act]
    out, cache = fwd(x)
    dx = bwd(np.ones_like(out), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32
