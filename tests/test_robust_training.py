"""Determinism, the divergence guard and Ctrl-C during training (NumPy, exact comparisons).

Runs are compared bit for bit (np.array_equal): the same seed must give the same numbers, and a
run restored by the guard must equal a run that simply stopped one iteration earlier.
"""
import dataclasses

import numpy as np
import pytest

from avb_np import backend, checkpoint, draws, quadrature, training
from avb_np.data import toy_data
from common import assert_same_state, interrupt_call, interrupt_dual_loss, tiny, trained

RAISE = dict(over="raise", invalid="raise", divide="raise")   # underflow to 0 stays allowed
QUIET = dict(over="ignore", invalid="ignore")                 # let NaN and inf reach the guard


@pytest.mark.parametrize("method", ["avb", "avb-ac", "vae"])
def test_same_seed_same_numbers(method):
    """Two runs with seed 0 are identical; seed 1 gives other parameters and losses."""
    a, b = trained(tiny(), method, 4), trained(tiny(), method, 4)
    assert_same_state(a, b)
    c = trained(tiny(seed=1), method, 4)
    assert not np.array_equal(a.params["dec.0.W"], c.params["dec.0.W"])
    assert a.history["primal"] != c.history["primal"]


# ----------------------------------------------------------------------------- divergence guard

def assert_trains_on(run, steps=5):
    """The run's state is sane (check_run: parameters finite and within PARAM_BOUND) and it
    trains `steps` more iterations without a DivergenceError, every loss within loss_bound."""
    training.check_run(run)
    before = run.step
    training.train(run, toy_data(), steps)
    losses = np.array(run.history["primal"][before:] + run.history["dual"][before:])
    losses = losses[~np.isnan(losses)] if run.method == "vae" else losses
    assert np.all(np.abs(losses) <= training.loss_bound(run.cfg)), losses


@pytest.mark.parametrize("method, field, value, player", [
    ("avb", "lr_dual", 1e12, "dual"), ("avb", "lr_dual", 1e6, "dual"), ("avb", "lr_primal", 1e6, "primal"),
    ("avb", "lr_primal", 10.0, "primal"), ("vae", "lr_primal", 1e6, "primal")])
def test_absurd_learning_rate_stops_with_the_guard(method, field, value, player):
    """Training stops at the first bad step with a message naming the iteration, the player whose
    step broke the run (lr_primal=10 makes the primal loss explode only after the adversary's
    steps: the guard still blames the primal step) and its learning rate; the run is exactly the
    run that stopped one iteration earlier, and it is sane: it trains on with the advised rate."""
    cfg = tiny(**{field: value})
    run = training.new_run(cfg, method, np)
    with np.errstate(**QUIET), pytest.raises(training.DivergenceError) as info:
        training.train(run, toy_data(), 20)
    err = info.value
    message = str(err)
    assert f"diverged at iteration {err.step}:" in message and f"restored to iteration {err.step - 1}" in message
    assert err.player == player and training.PLAYER_NAMES[player] in message, message
    assert f"{field}={value:g}" in message and "lower learning rate" in message and err.lrs == [field]
    assert err.lower[field] < value and f"run.cfg.{field} = {err.lower[field]:g}" in message
    with np.errstate(**QUIET):                                 # huge but finite numbers on the way
        assert_same_state(run, trained(cfg, method, err.step - 1))
    setattr(run.cfg, field, 1e-3)                              # a sane rate: the restored run trains on
    assert_trains_on(run)


@pytest.mark.parametrize("how", ["checkpoint", "run.cfg"])
@pytest.mark.parametrize("method, field, value", [("avb", "lr_dual", 1e6), ("avb", "lr_primal", 10.0),
                                                   ("vae", "lr_primal", 1e6)])
