"""Log-likelihood estimators (importance sampling, AIS forward and reverse) against exact answers.

Ground truths: quadrature for 2-d latents (avb_np.evaluation), a brute-force Monte Carlo sum
written out with plain NumPy, normalisation over all 16 images of the toy's 4 pixels, and the
bidirectional bracket (forward AIS <= log p(x) <= reverse AIS) on data simulated from the model.
Stochastic comparisons use 3 standard errors (s.e. from the weights, delta method) plus a small
absolute slack for the estimators' own bias and the quadrature's error, each stated below.
"""
import itertools
import math

import numpy as np
import pytest

from avb_np import ais, backend, data, evaluation, gradcheck, likelihood, losses, models, network, quadrature, training
from avb_np.config import Config
from avb_np.layers import sigmoid
from common import digits_vae, tiny, trained


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", params=["avb", "vae"])
def toy(request):
    """A toy run trained 200 iterations, its float64 parameters and the exact log p(x) of the 4 points."""
    run = trained(tiny(), request.param, 200)
    params = backend.host_params(run.params)
    return run, params, quadrature.log_likelihood_per_point(run.nets, params, data.toy_data())


@pytest.fixture(scope="module")
def digits():
    """common.digits_vae at 1,000 iterations and 20 test images."""
    return digits_vae(1000, 20)


# ----------------------------------------------------------------------------- gradients, formulas

# The gradient checks of log_joint and the proposal's log density run in tests/test_gradients.py
# (likelihood.gradcheck_cases is part of `python -m avb_np.gradcheck`).


def test_a_missing_prior_gradient_is_caught(monkeypatch):
    """With the prior's gradient -z dropped (log p(z) itself kept), log_joint's check shows a
    relative error above 1e-3: the check sees the prior's part of HMC's force."""
    density = losses.standard_normal_log_density
    monkeypatch.setattr(losses, "standard_normal_log_density", lambda z: (density(z)[0], 0 * z))
    case = likelihood.gradcheck_cases(np.random.default_rng(0))[0]
    assert case.component == "log_joint (z)"
    assert max(gradcheck.check(case.loss_fn, case.params).values()) > 1e-3


