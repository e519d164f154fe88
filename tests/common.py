"""Small runs and an exact comparison of run states, shared by the robustness tests."""
import numpy as np

from avb_np import training
from avb_np.config import Config
from avb_np.data import toy_data


def tiny(**changes):
    """A small configuration (16-wide networks, batch 32), so a run builds and steps in milliseconds."""
    sizes = dict(eps_dim=4, enc_hidden=(16, 16), dec_hidden=(16,), adv_width=16, adv_blocks=1,
                 batch_size=32, log_every=0, eval_every=2)
    return Config(**{**sizes, **changes})


def trained(cfg, method, steps):
    """A new run of `method` trained `steps` iterations on the toy data (0: just built)."""
    run = training.new_run(cfg, method, np)
    return training.train(run, toy_data(), steps) if steps else run


def assert_same_state(a, b):
    """Parameters, both optimisers, generator, step and history identical, bit for bit."""
    assert a.step == b.step
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    for opt_a, opt_b in ((a.opt_primal, b.opt_primal), (a.opt_dual, b.opt_dual)):
        if opt_a is None:
            assert opt_b is None
            continue
        assert opt_a.t == opt_b.t and opt_a.m.keys() == opt_b.m.keys()
        for k in opt_a.m:
            assert np.array_equal(opt_a.m[k], opt_b.m[k]) and np.array_equal(opt_a.v[k], opt_b.v[k]), k
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    for k in a.history:                                        # NaN == NaN here (VAE dual column)
        np.testing.assert_array_equal(a.history[k], b.history[k], err_msg=k)


def interrupt_call(monkeypatch, owner, name, at):
    """Make the `at`-th call of owner.name raise KeyboardInterrupt, as Ctrl-C would; the other
    calls go through. Returns the original function."""
    calls, original = [], getattr(owner, name)

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, interrupted)
    return original


def interrupt_dual_loss(monkeypatch, at):
    """Make the `at`-th adversary step of training raise KeyboardInterrupt."""
    from avb_np import training
    return interrupt_call(monkeypatch, training, "dual_loss", at)


def digits_vae(steps, n_test):
    """A small VAE (z_dim 2, 64-wide) trained `steps` iterations on the digits: the run, its
    float64 parameters, the first n_test test images and their exact log p(x) on a 200 x 200
    grid over [-5, 5]^2 (cells 0.05 wide; the posteriors' std is about 0.1-0.4)."""
    from avb_np import backend, data, quadrature, training
    cfg = Config(x_dim=64, z_dim=2, enc_hidden=(64,), dec_hidden=(64,), batch_size=64,
                 lr_primal=3e-3, log_every=0, eval_every=0)
    ds = data.load("digits")
    run = training.train(training.new_run(cfg, "vae", np), ds.train, steps, log=None)
    params = backend.host_params(run.params)
    x = ds.test[:n_test]
    return run, params, x, quadrature.log_likelihood_per_point(run.nets, params, x, n=200, lim=5.0)

