"""Scoring a trained model on held-out images at any latent size: the numbers of the digits and
MNIST tables.

    log p(x)  by AIS (ais.ais: a stochastic lower bound) and by importance sampling
              (likelihood.importance_sampling), both started from a Gaussian per test image
              fitted to encoder samples and widened (likelihood.gaussian_from_samples; for
              AVB+AC the encoder's own moments, likelihood.gaussian_from_moments), and
              exactly by quadrature when z_dim = 2 (evaluation.log_likelihood)
    ELBO      -(reconstruction error + KL), from the same encoder samples (evaluation.elbo_terms);
              for AVB (and AVB+AC) the KL is the adversary's estimate, which on images the adversary
              never saw can be far too low: an estimate, not a bound
"""
import time

import numpy as np

from . import ais, evaluation, likelihood, quadrature, validate
from .methods import METHODS

AIS_TEMPS, AIS_CHAINS = 200, 8   # twice ais.ais's defaults each: on held-out digits AVB's posteriors
#                                  have modes its encoder misses, and more chains find them (README)
IS_SAMPLES = 1000                 # importance samples per image
Q_SAMPLES = 64                    # encoder samples per image, for the ELBO terms and the proposal


def score(run, data, rng, n_temps=AIS_TEMPS, n_chains=AIS_CHAINS, n_is=IS_SAMPLES, n_q=Q_SAMPLES, log=None):
    """Mean log p(x), ELBO terms and training seconds of `run` on the binary rows `data` (K, Dx).

    AIS and IS come as (estimate, standard error) with their mean effective sample sizes; all
    randomness from the NumPy generator rng. log: called with progress lines (AIS is the long part).
    """
    data = validate.binary_data("data", data, run.cfg.x_dim).astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in run.params.items()}   # float64, on the run's device
    t0 = time.perf_counter()
    z = evaluation.sample_q(run, data, validate.positive_int("n_q", n_q), rng)   # (K, S, Dz)
    if METHODS[run.method].contrast:               # the encoder's own moments start AIS and IS
        moments = evaluation.contrast(run, data, rng)                            # mu, sigma: (K, Dz)
        proposal = likelihood.gaussian_from_moments(*moments)                    # r(z|x_k), widened
    else:
        moments, proposal = None, likelihood.gaussian_from_samples(z)            # fitted to z
    rec, kl = evaluation.elbo_terms(run, data, z, moments)                       # (K,), (K,)
    by_is = likelihood.importance_sampling(run.nets, params, data, proposal, n_is, rng)
    by_ais = ais.ais(run.nets, params, data, proposal, rng, n_temps=n_temps, n_chains=n_chains, log=log)
    out = {"ais": [by_ais.mean, by_ais.mean_stderr], "ais_ess": by_ais.mean_ess,
           "is": [by_is.mean, by_is.mean_stderr], "is_ess": by_is.mean_ess,
           "elbo": float(-(rec + kl).mean()), "kl": float(kl.mean()),
           "reconstruction_error": float(rec.mean()), "seconds": round(run.seconds, 2)}
    if run.cfg.z_dim == 2:                                   # the exact answer, for comparison
        out["log_likelihood"] = quadrature.log_likelihood(run.nets, params, data)
    out["score_seconds"] = round(time.perf_counter() - t0, 2)
    return out
