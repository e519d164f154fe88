"""The fast paths keep the math: skipped gradients, ELU near 0, float32 throughout, Adam's order.

The backward options (param_grads, input_grad) only leave work out, so what they do return is
compared with the full backward bit for bit. The full backward is the one the gradient checks
(tests/test_gradients.py) verify against finite differences.
"""
import math

import numpy as np
import pytest

from avb_np import layers, losses, methods, models, network, objectives, training
from avb_np.config import Config
from avb_np.data import toy_data
from avb_np.optim import Adam
from common import tiny


def _net_and_inputs(rng):
    """A small float64 ELU network with a residual block, moved off its initial values."""
    net = network.mlp("body", [5, 8], "elu") + [network.Act("elu"), network.Residual("res", 8),
                                               network.Act("elu"), network.Affine("out", 8, 3)]
    params = network.init_params(net, rng, np, np.float64)
    for p in params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    return net, params, rng.standard_normal((6, 5)), rng.standard_normal((6, 3))


def test_network_backward_options_leave_out_only_what_they_name():
    """param_grads=False returns the same dx and no grads; input_grad=False returns dx = None and
    the same grads; both exact (the same operations, minus the skipped ones)."""
    net, params, x, dout = _net_and_inputs(np.random.default_rng(0))
    out, caches = network.forward(net, params, x)
    dx, grads = network.backward(net, dout, caches)
    dx_only, none = network.backward(net, dout, caches, param_grads=False)
    no_dx, grads_only = network.backward(net, dout, caches, input_grad=False)
    np.testing.assert_array_equal(dx_only, dx)
    assert none == {} and no_dx is None
    assert grads_only.keys() == grads.keys() == params.keys()
    for name in grads:
        np.testing.assert_array_equal(grads_only[name], grads[name], err_msg=name)


def _avb(rng, dtype=np.float64):
    cfg = Config(eps_dim=3, enc_hidden=(5, 5), dec_hidden=(5,), adv_width=6, adv_blocks=1)
    nets = methods.build_nets(cfg, "avb")
    params = models.init_all_params(nets, rng, np, dtype)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    N = 7
    x = np.eye(4, dtype=dtype)[rng.integers(0, 4, N)]
    eps = rng.standard_normal((N, cfg.eps_dim)).astype(dtype)
    z_p = rng.standard_normal((N, cfg.z_dim)).astype(dtype)
    return cfg, nets, params, x, eps, z_p


def test_model_backward_options_match_the_full_backward():
    """adversary_backward: param_grads=False gives the full dx and dz (with the prior term's
    gradient), input_grad=False the full grads of psi; decode_backward with param_grads=False
    gives the full dz; encode_backward gives the full grads of phi. Exact."""
    rng = np.random.default_rng(1)
    cfg, nets, params, x, eps, _ = _avb(rng)
    z, enc_cache = models.encode(nets, params, x, eps)
    T, adv_cache = models.adversary(nets, params, x, z, cfg.prior_term)
    dT = rng.standard_normal(T.shape)
    dx, dz, grads = models.adversary_backward(nets, dT, adv_cache)
    dx_p, dz_p, none = models.adversary_backward(nets, dT, adv_cache, param_grads=False)
    no_dx, no_dz, grads_i = models.adversary_backward(nets, dT, adv_cache, input_grad=False)
    np.testing.assert_array_equal(dx_p, dx)
    np.testing.assert_array_equal(dz_p, dz)
    assert none == {} and no_dx is None and no_dz is None
    for name in grads:
        np.testing.assert_array_equal(grads_i[name], grads[name], err_msg=name)

    logits, dec_cache = models.decode(nets, params, z)
    dlogits = rng.standard_normal(logits.shape)
    np.testing.assert_array_equal(models.decode_backward(nets, dlogits, dec_cache, param_grads=False)[0],
                                  models.decode_backward(nets, dlogits, dec_cache)[0])
    dz = rng.standard_normal(z.shape)
    full = network.backward(nets["enc"], dz, enc_cache)[1]
    enc = models.encode_backward(nets, dz, enc_cache)
    assert enc.keys() == full.keys()
    for name in full:
        np.testing.assert_array_equal(enc[name], full[name], err_msg=name)