def test_following_the_advice_trains_on(method, field, value, how, tmp_path):
    """A user follows the message's advice until training goes through: after each
    DivergenceError, continue with err.lower, either from a saved checkpoint loaded with the
    lower rate or by setting run.cfg. Within 8 rounds the run reaches 30 iterations, and every
    loss it recorded is finite and within loss_bound (a guard that restored a state whose next
    loss is NaN would fail every round)."""
    cfg = tiny(**{field: value})
    run, rounds = training.new_run(cfg, method, np), 0
    while run.step < 30:
        try:
            with np.errstate(**QUIET):
                training.train(run, toy_data(), 30 - run.step)
        except training.DivergenceError as err:
            rounds += 1
            assert rounds <= 8 and err.lrs == [field] and run.step == err.step - 1
            cfg = dataclasses.replace(cfg, **err.lower)
            if how == "checkpoint":
                checkpoint.save(tmp_path / "c.npz", {method: run})
                run = checkpoint.load(tmp_path / "c.npz", expected_cfg=cfg)[method]
            else:
                setattr(run.cfg, field, err.lower[field])
            assert getattr(run.opt_dual if field == "lr_dual" else run.opt_primal, "lr") != err.lower[field] \
                or how == "checkpoint"                           # the optimiser takes it when train starts
    assert rounds >= 1 and getattr(run.cfg, field) < value
    assert getattr(run.opt_dual if field == "lr_dual" else run.opt_primal, "lr") == getattr(run.cfg, field)
    losses = np.array(run.history["primal"] + (run.history["dual"] if method == "avb" else []))
    assert len(run.history["step"]) == 30 and np.all(np.abs(losses) <= training.loss_bound(cfg))
    assert np.isfinite(quadrature.log_likelihood(run.nets, run.params, toy_data(), n=50))


def test_runaway_that_stays_finite_is_caught():
    """In float64 an adversary with lr 1e3 makes its loss about 3e10 after one step, finite
    but absurd (the demo used to finish with an ELBO of -3e17): the guard stops it, says by how
    much the loss exceeds its bound, and nothing was NaN or inf."""
    run = training.new_run(tiny(lr_dual=1e3, dtype="float64"), "avb", np)
    with np.errstate(all="raise", under="ignore"), pytest.raises(training.DivergenceError) as info:
        training.train(run, toy_data(), 20)
    message = str(info.value)
    assert info.value.player == "dual" and "sane: at most 4.16e+04" in message, message


def test_the_last_step_of_a_call_is_checked():
    """With one adversary step per iteration the adversary's step is the last of the iteration:
    only the next iteration's primal loss would see it. train(run, data, 1) evaluates that loss
    before returning (leaving the generator untouched), so it raises at once and leaves the
    run at iteration 0, instead of returning a run that cannot train on."""
    run = training.new_run(tiny(lr_dual=1e3, dual_steps=1), "avb", np)
    with np.errstate(**QUIET), pytest.raises(training.DivergenceError, match="after the steps of the adversary"):
        training.train(run, toy_data(), 1)
    assert run.step == 0 and run.history["step"] == []
    assert_same_state(run, trained(tiny(lr_dual=1e3, dual_steps=1), "avb", 0))


def test_chunked_training_equals_one_call():
    """The check at the end of each call draws nothing from the run's generator: 3 + 4 + 5
    iterations in three calls equal 12 in one, bit for bit."""
    run = trained(tiny(), "avb", 3)
    training.train(run, toy_data(), 4)
    training.train(run, toy_data(), 5)
    assert_same_state(run, trained(tiny(), "avb", 12))


