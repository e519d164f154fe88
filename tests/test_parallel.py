"""The minibatch split into row shares (avb_np.parallel): the plain loop's numbers, up to rounding."""
import threading

import numpy as np
import pytest

from avb_np import parallel, training
from avb_np.data import toy_data
from common import tiny, trained

TOL = 1e-12   # float64: the shares change only the order of the sums


@pytest.mark.parametrize("method", ["avb", "vae"])
@pytest.mark.parametrize("threads", [2, 3])
def test_shares_give_the_plain_loops_parameters(method, threads):
    """batch 37 in 2 or 3 uneven shares: the same parameters, losses and generator state as the
    plain loop after 6 iterations."""
    plain, split = (trained(tiny(dtype="float64", batch_size=37, threads=t), method, 6) for t in (1, threads))
    assert parallel.used(split) == threads and parallel.used(plain) == 1
    for k in plain.params:
        np.testing.assert_allclose(split.params[k], plain.params[k], rtol=0, atol=TOL, err_msg=k)
    np.testing.assert_allclose(split.history["primal"], plain.history["primal"], rtol=TOL)
    assert split.rng.bit_generator.state == plain.rng.bit_generator.state      # the same draws, in order


def test_shares_are_not_a_no_op():
    """The split path really runs the shares at once, in threads of their own (both must reach
    a barrier together), one call of the loss per share."""
    seen, both = set(), threading.Barrier(2, timeout=10)

    def loss(run, draws):
        seen.add(threading.current_thread().name)
        both.wait()
        x = draws.batch()
        return float(x.sum()), {"w": np.ones(2) * len(x)}
    run = training.new_run(tiny(batch_size=10, threads=2), "avb", np)
    from avb_np.draws import HostDraws
    total, grads = parallel.split(loss, 2)(run, HostDraws(run, toy_data()))
    assert len(seen) == 2 and all(name.startswith("avb_np-share") for name in seen)
    np.testing.assert_allclose(grads["w"], [5.0, 5.0])        # 5 rows x 1/2 + 5 rows x 1/2


def test_each_share_gets_its_rows_of_one_whole_draw():
    """Whatever order the shares ask in, the k-th array is drawn once, whole, and each share gets
    its own rows of it (so the generator advances exactly as in the plain loop)."""
    calls = []

    class Draws:
        def batch(self):
            calls.append("batch")
            return np.arange(7)[:, None] * 1.0

        def normal(self, width):
            calls.append(width)
            return np.arange(7)[:, None] * np.ones(width) + 100

    cut = parallel._Shares(Draws(), 3, 7)
    late, early = cut.view(2), cut.view(0)
    assert late.batch()[:, 0].tolist() == [5.0, 6.0]        # share 2 asks first
    assert early.batch()[:, 0].tolist() == [0.0, 1.0]
    assert early.normal(3).shape == (2, 3) and late.normal(3)[:, 0].tolist() == [105.0, 106.0]
    assert calls == ["batch", 3]
    assert sum(cut.weight(s) for s in range(3)) == pytest.approx(1.0)


def test_the_callers_errstate_holds_in_the_shares():
    """np.errstate(all='raise') around training reaches the share threads."""
    def loss(run, draws):
        draws.batch()
        return np.float64(1.0) / np.float64(0.0), {}
    run = training.new_run(tiny(threads=2), "avb", np)
    from avb_np.draws import HostDraws
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        parallel.split(loss, 2)(run, HostDraws(run, toy_data()))


@pytest.mark.parametrize("change, why", [({"threads": 2, "batch_size": 1}, "batch"),
                                         ({"threads": 1}, "plain")])
def test_when_the_split_is_off(change, why):
    run = training.new_run(tiny(**change), "avb", np)
    assert parallel.used(run) == 1, why


def test_adaptive_contrast_stays_whole():
    """AVB+AC's contrast standardises with the whole batch's moments: not a mean over rows, so its
    minibatch is never split (and its numbers do not depend on threads)."""
    a, b = (trained(tiny(dtype="float64", threads=t, n_bases=3, basis_hidden=(8,)), "avb-ac", 3) for t in (1, 2))
    assert parallel.used(b) == 1
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


@pytest.mark.parametrize("threads", [0, -1, 65, 2.5])
def test_bad_threads_are_refused(threads):
    with pytest.raises((ValueError, TypeError), match="threads"):
        training.new_run(tiny(threads=threads), "avb", np)


def test_ctrl_c_in_a_share_resumes_exactly(monkeypatch):
    """Ctrl-C in one share of iteration 4's second adversary step (the 15th call of dual_loss
    with 2 shares): every share finishes drawing first, the run is put back to the end of
    iteration 3, and continued it equals an uninterrupted split run bit for bit."""
    from common import assert_same_state, interrupt_dual_loss
    interrupt_dual_loss(monkeypatch, at=15)
    run = training.new_run(tiny(threads=2), "avb", np)
    with pytest.raises(training.Interrupted, match="during iteration 4.*end of iteration 3"):
        training.train(run, toy_data(), 10)
    monkeypatch.undo()
    reference = trained(tiny(threads=2), "avb", 3)
    assert_same_state(run, reference)
    assert_same_state(training.train(run, toy_data(), 3), training.train(reference, toy_data(), 3))


def test_ctrl_c_in_the_main_thread_stops_every_draw():
    """A real Ctrl-C reaches the main thread while the shares run (Python acts on it once the
    first share is done): from then on no share can draw (the share that asks later gets an
    error), so the generator the guard puts back stays as it was put back."""
    import signal
    import time
    from types import SimpleNamespace
    made = []

    class Draws:
        def batch(self):
            made.append("batch")
            return np.zeros((4, 1))

        def normal(self, width):
            made.append(width)
            return np.zeros((4, width))

    both = threading.Barrier(2, timeout=10)

    def loss(run, draws):
        draws.batch()
        both.wait()                                           # both shares are running
        if draws.rows.start == 0:                             # the first presses Ctrl-C and ends
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return 0.0, {}
        time.sleep(0.5)
        draws.normal(1)                                       # the other one draws too late: refused
        return 0.0, {}
    run = SimpleNamespace(cfg=SimpleNamespace(batch_size=4))
    with pytest.raises(KeyboardInterrupt):
        parallel.split(loss, 2)(run, Draws())
    time.sleep(0.8)
    assert made == ["batch"]
