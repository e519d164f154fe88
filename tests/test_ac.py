"""Adaptive contrast pinned by exact answers, beyond its gradient checks (gradcheck_suite):

- the noise-basis encoder's closed-form moments equal the moments of its samples;
- with mu = 0 and sigma = 1 the AC primal loss is plain AVB's, value and gradients;
- the adversary learns T* = log q(z|x) - log r(z|x) against an encoder of known, non-Gaussian
  density, and the two classic bugs (swapped labels, an adversary that ignores x) fail that check;
- holding mu and sigma constant gives the exact gradient of KL(q || p) (the paper's argument,
  computed by quadrature); at T* the terms through mu and sigma vanish in expectation, away from
  T* they do not.
"""
import math

import numpy as np
import pytest

from avb_np import ac, ac_objectives, methods, models, objectives, validate_run
from avb_np.config import Config
from avb_np.data import sample_batch, toy_data
from avb_np.optim import Adam

LOG_2PI = math.log(2 * math.pi)


def small(**changes):
    return Config(**{**dict(eps_dim=3, enc_hidden=(8,), dec_hidden=(8,), n_bases=4, basis_hidden=(8,),
                            adv_width=8, adv_blocks=1, out_gain=1.0), **changes})


def perturbed(nets, rng, scale=0.3):
    params = models.init_all_params(nets, rng, np, np.float64)
    for p in params.values():
        p += scale * rng.standard_normal(p.shape)
    return params


def test_closed_form_moments_match_samples():
    """mu(x), sigma(x) from ac.moments (basis moments from 400k draws) against the mean and std
    of 400k encoder samples per x: agree to 0.01 (Monte Carlo error ~ 0.002)."""
    rng = np.random.default_rng(0)
    cfg = small()
    nets = methods.build_nets(cfg, "avb-ac")
    params = perturbed(nets, rng)
    params["enc.a.b"] += ac.SHIFT                                 # scales of order 1, not e^-5
    S = 400_000
    v_moments = ac.basis_moments(models.network.forward(nets["enc_v"], params,
                                                         rng.standard_normal((S, cfg.eps_dim)))[0])
    for x in np.eye(4):
        z, _ = ac.encode(nets, params, np.tile(x, (S, 1)), rng.standard_normal((S, ac.noise_width(cfg))))
        mu, sigma = ac.moments(*ac.scales(nets, params, x[None])[:2], v_moments)
        np.testing.assert_allclose(mu[0], z.mean(axis=0), atol=0.01)
        np.testing.assert_allclose(sigma[0], np.sqrt(z.var(axis=0) + ac.VAR_FLOOR), atol=0.01)
        assert sigma[0].min() > 0.1                                # the check is not about a point mass


def test_dual_loss_standardises_with_the_encoders_moments():
    """ac_objectives.dual_loss (what training calls) equals dual_terms at the encoder's samples
    and batch moments, and differs from the same loss on unstandardised z."""
    rng = np.random.default_rng(2)
    cfg = small()
    nets = methods.build_nets(cfg, "avb-ac")
    params = perturbed(nets, rng)
    params["enc.a.b"] += ac.SHIFT
    x = np.eye(4)[rng.integers(0, 4, 16)]
    eps, u = rng.standard_normal((16, ac.noise_width(cfg))), rng.standard_normal((16, cfg.z_dim))
    loss, grads = ac_objectives.dual_loss(nets, params, x, eps, u, 0.5)
    z, cache = ac.encode(nets, params, x, eps)
    ref, ref_grads = ac_objectives.dual_terms(nets, params, x, z, *ac.batch_moments(cache), u, 0.5)
    assert loss == ref and all(np.array_equal(grads[k], ref_grads[k]) for k in ref_grads)
    assert abs(objectives.discriminate(nets, params, x, z, u, 0.5)[0] - loss) > 1e-3


