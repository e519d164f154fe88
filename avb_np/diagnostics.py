"""Per-image checks of a log-likelihood estimate: which images' numbers not to trust.

An estimate log p(x) ~= log mean_s w_s and its standard error (likelihood.Estimate) are read off
a handful of weights. When the weights miss the mass that matters (an encoder whose q(z|x) sits
away from p(z|x), chains that never reach it), the estimate is too low and its standard error
too small, and nothing in the two numbers says so. Each check below looks at that image's
weights from another side and flags it:

    low_ess    ESS = (sum w)^2 / sum w^2 below ESS_SHARE x S: a few weights carry the estimate,
               so its standard error is itself unreliable
    misses     (for IS) AIS's search (chains annealed from the prior, ais.ais) found the
               posterior's mass more than MISS_STDS of the proposal's stds from the encoder's
               Gaussian: the encoder missed it. AIS then starts from what the search found;
               importance sampling, which draws from the encoder's Gaussian as it is, is in doubt
    disagree   importance sampling against AIS: |IS - AIS| beyond 3 combined standard errors
               plus DISAGREE_NATS (both are stochastic lower bounds; the lower one lags)
    below_is   AIS below importance sampling by as much: IS's many draws from the prior part of
               its proposal found mass that all of AIS's chains missed
    gap        forward against reverse AIS (bidirectional Monte Carlo, Grosse et al. 2015): the
               bracket [forward, reverse] wider than GAP_NATS; the truth lies inside it

Shapes: K images, S weights (samples or chains) per image. Every flag is a (K,) bool host array.
"""
import numpy as np


ESS_SHARE = 0.25       # low_ess: ESS below a quarter of the weights (8 of 32 chains, 250 of 1,000 samples)
MISS_STDS = 3.0        # misses: the search moved the proposal's mean by more than this many of its stds
DISAGREE_NATS = 0.05   # disagree: slack beyond 3 standard errors, for the estimators' own bias
GAP_NATS = 0.5         # gap: a bracket wider than this


def low_ess(est, share=ESS_SHARE):
    """ESS below share x S, per image."""
    return est.ess < share * est.log_w.shape[1]


def misses(est, stds=MISS_STDS):
    """AIS's search (ais.ais, step 1) moved the proposal's mean by more than `stds` of its stds
    in some dimension (est.info['moved']), per image; all False for an estimate without one."""
    moved = est.info.get("moved")
    return np.zeros(len(est.log_px), dtype=bool) if moved is None else np.asarray(moved) > stds


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
    flags = {"low_ess": low_ess(est)}                    # (AIS searched for the mass: 'misses' is IS's)
    if is_est is not None:
        flags["below_is"] = disagree(is_est, est) & (is_est.log_px > est.log_px)
    flags["any"] = np.logical_or.reduce(list(flags.values()))
    return flags


def is_flags(est, reference):
    """{check: (K,) bool} for an importance-sampling estimate against a reference (AIS; its
    'misses' count for IS, which uses the proposal as it is), and 'any'."""
    flags = {"low_ess": low_ess(est), "disagree": disagree(est, reference), "misses": misses(reference)}
    flags["any"] = np.logical_or.reduce(list(flags.values()))
    return flags


def counts(flags):
    """{check: number of images flagged}, for tables and results.json."""
    return {k: int(v.sum()) for k, v in flags.items()}
