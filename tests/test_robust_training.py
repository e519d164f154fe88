"""Determinism, the divergence guard and Ctrl-C during training (NumPy, exact comparisons).

Runs are compared bit for bit (np.array_equal): the same seed must give the same numbers, and a
run restored by the guard must equal a run that simply stopped one iteration earlier.
"""
import numpy as np
import pytest

from avb_np import objectives, training
from avb_np.data import toy_data
from common import assert_same_state, interrupt_dual_loss, tiny, trained

RAISE = dict(over="raise", invalid="raise", divide="raise")   # underflow to 0 stays allowed
QUIET = dict(over="ignore", invalid="ignore")                 # let NaN and inf reach the guard


@pytest.mark.parametrize("method", ["avb", "vae"])
def test_same_seed_same_numbers(method):
    """Two runs with seed 0 are identical; seed 1 gives other parameters and losses."""
    a, b = trained(tiny(), method, 4), trained(tiny(), method, 4)
    assert_same_state(a, b)
    c = trained(tiny(seed=1), method, 4)
    assert not np.array_equal(a.params["dec.0.W"], c.params["dec.0.W"])
    assert a.history["primal"] != c.history["primal"]


# ----------------------------------------------------------------------------- divergence guard

@pytest.mark.parametrize("method, field, value, player", [
    ("avb", "lr_dual", 1e12, "dual"), ("avb", "lr_primal", 1e6, "primal"), ("vae", "lr_primal", 1e6, "primal")])
def test_absurd_learning_rate_stops_with_the_guard(method, field, value, player):
    """Training stops at the first non-finite loss or parameter with a message naming the
    iteration, the player and its learning rate; the run is exactly the run that stopped one
    iteration earlier, so every parameter and moment is finite."""
    cfg = tiny(**{field: value})
    run = training.new_run(cfg, method, np)
    with np.errstate(**QUIET), pytest.raises(training.DivergenceError) as info:
        training.train(run, toy_data(), 20)
    err = info.value
    message = str(err)
    assert f"diverged at iteration {err.step}:" in message and f"restored to iteration {err.step - 1}" in message
    assert err.player == player and training.PLAYER_NAMES[player] in message
    assert f"{field}={value:g}" in message and "lower learning rate" in message and err.lrs == [field]
    assert all(np.isfinite(p).all() for p in run.params.values())
    with np.errstate(**QUIET):                                 # huge but finite numbers on the way
        assert_same_state(run, trained(cfg, method, err.step - 1))


def test_floating_point_errors_are_caught_too():
    """Under np.errstate(...='raise') NumPy raises before the guard's check; train restores the
    run all the same and says which player's step raised which error."""
    run = training.new_run(tiny(lr_dual=1e12), "avb", np)
    with np.errstate(**RAISE), pytest.raises(training.DivergenceError) as info:
        training.train(run, toy_data(), 20)
    assert "the adversary (dual) step raised FloatingPointError (overflow" in str(info.value)
    assert info.value.lrs == ["lr_dual"]
    with np.errstate(**QUIET):
        assert_same_state(run, trained(run.cfg, "avb", info.value.step - 1))


def test_training_raises_no_floating_point_warning():
    """Sane settings never overflow, divide by zero or produce NaN (the demo test covers the
    evaluation and the figures)."""
    with np.errstate(**RAISE):
        trained(tiny(), "avb", 10)
        trained(tiny(), "vae", 10)


# ----------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_mid_iteration_restores_the_last_whole_iteration(monkeypatch):
    """Ctrl-C in the 8th adversary step (iteration 4, after its primal step and first adversary
    step were applied) leaves the run at the end of iteration 3, and it then continues exactly
    like a run that was never interrupted."""
    interrupt_dual_loss(monkeypatch, at=8)
    run = training.new_run(tiny(), "avb", np)
    with pytest.raises(training.Interrupted, match="during iteration 4.*end of iteration 3"):
        training.train(run, toy_data(), 10)
    monkeypatch.undo()
    reference = trained(tiny(), "avb", 3)
    assert_same_state(run, reference)
    assert_same_state(training.train(run, toy_data(), 3), training.train(reference, toy_data(), 3))
