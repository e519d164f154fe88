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
PRIOR_SHARE = 0.25   # share of each point's chains started from the prior (see `ais`)
PILOT_TEMPS = 50     # temperatures of the pilot run that tunes the steps (see `ais`)
WIDE_SHARE = 0.25    # share of HMC moves on the prior's scale rather than the proposal's (see `ais`)


def prior_chains(n_chains, proposal, share=PRIOR_SHARE):
    """How many of n_chains start from the prior: round(share * n_chains), at least 1 when share > 0
    and the proposal has a Gaussian part; all of them when the proposal is the prior itself (None)."""
    C = validate.positive_int("n_chains", n_chains)
    share = validate.finite_float("prior_share", share, minimum=0.0)
    if share > 1:
        raise ValueError(f"prior_share must be in [0, 1], got {share}")
    if proposal is None:
        return C
    return min(C, max(1, round(share * C))) if share > 0 else 0


def ais(nets, params, data, proposal, rng, n_temps=N_TEMPS, n_chains=N_CHAINS, n_leapfrog=N_LEAPFROG,
        schedule="sigmoid", step_size=STEP_SIZE, target_accept=TARGET_ACCEPT, prior_share=PRIOR_SHARE, log=None):
    """Forward AIS: a stochastic lower bound on log p(x) for each row of data (K, Dx); an Estimate.

    proposal: a likelihood.Gaussian (K, Dz), or None for the prior. All randomness (starts,
    momenta, accept draws) comes from the NumPy generator rng, drawn on the host.

    Starts (stratified mixture). Of the C = n_chains chains of a point, C0 = prior_chains(C,
    proposal, prior_share) start from the prior N(0, I) and C - C0 from the proposal's Gaussian
    part, and the path starts from the mixture with exactly those weights,
        r(z|x) = (1 - a) N(z; mean, std^2) + a N(z; 0, I),    a = C0 / C
    (the proposal's own prior_weight is replaced by a). With g(z0) = E[w | z0] for a chain
    started at z0, E[(1/C) sum_c w_c] = a E_N(0,I)[g] + (1 - a) E_N(mean,std^2)[g] = E_r[g] = p(x):
    the weights stay unbiased (stratified sampling of a mixture, as in multiple importance
    sampling; Owen and Zhou 2000). The prior's chains reach posterior mass that an encoder
    misses; where the encoder is right they cost little, because r is the same mixture for all.

    Steps. Leapfrog steps h_d = eps s_d per dimension d. The scale s of each move is drawn afresh:
    1 (the prior's) with probability WIDE_SHARE, else the std of the proposal's Gaussian part, so
    a chain can cross to mass the proposal misses and still take fine steps inside a narrow mode
    (a random choice of invariant kernels is an invariant kernel). eps is tuned by a pilot run: the same chains first run along PILOT_TEMPS of the
    temperatures, each eps starting at step_size and adapted after each transition from its
    chain's acceptance probability (x1.1 above target_accept + 0.05, /1.1 below target_accept -
    0.05: the official code's band, 0.6-0.7); the median over a point's chains at each pilot
    temperature is then fixed, and the real run uses it from that temperature to the next. So
    the steps follow the distribution at each temperature, not the proposal's scale, while the
    real run's kernels (a) depend only on the pilot's draws, never on the chain's own past, and
    (b) are the same for every chain of a point, whichever stratum it started in. Both keep the
    weights unbiased: (a) is AIS's requirement of f_beta-invariant kernels; without (b) the
    expectation mixes two different AIS identities (a kernel per stratum put the digits VAE's
    AIS above the exact value; benchmarks/ais_digits.py). The pilot costs PILOT_TEMPS / n_temps
    of the run. target_accept=None: no pilot, eps = step_size throughout.
    log: called with a progress line ten times per batch of data points.

    Defaults: 100 sigmoid temperatures, 4 chains, 10 leapfrog steps, i.e. 4,000 decoder passes
    (forward and backward) per data point (the official code runs 1000-2000 linear temperatures
    with 5-8 chains, Wu et al. 10,000 with 16). info of the Estimate: the mean acceptance rate,
    each point's mean final step eps and `prior_chains` C0 (the first C0 columns of log_w).
    """
    return _anneal(nets, params, data, proposal, None, rng, n_temps, n_chains, n_leapfrog,
                   schedule, step_size, target_accept, prior_share, log)


def reverse_ais(nets, params, data, proposal, z_star, rng, n_temps=N_TEMPS, n_chains=N_CHAINS,
                n_leapfrog=N_LEAPFROG, schedule="sigmoid", step_size=STEP_SIZE, target_accept=TARGET_ACCEPT,
                prior_share=PRIOR_SHARE, log=None):
    """Reverse AIS from exact posterior samples z_star: (K, Dz), z*_k ~ p(z|x_k) (every chain of
    x_k starts there), annealed from beta = 1 to 0 towards the same mixture r as `ais`: a
    stochastic upper bound on log p(x), an Estimate. For simulated data (z* ~ p(z),
    x ~ p(x|z*)), with `ais` it brackets log p(x) (bidirectional Monte Carlo)."""
    return _anneal(nets, params, data, proposal, z_star, rng, n_temps, n_chains, n_leapfrog,
                   schedule, step_size, target_accept, prior_share, log)


