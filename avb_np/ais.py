"""Annealed importance sampling (AIS) with HMC transitions, forward and reverse.

Neal (2001), "Annealed importance sampling"; for decoders, Wu, Burda, Salakhutdinov, Grosse
(2017), "On the quantitative analysis of decoder-based generative models"; bidirectional Monte
Carlo, Grosse, Ghahramani, Adams (2015). A path of unnormalised densities joins a proposal r(z|x)
(avb_np.likelihood.Gaussian, normalised) at beta = 0 to the joint p(x, z) at beta = 1:

    log f_beta(z) = (1 - beta) log r(z|x) + beta log p(x, z),     0 = beta_0 < ... < beta_T = 1

Forward: z ~ r(z|x); for t = 1..T
    log w += (beta_t - beta_{t-1}) [log p(x, z) - log r(z|x)]     (= log f_t(z) - log f_{t-1}(z))
    z <- an HMC transition that leaves f_{beta_t} invariant     (skipped at t = T: w is complete)
E[w] = p(x), so log mean_c w_c over chains c is a stochastic lower bound on log p(x). With T = 1
it is importance sampling from r. Reverse: start from an exact posterior sample z* ~ p(z|x) and
run the same steps from beta = 1 down to 0; then E[w] = 1 / p(x) and -log mean_c w_c is a
stochastic upper bound. Together they bracket log p(x) on simulated data (x ~ p(x|z*)).
"""
import math

import numpy as np

from . import likelihood, validate
from .backend import array_module, to_device, to_host

TEMPERATURE_SCHEDULES = ("linear", "sigmoid")


def schedule(n_temps, kind="sigmoid", rad=4.0):
    """The T + 1 inverse temperatures beta_0 = 0 < ... < beta_T = 1 (T = n_temps), a host array.

    linear:   beta_t = t / T                                      (the official AVB code)
    sigmoid:  beta_t = (s_t - s_0) / (s_T - s_0),  s_t = sigmoid(rad (2 t / T - 1))   (Wu et al., rad 4)
    The sigmoid spends its temperatures near both ends, where f_beta changes fastest per unit beta.
    """
    T = validate.positive_int("n_temps", n_temps)
    if kind not in TEMPERATURE_SCHEDULES:
        raise ValueError(f"schedule must be one of {TEMPERATURE_SCHEDULES}, got {kind!r}")
    t = np.linspace(0.0, 1.0, T + 1)
    if kind == "linear":
        return t
    s = 1 / (1 + np.exp(-validate.positive_float("rad", rad) * (2 * t - 1)))
    return (s - s[0]) / (s[-1] - s[0])


