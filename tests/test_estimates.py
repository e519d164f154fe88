"""Estimates that count every sample: AIS whose answer does not hang on the encoder, the per-image
flags, and KLs that keep the mass outside any box.

Ground truths: quadrature for a 2-d latent, closed-form KLs between Gaussians, and the exact
Monte Carlo KL where log q is known. Stochastic comparisons state their standard errors.
"""
import math

import numpy as np
import pytest

from avb_np import ais, diagnostics, evaluation, kl_estimates, likelihood, targets, vi
from avb_np.vi_config import VIConfig
from common import digits_vae


@pytest.fixture(scope="module")
def digits():
    """common.digits_vae at 600 iterations and 16 test images, and a Gaussian fitted to 256
    encoder samples of each."""
    run, params, x, exact = digits_vae(600, 16)
    r = likelihood.gaussian_from_samples(evaluation.sample_q(run, x, 256, np.random.default_rng(0)))
    return run, params, x, exact, r


def wrong(r, every=2, shift=2.5, std=0.05):
    """The proposal r with every `every`-th image's Gaussian moved by `shift` in z1 and made narrow
    (std `std`): a confident encoder in the wrong place, as AVB's can be on held-out images."""
    mean, sd = r.mean.copy(), r.std.copy()
    mean[::every, 0] += shift
    sd[::every] = std
    return likelihood.Gaussian(mean, sd, r.prior_weight)


def test_stratified_starts_keep_the_weights_unbiased(digits):
    """AIS with a fixed step (target_accept=None) and chains started a quarter from the prior, the
    rest from a wrong Gaussian, is exactly unbiased for p(x): the mean over 400 independent runs of
    one image of p^ = mean_c w_c (not its log) equals exp(log p(x)) within 4 standard errors of
    that mean, with 1 temperature (importance sampling from the stratified mixture) and with 5."""
    run, params, x, exact, r = digits
    k = 1                                                    # an image whose proposal is moved
    bad = wrong(r)
    rows = np.repeat(x[k:k + 1], 400, axis=0)
    many = likelihood.Gaussian(np.repeat(bad.mean[k:k + 1], 400, 0), np.repeat(bad.std[k:k + 1], 400, 0))
    for T in (1, 5):
        est = ais.ais(run.nets, params, rows, many, np.random.default_rng(T), n_temps=T, n_chains=4,
                      target_accept=None, step_size=0.3, prior_share=0.25)
        p = np.exp(est.log_px - exact[k])                   # p^ / p(x), mean 1 if unbiased
        assert abs(p.mean() - 1) < 4 * p.std() / math.sqrt(len(p)), (T, p.mean(), p.std())


def test_ais_matches_quadrature_when_the_encoder_is_wrong(digits):
    """Half the images get a confident wrong proposal (moved 2.5 in z1, std 0.05). AIS at the
    scoring settings' shape (100 temperatures x 32 chains, the search and the tuned steps)
    still matches quadrature: the mean within 3 s.e. + 0.02, every image within 4 s.e. + 0.05,
    and the search moved every wrong proposal (the 'misses' flag) and none of the others. Without
    the pilots (target_accept=None: r as given, a fixed step) the same images come out far too
    low (the mean more than 1 nat) and the check would fail."""
    run, params, x, exact, r = digits
    bad = wrong(r)
    rng = np.random.default_rng(3)
    est = ais.ais(run.nets, params, x, bad, rng, n_temps=100, n_chains=32, n_leapfrog=5)
    assert abs(est.mean - exact.mean()) <= 3 * est.mean_stderr + 0.02, (est.mean, exact.mean(), est.mean_stderr)
    err = np.abs(est.log_px - exact)
    assert np.all(err <= 4 * est.stderr + 0.05), (err, est.stderr)
    miss = diagnostics.misses(est)
    assert miss[::2].all() and not miss[1::2].any(), est.info["moved"]
    old = ais.ais(run.nets, params, x, bad, rng, n_temps=100, n_chains=32, n_leapfrog=5, target_accept=None)
    assert exact.mean() - old.mean > 1.0, (old.mean, exact.mean())