def test_changed_learning_rate_is_the_one_used():
    """run.cfg.lr_dual changed between calls is the rate the optimiser uses: from the same state,
    one iteration (one adversary step) at lr 0.1 moves the adversary 0.1 / 0.008 = 12.5 times
    as far as at the default 0.008 (Adam's step is lr times the same m_hat / sqrt(v_hat);
    rtol 1e-3 for eps and rounding). A later divergence message quotes the new rate. Setting
    the optimiser's own copy instead is refused, naming both places."""
    a, b = trained(tiny(dual_steps=1), "avb", 2), trained(tiny(dual_steps=1), "avb", 2)
    b.cfg.lr_dual = 0.1
    before = a.params["adv.out.W"].copy()
    training.train(a, toy_data(), 1)
    training.train(b, toy_data(), 1)
    assert b.opt_dual.lr == 0.1 and a.opt_dual.lr == tiny().lr_dual
    np.testing.assert_allclose(b.params["adv.out.W"] - before, 12.5 * (a.params["adv.out.W"] - before), rtol=1e-3)
    b.cfg.lr_dual = 1e12
    with np.errstate(**QUIET), pytest.raises(training.DivergenceError, match="lr_dual=1e\\+12"):
        training.train(b, toy_data(), 5)
    b.opt_dual.lr = 0.5
    with pytest.raises(ValueError, match=r"run.opt_dual.lr was set to 0.5.*run.cfg.lr_dual"):
        training.train(b, toy_data(), 1)


def test_floating_point_errors_are_caught_too():
    """Under np.errstate(...='raise') NumPy raises before the guard's check can read a value
    (here the VAE's exp(log_sigma) overflows after a step with lr 1e5); train restores the run
    all the same and says which step made the evaluation raise which error."""
    run = training.new_run(tiny(lr_primal=1e5), "vae", np)
    with np.errstate(**RAISE), pytest.raises(training.DivergenceError) as info:
        training.train(run, toy_data(), 20)
    assert ("after the step of the encoder/decoder (primal), evaluating the primal loss raised "
            "FloatingPointError (overflow") in str(info.value)
    assert info.value.lrs == ["lr_primal"]
    with np.errstate(**QUIET):
        assert_same_state(run, trained(run.cfg, "vae", info.value.step - 1))


def test_underflow_is_not_divergence():
    """An adversary with lr 0.1 drives T to values whose exponentials underflow to 0 (the
    correct result). Under np.seterr(all='raise') training goes on all the same: only overflow,
    division by zero and invalid values count as divergence. The underflow is real: at the
    state reached, the adversary's loss raises when underflow alone is set to raise."""
    run = training.new_run(tiny(lr_dual=0.1), "avb", np)
    old = np.seterr(all="raise")
    try:
        training.train(run, toy_data(), 15)
        state = run.rng.bit_generator.state
        with np.errstate(under="raise"), pytest.raises(FloatingPointError, match="underflow"):
            training.dual_loss(run, draws.HostDraws(run, toy_data()))
        run.rng.bit_generator.state = state
    finally:
        np.seterr(**old)
    assert run.step == 15
    assert_same_state(run, trained(tiny(lr_dual=0.1), "avb", 15))


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


def test_ctrl_c_during_the_log_likelihood_redoes_the_whole_iteration(monkeypatch):
    """Ctrl-C while iteration 4's exact log-likelihood is computed (eval_every=2) leaves the run
    at the end of iteration 3; continued, it equals an uninterrupted run bit for bit, history
    (with the log-likelihood of iteration 4) included."""
    interrupt_call(monkeypatch, quadrature, "log_likelihood", at=2)
    run = training.new_run(tiny(), "avb", np)
    with pytest.raises(training.Interrupted, match="during iteration 4.*end of iteration 3"):
        training.train(run, toy_data(), 6)
    monkeypatch.undo()
    assert run.step == 3 and run.history["ll_step"] == [2]
    training.train(run, toy_data(), 3)
    assert_same_state(run, trained(tiny(), "avb", 6))
    assert run.history["ll_step"] == [2, 4, 6]


def test_ctrl_c_between_iterations_keeps_the_whole_iteration():
    """Ctrl-C while iteration 3 is being logged (it is complete) keeps it: the run stays at
    iteration 3, equal to a run trained 3 iterations, and Interrupted says so."""
    def log(line):
        raise KeyboardInterrupt
    run = training.new_run(tiny(log_every=3), "avb", np)
    with pytest.raises(training.Interrupted, match="after the end of iteration 3"):
        training.train(run, toy_data(), 10, log=log)
    assert_same_state(run, trained(tiny(log_every=3), "avb", 3))


