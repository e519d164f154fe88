"""Scoring a trained model on held-out images at any latent size: the numbers of the digits and
MNIST tables.

    log p(x)  by importance sampling (likelihood.importance_sampling) from a Gaussian per test
              image fitted to encoder samples and widened (likelihood.gaussian_from_samples;
              for AVB+AC the encoder's own moments, likelihood.gaussian_from_moments); by AIS
              (ais.ais: a stochastic lower bound), which first searches from the prior and
              refits that Gaussian to where the posterior's mass is; and exactly by quadrature
              when z_dim = 2 (evaluation.log_likelihood)
    ELBO      -(reconstruction error + KL), from the same encoder samples (evaluation.elbo_terms);
              for AVB (and AVB+AC) the KL is the adversary's estimate, which on images the adversary
              never saw can be far too low: an estimate, not a bound
    flags     per image, the checks of avb_np.diagnostics (low ESS, a proposal that misses, IS
              and AIS apart); the table prints how many images fail one or more
    BDMC      (`bdmc`) forward and reverse AIS on images simulated from the model, whose exact
              posterior samples are known: a bracket around log p(x) (Grosse et al. 2015)
"""
import time

import numpy as np

from . import ais, backend, diagnostics, evaluation, likelihood, models, quadrature, validate
from .layers import sigmoid
from .methods import METHODS

AIS_TEMPS, AIS_CHAINS, AIS_LEAPFROG = 100, 32, 5   # 19,200 decoder passes per image and the pilots'
#   half of that (ais.ais). With the search and the independence moves, 32 chains along 100
#   temperatures beat 8 along 400 at the same cost: 32 weights give a standard error one can
#   trust (with 8, sd/sqrt(8) is itself so noisy that 2% of images land beyond 3 s.e. by chance),
#   and they run as wider arrays (benchmarks/ais_digits.py; docs/validation.md)
IS_SAMPLES = 1000                 # importance samples per image
Q_SAMPLES = 64                    # encoder samples per image, for the ELBO terms and the proposal


def proposal(run, data, z, rng):
    """r(z|x) per image of `data` (K, Dx) from encoder samples z: (K, S, Dz): a Gaussian fitted to
    z (likelihood.gaussian_from_samples), or for AVB+AC the encoder's own moments (basis noise
    from rng); and the moments (None unless AVB+AC)."""
    if METHODS[run.method].contrast:               # the encoder's own moments start AIS and IS
        moments = evaluation.contrast(run, data, rng)      # mu, sigma: (K, Dz)
        return likelihood.gaussian_from_moments(*moments), moments              # r(z|x_k), widened
    return likelihood.gaussian_from_samples(z), None                            # fitted to z


def score(run, data, rng, n_temps=AIS_TEMPS, n_chains=AIS_CHAINS, n_is=IS_SAMPLES, n_q=Q_SAMPLES, log=None,
          per_image=False):
    """Mean log p(x), ELBO terms and training seconds of `run` on the binary rows `data` (K, Dx).

    ais, is    [mean estimate, its standard error], and the same as ais/ais_se, is/is_se
    exact      (z_dim 2) the mean log p(x) by quadrature (also under log_likelihood)
    ais_flags, is_flags   {check: images flagged} (avb_np.diagnostics), 'any' among them
    per_image  if asked: {exact, ais, ais_se, is, is_se, ais_flag, is_flag} lists over the images
    All randomness from the NumPy generator rng. log: progress lines (AIS is the long part).
    The standard errors come from each image's weights (likelihood.estimate) and assume they
    saw the mass that matters; the flagged images are where that is in doubt.
    """
    with np.errstate(under="ignore"):              # underflow to 0 is a correct result, not an error
        return _score(run, data, rng, n_temps, n_chains, n_is, n_q, log, per_image)


