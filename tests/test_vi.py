"""Variational inference: the Gaussian baselines against a
Gaussian target's exact answers, and short AVB runs against the exact KL of a 2-d target."""
import numpy as np
import pytest

from avb_np import eight_schools, guard, targets, vi, vi_objectives
from avb_np.vi_config import VIConfig
from avb_np.vi_objectives import gaussian_loss

# The gradient checks of every VI objective and target run in tests/test_gradients.py (the
# suite of `python -m avb_np.gradcheck` includes vi_objectives' and the targets' cases).


# ----------------------------------------------------------------------------- a Gaussian target

M = np.array([1.0, -2.0, 0.5])
SIGMA = np.array([[2.0, 0.8, -0.3], [0.8, 1.0, 0.2], [-0.3, 0.2, 0.5]])
LAMBDA = np.linalg.inv(SIGMA)                                  # precision


def gaussian_log_density(z):
    """log p~(z) = -1/2 (z - m)^T Lambda (z - m); Z = sqrt(det(2 pi Sigma))."""
    d = z - M
    return -0.5 * np.einsum("ni,ij,nj->n", d, LAMBDA, d), -d @ LAMBDA


LOG_Z = 0.5 * np.linalg.slogdet(2 * np.pi * SIGMA)[1]


def exact_params(method):
    """q = p (full-rank), or the mean-field optimum: mean m, variances 1 / Lambda_ii."""
    if method == "fullrank":
        C = np.linalg.cholesky(SIGMA)
        return {"q.mu": M.copy(), "q.L": np.tril(C, -1), "q.log_diag": np.log(np.diag(C))}
    return {"q.mu": M.copy(), "q.log_sigma": -0.5 * np.log(np.diag(LAMBDA))}


def whitened(rng, N, D):
    """eps with sample mean exactly 0 and sample covariance exactly I: on a quadratic target the
    sample loss then equals its expectation, so the exact optimum has gradient exactly zero."""
    e = rng.standard_normal((N, D))
    e -= e.mean(axis=0)
    return e @ np.linalg.inv(np.linalg.cholesky(e.T @ e / N)).T


def test_elbo_equals_log_z_when_q_is_p():
    """With q = p, log p~(z) - log q(z) = log Z for every z, so vi.elbo (which uses log q of each
    draw) is log Z to 1e-10 from any draws. The training loss uses the analytic entropy instead,
    which equals -log Z on whitened noise (to 1e-10) and only on average otherwise."""
    rng, params = np.random.default_rng(0), exact_params("fullrank")
    loss, _ = gaussian_loss(params, whitened(rng, 16, 3), gaussian_log_density)
    assert abs(loss + LOG_Z) < 1e-10
    fit = vi.Fit("fullrank", 3, VIConfig(), {}, params)                   # the parameters alone
    assert abs(vi.elbo(fit, gaussian_log_density, 1000, rng) - LOG_Z) < 1e-10


@pytest.mark.parametrize("method", ["fullrank", "meanfield"])
def test_exact_optimum_has_zero_gradient(method):
    """At q = p (full-rank) and at the mean-field optimum (m, 1 / Lambda_ii), the gradient of the
    negative ELBO on whitened noise is zero to 1e-10; moving m by 0.1 makes it ~0.1 (so the test
    would see a wrong formula)."""
    eps = whitened(np.random.default_rng(1), 64, 3)
    params = exact_params(method)
    _, grads = gaussian_loss(params, eps, gaussian_log_density)
    assert max(np.abs(g).max() for g in grads.values()) < 1e-10
    params["q.mu"] += 0.1
    assert np.abs(gaussian_loss(params, eps, gaussian_log_density)[1]["q.mu"]).max() > 0.01


@pytest.mark.parametrize("method", ["fullrank", "meanfield"])
def test_training_recovers_the_gaussian_answers(method):
    """vi.fit (2000 Adam steps, batch 1024) ends within the optimiser's noise of the optimum:
    full-rank recovers m to 0.05 and Sigma to 0.15 entrywise (largest entry 2.0); mean-field
    recovers m to 0.05 and the mean-field variances 1 / Lambda_ii (not Sigma_ii: 0.47 vs 2.0 for
    the first) to 15%. Over seeds 0-5 the worst errors seen were 0.014, 0.078 and 8%."""
    cfg = VIConfig(steps=2000, batch_size=1024, log_every=0, dtype="float64")
    fit = vi.fit(gaussian_log_density, 3, method, cfg, np.random.default_rng(2))
    np.testing.assert_allclose(fit.params["q.mu"], M, atol=0.05)
    if method == "fullrank":
        L = np.tril(fit.params["q.L"], -1) + np.diag(np.exp(fit.params["q.log_diag"]))
        np.testing.assert_allclose(L @ L.T, SIGMA, atol=0.15)
    else:
        np.testing.assert_allclose(np.exp(2 * fit.params["q.log_sigma"]), 1 / np.diag(LAMBDA), rtol=0.15)


# ----------------------------------------------------------------------------- AVB

