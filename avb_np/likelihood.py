"""log p(x) of a decoder by importance sampling, and the pieces annealed importance sampling shares.

    log p(x) = log E_{z~r(z|x)}[ p(x|z) p(z) / r(z|x) ]
            ~= log (1/S) sum_s w_s,    log w_s = log p(x, z_s) - log r(z_s|x),    z_s ~ r(z|x)

r is a diagonal Gaussian per data point: the prior N(0, I), or one fitted to encoder samples
(`gaussian_from_samples`), mixed with the prior so that no weight can be huge (defensive
importance sampling). The estimate is consistent and, by Jensen's inequality, biased low;
its spread is read off the weights (`Estimate`). avb_np.ais anneals from the same r and returns
the same Estimate. Works for any z_dim, on NumPy and CuPy (arrays follow the parameters' module).

Shapes: K data points, S samples (or chains) per point, R rows of one network pass, Dx pixels,
Dz latent dimensions.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from . import losses, models, network, validate, validate_run
from .backend import array_module, to_device, to_host
from .gradcheck import TOL_SMOOTH, Case, moderate
from .network import Affine

WIDEN = 1.5         # std of a fitted proposal = WIDEN x the encoder samples' std (see gaussian_from_samples)
PRIOR_WEIGHT = 0.2  # weight of the prior in a fitted proposal (see gaussian_from_samples)
VAR_FLOOR = 1e-4    # added to the samples' variance, as in the official AC code's sigma = sqrt(Var + 1e-4)
PASS_BYTES = 100e6  # memory of one network pass (see rows_per_pass)


def log_joint(nets, params, x, z, with_grad=True):
    """log p(x, z) = log p(x|z) + log p(z) and its z-gradient (the potential energy of HMC).

        log p(x|z) = sum_i [ x_i l_i - softplus(l_i) ],   l = f_theta(z)
        log p(z)   = -||z||^2 / 2 - (Dz / 2) log(2 pi)
        d/dz       = J_f(z)^T (x - sigmoid(l)) - z         (the decoder's backward pass, then the prior)

    x: (R, Dx), z: (R, Dz) -> logp: (R,), dz: (R, Dz) (None when with_grad is False).
    """
    logits, cache = models.decode(nets, params, z)                      # (R, Dx)
    log_lik, dlogits = losses.bernoulli_log_likelihood(x, logits)       # (R,), (R, Dx)
    log_prior, dprior = losses.standard_normal_log_density(z)           # (R,), (R, Dz)
    if not with_grad:
        return log_lik + log_prior, None
    dz, _ = models.decode_backward(nets, dlogits, cache, param_grads=False)   # dz only, theta fixed
    return log_lik + log_prior, dz + dprior


# ----------------------------------------------------------------------------- proposals

@dataclass
class Gaussian:
    """r(z|x_k) = (1 - a) N(z; mean[k], diag std[k]^2) + a N(z; 0, I), one per data point.

    mean, std: (K, Dz) host arrays; a = prior_weight in [0, 1) (0: the Gaussian alone)."""
    mean: np.ndarray
    std: np.ndarray
    prior_weight: float = 0.0


def prior(n_points, z_dim):
    """p(z) = N(0, I) as the proposal of each of n_points data points."""
    return Gaussian(np.zeros((n_points, z_dim)), np.ones((n_points, z_dim)))


def gaussian_from_samples(z, widen=WIDEN, prior_weight=PRIOR_WEIGHT):
    """A proposal per data point from its encoder samples z: (K, S, Dz): a Gaussian with their
    per-dimension mean and (widened) std, mixed with the prior:

        r(z|x) = (1 - a) N(z; mean, diag std^2) + a N(z; 0, I),
        mean = (1/S) sum_s z_s,    std = widen * sqrt(Var_s[z] + 1e-4),    a = prior_weight

    Why widen: importance sampling needs r wider than the posterior p(z|x). With both Gaussian,
    per dimension std ratio c = std_r / std_post, the weights' second moment is
    E_r[w^2] / E_r[w]^2 = c^2 / sqrt(2 c^2 - 1), infinite for c <= 1/sqrt(2). Encoders fitted by
    KL(q || p) tend to be narrower than the posterior; widen = 1.5 keeps the variance finite for
    a posterior up to 2.1 x wider than q, and costs a factor 1.2 of ESS per dimension when q is exact.
    Why the prior (defensive importance sampling, Hesterberg 1995): on images it was not trained
    on, an encoder can miss a mode of p(z|x) altogether (seen on digits with AVB: a few test images
    whose estimate was 30 nats low). With the prior in the mixture every weight is at most
    p(x, z) / (a p(z)) = p(x|z) / a <= 1 / a; it costs at most a factor 1 - a of ESS.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(f"z must be encoder samples of shape (data points, samples >= 2, z_dim), got {z.shape}")
    return gaussian_from_moments(z.mean(axis=1), np.sqrt(z.var(axis=1) + VAR_FLOOR), widen, prior_weight)


def gaussian_from_moments(mean, std, widen=WIDEN, prior_weight=PRIOR_WEIGHT):
    """The proposal of gaussian_from_samples from known moments of q(z|x), mean, std: (K, Dz)
    (an AVB+AC encoder's mu(x), sigma(x): evaluation.contrast), widened and mixed the same way."""
    widen = validate.positive_float("widen", widen)
    prior_weight = validate.finite_float("prior_weight", prior_weight, minimum=0.0)
    if prior_weight >= 1:
        raise ValueError(f"prior_weight must be in [0, 1), got {prior_weight}")
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.ndim != 2 or mean.shape != std.shape or not (std > 0).all():
        raise ValueError(f"mean and std must be (data points, z_dim) arrays, std > 0; got shapes "
                         f"{mean.shape} and {std.shape}")
    return Gaussian(mean, widen * std, prior_weight)


def proposal_sample(proposal, mean, std, rng, xp, dtype):
    """z ~ r(z|x) for R rows whose Gaussian parts are mean, std: (R, Dz) on `xp`; a row is drawn
    from the prior with probability prior_weight (that choice is drawn only when it is > 0)."""
    eps = to_device(rng.standard_normal(mean.shape), xp).astype(dtype)   # (R, Dz)
    z = gaussian_sample(mean, std, eps)
    if proposal.prior_weight > 0:
        from_prior = to_device(rng.random(len(mean)) < proposal.prior_weight, xp)   # (R,)
        z = xp.where(from_prior[:, None], eps, z)                        # eps is a prior draw
    return z


def proposal_log_density(proposal, z, mean, std):
    """log r(z|x) and its z-gradient for the mixture, rows as in proposal_sample:

        log r = logaddexp(log(1 - a) + log N(z; mean, std^2), log a + log N(z; 0, I))
        d/dz  = g * dlogN(z; mean, std^2)/dz + (1 - g) * (-z),   g = the Gaussian's responsibility

    z, mean, std: (R, Dz) -> logr: (R,), dz: (R, Dz)."""
    log_g, dg = gaussian_log_density(z, mean, std)
    a = proposal.prior_weight
    if a == 0:
        return log_g, dg
    xp = array_module(z)
    log_p, dp = losses.standard_normal_log_density(z)
    u, v = log_g + math.log(1 - a), log_p + math.log(a)                 # (R,) each
    top = xp.maximum(u, v)
    logr = top + xp.log(xp.exp(u - top) + xp.exp(v - top))
    g = xp.exp(u - logr)[:, None]                                       # (R, 1) responsibility
    return logr, g * dg + (1 - g) * dp


def gaussian_sample(mean, std, eps):
    """z = mean + std * eps, eps ~ N(0, I) given.   mean, std, eps: (R, Dz) -> z: (R, Dz)."""
    return mean + std * eps


def gaussian_log_density(z, mean, std):
    """log r(z) = sum_d [ -u_d^2 / 2 - log std_d ] - (Dz / 2) log(2 pi),  u = (z - mean) / std,
    with d/dz = -u / std.   z, mean, std: (R, Dz) -> logr: (R,), dz: (R, Dz)."""
    xp = array_module(z, mean, std)
    u = (z - mean) / std
    logr = (-0.5 * (u * u).sum(axis=1) - xp.log(std).sum(axis=1)
            - 0.5 * z.shape[1] * math.log(2 * math.pi))
    return logr, -u / std


# ----------------------------------------------------------------------------- the estimate

@dataclass
class Estimate:
    """log p(x) per data point from S log weights (IS samples or AIS chains), with its spread."""
    log_px: np.ndarray   # (K,) log (1/S) sum_s w_s
    stderr: np.ndarray   # (K,) standard error of log_px (delta method); NaN for S = 1
    ess: np.ndarray      # (K,) effective sample size (sum w)^2 / sum w^2, in [1, S]
    log_w: np.ndarray    # (K, S) the log weights themselves
    info: dict = field(default_factory=dict)   # e.g. AIS's acceptance rate and step sizes

    @property
    def mean(self):
        """Mean log p(x) over the data points."""
        return float(self.log_px.mean())

    @property
    def mean_stderr(self):
        """Standard error of `mean`: sqrt(sum_k stderr_k^2) / K (points are independent)."""
        return float(np.sqrt((self.stderr ** 2).sum()) / len(self.stderr))

    @property
    def mean_ess(self):
        return float(self.ess.mean())

    def __str__(self):
        return (f"log p(x) {self.mean:.4f} +- {self.mean_stderr:.4f} (s.e.), "
                f"ESS {self.mean_ess:.1f} of {self.log_w.shape[1]}")


def log_mean_exp(a, axis):
    """log mean exp(a) along `axis` = logsumexp(a) - log n (host arrays)."""
    return losses.logsumexp(a, axis) - math.log(a.shape[axis])


def estimate(log_w, reverse=False, info=None):
    """The Estimate from log weights log_w: (K, S).

        log p(x) = log mean_s w_s
        u_s      = w_s / mean(w) = exp(log w_s - log mean w)      (stable: u_s <= S)
        stderr   = sd(w) / (sqrt(S) mean(w)) = sd(u) / sqrt(S)      (delta method, d log m = dm / m)
        ESS      = (sum_s w_s)^2 / sum_s w_s^2 = S / mean(u^2)
    reverse: the weights estimate 1 / p(x) (reverse AIS), so log p(x) = -log mean_s w_s, with
    the same stderr and ESS.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    S = log_w.shape[1]
    log_m = log_mean_exp(log_w, axis=1)                                 # (K,)
    u = np.exp(log_w - log_m[:, None])                                  # (K, S), mean 1 per row
    sd = np.sqrt(((u - 1) ** 2).sum(axis=1) / (S - 1)) if S > 1 else np.full(len(u), np.nan)
    return Estimate(-log_m if reverse else log_m, sd / math.sqrt(S),
                    S / (u * u).mean(axis=1), log_w, info or {})


# ----------------------------------------------------------------------------- importance sampling

def rows_per_pass(nets, budget=PASS_BYTES):
    """Rows R of one decoder pass so that it stays near `budget` bytes: a row holds about six
    float64 values per unit (layer outputs, caches, gradients, loss temporaries)."""
    units = nets["dec"][0].n_in + sum(l.n_out for l in nets["dec"] if isinstance(l, Affine))
    return max(1, int(budget // (6 * 8 * units)))


def check_inputs(nets, params, data, proposal, rng, samples, name="n_samples"):
    """Everything IS and AIS take, checked at the door: the decoder's parameters (present, with
    their shapes, finite and within bounds), the binary data (K, Dx), the proposal (None: the
    prior; else a Gaussian whose mean and std have shape (K, Dz), are finite, std > 0, prior
    weight in [0, 1)), the NumPy generator rng, and `samples` per data point (argument `name`),
    whose K x samples rows must fit in validate.MAX_BYTES. Returns (data, proposal, samples)."""
    validate_run.model(nets, params)
    validate.generator("rng", rng)
    samples = validate.positive_int(name, samples)
    data = validate.binary_data("data", data, nets["dec"][-1].n_out)
    shape = (len(data), nets["dec"][0].n_in)                            # (K, Dz)
    validate.memory(name, samples, 8 * len(data) * samples * (6 * shape[1] + 4),
                    f"{samples} samples (or chains) for each of {len(data)} data points")
    if proposal is None:
        return data, prior(*shape), samples
    if not isinstance(proposal, Gaussian):
        raise TypeError(f"proposal must be a likelihood.Gaussian (or None for the prior), got "
                        f"{type(proposal).__name__}")
    for part in ("mean", "std"):
        a = to_host(getattr(proposal, part))
        if a.shape != shape:
            raise ValueError(f"proposal.{part} must have shape (data points, z_dim) = {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"proposal.{part} must be finite, got {np.count_nonzero(~np.isfinite(a))} "
                             "NaN or infinite entries")
    if not (to_host(proposal.std) > 0).all():
        raise ValueError("proposal.std must be positive everywhere")
    validate.finite_float("proposal.prior_weight", proposal.prior_weight, 0.0, 1.0 - 1e-12)
    return data, proposal, samples


def rows_of(data, proposal, rows, params):
    """x, mean, std for the data points `rows`: (R,) indices, on the parameters' array module and dtype."""
    xp = array_module(*params.values())
    dtype = next(iter(params.values())).dtype
    return tuple(to_device(np.asarray(to_host(a))[rows], xp).astype(dtype)
                 for a in (data, proposal.mean, proposal.std))              # (R, Dx), (R, Dz), (R, Dz)