def hmc_transition(target, beta, state, step, p0, log_u, n_leapfrog):
    """One HMC transition of R chains at once that leaves f_beta invariant.

    H(z, p) = -log f_beta(z) + ||p||^2 / 2,  p0 ~ N(0, I) given. Leapfrog with per-dimension
    steps h = step: (R, Dz) (unit mass in the coordinates z / h, so valid for any positive h):
        p <- p + (h/2) d log f(z);   n_leapfrog x [ z <- z + h p;  p <- p + h d log f(z) ],
    the last momentum step a half step
    accepted when log u < H(z, p0) - H(z', p') (Metropolis; a NaN proposal is rejected).
    state: (z, log p(x,z), its dz, log r(z|x), its dz) of shapes (R, Dz), (R,), (R, Dz), (R,), (R, Dz);
    target(z) returns the last four at another z. log_u: (R,) logs of uniforms.
    Returns the new state and the acceptance probabilities min(1, exp(-dH)): (R,).
    """
    xp = array_module(state[0])

    def log_f(s):                                    # log f_beta and its dz from the state's parts
        _, lj, dlj, lr, dlr = s
        return (1 - beta) * lr + beta * lj, (1 - beta) * dlr + beta * dlj

    f0, g = log_f(state)
    z, p = state[0], p0 + 0.5 * step * g             # half step of momentum
    for i in range(n_leapfrog):
        z = z + step * p                             # full step of position
        new = (z, *target(z))
        f, g = log_f(new)
        p = p + (step if i < n_leapfrog - 1 else 0.5 * step) * g   # full steps, a half step at the end
    log_a = (f - 0.5 * (p * p).sum(axis=1)) - (f0 - 0.5 * (p0 * p0).sum(axis=1))   # -H(z',p') + H(z,p0)
    log_a = xp.where(xp.isnan(log_a), -xp.inf, log_a)                             # (R,)
    keep = log_u < log_a                             # (R,) accepted chains
    state = tuple(xp.where(keep.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(state, new))
    return state, xp.exp(xp.minimum(log_a, 0.0))


N_TEMPS, N_CHAINS, N_LEAPFROG, STEP_SIZE, TARGET_ACCEPT = 100, 4, 10, 0.1, 0.65   # see `ais`


def ais(nets, params, data, proposal, rng, n_temps=N_TEMPS, n_chains=N_CHAINS, n_leapfrog=N_LEAPFROG,
        schedule="sigmoid", step_size=STEP_SIZE, target_accept=TARGET_ACCEPT, log=None):
    """Forward AIS: a stochastic lower bound on log p(x) for each row of data (K, Dx); an Estimate.

    proposal: a likelihood.Gaussian (K, Dz) to start from, or None for the prior. All randomness
    (starts, momenta, accept draws) comes from the NumPy generator rng, drawn on the host.
    step_size: the first leapfrog step in units of r's std, then adapted per data point after
    each transition: x1.1 when its chains' mean acceptance probability is above
    target_accept + 0.05, /1.1 below target_accept - 0.05 (the official code's band, 0.6-0.7).
    The adaptation reads the chains' past, which strictly voids AIS's unbiasedness; as in the
    official code and Wu et al. the effect was not measurable here (equal results with a fixed
    step). log: called with a progress line ten times per batch of data points.

    Defaults: 100 sigmoid temperatures, 4 chains, 10 leapfrog steps, i.e. 4,000 decoder passes
    (forward and backward) per data point, where the official code runs 1000-2000 linear
    temperatures with 5-8 chains and Wu et al. 10,000 with 16. They fit a laptop: 7-19 s on one
    core (of a shared 2-core machine) for the 360 test digits with a 2 x 128 decoder
    (config.digits, z_dim 2). What they buy there (VAEs trained 1500 steps, against quadrature):
    starting from a Gaussian fitted to encoder samples, the mean log p(x) within 0.015 nats and
    0.15-0.19 nats rms per image; from the prior, the mean 0.05-0.17 nats low and 0.4-0.7 nats
    rms per image. (With so small a latent, importance_sampling from the fitted Gaussian with
    1,000 draws does better in 2 s: 0.005 nats low, 0.09 rms.) Raise n_temps for larger latents
    and for numbers to publish.
    """
    return _anneal(nets, params, data, proposal, None, rng, n_temps, n_chains, n_leapfrog,
                   schedule, step_size, target_accept, log)


def reverse_ais(nets, params, data, proposal, z_star, rng, n_temps=N_TEMPS, n_chains=N_CHAINS,
                n_leapfrog=N_LEAPFROG, schedule="sigmoid", step_size=STEP_SIZE, target_accept=TARGET_ACCEPT,
                log=None):
    """Reverse AIS from exact posterior samples z_star: (K, Dz), z*_k ~ p(z|x_k) (every chain of
    x_k starts there), annealed from beta = 1 to 0: a stochastic upper bound on log p(x), an
    Estimate. For simulated data (z* ~ p(z), x ~ p(x|z*)), with `ais` it brackets log p(x)."""
    return _anneal(nets, params, data, proposal, z_star, rng, n_temps, n_chains, n_leapfrog,
                   schedule, step_size, target_accept, log)


def _anneal(nets, params, data, proposal, z_star, rng, n_temps, n_chains, n_leapfrog, kind,
            step_size, target_accept, log):
    """The shared loop; forward when z_star is None, else reverse (betas run from 1 to 0)."""
    data, proposal = likelihood.check_inputs(nets, data, proposal)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    C, L = validate.positive_int("n_chains", n_chains), validate.positive_int("n_leapfrog", n_leapfrog)
    step_size = validate.positive_float("step_size", step_size)
    target_accept = validate.finite_float("target_accept", target_accept)
    K, Dz = proposal.mean.shape
    reverse = z_star is not None
    if reverse:
        z_star = np.asarray(to_host(z_star), dtype=np.float64)
        if z_star.shape != (K, Dz):
            raise ValueError(f"z_star must have shape (data points, z_dim) = {(K, Dz)}, got {z_star.shape}")
    betas = schedule(n_temps, kind)[::-1] if reverse else schedule(n_temps, kind)   # (T + 1,)
    T = len(betas) - 1
    log_w, eps_out, rates = np.empty((K, C)), np.empty(K), []
    P = max(1, likelihood.rows_per_pass(nets) // C)                     # data points per batch
    for k0 in range(0, K, P):
        ks = np.arange(k0, min(k0 + P, K))                              # (P,) data points of this batch
        rows = np.repeat(ks, C)                                         # (R,) = (P * C,), by data point
        x, mean, std = likelihood.rows_of(data, proposal, rows, params)
        xp, dtype = array_module(x), x.dtype

        def draw(a):                                                    # host draws onto the device
            return to_device(a, xp).astype(dtype)

        def target(z):                                                  # the parts of log f at z
            return (*likelihood.log_joint(nets, params, x, z),
                    *likelihood.proposal_log_density(proposal, z, mean, std))

        z = draw(z_star[rows]) if reverse else likelihood.proposal_sample(
            proposal, mean, std, rng, xp, dtype)                        # z_0 ~ r(z|x), or z*
        state = (z, *target(z))
        eps = xp.full((len(ks), 1), step_size, dtype=dtype)             # (P, 1) step per data point
        lw = xp.zeros(len(rows), dtype=np.float64)                      # (R,) log w, accumulated in float64
        accepted = []                                                   # mean acceptance per temperature, on the device
        for t in range(1, T + 1):
            lw += float(betas[t] - betas[t - 1]) * (state[1] - state[3])     # log f_t(z) - log f_{t-1}(z)
            if t == T:
                break
            h = xp.repeat(eps, C, axis=0) * std                         # (R, Dz) steps scaled by r's std
            p0 = draw(rng.standard_normal((len(rows), Dz)))             # momentum ~ N(0, I)
            log_u = draw(np.log(rng.random(len(rows))))                 # (R,)
            state, prob = hmc_transition(target, float(betas[t]), state, h, p0, log_u, L)
            rate = prob.reshape(len(ks), C).mean(axis=1, keepdims=True)   # (P, 1) per data point
            grow = xp.where(rate > target_accept + 0.05, 1.1,             # multiplicative adaptation
                            xp.where(rate < target_accept - 0.05, 1 / 1.1, 1.0))
            eps = eps * grow.astype(dtype)
            accepted.append(rate.mean())                                # read once per batch: no sync per step
            if log and (t % max(1, T // 10) == 0):
                log(f"AIS {'reverse' if reverse else 'forward'}: points {ks[0]}-{ks[-1]}, temperature "
                    f"{t}/{T}, beta {betas[t]:.4f}, acceptance {float(accepted[-1]):.2f}")
        rates += to_host(xp.stack(accepted)).tolist() if accepted else []
        log_w[ks] = to_host(lw).reshape(len(ks), C)
        eps_out[ks] = to_host(eps)[:, 0]
    info = {"accept_rate": float(np.mean(rates)) if rates else math.nan, "step_size": eps_out}
    return likelihood.estimate(log_w, reverse=reverse, info=info)