@pytest.mark.parametrize("method", ["avb", "avb-ac"])
def test_short_avb_run_improves_the_exact_kl(method):
    """300 iterations of small networks on the banana: the binned KL(q || p) (exact density on a
    grid) falls by at least half from the initial sampler's (1.2 to 3.6 nats over seeds 0-4,
    0.13 to 0.35 after), and the ELBO estimate is within 0.5 nats of log Z (observed within 0.4)."""
    t = targets.banana()
    cfg = VIConfig(eps_dim=4, gen_hidden=(32, 32), adv_width=32, adv_blocks=1, batch_size=128,
                      steps=300, lr_primal=3e-3, lr_dual=6e-3, log_every=0)
    rng = np.random.default_rng(0)
    before = vi.Fit(method, 2, cfg, *vi.build_q(method, 2, cfg, np.random.default_rng(0)))
    kl0 = targets.binned_kl(t, vi.samples(before, 50_000, rng))
    fit = vi.fit(t.log_density, 2, method, cfg, np.random.default_rng(0))
    kl1 = targets.binned_kl(t, vi.samples(fit, 50_000, rng))
    assert kl1 < 0.5 * kl0, (kl0, kl1)
    assert abs(vi.elbo(fit, t.log_density, 20_000, rng) - t.log_Z) < 0.5


def test_non_finite_target_is_refused_before_training():
    """A target that returns NaN makes the very first loss NaN: the guard refuses to start, saying
    the state does not train from iteration 0 and pointing at the target."""
    def nan_density(z):
        return np.full(len(z), np.nan), np.zeros_like(z)
    cfg = VIConfig(gen_hidden=(8,), adv_width=8, adv_blocks=0, steps=3, log_every=0)
    for method in ("avb-ac", "fullrank"):
        with pytest.raises(ValueError, match=r"iteration 0: the primal loss became nan.*target's log density"):
            vi.fit(nan_density, 2, method, cfg, np.random.default_rng(0))


@pytest.mark.parametrize("method, field", [("avb-ac", "lr_primal"), ("avb", "lr_dual"), ("fullrank", "lr_gaussian")])
def test_divergence_names_the_learning_rate_to_lower(method, field):
    """An absurd learning rate (1e8) makes the banana's losses explode within a few iterations;
    the guard stops training with DivergenceError naming the method, the VIConfig field to lower
    and a lower value for it (the run restored to the last sane iteration)."""
    cfg = VIConfig(gen_hidden=(8,), adv_width=8, adv_blocks=0, steps=50, log_every=0, **{field: 1e8})
    with pytest.raises(guard.DivergenceError, match=rf"{method.upper()} training diverged.*VIConfig\.{field} = ") as info:
        vi.fit(targets.banana().log_density, 2, method, cfg, np.random.default_rng(0))
    assert info.value.lrs == [field] and info.value.lower[field] < 1e8


def test_log_density_of_the_wrong_shape_is_refused():
    """A log density that returns logp of shape (N, 1) instead of (N,) is refused before training,
    with the expected and the given shapes in the message."""
    def column(z):
        return -0.5 * (z * z).sum(axis=1, keepdims=True), -z
    expected = r"must return \(logp: \(3,\), dlogp_dz: \(3, 2\)\), got shapes \(\(3, 1\), \(3, 2\)\)"
    with pytest.raises(ValueError, match=expected):
        vi.fit(column, 2, "meanfield", VIConfig(log_every=0), np.random.default_rng(0))


def test_ring_gradient_at_its_centre_is_zero():
    """At z = 0 the ring's gradient -(r - r0) / w^2 z / r is 0 / 0; it is defined as 0 there,
    finite in float32 and float64 (the sampler can land on 0 exactly only by chance, but then
    a NaN would stop training)."""
    for dtype in (np.float32, np.float64):
        logp, dz = targets.ring().log_density(np.zeros((2, 2), dtype=dtype))
        assert np.all(np.isfinite(logp)) and np.all(dz == 0)


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match=r"method must be one of .*'avb-ac'.*got 'vae'"):
        vi.build_q("vae", 2, VIConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"method must be one of .*got 'avb_ac'"):   # one spelling
        vi.fit(targets.banana().log_density, 2, "avb_ac", VIConfig(log_every=0), np.random.default_rng(0))


def test_gradcheck_cases_are_suite_cases():
    """gradcheck_cases returns avb_np.gradcheck.Case objects covering all four objectives
    (both contrasts) and every target, so `python -m avb_np.gradcheck` can list them."""
    from avb_np.gradcheck import Case
    rng = np.random.default_rng(0)
    CASES = vi_objectives.gradcheck_cases(rng) + targets.gradcheck_cases(rng) + eight_schools.gradcheck_cases(rng)
    assert all(isinstance(c, Case) for c in CASES)
    names = " ".join(c.component for c in CASES)
    for part in ("VI primal (fixed r)", "VI primal (AC)", "VI dual (fixed r)", "VI dual (AC)", "mean-field",
                 "full-rank", "banana", "mixture", "ring", "eight_schools ", "eight_schools_mirror"):
        assert part in names + " ", part
