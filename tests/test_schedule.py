"""The learning-rate schedule: its values, how it reaches Adam, and what training refuses."""
import math

import numpy as np
import pytest

from avb_np import training
from avb_np.data import toy_data
from avb_np.optim import Adam
from common import tiny


def test_cosine_values():
    """(1 + cos(pi t / T)) / 2: 1 at t = 0, 1/2 halfway, 0 at t = T, exact to 1e-15; 'constant' is 1."""
    cfg = tiny(steps=100)
    assert training.lr_scale(cfg, 0) == 1.0
    assert abs(training.lr_scale(cfg, 50) - 0.5) < 1e-15
    assert abs(training.lr_scale(cfg, 100)) < 1e-15
    assert abs(training.lr_scale(cfg, 25) - (1 + math.cos(math.pi / 4)) / 2) < 1e-15
    cfg.lr_schedule = "constant"
    assert training.lr_scale(cfg, 99) == 1.0


def test_adam_scale_scales_the_update():
    """Adam's step with scale s moves the parameters s times as far as with scale 1, from the same
    state (to 1e-15 relative); the moments do not depend on s."""
    rng = np.random.default_rng(0)
    g = {"w": rng.standard_normal(5)}
    moved = []
    for scale in (1.0, 0.3):
        p, opt = {"w": np.zeros(5)}, Adam(0.01)
        opt.step(p, g, scale)
        moved.append(p["w"])
    np.testing.assert_allclose(moved[1], 0.3 * moved[0], rtol=1e-15)


def test_training_follows_the_schedule():
    """A run whose cfg.steps is 2 takes its second iteration at half the rate of a constant run:
    with the same first iteration, the VAE's second update is 0.5 times the constant one (Adam's
    moments are equal after one shared step), to 1e-5 relative in float64."""
    runs = {}
    for schedule in ("cosine", "constant"):
        run = training.new_run(tiny(steps=2, lr_schedule=schedule, dtype="float64"), "vae", np)
        training.train(run, toy_data(), 1)
        before = {k: v.copy() for k, v in run.params.items()}
        training.train(run, toy_data(), 1)
        runs[schedule] = {k: run.params[k] - before[k] for k in before}
    for k, step in runs["constant"].items():
        np.testing.assert_allclose(runs["cosine"][k], 0.5 * step, rtol=1e-5, atol=1e-15, err_msg=k)


def test_training_past_the_schedule_is_refused():
    """Under the cosine schedule the rates reach 0 at cfg.steps: training past it is refused with a
    message naming steps, cfg.steps and both ways out; constant runs may go on."""
    run = training.new_run(tiny(steps=3), "vae", np)
    training.train(run, toy_data(), 2)
    with pytest.raises(ValueError, match=r"steps=2 .* iteration 2 beyond run.cfg.steps=3.*at least 4.*constant"):
        training.train(run, toy_data(), 2)
    run.cfg.steps = 4                                         # the schedule stretches over the new length
    training.train(run, toy_data(), 2)
    assert run.step == 4