def test_flags_by_hand():
    """Hand-made estimates: ESS 1 of 8 is low, ESS 8 of 8 is not; IS that disagrees with AIS by
    1 nat at s.e. 0.01 is flagged; 'misses' reads info['moved'] against MISS_STDS, and IS is
    flagged where AIS's search moved the proposal."""
    moved = likelihood.Estimate(np.zeros(2), np.zeros(2), np.ones(2), np.zeros((2, 1)), {"moved": np.array([5.0, 1.0])})
    np.testing.assert_array_equal(diagnostics.misses(moved), [True, False])
    np.testing.assert_array_equal(diagnostics.is_flags(moved, moved)["misses"], [True, False])
    assert not diagnostics.misses(likelihood.estimate(np.zeros((2, 3)))).any()
    w = likelihood.estimate(np.array([[0.0] + [-50.0] * 7, [0.0] * 8]))
    np.testing.assert_array_equal(diagnostics.low_ess(w), [True, False])
    a = likelihood.Estimate(np.array([-10.0]), np.array([0.01]), np.array([8.0]), np.zeros((1, 8)))
    b = likelihood.Estimate(np.array([-11.0]), np.array([0.01]), np.array([8.0]), np.zeros((1, 8)))
    assert diagnostics.disagree(a, b).all() and not diagnostics.disagree(a, a).any()


# ----------------------------------------------------------------------------- KLs

def test_monte_carlo_kl_of_gaussians():
    """KL(N(m, I) || N(0, I)) = ||m||^2 / 2: exact (0, s.e. 0) at m = 0, and within 4 s.e. at
    m = (1, -2) (2.5 nats) from 20,000 draws, with p~ = exp(-||z||^2 / 2), log Z = log 2 pi."""
    rng = np.random.default_rng(0)
    p = lambda z: (-0.5 * (z * z).sum(1), -z)               # noqa: E731
    for m, kl in ((np.zeros(2), 0.0), (np.array([1.0, -2.0]), 2.5)):
        eps = rng.standard_normal((20_000, 2))
        params = {"q.mu": m, "q.log_sigma": np.zeros(2)}
        est, se = kl_estimates.gaussian_kl(params, p, math.log(2 * math.pi), eps)
        assert abs(est - kl) <= 4 * se + 1e-12, (est, kl, se)


def test_binned_kl_counts_samples_outside_the_box():
    """A Gaussian q = N(0, 2^2 I) against the ring: 5% of its samples fall outside the box
    [-4, 4]^2. The binned KL (200,000 samples) equals the exact Monte Carlo KL within 0.05
    (it dropped them before, and came out ~0.7 low); q moved far out of the box scores a KL
    above 10 nats (it scored near 0 before), and NaN samples are refused."""
    t, rng = targets.ring(), np.random.default_rng(1)
    eps = rng.standard_normal((200_000, 2))
    z = 2.0 * eps
    assert targets.fraction_outside(t, z) > 0.04
    exact, se = kl_estimates.gaussian_kl({"q.mu": np.zeros(2), "q.log_sigma": np.full(2, math.log(2.0))},
                                         t.log_density, t.log_Z, eps)
    assert abs(targets.binned_kl(t, z) - exact) < 0.05 + 4 * se, (targets.binned_kl(t, z), exact)
    assert targets.binned_kl(t, z[:20_000] + 50.0) > 10
    z[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        targets.binned_kl(t, z)


def test_compare_uses_the_exact_kl_and_refuses_a_diverged_q():
    """vi.compare of a mean-field Gaussian fit on the ring reports the exact Monte Carlo KL (and
    the binned one within 0.05 of it); with NaN in its parameters it raises a clear ValueError."""
    t, rng = targets.ring(), np.random.default_rng(2)
    cfg = VIConfig(steps=1)
    fit = vi.Fit("meanfield", 2, cfg, {}, {"q.mu": np.array([0.3, 0.0]), "q.log_sigma": np.full(2, 0.5)})
    r = vi.compare(fit, t, rng, n_kl=50_000, n_elbo=1000)
    assert r["kl_method"] == "exact" and abs(r["kl"] - r["kl_binned"]) < 0.05 + 4 * r["kl_se"], r
    assert abs(r["kl"] - (t.log_Z - r["elbo"])) < 5 * r["kl_se"] + 0.1
    fit.params["q.mu"][0] = np.nan
    with pytest.raises(ValueError, match="diverged"):
        vi.compare(fit, t, rng, n_kl=1000, n_elbo=100)
