"""Every core for a whole training step: the minibatch split into row shares computed at once.

Not part of AVB; a reader of the math can skip this file. Every loss of training is a mean over
the N rows of its minibatch, so with the rows split into shares of n_1 + ... + n_S = N rows,

    loss = sum_s (n_s / N) loss_s,      grads = sum_s (n_s / N) grads_s,

where loss_s and grads_s are the same function's value and gradients on share s alone. Each
share runs in a thread of its own (NumPy releases the GIL inside its ufuncs and BLAS calls), with
one BLAS thread each (`one_blas_thread`), so the elementwise work (activations, bias and gradient
sums) runs on every core, not only the matrix products. Adam's step then sees the summed
gradients, as in the plain loop.

The shares draw nothing of their own: the loss function asks `draws` for a minibatch and noise
as usual, and the k-th array it asks for is drawn once, whole, in the plain loop's order, and cut
into the shares' rows. So a seed gives the same minibatches with any number of shares, and the
parameters equal the plain loop's up to float rounding (tests/test_parallel.py). The number of
shares (Config.threads) fixes the numbers; how many cores run them does not.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from . import memory
from .methods import METHODS

_POOLS, _POOLS_LOCK = {}, threading.Lock()   # shares -> a ThreadPoolExecutor kept for the process
WARM_WAIT = 30                               # seconds a share thread waits for the others to warm up


def used(run):
    """The number of shares `run` computes at once: run.cfg.threads, or 1 (the plain loop) on
    other backends than NumPy (one device kernel already spans the batch), for a method whose
    losses are not means over rows (methods.Method.by_rows), and for batches smaller than that."""
    cfg = run.cfg
    return cfg.threads if run.xp is np and METHODS[run.method].by_rows and cfg.batch_size >= cfg.threads else 1


def split(loss_fn, shares):
    """loss_fn: (run, draws) -> (loss, grads), a mean over the minibatch's rows, whose gradient
    arrays are its own (they are scaled in place) -> the same function computed in `shares` row
    shares at once, one thread each."""
    with _POOLS_LOCK:
        if shares not in _POOLS:
            _POOLS[shares] = _warmed(ThreadPoolExecutor(shares, thread_name_prefix="avb_np-share"), shares)
        pool = _POOLS[shares]

    def fn(run, draws):
        cut = _Shares(draws, shares, run.cfg.batch_size)
        err, call = np.geterr(), np.geterrcall()       # the caller's floating-point rules, for the shares
        parts = []
        try:
            for s in range(shares):
                parts.append(pool.submit(_weighted, loss_fn, run, cut.view(s), cut.weight(s), err, call))
            (loss, grads), *rest = [p.result() for p in parts]  # the first share's arrays hold the sum
        except BaseException:                                   # an error, or Ctrl-C: no share draws from
            cut.close()                                         # here on, so the caller may put the
            raise                                               # generator back
        for other_loss, other_grads in rest:
            loss = loss + other_loss
            for k, g in other_grads.items():
                grads[k] += g
        return loss, grads
    return fn


def _warmed(pool, shares):
    """The pool, after each of its threads has warmed its own BLAS buffers (memory.py, point
    2), all at once so that each holds a buffer of its own, with one BLAS thread as in a step.
    For speed only: if that fails (or a thread does not come within WARM_WAIT s), the buffers
    stay cold and training goes on."""
    if memory.warm_blas_on():
        start = threading.Barrier(shares, timeout=WARM_WAIT)
        try:
            with one_blas_thread(shares):
                list(pool.map(lambda _: (start.wait(), memory.warm_product()), range(shares)))
        except Exception:                                    # threading.BrokenBarrierError included
            start.abort()
    return pool


def _weighted(loss_fn, run, draws, weight, err, call):
    """loss_fn on one share under the caller's np.errstate, its loss and gradients times n_s / N
    (in the share's own thread)."""
    with np.errstate(**err, call=call):
        loss, grads = loss_fn(run, draws)
        for g in grads.values():
            g *= weight
        return loss * weight, grads


class _Shares:
    """Cuts each array a loss function draws into row shares: the k-th call of any share is
    answered from the k-th whole draw, made once (by the first share to ask) in the plain order."""

    def __init__(self, draws, shares, n):
        self.draws, self.lock, self.made, self.closed = draws, threading.Lock(), [], False
        edges = [round(i * n / shares) for i in range(shares + 1)]
        self.rows = [slice(a, b) for a, b in zip(edges, edges[1:])]
        self.n = n

    def weight(self, s):
        return (self.rows[s].stop - self.rows[s].start) / self.n

    def get(self, k, make):
        with self.lock:
            if self.closed:
                raise RuntimeError("the minibatch was abandoned (an error or Ctrl-C in another share)")
            if k == len(self.made):
                self.made.append(make())
            return self.made[k]

    def close(self):
        """No draw after this returns (it waits for one in progress), even if Ctrl-C comes again."""
        while True:
            try:
                with self.lock:
                    self.closed = True
                return
            except KeyboardInterrupt:                           # already on the way out: finish closing
                continue

    def view(self, s):
        return _View(self, self.rows[s])


class _View:
    """One share's draws: the same calls as avb_np.draws, answered with the share's rows."""

    def __init__(self, shares, rows):
        self.shares, self.rows, self.calls = shares, rows, 0

    def _next(self, make):
        a = self.shares.get(self.calls, make)
        self.calls += 1
        return a[self.rows]

    def batch(self):
        return self._next(self.shares.draws.batch)

    def normal(self, width):
        return self._next(lambda: self.shares.draws.normal(width))


def one_blas_thread(shares):
    """A context in which the BLAS library runs one thread per call when shares > 1 (the shares
    already keep the cores busy; two pools of BLAS threads would fight over them)."""
    if shares == 1:
        return nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")