def test_mu_0_sigma_1_is_plain_avb():
    """With r = N(0, I) the standardised z~ is z and log r = log p: AC's primal terms (loss,
    dL/dz, decoder gradients) equal plain AVB's to rounding."""
    rng = np.random.default_rng(1)
    nets = methods.build_nets(small(), "avb")
    params = perturbed(nets, rng)
    x, z = np.eye(4)[rng.integers(0, 4, 16)], 2 * rng.standard_normal((16, 2))
    plain = objectives.primal_terms(nets, params, x, z, 0.5)
    with_ac = ac_objectives.primal_terms(nets, params, x, z, np.zeros_like(z), np.ones_like(z), 0.5)
    np.testing.assert_allclose(with_ac[0], plain[0], rtol=1e-12)
    np.testing.assert_allclose(with_ac[1], plain[1], rtol=1e-10, atol=1e-14)
    for k in plain[2]:
        np.testing.assert_allclose(with_ac[2][k], plain[2][k], rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- a known non-Gaussian q

# 1-d shapes, each a Gaussian mixture [(weight, mean, std)]: bimodal, skewed, heavy-tailed, Gaussian
SHAPES = {"bimodal": [(0.5, -1.0, 0.3), (0.5, 1.0, 0.3)], "skewed": [(0.8, -0.5, 0.5), (0.2, 2.0, 0.5)],
          "heavy": [(0.5, 0.0, 0.3), (0.5, 0.0, 2.0)], "gauss": [(1.0, 0.0, 1.0)]}
PLAN = [("bimodal", "skewed"), ("skewed", "heavy"), ("heavy", "gauss"), ("gauss", "bimodal")]  # shapes of x_k
LOC = np.array([[2.0, 1.0], [-1.5, 1.0], [-1.0, -2.0], [1.0, -1.0]])
SCALE = np.array([[0.5, 0.4], [0.6, 0.5], [0.3, 0.7], [0.5, 0.5]])


def shape_moments(mix):
    mean = sum(w * m for w, m, _ in mix)
    return mean, math.sqrt(sum(w * (s * s + m * m) for w, m, s in mix) - mean ** 2)


def shape_log_density(mix, s):
    parts = [math.log(w) - 0.5 * ((s - m) / sd) ** 2 - math.log(sd) - 0.5 * LOG_2PI for w, m, sd in mix]
    return np.logaddexp.reduce(parts, axis=0)


def known_encoder(x, rng):
    """Samples z: (N, 2) of q(z|x) = loc_k + scale_k * s, s drawn per dimension from the shapes of
    x = e_k, with the exact mu, sigma (N, 2) and log q(z|x) (N,)."""
    k = x.argmax(axis=1)
    z, mu, sigma, log_q = np.empty((len(x), 2)), np.empty((len(x), 2)), np.empty((len(x), 2)), np.zeros(len(x))
    for kn in range(len(PLAN)):
        rows = np.flatnonzero(k == kn)                               # the samples with x = e_kn
        for d in range(2):
            mix = SHAPES[PLAN[kn][d]]
            w, m_j, sd_j = (np.array(v) for v in zip(*mix))
            j = rng.choice(len(mix), size=len(rows), p=w)            # the mixture component of each
            s = m_j[j] + sd_j[j] * rng.standard_normal(len(rows))
            m, sd = shape_moments(mix)
            z[rows, d] = LOC[kn, d] + SCALE[kn, d] * s
            mu[rows, d], sigma[rows, d] = LOC[kn, d] + SCALE[kn, d] * m, SCALE[kn, d] * sd
            log_q[rows] += shape_log_density(mix, s) - math.log(SCALE[kn, d])
    return z, mu, sigma, log_q


def swapped_dual_terms(nets, params, x, z, mu, sigma, u, prior_term):
    """The AC adversary loss with the labels swapped, as a port might get it wrong: u positive."""
    return objectives.discriminate(nets, params, x, u, ac_objectives.standardise(z, mu, sigma), prior_term)


def train_ac_adversary(dual=ac_objectives.dual_terms, ignore_x=False, steps=1200):
    """Train T alone with `dual` (the package's ac_objectives.dual_terms: (x, z~) against (x, u))
    for `steps` Adam steps; return mean |T - T*| on 4000 fresh samples, and the KL estimate
    E[T + log r - log p] beside the exact E[log q - log p]."""
    cfg = small(adv_width=32, adv_blocks=2, batch_size=128)
    nets = methods.build_nets(cfg, "avb-ac")
    rng = np.random.default_rng(0)
    params, opt = models.init_all_params(nets, rng, np, np.float64), Adam(5e-3)
    for t in range(steps):
        x = sample_batch(rng, toy_data(), cfg.batch_size)
        z, mu, sigma, _ = known_encoder(x, rng)
        opt.step(params, dual(nets, params, x, z, mu, sigma, rng.standard_normal(z.shape), cfg.prior_term)[1],
                 0.5 * (1 + math.cos(math.pi * t / steps)))               # cosine decay: less noise at the end
        if ignore_x:
            params["adv.in.W"][:cfg.x_dim] = 0                     # T(x, z~) = T(z~)
    x = sample_batch(rng, toy_data(), 4000)
    z, mu, sigma, log_q = known_encoder(x, rng)
    zt = ac_objectives.standardise(z, mu, sigma)
    T, _ = models.adversary(nets, params, x, zt, cfg.prior_term)
    log_r = (-0.5 * zt ** 2 - np.log(sigma) - 0.5 * LOG_2PI).sum(axis=1)
    log_p = (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(axis=1)
    return (np.abs(T - (log_q - log_r)).mean(), ac_objectives.kl_estimate(T, z, zt, sigma).mean(),
            (log_q - log_p).mean())


TOL = 0.25  # nats, mean |T - T*|: observed 0.13, against 1.74 with swapped labels and 0.79 without x


def test_adversary_learns_log_q_over_r():
    """mean |T - T*| below 0.25 nats, and the KL estimate within 0.05 of the exact KL
    (observed 2.979 against 2.985)."""
    err, kl_estimate, kl_exact = train_ac_adversary()
    assert err < TOL
    assert abs(kl_estimate - kl_exact) < 0.05


def test_swapped_labels_are_caught():
    """T tends to -T*, so the KL estimate falls by about twice E_q[T*] = 2 KL(q || r) (observed:
    1.86, against the exact 2.985)."""
    err, kl_estimate, kl_exact = train_ac_adversary(dual=swapped_dual_terms)
    assert err > 3 * TOL and kl_estimate < kl_exact - 0.5


def test_an_adversary_that_ignores_x_is_caught():
    """The standardised shapes differ between the x_k, so T(z~) alone cannot learn T*(x, z~)."""
    err, _, _ = train_ac_adversary(ignore_x=True)
    assert err > 2 * TOL


# ----------------------------------------------------------------------------- the pathwise gradient

S_GRID = np.linspace(-5, 5, 20001)            # quadrature over the base variable s ~ "skewed"
S_WEIGHT = np.exp(shape_log_density(SHAPES["skewed"], S_GRID)) * (S_GRID[1] - S_GRID[0])
PHI = np.array([0.3, 0.8, 0.15])              # z = g(s) = phi0 + phi1 s + phi2 s^3: not location-scale


def g(phi, s):
    return phi[0] + phi[1] * s + phi[2] * s ** 3, phi[1] + 3 * phi[2] * s ** 2   # z, dz/ds


def exact_kl(phi):
    """KL(q_phi || N(0, 1)) = E_s[log q_s(s) - log g'(s) + z^2 / 2 + log(2 pi) / 2], by quadrature."""
    z, dz = g(phi, S_GRID)
    return S_WEIGHT @ (shape_log_density(SHAPES["skewed"], S_GRID) - np.log(dz) + 0.5 * z * z + 0.5 * LOG_2PI)


def moments(phi):
    z, _ = g(phi, S_GRID)
    mu = S_WEIGHT @ z
    return mu, math.sqrt(S_WEIGHT @ (z - mu) ** 2)


def test_holding_mu_sigma_constant_gives_the_exact_gradient():
    """At phi0 the adversary is exact, T*(z~) = log q(z) - log r(z) (all at phi0). The AC primal
    gradient, with T*, mu and sigma held fixed, E_s[kl_estimate_grad * dz/dphi], equals d KL / d phi
    by central differences of the exact KL to 1e-6. The terms it drops, those through mu(phi) and
    sigma(phi), vanish in expectation at T* (score identities E[(log q~)'] = 0, E[z~ (log q~)'] = -1),
    so the full derivative agrees too; for an adversary off its optimum (T = T* + z~^3) they do not
    (> 0.05). (They vanish for any T = a log q~ + b z~^2 + c: mu and sigma are q's own moments.)"""
    s, h = S_GRID, 1e-5
    z, dz_ds = g(PHI, s)
    mu, sigma = moments(PHI)
    zt = (z - mu) / sigma
    # d/dz log q(z) = d/ds [log q_s(s) - log g'(s)] / g'(s); T*(z~) = log q(z) - log r(z) with z = mu + sigma z~
    log_q0 = shape_log_density(SHAPES["skewed"], s) - np.log(dz_ds)
    dlogq_dz = np.gradient(log_q0, s) / dz_ds
    T_star = log_q0 + 0.5 * zt ** 2 + math.log(sigma) + 0.5 * LOG_2PI   # on the grid of z~ at phi0
    dz_dphi = np.stack([np.ones_like(s), s, s ** 3])           # (3, grid)
    col = lambda a: a[:, None]

    def held(dT_dzt):                                          # the package's gradient, mu and sigma fixed
        grad = ac_objectives.kl_estimate_grad(col(dT_dzt), col(z), col(zt), np.full((len(s), 1), sigma))
        return dz_dphi @ (S_WEIGHT * grad[:, 0])

    def through_moments(T_of_zt):                              # d/dphi E_s[T(z~_phi) + log r_phi - log p]
        def F(phi):
            zp, _ = g(phi, s)
            m, sd = moments(phi)
            t = (zp - m) / sd
            return S_WEIGHT @ ac_objectives.kl_estimate(T_of_zt(t), col(zp), col(t), np.full((len(s), 1), sd))
        return np.array([(F(PHI + h * e) - F(PHI - h * e)) / (2 * h) for e in np.eye(3)])

    exact = np.array([(exact_kl(PHI + h * e) - exact_kl(PHI - h * e)) / (2 * h) for e in np.eye(3)])
    dT_star = sigma * dlogq_dz + zt                            # dT*/dz~
    np.testing.assert_allclose(held(dT_star), exact, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(through_moments(lambda t: np.interp(t, zt, T_star)), exact, rtol=1e-5, atol=1e-5)
    off = through_moments(lambda t: np.interp(t, zt, T_star) + t ** 3) - held(dT_star + 3 * zt ** 2)
    assert np.abs(off).max() > 0.05


# ----------------------------------------------------------------------------- a trained AVB+AC run

def test_trained_run_scores_against_quadrature():
    """A toy AVB+AC run (200 iterations): evaluation.contrast's mu, sigma (from 200,000 basis draws)
    equal the mean and std of 50,000 encoder samples per point to 0.02 (sigma is about 1: the
    Monte Carlo standard errors are about 0.006); scoring from those moments gives IS and AIS within
    3 s.e. + 0.01 of the exact log p(x), and a finite KL estimate."""
    from avb_np import evaluation, scoring, training
    from common import tiny
    run = training.train(training.new_run(tiny(), "avb-ac", np), toy_data(), 200)
    x, rng = toy_data(), np.random.default_rng(0)
    mu, sigma = evaluation.contrast(run, x, rng, n_draws=200_000)
    z = evaluation.sample_q(run, x, 50_000, rng)
    np.testing.assert_allclose(mu, z.mean(axis=1), atol=0.02)
    np.testing.assert_allclose(sigma, np.sqrt(z.var(axis=1) + ac.VAR_FLOOR), atol=0.02)
    r = scoring.score(run, x, rng, n_temps=20, n_chains=8, n_is=2000)
    for key in ("is", "ais"):
        assert abs(r[key][0] - r["log_likelihood"]) <= 3 * r[key][1] + 0.01, (key, r)
    assert np.isfinite(r["kl"]) and r["kl"] > 0
    with pytest.raises(ValueError, match="moments"):
        evaluation.elbo_terms(run, x, z[:, :10])                 # AC's KL estimate needs mu, sigma


def test_evidence_table_summarises_over_seeds(tmp_path, capsys):
    """benchmarks/ac_digits.py --table: one row per latent size and method, the mean over seeds
    with the range beside it, and the adversary's KL estimate beside the true KL at z_dim 2."""
    import importlib.util
    import json
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("ac_digits", Path(__file__).resolve().parents[1]
                                                  / "benchmarks" / "ac_digits.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [{"z_dim": 2, "method": "avb-ac", "seed": s, "ais": -18.0 - s, "ais_se": 0.01, "is": -18.1, "elbo": -18.5,
             "kl": 3.0, "train_s": 100.0, "exact": -17.9 - s, "kl_100": 2.5 + s, "true_kl_100": 3.0} for s in (0, 1, 2)]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench.main(["--table", "--out", str(path)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("| 2 | AVB+AC | 3 | -18.90 (-19.90..-17.90) | -19.00 (-20.00..-18.00) |")
    assert "| 3.50 (2.50..4.50) / 3.00 (3.00..3.00) |" in line


def test_bad_ac_configurations_are_named():
    """The noise-basis encoder needs a hidden layer, at least one basis and encoder noise."""
    for changes, words in (({"enc_hidden": ()}, "enc_hidden must have at least one layer"),
                           ({"n_bases": 0}, "n_bases must be a positive integer"),
                           ({"eps_dim": 0}, "eps_dim must be >= 1"),
                           ({"basis_hidden": (8, -1)}, r"basis_hidden\[1\] must be a positive integer")):
        with pytest.raises(ValueError, match=words):
            validate_run.config(small(**changes), "avb-ac")
