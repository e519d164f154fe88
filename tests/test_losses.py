"""Semantic tests of the losses: brute force, limits at +-1e4, Monte Carlo and closed forms."""
import math

import numpy as np
import pytest

from avb_np import losses

RAISE = dict(over="raise", invalid="raise", divide="raise")   # any overflow/NaN/inf is an error
LOG2 = math.log(2)


# ----------------------------------------------------------------------------- Bernoulli

def test_bernoulli_matches_brute_force():
    """sum_i x log p + (1 - x) log(1 - p) with p = 1 / (1 + e^-l), logits in [-5, 5]; rtol 1e-12
    (the brute force loses ~1e-14 to 1 - p, the stable form nothing)."""
    rng = np.random.default_rng(0)
    x = (rng.random((6, 10)) < 0.5).astype(np.float64)
    l = rng.uniform(-5, 5, (6, 10))
    p = 1 / (1 + np.exp(-l))
    brute = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    logp, dlogits = losses.bernoulli_log_likelihood(x, l)
    np.testing.assert_allclose(logp, brute, rtol=1e-12)
    np.testing.assert_allclose(dlogits, x - p, rtol=1e-12, atol=1e-15)   # d/dl = x - sigmoid(l)


def test_bernoulli_limits():
    """At logits +-1e4 a clipped or naive form overflows; the stable one is exact:
    log p(1 | 1e4) = 0, log p(0 | 1e4) = -1e4, log p(1 | -1e4) = -1e4, log p(0 | -1e4) = 0,
    and the gradient x - sigmoid(l) is exactly 0 or +-1."""
    x = np.array([[1.0], [0.0], [1.0], [0.0]])
    l = np.array([[1e4], [1e4], [-1e4], [-1e4]])
    with np.errstate(**RAISE):
        logp, dlogits = losses.bernoulli_log_likelihood(x, l)
    np.testing.assert_array_equal(logp, [0.0, -1e4, -1e4, 0.0])
    np.testing.assert_array_equal(dlogits[:, 0], [0.0, -1.0, 1.0, 0.0])


# ----------------------------------------------------------------------------- adversary

def test_adversary_loss_values():
    """T = 0 (chance): log 2 per side, 2 log 2 in all; a perfect adversary (T_q = +1e4,
    T_p = -1e4) has loss 0; T_q = -1e4 costs softplus(1e4) = 1e4. Exact to 1 ulp."""
    with np.errstate(**RAISE):
        at_zero = losses.adversary_loss(np.zeros(3), np.zeros(3))
        perfect = losses.adversary_loss(np.full(3, 1e4), np.full(3, -1e4))
        wrong = losses.adversary_loss(np.full(3, -1e4), np.full(3, -1e4))
    assert at_zero[0] == pytest.approx(2 * LOG2, rel=1e-15)
    assert perfect[0] == 0.0
    assert wrong[0] == 1e4
    for loss, dT_q, dT_p in (at_zero, perfect, wrong):
        assert np.isfinite(dT_q).all() and np.isfinite(dT_p).all()
    # Gradients of the batch mean, N = 3: (sigmoid(T_q) - 1) / N and sigmoid(T_p) / N.
    np.testing.assert_allclose(at_zero[1], -0.5 / 3, rtol=1e-15)
    np.testing.assert_allclose(at_zero[2], 0.5 / 3, rtol=1e-15)
    np.testing.assert_array_equal(perfect[1:], 0.0)
    np.testing.assert_array_equal(wrong[1], -1 / 3)


# ----------------------------------------------------------------------------- Gaussian KL

def test_gaussian_kl_zero_at_prior():
    """q = p (mu = 0, log_sigma = 0) gives KL = 0 and zero gradients, exactly."""
    kl, dmu, dls = losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)))
    assert not kl.any() and not dmu.any() and not dls.any()


def test_gaussian_kl_one_dimension_by_hand():
    """mu = 1, sigma = 2: KL = log(1/2) + (sigma^2 + mu^2) / 2 - 1/2 = 2 - log 2 (textbook
    form for two 1-d Gaussians); dKL/dmu = mu = 1, dKL/dlog_sigma = sigma^2 - 1 = 3."""
    kl, dmu, dls = losses.gaussian_kl(np.array([[1.0]]), np.array([[LOG2]]))
    assert kl[0] == pytest.approx(2 - LOG2, rel=1e-15)
    assert dmu[0, 0] == 1.0 and dls[0, 0] == pytest.approx(3.0, rel=1e-15)


def test_gaussian_kl_monte_carlo():
    """KL = E_q[log q(z) - log p(z)], estimated with 200,000 draws z = mu + sigma eps.
    Tolerance 5 Monte Carlo standard errors (std of the samples / sqrt(200,000))."""
    mu, log_sigma = np.array([0.5, -1.0, 0.0]), np.array([-0.3, 0.2, -1.0])
    sigma = np.exp(log_sigma)
    eps = np.random.default_rng(1).standard_normal((200_000, 3))
    z = mu + sigma * eps
    log_q = (-0.5 * eps ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(axis=1)
    log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(axis=1)
    samples = log_q - log_p
    se = samples.std() / math.sqrt(samples.size)
    kl = losses.gaussian_kl(mu[None], log_sigma[None])[0][0]
    assert abs(samples.mean() - kl) <= 5 * se


# ----------------------------------------------------------------------------- log N(z; 0, I)

def test_standard_normal_log_density():
    """Against log prod_k exp(-z_k^2 / 2) / sqrt(2 pi), computed with `math`; rtol 1e-13.
    At z = 0 with K = 2 it is -log(2 pi), and the gradient is -z."""
    z = np.array([[0.0, 0.0], [1.0, -2.0], [0.3, 4.0]])
    logp, dz = losses.standard_normal_log_density(z)
    by_hand = [math.log(math.prod(math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in row))
               for row in z]
    np.testing.assert_allclose(logp, by_hand, rtol=1e-13)
    assert logp[0] == pytest.approx(-math.log(2 * math.pi), rel=1e-15)
    np.testing.assert_array_equal(dz, -z)


def test_logsumexp_matches_brute_force_and_does_not_overflow():
    """logsumexp equals log(sum(exp(a))) where that is finite (to 1e-12 relative), and stays exact
    for entries near 1e4 where exp overflows: logsumexp(a + c) = logsumexp(a) + c."""
    a = np.random.default_rng(0).normal(size=(3, 7))
    assert np.allclose(losses.logsumexp(a, axis=1), np.log(np.exp(a).sum(axis=1)), rtol=1e-12)
    assert np.allclose(losses.logsumexp(a, axis=0), np.log(np.exp(a).sum(axis=0)), rtol=1e-12)
    assert np.allclose(losses.logsumexp(a + 1e4, axis=1), losses.logsumexp(a, axis=1) + 1e4, rtol=1e-12)
