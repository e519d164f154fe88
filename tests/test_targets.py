"""The VI targets' exact answers, each checked a second, independent way.

Tolerances: grid quadrature (midpoint rule, 800 x 800 cells over a box holding all but ~1e-10 of
the mass) agrees with the closed forms to 1e-4 in log Z and 1e-3 in moments; Monte Carlo answers
agree within 4 standard errors (so a correct answer fails about once in 16,000 runs).
"""
import math

import numpy as np
import pytest

from avb_np import eight_schools, targets
from avb_np.losses import logsumexp


def grid_answers(t, n=800):
    """log Z, mean and covariance of a 2-d target by the midpoint rule on t.box (independent of t.exact)."""
    lo1, hi1, lo2, hi2 = t.box
    a = lo1 + (hi1 - lo1) * (np.arange(n) + 0.5) / n
    b = lo2 + (hi2 - lo2) * (np.arange(n) + 0.5) / n
    z = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)
    logp = t.log_density(z)[0] + math.log((hi1 - lo1) * (hi2 - lo2) / n ** 2)
    log_Z = logsumexp(logp, axis=0)
    w = np.exp(logp - log_Z)
    mean = w @ z
    return log_Z, mean, (z - mean).T @ ((z - mean) * w[:, None])


def assert_within_se(samples, exact, k=4.0):
    """Each coordinate's sample mean lies within k standard errors of `exact`."""
    se = samples.std(axis=0) / math.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - exact) <= k * se + 1e-12), (samples.mean(axis=0), exact, se)


WIDE = {"banana": dict(box=(-7.0, 7.0, -4.0, 25.0)), "mixture": dict(box=(-7.0, 8.0, -7.0, 8.0)),
        "ring": dict(box=(-5.0, 5.0, -5.0, 5.0))}


@pytest.mark.parametrize("name", list(WIDE))
def test_2d_closed_forms_match_quadrature(name):
    """log Z (1e-4), mean and covariance (1e-3) of banana and mixture from their closed forms, and
    the ring's from its 1-d radial quadrature, equal 2-d grid quadrature over a box wide enough
    that the mass outside is below 1e-10."""
    t = getattr(targets, name)(**WIDE[name])
    log_Z, mean, cov = grid_answers(t)
    assert abs(log_Z - t.log_Z) < 1e-4
    np.testing.assert_allclose(mean, t.exact["mean"], atol=1e-3)
    np.testing.assert_allclose(cov, t.exact["cov"], atol=1e-3)


def test_ring_closed_form_matches_radial_quadrature():
    """The ring's log Z: closed form with erf against the trapezoid rule in r, to 1e-9."""
    for r0, w in ((2.5, 0.3), (1.0, 0.8), (0.3, 1.0)):     # the last two reach r = 0, where the erf term matters
        quad = math.log(2 * math.pi * targets.ring_radial_integral(r0, w, 1))
        assert abs(targets.ring_log_Z_closed_form(r0, w) - quad) < 1e-9


def test_2d_moments_match_exact_samples():
    """Banana (sampled as z1 ~ N(0, s1^2), z2 = b (z1^2 - s1^2) + s2 N(0, 1)) and mixture
    (mixture_sample): the sample mean and the sample second moments lie within 4 standard
    errors of the closed-form moments."""
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal(200_000)
    z = np.stack([z1, 0.5 * (z1 ** 2 - 1) + 0.35 * rng.standard_normal(len(z1))], axis=1)
    for t, z in ((targets.banana(), z), (targets.mixture(), targets.mixture_sample(rng, 200_000))):
        mean, cov = np.array(t.exact["mean"]), np.array(t.exact["cov"])
        assert_within_se(z, mean)
        d = z - mean
        assert_within_se(np.stack([d[:, 0] ** 2, d[:, 1] ** 2, d[:, 0] * d[:, 1]], axis=1),
                         np.array([cov[0, 0], cov[1, 1], cov[0, 1]]))


