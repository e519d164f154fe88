"""Check hand-written gradients against central finite differences, in float64.

    numerical gradient:  dL/dp_i ~ (L(p + h e_i) - L(p - h e_i)) / (2 h)
    relative error:      |a - n| / max(1e-8, |a| + |n|)      (a analytic, n numerical)

What to expect in float64 with h = 1e-5 and losses of order 1: 1e-11 to 1e-8 for smooth
functions; above 1e-7 means a bug or a kink (ReLU at 0) inside [p - h, p + h]. The error
floor is the rounding of L (~1e-16 |L|, divided by 2h ~ 1e-11 absolute): an entry that is
near 0 by chance (|a| ~ 1e-4) can reach 1e-7 with a correct gradient, which is why the
suite draws its inputs and projections away from 0. In float32 the rounding of L alone
(~1e-7 |L| / 2h ~ 1e-2) swamps the difference, so float32 is refused.

A loss function for the checker takes a dict of named arrays and returns (loss, grads), with
grads keyed by the same names. Inputs such as `x` are checked by putting them in that dict.

    python -m avb_np.gradcheck      # checks every component of the package and prints a table
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

FLOOR = 1e-8  # denominator floor: below it both gradients count as zero
TOL_SMOOTH = 1e-7     # smooth functions: typical errors are 1e-11 to 1e-8
TOL_OBJECTIVE = 1e-6  # whole objectives, along random directions: typical errors 1e-11 to 1e-8


@dataclass
class Case:
    component: str
    loss_fn: Callable     # params -> (loss, grads)
    params: dict          # name -> float64 array, inputs included
    tol: float
    directional: bool = False  # check along one random direction per parameter (large models)


def projected(forward, backward, names, G):
    """Loss L = sum(forward(*params) * G) for a layer whose backward returns grads in `names` order."""
    def loss_fn(params):
        out, cache = forward(*(params[n] for n in names))
        grads = backward(G, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return float(np.sum(out * G)), dict(zip(names, grads))
    return loss_fn


def moderate(rng, shape, lo=0.1, hi=2.5):
    """Random signs times U(lo, hi).

    |x| >= lo keeps a finite difference from straddling a kink at 0 (ReLU); |x| <= hi keeps
    derivatives such as tanh'(x) = 1 - tanh(x)^2 from being so small that the difference's
    rounding noise (~1e-16 |L| / h) is large relative to them.
    """
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def rel_error(a, n):
    """Elementwise |a - n| / max(1e-8, |a| + |n|)."""
    return np.abs(a - n) / np.maximum(FLOOR, np.abs(a) + np.abs(n))


def _require_float64(params):
    for name, p in params.items():
        if not (isinstance(p, np.ndarray) and p.dtype == np.float64):
            raise TypeError(f"gradient checks need float64 NumPy arrays; parameter {name!r} is "
                            f"{type(p).__name__} of dtype {getattr(p, 'dtype', None)}. "
                            "Build the inputs with dtype=np.float64 on the numpy backend.")


def numerical_gradient(loss_fn, params, name, h=1e-5):
    """Central differences of loss_fn(params)[0] with respect to every entry of params[name]."""
    p = params[name]
    grad = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + h
        up = float(loss_fn(params)[0])
        p[i] = old - h
        down = float(loss_fn(params)[0])
        p[i] = old                                    # restore exactly
        grad[i] = (up - down) / (2 * h)
    return grad


def check(loss_fn, params, h=1e-5):
    """Full check: {name: max elementwise relative error} over every entry of every parameter."""
    _require_float64(params)
    _, grads = loss_fn(params)
    return {name: float(rel_error(grads[name], numerical_gradient(loss_fn, params, name, h)).max())
            for name in params}


def check_directional(loss_fn, params, rng, h=1e-5):
    """Random-projection check, two loss evaluations per parameter (for large models).

    For each parameter p and a random unit direction v of p's shape, compare the analytic
    directional derivative <dL/dp, v> with (L(p + h v) - L(p - h v)) / (2 h).
    Returns {name: relative error}.
    """
    _require_float64(params)
    _, grads = loss_fn(params)
    errors = {}
    for name, p in params.items():
        v = rng.standard_normal(p.shape)
        v /= np.linalg.norm(v)
        old = p.copy()
        p += h * v
        up = float(loss_fn(params)[0])
        p[...] = old - h * v
        down = float(loss_fn(params)[0])
        p[...] = old
        analytic = float(np.sum(grads[name] * v))
        errors[name] = float(rel_error(analytic, (up - down) / (2 * h)))
    return errors


def format_table(rows):
    """rows: (component, parameter, relative error, tolerance) -> the printed table."""
    lines = [f"{'component':<44} {'parameter':<16} {'rel. error':>10} {'tolerance':>10}  result",
             "-" * 92]
    for comp, name, err, tol in rows:
        lines.append(f"{comp:<44} {name:<16} {err:>10.2e} {tol:>10.0e}  "
                     f"{'pass' if err <= tol else 'FAIL'}")
    return "\n".join(lines)