def _anneal(nets, params, data, proposal, z_star, rng, n_temps, n_chains, n_leapfrog, kind,
            step_size, target_accept, prior_share, log):
    """The shared loop; forward when z_star is None, else reverse (betas run from 1 to 0)."""
    C0 = prior_chains(n_chains, proposal, prior_share)                  # None (the prior): all of them
    data, proposal, C = likelihood.check_inputs(nets, params, data, proposal, rng, n_chains, "n_chains")
    L = validate.positive_int("n_leapfrog", n_leapfrog)
    step_size = validate.positive_float("step_size", step_size)
    if target_accept is not None:
        target_accept = validate.finite_float("target_accept", target_accept)
    K, Dz = proposal.mean.shape
    proposal = (likelihood.prior(K, Dz) if C0 == C else                  # r: the stratified mixture
                likelihood.Gaussian(proposal.mean, proposal.std, C0 / C))
    reverse = z_star is not None
    if reverse:
        z_star = np.asarray(to_host(z_star), dtype=np.float64)
        if z_star.shape != (K, Dz):
            raise ValueError(f"z_star must have shape (data points, z_dim) = {(K, Dz)}, got {z_star.shape}")
    betas = schedule(n_temps, kind)[::-1] if reverse else schedule(n_temps, kind)   # (T + 1,)
    pilot = None if target_accept is None else betas[np.unique(np.linspace(0, len(betas) - 1, PILOT_TEMPS + 1).astype(int))]
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

        def chains(betas, steps, adapt):
            """Run the R chains along `betas`; steps(t, eps) gives the step per chain at temperature
            t. Returns log w (R,), the steps used at each temperature (list of (R, 1)), acceptance."""
            from_prior = draw((np.arange(len(rows)) % C < C0)[:, None])  # (R, 1) 1 for the prior's chains
            if reverse:
                z = draw(z_star[rows])                                  # z* ~ p(z|x)
            else:                                                       # z_0 ~ its chain's part of r
                start = from_prior + (1 - from_prior) * std             # (R, Dz) that part's std
                z = likelihood.gaussian_sample((1 - from_prior) * mean, start, draw(rng.standard_normal((len(rows), Dz))))

            state, eps = (z, *target(z)), xp.full((len(rows), 1), step_size, dtype=dtype)   # eps: (R, 1)
            lw, used, accepted = xp.zeros(len(rows), dtype=np.float64), [], []   # log w in float64
            for t in range(1, len(betas)):
                lw += float(betas[t] - betas[t - 1]) * (state[1] - state[3])     # log f_t(z) - log f_{t-1}(z)
                if t == len(betas) - 1:
                    break
                eps = steps(t, eps)
                p0 = draw(rng.standard_normal((len(rows), Dz)))         # momentum ~ N(0, I)
                log_u = draw(np.log(rng.random(len(rows))))             # (R,)
                wide = draw((rng.random((len(rows), 1)) < WIDE_SHARE))  # (R, 1) this move's scale: 1 or std
                scale = wide + (1 - wide) * std                         # (R, Dz), the same law for every chain
                state, prob = hmc_transition(target, float(betas[t]), state, eps * scale, p0, log_u, L)
                if adapt:                                               # per chain, multiplicative
                    grow = xp.where(prob > target_accept + 0.05, 1.1,
                                    xp.where(prob < target_accept - 0.05, 1 / 1.1, 1.0))
                    eps = eps * grow.astype(dtype)[:, None]
                used.append(eps)                                        # (the pilot's: as adapted here)
                accepted.append(prob.mean())                            # read once per batch: no sync per step
                if log and not adapt and (t % max(1, T // 10) == 0):
                    log(f"AIS {'reverse' if reverse else 'forward'}: points {ks[0]}-{ks[-1]}, temperature "
                        f"{t}/{T}, beta {betas[t]:.4f}, acceptance {float(accepted[-1]):.2f}")
            return lw, used, accepted

        if pilot is None or len(pilot) < 3:                             # fixed steps (or no move to tune)
            steps = lambda t, eps: eps                                  # noqa: E731
        else:                                                           # steps tuned by a pilot run
            _, used, _ = chains(pilot, lambda t, eps: eps, adapt=True)
            tuned = _tuned_steps(xp, used, len(ks), C)                  # (PILOT_TEMPS - 1, R, 1)
            at = np.searchsorted(pilot[1:-1], betas, side="right") if not reverse else \
                np.searchsorted(-pilot[1:-1], -betas, side="right")     # the pilot temperature at or before
            steps = lambda t, eps: tuned[min(at[t], len(tuned)) - 1] if at[t] else tuned[0]   # noqa: E731
        lw, used, accepted = chains(betas, steps, adapt=False)
        rates += to_host(xp.stack(accepted)).tolist() if accepted else []
        log_w[ks] = to_host(lw).reshape(len(ks), C)
        eps_out[ks] = to_host(used[-1]).reshape(len(ks), C).mean(axis=1) if used else step_size
    info = {"accept_rate": float(np.mean(rates)) if rates else math.nan, "step_size": eps_out,
            "prior_chains": C0}
    return likelihood.estimate(log_w, reverse=reverse, info=info)


def _tuned_steps(xp, used, P, C):
    """The pilot's steps at each of its temperatures as one step per data point, the median over
    its C chains: every chain of a point must move by the same kernel (see `ais`).
    used: list over temperatures of (R, 1), R = P * C -> (len(used), R, 1)."""
    eps = xp.stack(used).reshape(len(used), P, C)                       # (T_p, P, C)
    return xp.repeat(xp.median(eps, axis=2, keepdims=True), C, axis=2).reshape(len(used), P * C, 1)