def importance_sampling(nets, params, data, proposal, n_samples, rng):
    """log p(x) for each row of `data` (K, Dx) from n_samples draws of `proposal` (None: the prior).

    log p(x) ~= log mean_s exp(log p(x, z_s) - log r(z_s|x)), z_s ~ r(z|x) drawn on the host
    from the NumPy generator `rng`. The K * S rows go through the decoder
    in passes of rows_per_pass(nets) (~100 MB each). Returns an Estimate.
    """
    data, proposal, S = check_inputs(nets, params, data, proposal, rng, n_samples)
    K, Dz = proposal.mean.shape
    R = rows_per_pass(nets)
    log_w = np.empty(K * S)                                             # row i: data point i // S
    for i in range(0, K * S, R):
        rows = np.arange(i, min(i + R, K * S)) // S                     # (R,) data point of each row
        x, mean, std = rows_of(data, proposal, rows, params)
        z = proposal_sample(proposal, mean, std, rng, array_module(x), x.dtype)   # z ~ r(z|x): (R, Dz)
        lj, _ = log_joint(nets, params, x, z, with_grad=False)          # log p(x, z): (R,)
        lr, _ = proposal_log_density(proposal, z, mean, std)            # log r(z|x): (R,)
        log_w[i:i + len(rows)] = to_host(lj - lr)
    return estimate(log_w.reshape(K, S))