# ----------------------------------------------------------------------------- draws on the device

def test_device_draws_are_reproducible_and_guarded():
    """draws="device" takes minibatches and noise from the backend's own generator (here NumPy's,
    so the code path runs without a GPU), seeded from the run's generator at each call: the same
    calls give the same run, bit for bit, and other numbers than host draws. The guard checks
    the last step of a call the same way. A bad value of `draws` is named."""
    a, b, host = (training.new_run(tiny(), "avb", np) for _ in range(3))
    for run in (a, b):
        training.train(run, toy_data(), 3, draws="device")
        training.train(run, toy_data(), 2, draws="device")
    training.train(host, toy_data(), 5)
    assert_same_state(a, b)
    assert a.history["primal"] != host.history["primal"] and np.all(np.isfinite(a.history["primal"]))
    run = training.new_run(tiny(lr_dual=1e3, dual_steps=1), "avb", np)
    with np.errstate(**QUIET), pytest.raises(training.DivergenceError, match="adversary"):
        training.train(run, toy_data(), 1, draws="device")
    assert run.step == 0
    with pytest.raises(ValueError, match="draws must be one of \\('host', 'device'\\), got 'gpu'"):
        training.train(run, toy_data(), 1, draws="gpu")


def test_device_draws_binarise_dynamically():
    """With cfg.dynamic, a device minibatch of intensity-0.25 rows is binary with about a quarter
    of its pixels on (4096 pixels: within 0.05 of 0.25, about 7 standard deviations)."""
    run = training.new_run(tiny(dynamic=True, batch_size=1024), "vae", np)
    x = draws.DeviceDraws(run, np.full((3, 4), 0.25)).batch()
    assert x.shape == (1024, 4) and set(np.unique(x)) <= {0.0, 1.0} and abs(x.mean() - 0.25) < 0.05


@pytest.mark.parametrize("draws", ["host", "device"])
def test_training_on_cupy(draws, tmp_path):
    """Where CuPy and a GPU are available: 4 iterations on the GPU give finite losses, with host
    draws the NumPy run's losses to rtol 1e-3 (float32 rounding through 4 iterations of Adam);
    the run saves and loads back onto the GPU, and the guard stops an absurd adversary there too."""
    try:
        cp = backend.load("cupy")
    except backend.BackendError as reason:
        pytest.skip(str(reason))
    run = training.train(training.new_run(tiny(), "avb", cp), toy_data(), 4, draws=draws)
    assert np.all(np.isfinite(run.history["primal"] + run.history["dual"]))
    if draws == "host":
        np.testing.assert_allclose(run.history["primal"], trained(tiny(), "avb", 4).history["primal"], rtol=1e-3)
    checkpoint.save(tmp_path / "c.npz", {"avb": run})
    loaded = checkpoint.load(tmp_path / "c.npz", xp=cp)["avb"]
    assert loaded.step == 4 and backend.array_module(loaded.params["dec.0.W"]) is cp
    bad = training.new_run(tiny(lr_dual=1e6), "avb", cp)
    with pytest.raises(training.DivergenceError, match="adversary"):
        training.train(bad, toy_data(), 5, draws=draws)


def test_absurd_learning_rates_need_few_reruns():
    """With both learning rates absurd (1e6 and 1e12), following the guard's advice each time
    trains on after at most 3 reruns: a suggestion never stays above the Config's default."""
    cfg, reruns = tiny(lr_primal=1e6, lr_dual=1e12), 0
    run = training.new_run(cfg, "avb", np)
    while True:
        try:
            with np.errstate(**QUIET):
                training.train(run, toy_data(), 20)
            break
        except training.DivergenceError as err:
            reruns += 1
            assert reruns <= 3, str(err)
            for field, value in err.lower.items():
                setattr(run.cfg, field, value)
    assert run.step >= 20