def test_estimate_formulas_on_hand_made_weights():
    """w = (1, 3): log p = log 2, s.e. = sd(w) / (sqrt(2) mean w) = sqrt(2) / (2 sqrt(2)) = 0.5,
    ESS = (1 + 3)^2 / (1 + 9) = 1.6. Equal weights: s.e. 0, ESS = S. One weight: ESS 1. Shifting
    every log weight by 1000 changes log p by 1000 and nothing else (no overflow). Exact to 1e-12."""
    est = likelihood.estimate(np.log([[1.0, 3.0], [5.0, 5.0]]))
    np.testing.assert_allclose(est.log_px, [math.log(2), math.log(5)], rtol=1e-12)
    np.testing.assert_allclose(est.stderr, [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(est.ess, [1.6, 2.0], rtol=1e-12)
    assert abs(est.mean_stderr - 0.25) < 1e-12                     # sqrt(0.5^2 + 0) / 2
    shifted = likelihood.estimate(np.log([[1.0, 3.0]]) + 1000.0)
    np.testing.assert_allclose(shifted.log_px, math.log(2) + 1000.0, rtol=1e-12)
    np.testing.assert_allclose([shifted.stderr[0], shifted.ess[0]], [0.5, 1.6], rtol=1e-12)
    one = likelihood.estimate(np.array([[0.0, -np.inf, -np.inf, -np.inf]]))      # w = (1, 0, 0, 0)
    np.testing.assert_allclose([one.ess[0], one.stderr[0]], [1.0, 1.0], rtol=1e-12)  # sd(4,0,0,0)/4 = 2/2
    rev = likelihood.estimate(np.log([[1.0, 3.0]]), reverse=True)  # weights estimate 1 / p(x)
    np.testing.assert_allclose(rev.log_px, -math.log(2), rtol=1e-12)


def test_importance_sampling_equals_brute_force():
    """For a tiny random decoder, IS with the prior and with a shifted Gaussian equals the same
    sum written in plain NumPy from the same draws: p(x|z) as a product of Bernoulli
    probabilities, the densities from their textbook formulas, mean, log; s.e. from np.std
    (ddof 1) and ESS from the weights themselves. Agreement to 1e-9 relative."""
    rng = np.random.default_rng(3)
    nets = {"dec": network.mlp("dec", [3, 5, 6], "tanh", out_gain=2.0)}
    params = network.init_params(nets["dec"], rng, np, np.float64)
    x = (rng.random((2, 6)) < 0.5).astype(float)                    # K = 2 images of 6 pixels
    S, gauss = 500, likelihood.Gaussian(rng.standard_normal((2, 3)), rng.uniform(0.5, 2, (2, 3)))
    for proposal in (None, gauss):
        est = likelihood.importance_sampling(nets, params, x, proposal, S, np.random.default_rng(9))
        eps = np.random.default_rng(9).standard_normal((2 * S, 3)).reshape(2, S, 3)   # the same draws
        m, s = (np.zeros((2, 3)), np.ones((2, 3))) if proposal is None else (gauss.mean, gauss.std)
        for k in range(2):
            z = m[k] + s[k] * eps[k]                                  # (S, 3)
            h = np.tanh(z @ params["dec.0.W"] + params["dec.0.b"])                    # (S, 5)
            prob = sigmoid(h @ params["dec.1.W"] + params["dec.1.b"])                 # (S, 6)
            lik = np.prod(np.where(x[k] == 1, prob, 1 - prob), axis=1)               # p(x|z): (S,)
            prior = np.exp(-0.5 * (z * z).sum(1)) / (2 * np.pi) ** 1.5
            r = np.exp(-0.5 * (((z - m[k]) / s[k]) ** 2).sum(1)) / ((2 * np.pi) ** 1.5 * s[k].prod())
            w = lik * prior / r
            np.testing.assert_allclose(est.log_px[k], np.log(w.mean()), rtol=1e-9)
            np.testing.assert_allclose(est.stderr[k], w.std(ddof=1) / (math.sqrt(S) * w.mean()), rtol=1e-9)
            np.testing.assert_allclose(est.ess[k], w.sum() ** 2 / (w * w).sum(), rtol=1e-9)


def test_chunked_passes_give_the_same_numbers(monkeypatch):
    """With passes of 5 rows instead of thousands, IS draws the same stream of eps in pieces and
    returns the same log weights (to 1e-12), and AIS, which then takes one data point per batch,
    equals AIS run point by point with the same generator: the bookkeeping of batches is exact."""
    run = trained(tiny(), "vae", 0)
    params, x = backend.host_params(run.params), data.toy_data()
    whole = likelihood.importance_sampling(run.nets, params, x, None, 7, np.random.default_rng(4))
    per_point = [ais.ais(run.nets, params, x[k:k + 1], None, rng, n_temps=5, n_chains=3)
                 for rng in [np.random.default_rng(5)] for k in range(4)]
    monkeypatch.setattr(likelihood, "rows_per_pass", lambda nets: 5)
    pieces = likelihood.importance_sampling(run.nets, params, x, None, 7, np.random.default_rng(4))
    np.testing.assert_allclose(pieces.log_w, whole.log_w, rtol=1e-12)
    batched = ais.ais(run.nets, params, x, None, np.random.default_rng(5), n_temps=5, n_chains=3)
    np.testing.assert_allclose(batched.log_w, np.concatenate([a.log_w for a in per_point]), rtol=1e-12)


def test_schedules():
    """Both schedules run from 0 to 1, strictly increasing; the sigmoid is symmetric
    (beta_t + beta_{T-t} = 1) and takes smaller steps at the ends than the linear one."""
    for kind in ais.TEMPERATURE_SCHEDULES:
        b = ais.schedule(50, kind)
        assert b.shape == (51,) and b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)
    b = ais.schedule(50, "sigmoid")
    np.testing.assert_allclose(b + b[::-1], 1, atol=1e-12)
    assert b[1] < 1 / 50 < b[26] - b[25]
    np.testing.assert_array_equal(ais.schedule(1, "sigmoid"), [0, 1])


def test_hmc_keeps_a_gaussian_invariant():
    """20,000 chains drawn exactly from N(0, diag(0.5^2, 2^2)) keep its moments through 5 HMC
    transitions (beta = 1, step 0.3 x std, 10 leapfrog steps): mean within 0.05 std and
    variance within 5% (sampling s.e. about 0.007 and 1%). Flipping the sign of the Metropolis
    test would drift both."""
    rng = np.random.default_rng(0)
    sd = np.array([0.5, 2.0])

    def target(z):                                    # log p(x, z) := log N(z; 0, diag sd^2); r unused
        lp, dz = likelihood.gaussian_log_density(z, np.zeros_like(z), np.broadcast_to(sd, z.shape))
        return lp, dz, np.zeros(len(z)), np.zeros_like(z)

    z = rng.standard_normal((20_000, 2)) * sd
    state, probs = (z, *target(z)), []
    for _ in range(5):
        state, prob = ais.hmc_transition(target, 1.0, state, 0.3 * sd * np.ones_like(z),
                                         rng.standard_normal(z.shape), np.log(rng.random(len(z))), 10)
        probs.append(prob.mean())
    z = state[0]
    assert np.all(np.abs(z.mean(0)) < 0.05 * sd)
    np.testing.assert_allclose(z.var(0), sd ** 2, rtol=0.05)
    assert 0.5 < np.mean(probs) < 1.0                 # moves are made, and some are rejected


def test_independence_move_keeps_a_bimodal_target_and_crosses_between_modes():
    """f = 0.7 N(-2, 0.3^2) + 0.3 N(2, 0.3^2) at beta = 1 (r's part of the state is a unit
    Gaussian, unused there), with jumps from N(1, 1.5^2) mixed with the prior: 20,000 chains
    all started in the left mode reach the right mode's weight 0.3 within 0.02 after 60 moves,
    while HMC alone would keep them all on the left; started exactly from f, they keep it
    (right share within 0.02). Dropping the h(z) / h(z') factor from the test breaks the first."""
    rng = np.random.default_rng(1)
    R = 20_000

    def target(z):                                    # log f and its dz; r = N(0, I) as the path's start
        a = np.log(0.7) - 0.5 * ((z + 2) / 0.3) ** 2
        b = np.log(0.3) - 0.5 * ((z - 2) / 0.3) ** 2
        lf = np.logaddexp(a, b).sum(axis=1)
        lr, dr = likelihood.gaussian_log_density(z, np.zeros_like(z), np.ones_like(z))
        return lf, np.zeros_like(z), lr, dr
    mean, std = np.full((R, 1), 1.0), np.full((R, 1), 1.5)      # h favours the right mode
    for start, moves in (("left", 60), ("exact", 5)):
        if start == "left":
            z = -2 + 0.3 * rng.standard_normal((R, 1))
        else:
            z = np.where(rng.random((R, 1)) < 0.3, 2.0, -2.0) + 0.3 * rng.standard_normal((R, 1))
        state = (z, *target(z))
        for _ in range(moves):
            state = ais.independence_move(target, 1.0, state, mean, std, rng, np, np.float64)
        right = (state[0] > 0).mean()
        assert abs(right - 0.3) < 0.02, (start, right)


def test_bad_inputs_are_named():
    """A proposal of the wrong shape, an unknown schedule, a z_star of the wrong shape and a
    seed in place of a generator are refused with the argument's name."""
    run = trained(tiny(), "vae", 0)
    x = data.toy_data()
    with pytest.raises(ValueError, match="proposal.mean"):
        likelihood.importance_sampling(run.nets, run.params, x, likelihood.prior(3, 2), 10,
                                       np.random.default_rng())
    with pytest.raises(ValueError, match="schedule"):
        ais.ais(run.nets, run.params, x, None, np.random.default_rng(), schedule="cosine")
    with pytest.raises(ValueError, match="z_star"):
        ais.reverse_ais(run.nets, run.params, x, None, np.zeros((4, 3)), np.random.default_rng())
    with pytest.raises(TypeError, match="rng"):
        ais.ais(run.nets, run.params, x, None, 0)



def test_is_and_ais_check_every_input_at_the_door():
    """NaN parameters, a NaN proposal mean, rng=None and sizes beyond memory are refused by IS
    and AIS alike, naming the argument, before any estimate is computed (no silent NaN)."""
    run = trained(tiny(), "vae", 0)
    x, rng = data.toy_data(), np.random.default_rng(0)
    nan_params = {k: v.copy() for k, v in run.params.items()}
    nan_params["dec.0.b"][0] = np.nan
    bad_mean = likelihood.Gaussian(np.full((4, 2), np.nan), np.ones((4, 2)))
    for estimate in (lambda p, r, g, n: likelihood.importance_sampling(run.nets, p, x, r, n, g),
                     lambda p, r, g, n: ais.ais(run.nets, p, x, r, g, n_temps=2, n_chains=n)):
        with pytest.raises(ValueError, match=r"params\['dec.0.b'\].*NaN"):
            estimate(nan_params, None, rng, 4)
        with pytest.raises(ValueError, match="proposal.mean must be finite"):
            estimate(run.params, bad_mean, rng, 4)
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
            estimate(run.params, None, None, 4)
        with pytest.raises(ValueError, match="too large"):
            estimate(run.params, None, rng, 10**12)


# ----------------------------------------------------------------------------- against exact answers

def test_toy_is_and_ais_match_quadrature(toy):
    """On the toy runs (AVB and VAE, 200 iterations), IS from a Gaussian fitted to 1,000 encoder
    samples (2,000 draws) agrees with quadrature per point within 3 s.e. + 0.01, and AIS from the
    same Gaussian (30 temperatures, 16 chains) on the mean within 3 s.e. + 0.01. The slack covers
    IS's bias, about -1 / (2 ESS) < 0.001 here, and the grid's error (< 1e-5)."""
    run, params, exact = toy
    x = data.toy_data()
    rng = np.random.default_rng(0)
    r = likelihood.gaussian_from_samples(evaluation.sample_q(run, x, 1000, rng))
    est = likelihood.importance_sampling(run.nets, params, x, r, 2000, rng)
    assert np.all(np.abs(est.log_px - exact) <= 3 * est.stderr + 0.01), (est.log_px, exact, est.stderr)
    assert est.mean_ess > 200
    a = ais.ais(run.nets, params, x, r, rng, n_temps=30, n_chains=16)
    assert abs(a.mean - exact.mean()) <= 3 * a.mean_stderr + 0.01, (a.mean, exact.mean(), a.mean_stderr)


def test_toy_probabilities_of_all_16_images_sum_to_one(toy):
    """The model is a distribution over the 16 binary 4-pixel images: the estimated p(x) (exp of
    each estimate: the mean weight, unbiased for p(x)) sum to 1 within 3 s.e. + 0.002 (s.e. of the
    sum: sqrt(sum_x (p(x) s.e._x)^2) by the delta method), for IS from the prior (4,000 draws) and
    AIS from the prior (20 temperatures, 32 chains)."""
    run, params, _ = toy
    images = np.array(list(itertools.product([0.0, 1.0], repeat=4)))      # (16, 4)
    rng = np.random.default_rng(1)
    for est in (likelihood.importance_sampling(run.nets, params, images, None, 4000, rng),
                ais.ais(run.nets, params, images, None, rng, n_temps=20, n_chains=32)):
        p = np.exp(est.log_px)
        se = math.sqrt(np.sum((p * est.stderr) ** 2))
        assert abs(p.sum() - 1) <= 3 * se + 0.002, (p.sum(), se)


def test_digits_quadrature_grid_is_fine_enough(digits):
    """The digits model's 200 x 200 grid over [-5, 5]^2 agrees with 400 x 400 over [-6, 6]^2
    (cells 0.03 wide) to 1e-4 nats per image (measured: 1e-5), far inside the tolerances below."""
    run, params, x, exact = digits
    finer = quadrature.log_likelihood_per_point(run.nets, params, x, n=400, lim=6.0)
    np.testing.assert_allclose(exact, finer, atol=1e-4)


def test_digits_is_and_ais_match_quadrature(digits):
    """Real data with a ground truth: on 20 test digits, IS from a Gaussian fitted to 1,000
    encoder samples (1,000 draws, ESS about 600) agrees with quadrature on the mean within
    3 s.e. + 0.01 (bias about -1 / (2 ESS) < 0.001) and on every image within 5 s.e. + 0.01: one
    image's s.e., read off 1,000 weights, is itself uncertain (over 12 seeds the largest of the
    20 |error| / s.e. ranged from 1.5 to 4.1). AIS from that Gaussian (50 temperatures, 8
    chains) agrees on the mean within 3 s.e. + 0.02."""
    run, params, x, exact = digits
    rng = np.random.default_rng(0)
    r = likelihood.gaussian_from_samples(evaluation.sample_q(run, x, 1000, rng))
    est = likelihood.importance_sampling(run.nets, params, x, r, 1000, rng)
    assert abs(est.mean - exact.mean()) <= 3 * est.mean_stderr + 0.01, (est.mean, exact.mean())
    err = np.abs(est.log_px - exact)
    assert np.all(err <= 5 * est.stderr + 0.01), err / est.stderr
    a = ais.ais(run.nets, params, x, r, rng, n_temps=50, n_chains=8)
    assert abs(a.mean - exact.mean()) <= 3 * a.mean_stderr + 0.02, (a.mean, exact.mean(), a.mean_stderr)


def test_ais_rises_with_temperatures(digits):
    """AIS from the prior with 1, 10 and 100 temperatures (16 chains) on 20 test digits.

    The estimate log mean_c w_c is never above the exact value by more than 3 s.e. (it is a
    stochastic lower bound), rises from 1 (importance sampling from the prior) to 10
    temperatures, and is within 0.25 nats of exact at 10 and at 100 (on this model both are
    within their noise, about 0.1 nats, of it, so their order is left to chance). The mean log
    weight E[log w] = log p(x) - KL(forward path || backward path), a lower bound whose gap
    shrinks with finer paths, shows the approach clearly (here about -15, -1.7 and -0.3 nats
    from exact): it must rise at each step, by at least 0.3 nats, and stay below exact."""
    run, params, x, exact = digits
    rng = np.random.default_rng(2)
    means, mean_log_w = [], []
    for T in (1, 10, 100):
        a = ais.ais(run.nets, params, x, None, rng, n_temps=T, n_chains=16)
        assert a.mean <= exact.mean() + 3 * a.mean_stderr, (T, a.mean, exact.mean())
        means.append(a.mean)
        mean_log_w.append(a.log_w.mean())
    assert means[0] < means[1] and exact.mean() - min(means[1:]) < 0.25, (means, exact.mean())
    m = mean_log_w
    assert m[0] + 0.3 < m[1] and m[1] + 0.3 < m[2] < exact.mean(), (m, exact.mean())


def test_bidirectional_monte_carlo_brackets_and_narrows():
    """Simulated data from a random decoder with z_dim 8 (z* ~ p(z), x ~ p(x|z*), 20 images of 64
    pixels): forward AIS (a stochastic lower bound) lies below reverse AIS from z* (an upper
    bound) on the mean, up to 3 s.e. of their difference, and the bracket at 100 temperatures
    is less than half as wide as at 10 (8 chains each; the gaps are about 2 and 0.1-0.6 nats)."""
    rng = np.random.default_rng(0)
    nets = {"dec": network.mlp("dec", [8, 32, 64], "elu", out_gain=3.0)}
    params = network.init_params(nets["dec"], rng, np, np.float64)
    z_star = rng.standard_normal((20, 8))                                   # z* ~ p(z)
    logits, _ = models.decode(nets, params, z_star)
    x = (rng.random(logits.shape) < sigmoid(logits)).astype(float)         # x ~ p(x|z*)
    gaps = []
    for T in (10, 100):
        fwd = ais.ais(nets, params, x, None, rng, n_temps=T, n_chains=8)
        rev = ais.reverse_ais(nets, params, x, None, z_star, rng, n_temps=T, n_chains=8)
        se = math.hypot(fwd.mean_stderr, rev.mean_stderr)                 # s.e. of the difference
        assert fwd.mean <= rev.mean + 3 * se, (T, fwd.mean, rev.mean, se)
        gaps.append(rev.mean - fwd.mean)
    assert gaps[1] < 0.5 * gaps[0], gaps


def test_scoring_takes_harmless_underflow_under_raise():
    """Under np.errstate(all='raise') scoring still works: exp of very negative log weights
    underflows to 0, a correct result (the same scoring without that allowance raises here)."""
    from avb_np import scoring
    ds = data.load("digits")
    cfg = Config(x_dim=64, z_dim=2, eps_dim=4, enc_hidden=(16,), dec_hidden=(16,), adv_width=16,
                 adv_blocks=1, batch_size=32, log_every=0, eval_every=0)
    run = training.train(training.new_run(cfg, "avb", np), ds.train, 30, log=None)
    with np.errstate(all="raise"):
        with pytest.raises(FloatingPointError, match="underflow"):
            scoring._score(run, ds.test[:5], np.random.default_rng(0), 5, 2, 10, 8, None, False)
        r = scoring.score(run, ds.test[:5], np.random.default_rng(0), n_temps=5, n_chains=2, n_is=10, n_q=8)
    assert np.isfinite(r["ais"][0]) and np.isfinite(r["is"][0])