def _score(run, data, rng, n_temps, n_chains, n_is, n_q, log, per_image):
    data = validate.binary_data("data", data, run.cfg.x_dim).astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in run.params.items()}   # float64, on the run's device
    t0 = time.perf_counter()
    z = evaluation.sample_q(run, data, validate.positive_int("n_q", n_q), rng)   # (K, S, Dz)
    r, moments = proposal(run, data, z, rng)
    rec, kl = evaluation.elbo_terms(run, data, z, moments)                       # (K,), (K,)
    by_is = likelihood.importance_sampling(run.nets, params, data, r, n_is, rng)
    by_ais = ais.ais(run.nets, params, data, r, rng, n_temps=n_temps, n_chains=n_chains,
                     n_leapfrog=AIS_LEAPFROG, log=log)
    flags = {"ais": diagnostics.ais_flags(by_ais, by_is), "is": diagnostics.is_flags(by_is, by_ais)}
    out = {"ais": [by_ais.mean, by_ais.mean_stderr], "ais_se": by_ais.mean_stderr, "ais_ess": by_ais.mean_ess,
           "is": [by_is.mean, by_is.mean_stderr], "is_se": by_is.mean_stderr, "is_ess": by_is.mean_ess,
           "ais_flags": diagnostics.counts(flags["ais"]), "is_flags": diagnostics.counts(flags["is"]),
           "elbo": float(-(rec + kl).mean()), "kl": float(kl.mean()),
           "reconstruction_error": float(rec.mean()), "seconds": round(run.seconds, 2)}
    exact = None
    if run.cfg.z_dim == 2:                                   # the exact answer, for comparison
        exact = quadrature.log_likelihood_per_point(run.nets, params, data)
        out["log_likelihood"] = out["exact"] = float(exact.mean())
    if per_image:
        out["per_image"] = {"exact": None if exact is None else exact.tolist(),
                            "ais": by_ais.log_px.tolist(), "ais_se": by_ais.stderr.tolist(),
                            "is": by_is.log_px.tolist(), "is_se": by_is.stderr.tolist(),
                            "ais_flag": flags["ais"]["any"].tolist(), "is_flag": flags["is"]["any"].tolist()}
    out["score_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def bdmc(run, n_images, rng, n_temps=AIS_TEMPS, n_chains=AIS_CHAINS, n_q=Q_SAMPLES):
    """Bidirectional Monte Carlo (Grosse, Ghahramani, Adams 2015) on n_images simulated from the
    model: z* ~ p(z), x ~ p(x|z*), so z* is an exact sample of p(z|x). Forward AIS from the
    scoring proposal is a stochastic lower bound on log p(x), reverse AIS from z* an upper
    bound; the mean bracket [forward, reverse] holds the truth, and its width says how far the
    AIS settings in use can be from it on images like the model's own.

    Returns {forward, reverse, gap (reverse - forward, mean nats), wide (images with a bracket
    wider than diagnostics.GAP_NATS)}."""
    n = validate.positive_int("n_images", n_images)
    params = backend.host_params(run.params)
    z_star = rng.standard_normal((n, run.cfg.z_dim))                              # z* ~ p(z)
    logits, _ = models.decode(run.nets, params, z_star)
    x = (rng.random(logits.shape) < sigmoid(logits)).astype(np.float64)           # x ~ p(x|z*)
    r, _ = proposal(run, x, evaluation.sample_q(run, x, n_q, rng), rng)
    settings = dict(n_temps=n_temps, n_chains=n_chains, n_leapfrog=AIS_LEAPFROG)
    params = {k: v.astype(np.float64) for k, v in run.params.items()}             # float64, on the run's device
    fwd = ais.ais(run.nets, params, x, r, rng, **settings)
    rev = ais.reverse_ais(run.nets, params, x, r, z_star, rng, **settings)
    return {"forward": fwd.mean, "reverse": rev.mean, "gap": rev.mean - fwd.mean,
            "wide": int(diagnostics.gap(fwd, rev).sum()), "images": n}