def gradcheck_cases(rng, N=4, Dz=3, Dx=6):
    """Gradient checks (avb_np.gradcheck_suite.Case) of the z-gradients of log_joint and of the
    proposal's log density (a mixture with prior weight 0.3, so both parts and the
    responsibilities are exercised), through L = sum_n w_n value_n with per-row weights w."""
    nets = {"dec": network.mlp("dec", [Dz, 5, 5, Dx], "elu")}
    params = network.init_params(nets["dec"], rng, np, np.float64)
    for p in params.values():                                # off the initial values (zero biases)
        p += 0.3 * rng.standard_normal(p.shape)
    x = (rng.random((N, Dx)) < 0.5).astype(np.float64)
    mean, std = rng.standard_normal((N, Dz)), rng.uniform(0.5, 2.0, (N, Dz))
    w = moderate(rng, N)

    def joint(p):
        logp, dz = log_joint(nets, params, x, p["z"])
        return float(w @ logp), {"z": w[:, None] * dz}

    proposal = Gaussian(mean, std, prior_weight=0.3)

    def mixture(p):
        logr, dz = proposal_log_density(proposal, p["z"], mean, std)
        return float(w @ logr), {"z": w[:, None] * dz}

    return [Case("log_joint (z)", joint, {"z": moderate(rng, (N, Dz))}, TOL_SMOOTH),
            Case("proposal_log_density (z)", mixture, {"z": moderate(rng, (N, Dz))}, TOL_SMOOTH)]
