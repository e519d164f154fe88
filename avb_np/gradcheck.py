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
import numpy as np

FLOOR = 1e-8  # denominator floor: below it both gradients count as zero


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


def main(argv=None):
    """Check every component listed in avb_np.gradcheck_suite; exit status 1 if any fails."""
    import argparse

    from .gradcheck_suite import cases
    parser = argparse.ArgumentParser(prog="python -m avb_np.gradcheck", description=(
        "Check the gradient of every layer, loss and objective of avb_np against central "
        "finite differences in float64 and print one row per parameter."))
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default 0)")
    args = parser.parse_args(argv)
    rows = []
    rng = np.random.default_rng(args.seed)
    for case in cases(rng):
        if case.directional:
            errors, label = check_directional(case.loss_fn, case.params, rng), " (directional)"
        else:
            errors, label = check(case.loss_fn, case.params), ""
        rows.extend((case.component + label, name, err, case.tol) for name, err in errors.items())
    print(format_table(rows))
    failed = sum(err > tol for _, _, err, tol in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