def test_primal_loss_equals_the_full_backward_composition():
    """primal_loss (which skips psi's gradients and the encoder's dx, deps) returns exactly the
    grads obtained from the full backward of each network, composed by hand:
    dL/dz = dT/dz - dlog p(x|z)/dz, both per example and divided by N."""
    rng = np.random.default_rng(2)
    cfg, nets, params, x, eps, _ = _avb(rng)
    N = x.shape[0]
    loss, grads = objectives.primal_loss(nets, params, x, eps, cfg.prior_term)

    z, enc_cache = models.encode(nets, params, x, eps)
    T, adv_cache = models.adversary(nets, params, x, z, cfg.prior_term)
    logits, dec_cache = models.decode(nets, params, z)
    logp, dlogits = losses.bernoulli_log_likelihood(x, logits)
    _, dz_T, _ = models.adversary_backward(nets, np.full(N, 1 / N), adv_cache)
    dz_dec, expected = models.decode_backward(nets, -dlogits / N, dec_cache)
    expected.update(network.backward(nets["enc"], dz_T + dz_dec, enc_cache)[1])
    assert loss == (T - logp).mean()
    assert grads.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(grads[name], expected[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_is_accurate_near_zero(dtype):
    """ELU(x) = e^x - 1 for x <= 0 within 2 ulps (relative 2 * machine epsilon) of the exact value
    from math.expm1, for x from -1 down to -1e-30, and f'(x) = e^x within 2 ulps of 1.
    For comparison, e^x - 1 computed directly is off by more than 10% for some of these x in
    float32 and float64 (cancellation), which this test would catch."""
    x = -np.logspace(-30, 0, 301).astype(dtype)
    out, cache = layers.elu_forward(x)
    exact = np.array([math.expm1(float(v)) for v in x])
    eps = np.finfo(dtype).eps
    assert out.dtype == dtype
    assert np.max(np.abs(out - exact) / np.abs(exact)) <= 2 * eps
    naive = np.exp(x) - 1
    assert np.max(np.abs(naive - exact) / np.abs(exact)) > 0.1
    dx = layers.elu_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, np.exp(x.astype(np.float64)), rtol=2 * eps)


def _arrays_in(obj):
    """Every ndarray inside nested tuples, lists and dicts."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _arrays_in(item)


def _all_float32(named):
    bad = {name: a.dtype for name, obj in named.items() for a in _arrays_in(obj)
           if a.dtype.kind == "f" and a.dtype != np.float32}
    assert bad == {}, f"arrays promoted from float32: {bad}"


def test_float32_stays_float32():
    """In float32, every floating array stays float32: the outputs and caches of the encoder,
    adversary and decoder (AVB and VAE), the losses and all their gradients, and after two
    training iterations of each method the parameters and Adam's moments."""
    rng = np.random.default_rng(3)
    cfg, nets, params, x, eps, z_p = _avb(rng, np.float32)
    z, enc_cache = models.encode(nets, params, x, eps)
    T, adv_cache = models.adversary(nets, params, x, z, cfg.prior_term)
    logits, dec_cache = models.decode(nets, params, z)
    primal = objectives.primal_loss(nets, params, x, eps, cfg.prior_term)
    dual = objectives.dual_loss(nets, params, x, eps, z_p, cfg.prior_term)
    _all_float32({"encode": (z, enc_cache), "adversary": (T, adv_cache),
                  "decode": (logits, dec_cache), "primal": primal, "dual": dual,
                  "adversary_backward": models.adversary_backward(nets, T, adv_cache)})
    assert primal[0].dtype == dual[0].dtype == np.float32

    vae_nets = methods.build_nets(cfg, "vae")
    vae_params = models.init_all_params(vae_nets, rng, np, np.float32)
    eps_z = rng.standard_normal((x.shape[0], cfg.z_dim)).astype(np.float32)
    _all_float32({"encode_gaussian": models.encode_gaussian(vae_nets, vae_params, x, eps_z),
                  "vae": objectives.vae_loss(vae_nets, vae_params, x, eps_z)})

    for method in ("avb", "vae"):
        run = training.train(training.new_run(tiny(dtype="float32"), method, np), toy_data(), 2)
        opts = [o for o in (run.opt_primal, run.opt_dual) if o is not None]
        _all_float32({"params": run.params, "m": [o.m for o in opts], "v": [o.v for o in opts]})


def test_adam_matches_the_textbook_order():
    """Adam's update lr_t m / (sqrt(v) + eps_t), with the bias corrections folded into lr_t and
    eps_t, equals the textbook lr m_hat / (sqrt(v_hat) + eps) over 200 steps of random
    gradients on two parameters (float64, rtol 1e-12: the orders differ only in rounding)."""
    rng = np.random.default_rng(4)
    p = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    ref = {k: v.copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    opt, lr, b1, b2, eps = Adam(1e-2), 1e-2, 0.9, 0.999, 1e-8
    for t in range(1, 201):
        g = {k: rng.standard_normal(a.shape) * 10.0 ** rng.integers(-4, 2) for k, a in p.items()}
        opt.step(p, g)
        for k in ref:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            ref[k] -= lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-12)