@pytest.mark.parametrize("make", [targets.banana, targets.mixture, targets.ring, eight_schools.eight_schools,
                                  eight_schools.eight_schools_mirror])
def test_marginal_grid_holds_the_mass(make):
    """The exact (z1, z2) marginal summed over the 400 x 400 grid of each target's box is 1 to
    within 1e-3 (the mass outside the box plus the midpoint rule's error): the marginals are
    normalised with the right log Z, and the boxes hold the posterior."""
    log_mass, _, _ = targets.grid_log_mass(make(), 400)
    assert abs(math.exp(logsumexp(log_mass.reshape(-1), axis=0)) - 1) < 1e-3


def test_binned_kl_of_known_distributions():
    """Exact mixture samples: binned KL(q || p) ~ 0 (observed 0.02: the plug-in bias of ~4k
    occupied bins over 100k samples), below 0.04. Samples of the heavier bump alone: KL = -log w_2
    = log(1.17 / 0.81) = 0.368 for bumps this far apart (the overlap changes it by < 1e-6),
    recovered to 0.03 (the bias again, now of ~2.5k bins)."""
    rng = np.random.default_rng(1)
    t = targets.mixture()
    assert targets.binned_kl(t, targets.mixture_sample(rng, 100_000)) < 0.04
    heavy = np.array([2.0, 2.0]) + 0.9 * rng.standard_normal((100_000, 2))
    assert abs(targets.binned_kl(t, heavy) - math.log(1.17 / 0.81)) < 0.03
    assert targets.fraction_outside(t, heavy) < 1e-3 and targets.fraction_outside(t, heavy + 10) == 1.0


# ----------------------------------------------------------------------------- Eight Schools

def test_schools_evidence_by_prior_importance_sampling():
    """log p(y) of the classic model: 1-d quadrature over log tau against importance sampling of
    the full 10-d log density (with its log tau Jacobian) from the prior, within 4 standard errors
    (delta method, SE ~ 0.006 with 100k draws; the ESS is ~23%). The posterior means of mu and tau
    by self-normalised importance sampling agree within 4 standard errors too."""
    t, rng, S = eight_schools.eight_schools(), np.random.default_rng(2), 100_000
    mu, tau = 5 * rng.standard_normal(S), 5 * np.abs(np.tan(np.pi * (rng.random(S) - 0.5)))   # HalfCauchy(5)
    eta = rng.standard_normal((S, 8))
    z = np.column_stack([mu, np.log(tau), eta])
    log_prior = (-0.5 * (mu / 5) ** 2 - 0.5 * math.log(2 * math.pi * 25) + math.log(2 / (5 * math.pi))
                 - np.log1p((tau / 5) ** 2) + np.log(tau) - 0.5 * (eta ** 2).sum(1) - 4 * math.log(2 * math.pi))
    log_w = t.log_density(z)[0] - log_prior                    # = log p(y | mu, tau, eta)
    w = np.exp(log_w - log_w.max())
    estimate = log_w.max() + math.log(w.mean())
    assert abs(estimate - t.log_Z) < 4 * w.std() / w.mean() / math.sqrt(S)
    w /= w.sum()
    for f, key in ((mu, "mu_mean"), (tau, "tau_mean")):
        m = w @ f
        assert abs(m - t.exact[key]) < 4 * math.sqrt(np.sum(w * w * (f - m) ** 2)), key


