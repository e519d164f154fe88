"""Per-image checks of a log-likelihood estimate: which images' numbers not to trust.

An estimate log p(x) ~= log mean_s w_s and its standard error (likelihood.Estimate) are read off
a handful of weights. When the weights miss the mass that matters (an encoder whose q(z|x) sits
away from p(z|x), chains that never reach it), the estimate is too low and its standard error
too small, and nothing in the two numbers says so. Each check below looks at that image's
weights from another side and flags it:

    low_ess    ESS = (sum w)^2 / sum w^2 below ESS_SHARE x S: a few weights carry the estimate,
               so its standard error is itself unreliable
    misses     AIS whose first C0 chains started from the prior (ais.ais): the prior's chains
               give log mean w more than MISS_NATS above the proposal's chains. They anneal to
               the same posterior, so a proposal that finds its mass scores as high; a lower
               score means the encoder's Gaussian misses posterior mass the prior's chains reach
    disagree   importance sampling against AIS: |IS - AIS| beyond 3 combined standard errors
               plus DISAGREE_NATS (both are stochastic lower bounds; the lower one lags)
    below_is   AIS below importance sampling by as much: IS's many draws from the prior part of
               its proposal found mass that all of AIS's chains missed
    gap        forward against reverse AIS (bidirectional Monte Carlo, Grosse et al. 2015): the
               bracket [forward, reverse] wider than GAP_NATS; the truth lies inside it

Shapes: K images, S weights (samples or chains) per image. Every flag is a (K,) bool host array.
"""
import numpy as np

from .likelihood import log_mean_exp

ESS_SHARE = 0.25       # low_ess: ESS below a quarter of the weights (2 of 8 chains, 250 of 1,000 samples)
MISS_NATS = 1.0        # misses: the prior's chains ahead of the proposal's by more than this
DISAGREE_NATS = 0.05   # disagree: slack beyond 3 standard errors, for the estimators' own bias
GAP_NATS = 0.5         # gap: a bracket wider than this


def low_ess(est, share=ESS_SHARE):
    """ESS below share x S, per image."""
    return est.ess < share * est.log_w.shape[1]


def misses(est, nats=MISS_NATS):
    """The prior-started chains (the first est.info['prior_chains'] columns of log_w) ahead of the
    proposal-started ones by more than `nats`; all False when one of the two groups is empty."""
    C0, C = est.info.get("prior_chains", 0), est.log_w.shape[1]
    if not 0 < C0 < C:
        return np.zeros(len(est.log_px), dtype=bool)
    return log_mean_exp(est.log_w[:, :C0], axis=1) - log_mean_exp(est.log_w[:, C0:], axis=1) > nats


def disagree(a, b, nats=DISAGREE_NATS):
    """|a - b| beyond 3 standard errors of the difference plus `nats`, per image."""
    se = np.hypot(np.nan_to_num(a.stderr), np.nan_to_num(b.stderr))
    return np.abs(a.log_px - b.log_px) > 3 * se + nats


def gap(forward, reverse, nats=GAP_NATS):
    """The bidirectional bracket reverse - forward wider than `nats`, per image."""
    return reverse.log_px - forward.log_px > nats


def ais_flags(est, is_est=None):
    """{check: (K,) bool} for an AIS estimate (and, given importance sampling's estimate of the
    same images, below_is), and 'any' (an image failing one check or more)."""
    flags = {"low_ess": low_ess(est), "misses": misses(est)}
    if is_est is not None:
        flags["below_is"] = disagree(is_est, est) & (is_est.log_px > est.log_px)
    flags["any"] = np.logical_or.reduce(list(flags.values()))
    return flags


def is_flags(est, reference):
    """{check: (K,) bool} for an importance-sampling estimate against a reference (AIS), and 'any'."""
    flags = {"low_ess": low_ess(est), "disagree": disagree(est, reference)}
    flags["any"] = np.logical_or.reduce(list(flags.values()))
    return flags


def counts(flags):
    """{check: number of images flagged}, for tables and results.json."""
    return {k: int(v.sum()) for k, v in flags.items()}
