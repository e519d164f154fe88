"""Annealed importance sampling (AIS) with HMC transitions, forward and reverse.

Neal (2001), "Annealed importance sampling"; for decoders, Wu, Burda, Salakhutdinov, Grosse
(2017), "On the quantitative analysis of decoder-based generative models"; bidirectional Monte
Carlo, Grosse, Ghahramani, Adams (2015). A path of unnormalised densities joins a proposal r(z|x)
(avb_np.likelihood.Gaussian, normalised) at beta = 0 to the joint p(x, z) at beta = 1:

    log f_beta(z) = (1 - beta) log r(z|x) + beta log p(x, z),     0 = beta_0 < ... < beta_T = 1

Forward: z ~ r(z|x); for t = 1..T
    log w += (beta_t - beta_{t-1}) [log p(x, z) - log r(z|x)]     (= log f_t(z) - log f_{t-1}(z))
    z <- transitions that leave f_{beta_t} invariant            (skipped at t = T: w is complete):
         HMC, then an independence Metropolis-Hastings move; r and the HMC steps come from short
         pilot runs, so that the answer does not rest on the encoder (see `ais`)
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
PRIOR_SHARE = 0.0    # share of each point's chains started from the prior (see `ais`)
PILOT_TEMPS = 25     # temperatures of each pilot run, at most a quarter of the run's (see `ais`)
WIDE_SHARE = 0.25    # share of HMC moves on the prior's scale rather than the proposal's (see `ais`)
JUMP_PRIOR = 0.25    # the prior's weight in the independence moves' proposal (see `independence_move`)


def independence_move(target, beta, state, mean, std, rng, xp, dtype):
    """One Metropolis-Hastings move of every chain to z' ~ h(z|x), drawn independently of z
    (an independence sampler), h = (1 - b) N(mean, std^2) + b N(0, I), b = JUMP_PRIOR:

        accept with probability  min(1, f_beta(z') h(z) / (f_beta(z) h(z'))),
        log f_beta = (1 - beta) log r(z|x) + beta log p(x, z)   (read off the state's parts)

    It leaves f_beta invariant (Metropolis-Hastings with a fixed proposal) and jumps between
    modes that HMC's local steps cannot cross. state as in hmc_transition; mean, std: (R, Dz).
    Costs one more pass of the decoder. Returns the new state."""
    h = likelihood.Gaussian(mean, std, JUMP_PRIOR)
    z = likelihood.proposal_sample(h, mean, std, rng, xp, dtype)                  # (R, Dz)
    new = (z, *target(z))

    def log_f(s):
        return (1 - beta) * s[3] + beta * s[1]
    log_h_new = likelihood.proposal_log_density(h, new[0], mean, std)[0]
    log_h_old = likelihood.proposal_log_density(h, state[0], mean, std)[0]
    log_a = log_f(new) - log_f(state) + log_h_old - log_h_new                    # (R,)
    log_a = xp.where(xp.isnan(log_a), -xp.inf, log_a)
    keep = to_device(np.log(rng.random(len(z))), xp) < log_a
    return tuple(xp.where(keep.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(state, new))


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

    The path's start r and its kernels, chosen so the answer does not rest on the encoder:

    1. Search (forward AIS with a pilot). A first pilot run anneals every chain from the prior
       N(0, I) along PILOT_TEMPS temperatures, with the moves below and steps adapted per chain.
       Its chains end where p(z|x) has its mass, whether or not the encoder's Gaussian is
       there; r's Gaussian part is then refitted to them: the mean of their last positions
       under their AIS weights, and std = sqrt(WIDEN^2 var + std_q^2) from their weighted
       variance var and the proposal's std_q, so never narrower than the proposal (`_refit`). info['moved'] says per point how far the
       mean moved, in the proposal's stds (a proposal that misses moves far).
    2. Starts. Of the C = n_chains chains of a point, C0 = prior_chains(C, proposal,
       prior_share) start from the prior and C - C0 from the Gaussian part, and the path starts
       from the mixture with exactly those weights, r = (1 - a) N(mean, std^2) + a N(0, I),
       a = C0 / C (stratified sampling of a mixture, Owen and Zhou 2000; default a = 0: the
       refit Gaussian alone). The proposal's own prior_weight is replaced by a.
    3. Moves. At each temperature one HMC transition, then one independence move to a draw of
       r's Gaussian mixed with the prior (`independence_move`), which lets a chain cross to a
       mode that HMC cannot reach. The HMC leapfrog steps are h_d = eps s_d per dimension: s is
       drawn afresh per move, 1 (the prior's scale) with probability WIDE_SHARE, else r's std.
    4. Steps. eps is tuned by a second pilot run along r's path: each chain's eps starts at
       step_size and is adapted after each transition from its acceptance probability (x1.1
       above target_accept + 0.05, /1.1 below target_accept - 0.05: the official code's band);
       the median over a point's chains at each pilot temperature is then fixed, and the real
       run uses it from that temperature to the next. So the steps follow the distribution at
       each temperature, not the proposal's scale.

    Why the weights stay unbiased: r and the kernels depend on the pilots' draws only, never on
    a real chain's own past (AIS needs f_beta-invariant kernels fixed in advance), and every
    chain of a point moves by the same kernels whichever stratum it started in (with a kernel
    per stratum the expectation mixes two AIS identities: that put the digits VAE's AIS above
    its exact value; benchmarks/ais_digits.py). target_accept=None: no pilots, r the proposal's
    Gaussian (with a as above), eps = step_size throughout. Each pilot runs PILOT_TEMPS
    temperatures, or a quarter of n_temps when that is fewer: together at most half the run.
    log: called with a progress line ten times per batch of data points.

    Defaults: 100 sigmoid temperatures, 4 chains, 10 leapfrog steps and an independence move,
    i.e. 4,400 decoder passes (forward and backward) per data point, and the pilots' half of
    that (the official code runs 1000-2000 linear temperatures with 5-8 chains, Wu et al.
    10,000 with 16). info of the Estimate: the mean acceptance rate of HMC, each point's mean
    final step eps, `prior_chains` C0 (the first C0 columns of log_w) and `moved`.
    """
    return _anneal(nets, params, data, proposal, None, rng, n_temps, n_chains, n_leapfrog,
                   schedule, step_size, target_accept, prior_share, log)


def reverse_ais(nets, params, data, proposal, z_star, rng, n_temps=N_TEMPS, n_chains=N_CHAINS,
                n_leapfrog=N_LEAPFROG, schedule="sigmoid", step_size=STEP_SIZE, target_accept=TARGET_ACCEPT,
                prior_share=PRIOR_SHARE, log=None):
    """Reverse AIS from exact posterior samples z_star: (K, Dz), z*_k ~ p(z|x_k) (every chain of
    x_k starts there), annealed from beta = 1 to 0 towards the r that `ais` would use (its
    search, its moves, its steps: both pilots run forward, from the prior and from r, so
    nothing the kernels depend on has seen z*): a
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
    a = 1.0 if C0 == C else C0 / C                                      # the prior's weight in r
    reverse = z_star is not None
    if reverse:
        z_star = np.asarray(to_host(z_star), dtype=np.float64)
        if z_star.shape != (K, Dz):
            raise ValueError(f"z_star must have shape (data points, z_dim) = {(K, Dz)}, got {z_star.shape}")
    forward = schedule(n_temps, kind)                                   # (T + 1,) from 0 to 1
    betas = forward[::-1] if reverse else forward
    T = len(forward) - 1
    n_pilot = min(PILOT_TEMPS, max(2, T // 4))                          # at most a quarter of the run each
    pilot = None if target_accept is None else forward[np.unique(np.linspace(0, T, n_pilot + 1).astype(int))]
    search = pilot is not None and len(pilot) >= 3 and a < 1            # move r to the mass first
    log_w, eps_out, rates, moved = np.empty((K, C)), np.empty(K), [], np.zeros(K)
    P = max(1, likelihood.rows_per_pass(nets) // C)                     # data points per batch
    for k0 in range(0, K, P):
        ks = np.arange(k0, min(k0 + P, K))                              # (P,) data points of this batch
        rows = np.repeat(ks, C)                                         # (R,) = (P * C,), by data point
        x, mean, std = likelihood.rows_of(data, proposal, rows, params)
        xp, dtype = array_module(x), x.dtype

        def draw(v):                                                    # host draws onto the device
            return to_device(v, xp).astype(dtype)

        def chains(betas, steps, adapt, path, jumps, from_star=False):
            """Run the R chains along `betas` from r = (1 - w) N(m, s^2) + w N(0, I), path = (w, m, s),
            with independence moves from jumps = (m', s') mixed with the prior (see `ais`);
            steps(t, eps) gives the step per chain at temperature t; from_star: start at z_star
            (reverse), not from r. Returns log w (R,), the steps used at each temperature (list of
            (R, 1)), the acceptance rates and the last z."""
            w, m, s = path
            n0 = C if w == 1 else round(w * C)                          # chains per point from the prior
            if w == 1:                                                  # r is the prior N(0, I) itself
                m, s, w = xp.zeros_like(mean), xp.ones_like(std), 0.0
            r = likelihood.Gaussian(m, s, w)

            def target(z):                                              # the parts of log f at z
                return (*likelihood.log_joint(nets, params, x, z), *likelihood.proposal_log_density(r, z, m, s))

            from_prior = draw((np.arange(len(rows)) % C < n0)[:, None])  # (R, 1) 1 for the prior's chains
            if from_star:
                z = draw(z_star[rows])                                  # z* ~ p(z|x)
            else:                                                       # z_0 ~ its chain's part of r
                z = likelihood.gaussian_sample((1 - from_prior) * m, from_prior + (1 - from_prior) * s,
                                               draw(rng.standard_normal((len(rows), Dz))))
            state, eps = (z, *target(z)), xp.full((len(rows), 1), step_size, dtype=dtype)   # eps: (R, 1)
            lw, used, accepted = xp.zeros(len(rows), dtype=np.float64), [], []   # log w in float64
            for t in range(1, len(betas)):
                lw += float(betas[t] - betas[t - 1]) * (state[1] - state[3])     # log f_t(z) - log f_{t-1}(z)
                if t == len(betas) - 1:
                    break
                eps = steps(t, eps)
                p0 = draw(rng.standard_normal((len(rows), Dz)))         # momentum ~ N(0, I)
                log_u = draw(np.log(rng.random(len(rows))))             # (R,)
                wide = draw((rng.random((len(rows), 1)) < WIDE_SHARE))  # (R, 1) this move's scale: 1 or s
                scale = wide + (1 - wide) * s                           # (R, Dz), the same law for every chain
                state, prob = hmc_transition(target, float(betas[t]), state, eps * scale, p0, log_u, L)
                state = independence_move(target, float(betas[t]), state, *jumps, rng, xp, dtype)
                if adapt:                                               # per chain, multiplicative
                    grow = xp.where(prob > target_accept + 0.05, 1.1,
                                    xp.where(prob < target_accept - 0.05, 1 / 1.1, 1.0))
                    eps = eps * grow.astype(dtype)[:, None]
                used.append(eps)                                        # (the pilot's: as adapted here)
                accepted.append(prob.mean())                            # read once per batch: no sync per step
                if log and not adapt and (t % max(1, T // 10) == 0):
                    log(f"AIS {'reverse' if reverse else 'forward'}: points {ks[0]}-{ks[-1]}, temperature "
                        f"{t}/{T}, beta {betas[t]:.4f}, acceptance {float(accepted[-1]):.2f}")
            return lw, used, accepted, state[0]

        path = (a, mean, std)
        if search:                                                      # a first pilot from the prior
            lw, _, _, z = chains(pilot, lambda t, eps: eps, True, (1.0, mean, std), (mean, std))
            m2, s2 = _refit(xp, lw, z, std, len(ks), C)                 # where its weighted chains ended
            moved[ks] = to_host(xp.abs(m2 - mean) / std).reshape(len(ks), C, Dz)[:, 0].max(axis=1)
            path = (a, m2, s2)
        if pilot is None or len(pilot) < 3:                             # fixed steps (or no move to tune)
            steps = lambda t, eps: eps                                  # noqa: E731
        else:                                                           # steps tuned by a pilot run, forward
            _, used, _, _ = chains(pilot, lambda t, eps: eps, True, path, path[1:])   # from r, even in reverse
            tuned = _tuned_steps(xp, used, len(ks), C)                  # (PILOT_TEMPS - 1, R, 1)
            at = np.searchsorted(pilot[1:-1], betas, side="right")      # the pilot temperature at or below beta
            steps = lambda t, eps: tuned[min(at[t], len(tuned)) - 1] if at[t] else tuned[0]   # noqa: E731
        lw, used, accepted, _ = chains(betas, steps, False, path, path[1:], from_star=reverse)
        rates += to_host(xp.stack(accepted)).tolist() if accepted else []
        log_w[ks] = to_host(lw).reshape(len(ks), C)
        eps_out[ks] = to_host(used[-1]).reshape(len(ks), C).mean(axis=1) if used else step_size
    info = {"accept_rate": float(np.mean(rates)) if rates else math.nan, "step_size": eps_out,
            "prior_chains": C0, "moved": moved}
    return likelihood.estimate(log_w, reverse=reverse, info=info)


def _refit(xp, lw, z, std, P, C):
    """A Gaussian per data point from a pilot's last positions z: (R, Dz) and log weights lw: (R,),
    R = P * C, with u_c = w_c / sum_c w_c its self-normalised weights:
        mean = sum_c u_c z_c,   std = sqrt(WIDEN^2 sum_c u_c (z_c - mean)^2 + std_q^2)
    (std_q: the proposal's `std`, (R, Dz), so never narrower than it). Every chain of a point
    gets its point's: (R, Dz) each."""
    lw = lw.reshape(P, C)
    u = xp.exp(lw - lw.max(axis=1, keepdims=True))
    u = (u / u.sum(axis=1, keepdims=True))[:, :, None]                  # (P, C, 1) normalised weights
    zz = z.reshape(P, C, -1)
    m = (u * zz).sum(axis=1, keepdims=True)                             # (P, 1, Dz)
    var = (u * (zz - m) ** 2).sum(axis=1, keepdims=True)
    s = xp.sqrt(likelihood.WIDEN ** 2 * var + std.reshape(P, C, -1) ** 2)
    return xp.repeat(m, C, axis=1).reshape(P * C, -1), s.reshape(P * C, -1)


def _tuned_steps(xp, used, P, C):
    """The pilot's steps at each of its temperatures as one step per data point, the median over
    its C chains: every chain of a point must move by the same kernel (see `ais`).
    used: list over temperatures of (R, 1), R = P * C -> (len(used), R, 1)."""
    eps = xp.stack(used).reshape(len(used), P, C)                       # (T_p, P, C)
    return xp.repeat(xp.median(eps, axis=2, keepdims=True), C, axis=2).reshape(len(used), P * C, 1)