def test_mirror_by_tau_importance_sampling():
    """The mirror variant: log p(y), E|tau| and E mu by importance sampling tau from its N(0, 1)
    prior with weights p(y | tau) (closed form), against the quadrature, within 4 standard errors;
    and P(tau < 0 | y) = 1/2, E tau = 0 exactly (to 1e-12) by the symmetry of the grid."""
    t, rng, S = eight_schools.eight_schools_mirror(), np.random.default_rng(3), 200_000
    tau = rng.standard_normal(S)
    ll, m_mu, _ = eight_schools.log_lik_given_tau(tau, eight_schools.Y_MIRROR, eight_schools.SIGMA_MIRROR, 1.0, 1.0)
    w = np.exp(ll - ll.max())
    assert abs(ll.max() + math.log(w.mean()) - t.log_Z) < 4 * w.std() / w.mean() / math.sqrt(S)
    w /= w.sum()
    for f, key in ((np.abs(tau), "abs_tau_mean"), (m_mu, "mu_mean")):
        m = w @ f
        assert abs(m - t.exact[key]) < 4 * math.sqrt(np.sum(w * w * (f - m) ** 2)), key
    assert abs(t.exact["p_tau_negative"] - 0.5) < 1e-12 and abs(t.exact["tau_mean"]) < 1e-12


@pytest.mark.parametrize("make", [eight_schools.eight_schools, eight_schools.eight_schools_mirror])
def test_schools_density_integrates_to_the_tau_marginal(make):
    """At fixed tau the 10-d log density is exactly quadratic in (mu, eta), so its integral over
    those 9 coordinates is exp(f(x*)) (2 pi)^(9/2) det(-H)^(-1/2) at the mode x*, with the Hessian
    H taken by central differences of the hand-written gradient (exact for a quadratic up to
    rounding). It must equal log p(y | tau) + log p(t) from the 1-d formulas, to 1e-6."""
    t = make()
    log_tau = t.labels[1] == "log tau"
    y, sigma, s = ((eight_schools.Y, eight_schools.SIGMA, (5.0, 1.0, 5.0)) if log_tau
                   else (eight_schools.Y_MIRROR, eight_schools.SIGMA_MIRROR, (1.0, 1.0, 1.0)))
    nodes, _, log_node = eight_schools.tau_grid(log_tau, s[2])  # t, tau, log p(t) + log(step)
    for i in (len(nodes) // 3, len(nodes) // 2 + 7, 2 * len(nodes) // 3):
        tt = nodes[i]

        def f(x):                                              # x: (9,) = (mu, eta) -> log density, gradient
            lp, g = t.log_density(np.concatenate([x[:1], [tt], x[1:]])[None])
            return lp[0], np.delete(g[0], 1)
        x0, h = np.zeros(9), 1e-3
        H = np.stack([(f(x0 + h * e)[1] - f(x0 - h * e)[1]) / (2 * h) for e in np.eye(9)])
        x_star = x0 - np.linalg.solve(H, f(x0)[1])             # Newton's step lands on the mode
        integral = f(x_star)[0] + 4.5 * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(-H)[1]
        tau = math.exp(tt) if log_tau else tt
        ll = eight_schools.log_lik_given_tau(np.array([tau]), y, sigma, s[0], s[1])[0][0]
        step = 0.005 if log_tau else 0.002
        assert abs(integral - (ll + log_node[i] - math.log(step))) < 1e-6


@pytest.mark.parametrize("make, words", [
    (lambda: targets.ring(w=0), ["w must be", "got 0"]),
    (lambda: targets.ring(r0=float("nan")), ["r0"]),
    (lambda: targets.banana(s2=-1.0), ["s2 must be a positive number"]),
    (lambda: targets.mixture(scales=(0.0, 1.0)), ["scales positive"]),
    (lambda: targets.mixture(means=((0.0, 0.0),), scales=(1.0, 2.0)), ["K points in 2-d and scales K numbers"]),
    (lambda: targets.banana(box=(1.0, 0.0, 0.0, 1.0)), ["lo < hi"]),
])
def test_bad_target_parameters_are_refused(make, words):
    """A target whose exact answers would be NaN or meaningless (ring of width 0, a negative
    scale, an empty box) is refused when it is made, naming the parameter."""
    with pytest.raises(ValueError) as info:
        make()
    assert all(w in str(info.value) for w in words), str(info.value)
