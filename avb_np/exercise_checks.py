"""The exercises of `python -m avb_np.exercises`, in the order of the math, and their checks.

One function per exercise builds it: the functions to write (`targets`), its data, its checks. A
check takes `impl`, holding the learner's targets (the package's for --solutions; all else is always
the package's), and returns an error or {row: error}: the relative error of a gradient against central
differences (avb_np.gradcheck, float64), or of a value against a known answer, optimum or identity.
"""
import math
from collections import namedtuple

import numpy as np

from . import layers, likelihood, losses, models, network
from .gradcheck import TOL_OBJECTIVE, TOL_SMOOTH, check, check_directional, moderate, projected, rel_error

TOL_EXACT = 1e-10   # a value computed another way: rounding only

Check = namedtuple("Check", "label run tol hint")   # run: impl -> error or {row: error}; hint: shown on failure
# slug: workspace file <slug>.py; targets: "name" or "Class.method" in avb_np.<module>; context: copied whole, to read
Exercise = namedtuple("Exercise", "slug title teaches module targets checks context", defaults=[()])


def close_to(a, b):
    """Largest relative error of a against the expected b; inf when the shapes differ."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(rel_error(a, b).max()) if a.shape == b.shape else math.inf


def small_params(nets, rng):
    """float64 parameters of the layer lists `nets`, moved off their initial zeros so every path counts."""
    params = {k: v for net in nets.values() for k, v in network.init_params(net, rng, np, np.float64).items()}
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}


def affine_exercise():
    def gradient(impl):                     # a square W (D = H): a missing transpose still fits the shapes
        rng = np.random.default_rng(1)
        p = {"x": rng.standard_normal((3, 4)), "W": rng.standard_normal((4, 4)), "b": rng.standard_normal(4)}
        return check(projected(layers.affine_forward, impl.affine_backward, list(p), moderate(rng, (3, 4))), p)
    def ones(impl):                         # x: (3, 2) and dout: (3, 5) all ones
        W = np.arange(10.0).reshape(2, 5)
        dx, dW, db = impl.affine_backward(np.ones((3, 5)), layers.affine_forward(np.ones((3, 2)), W, np.zeros(5))[1])
        return {"dx": close_to(dx, np.tile(W.sum(axis=1), (3, 1))), "dW": close_to(dW, np.full((2, 5), 3.0)),
                "db": close_to(db, np.full(5, 3.0))}
    def skips(impl):                        # what the flags leave out comes back as None
        cache = layers.affine_forward(np.ones((3, 2)), np.ones((2, 5)), np.zeros(5))[1]
        fixed = impl.affine_backward(np.ones((3, 5)), cache, param_grads=False)
        first = impl.affine_backward(np.ones((3, 5)), cache, input_grad=False)
        ok = fixed[0] is not None and fixed[1] is None and fixed[2] is None and first[0] is None
        return 0.0 if ok else math.inf
    return Exercise("ex01_affine_backward", "affine backward", "out = x W + b: dx = dout W^T, dW = x^T dout, db = "
                    "dout summed over the batch", "layers", ("affine_backward",), [
        Check("gradient check", gradient, TOL_SMOOTH, "dx = dout @ W.T, dW = x.T @ dout, db = dout summed over rows"),
        Check("x, dout ones (N 3, D 2, H 5): dW = db = 3", ones, TOL_EXACT, "sum the rows' gradients (axis 0), do "
              "not average; mind the shapes"),
        Check("param_grads=False: dW = db = None; input_grad=False: dx = None", skips, TOL_EXACT,
              "compute only what is asked for and return None in the other places")], ("affine_forward",))


def elu_exercise():
    def gradient(impl):
        rng = np.random.default_rng(2)
        G, x = moderate(rng, (3, 4)), moderate(rng, (3, 4))
        return check(projected(impl.elu_forward, impl.elu_backward, ["x"], G), {"x": x})
    def values(impl):                       # neg = min(x, 0)
        x, neg = np.array([-1e3, -1.0, -1e-8, 1e-8, 0.5, 1e3]), np.array([-1e3, -1.0, -1e-8, 0, 0, 0])
        out, cache = impl.elu_forward(x.copy())
        return {"f(x)": close_to(out, np.where(x > 0, x, np.expm1(neg))),
                "f'(x)": close_to(impl.elu_backward(np.ones(6), cache), np.exp(neg))}
    return Exercise("ex02_elu", "ELU forward and backward", "an activation, its derivative, and a cache holding just "
                    "what the backward needs", "layers", ("elu_forward", "elu_backward"), [
        Check("gradient check", gradient, TOL_SMOOTH, "f'(x) = 1 for x > 0, e^x = (e^x - 1) + 1 otherwise"),
        Check("at x = -1000, -1, -1e-8, 1e-8, 0.5, 1000", values, 1e-12, "expm1 of min(x, 0): exact near 0, finite")])


def bernoulli_exercise():
    def data():                             # x, logits: (4, 5); per-row weights w: (4,)
        rng = np.random.default_rng(3)
        return (rng.random((4, 5)) < 0.5).astype(np.float64), moderate(rng, (4, 5)), moderate(rng, 4)
    def gradient(impl):
        x, logits, w = data()
        def loss_fn(p):                     # L = sum_n w_n log p(x_n|z_n): every row weighted differently
            logp, dlogits = impl.bernoulli_log_likelihood(x, p["logits"])
            return float(w @ logp), {"logits": w[:, None] * dlogits}
        return check(loss_fn, {"logits": logits})
    def values(impl):
        x, logits, _ = data()
        s = 1 / (1 + np.exp(-logits))       # sigmoid, fine for |logits| <= 2.5
        brute = (x * np.log(s) + (1 - x) * np.log(1 - s)).sum(axis=1)
        logp, dlogits = impl.bernoulli_log_likelihood(np.array([[0.0, 1.0]]), np.array([[1e4, -1e4]]))
        return {"x log s + (1 - x) log(1 - s)": close_to(impl.bernoulli_log_likelihood(x, logits)[0], brute),
                "logits 1e4 off: log p = -2e4": close_to(logp, [-2e4]), "... dlogits": close_to(dlogits, [[-1.0, 1.0]])}
    return Exercise("ex03_bernoulli_log_likelihood", "Bernoulli log-likelihood from logits", "log p(x|z) = sum x l - "
                    "softplus(l), stable at any l; d/dl = x - sigmoid(l)", "losses", ("bernoulli_log_likelihood",), [
        Check("gradient check", gradient, TOL_SMOOTH, "dlogits = x - sigmoid(logits): data minus prediction"),
        Check("known values", values, TOL_EXACT, "sum over pixels (axis 1); x l - softplus(l), no log of sigmoid")])


def kl_exercise():
    def gradient(impl):
        rng = np.random.default_rng(4)
        w = moderate(rng, 4)
        def loss_fn(p):                     # L = sum_n w_n KL_n
            kl, dmu, dlog_sigma = impl.gaussian_kl(p["mu"], p["log_sigma"])
            return float(w @ kl), {"mu": w[:, None] * dmu, "log_sigma": w[:, None] * dlog_sigma}
        return check(loss_fn, {"mu": moderate(rng, (4, 2)), "log_sigma": moderate(rng, (4, 2), 0.2, 1.0)})
    def values(impl):                       # KL(N(0, 1) || N(0, 1)) = 0; mu = 3: 9/2; sigma = e: (e^2 - 3) / 2
        mu, log_sigma = np.array([[0.0, 0], [3, 0], [0, 0]]), np.array([[0.0, 0], [0, 0], [1, 0]])
        return close_to(impl.gaussian_kl(mu, log_sigma)[0], [0.0, 4.5, 0.5 * math.e ** 2 - 1.5])
    return Exercise("ex04_gaussian_kl", "Gaussian KL to the prior", "KL(N(mu, sigma^2) || N(0, I)) in closed form, "
                    "sigma = exp(log_sigma)", "losses", ("gaussian_kl",), [
        Check("gradient check", gradient, TOL_SMOOTH, "dKL/dmu = +mu, dKL/dlog_sigma = sigma^2 - 1"),
        Check("KL = 0, 9/2, (e^2 - 3)/2", values, TOL_EXACT, "KL = sum_k (mu^2 + sigma^2)/2 - log sigma - 1/2")])


def encoder_exercise():
    def setup():                            # x: (6, 4) -> mu, log sigma: (6, 2) each
        rng = np.random.default_rng(5)
        nets = {"enc": network.mlp("enc", [4, 5, 4], "elu")}
        return nets, small_params(nets, rng), np.eye(4)[rng.integers(0, 4, 6)], rng
    def gradient(impl):
        nets, params, x, rng = setup()
        eps, G = rng.standard_normal((6, 2)), [moderate(rng, (6, 2)) for _ in range(3)]
        def loss_fn(p):                     # L = sum(z G_z + mu G_mu + log_sigma G_s)
            z, mu, log_sigma, cache = models.encode_gaussian(nets, p, x, eps)
            loss = np.sum(z * G[0] + mu * G[1] + log_sigma * G[2])
            return float(loss), impl.encode_gaussian_backward(nets, *G, cache)
        return check_directional(loss_fn, params, rng)
    def paths(impl):                        # eps = 0: z = mu, so G on z must act as G on mu
        nets, params, x, rng = setup()
        G, zero = moderate(rng, (6, 2)), np.zeros((6, 2))
        cache = models.encode_gaussian(nets, params, x, zero)[3]
        via_z, via_mu = (impl.encode_gaussian_backward(nets, *g, cache) for g in ((G, zero, zero), (zero, G, zero)))
        return max(close_to(via_z[k], via_mu[k]) for k in params)
    return Exercise("ex05_encode_gaussian_backward", "reparameterised Gaussian encoder, backward", "z = mu + sigma eps:"
                    " the gradient reaches mu and log sigma through the sample", "models",
                    ("encode_gaussian_backward",), [
        Check("gradient check (directional)", gradient, TOL_OBJECTIVE, "dmu += dz; dlog_sigma += dz * eps * sigma"),
        Check("eps = 0: dz = G acts as dmu = G", paths, TOL_EXACT, "add dz's share to the dmu given, not replace it")],
        ("encode_gaussian",))


def adversary_exercise():
    def gradient(impl):
        rng = np.random.default_rng(6)
        def loss_fn(p):
            loss, dT_q, dT_p = impl.adversary_loss(p["T_q"], p["T_p"])
            return loss, {"T_q": dT_q, "T_p": dT_p}
        return check(loss_fn, {"T_q": moderate(rng, 4), "T_p": moderate(rng, 4)})
    def optimum(impl):
        loss, dT_q, dT_p = impl.adversary_loss(np.zeros(4), np.zeros(4))      # T = 0 cannot tell q from p
        z = np.linspace(-3.0, 4.0, 15)      # q = N(1, 1), p = N(0, 1): at T*(z) = log q(z)/p(z) = z - 1/2 the
        _, dq, dp = impl.adversary_loss(z - 0.5, z - 0.5)   # loss int q softplus(-T) + p softplus(T) dz is flat
        return {"T = 0: loss = 2 log 2": close_to(loss, 2 * math.log(2)),
                "T = 0: dT_q = -1/2N, dT_p = 1/2N": close_to([dT_q, dT_p], [np.full(4, -1 / 8), np.full(4, 1 / 8)]),
                "T = log q/p: q dT_q + p dT_p = 0": close_to(np.exp(-(z - 1) ** 2 / 2) * dq, -np.exp(-z * z / 2) * dp)}
    return Exercise("ex06_adversary_loss", "the adversary's logistic loss", "softplus(-T(x, z_q)) + softplus(T(x, z_p))"
                    ", minimal at T* = log q(z|x) - log p(z)", "losses", ("adversary_loss",), [
        Check("gradient check", gradient, TOL_SMOOTH, "d softplus(-T)/dT = -sigmoid(-T); the loss is a mean: / N"),
        Check("known values, optimum", optimum, TOL_EXACT, "the encoder's z_q are class 1, the prior's z_p class 0")])


def primal_exercise():
    def setup():                            # x: (6, 4), z: (6, 2); T's trunk 6 wide with one residual block
        rng = np.random.default_rng(7)
        nets = {"dec": network.mlp("dec", [2, 5, 4], "elu"),
                "adv": [network.Affine("adv.in", 6, 6), network.Act("elu"), network.Residual("adv.res0", 6),
                        network.Act("elu"), network.Affine("adv.out", 6, 1)]}
        return nets, small_params(nets, rng), np.eye(4)[rng.integers(0, 4, 6)], moderate(rng, (6, 2)), 0.5
    def gradient(impl):
        nets, params, x, z, c = setup()
        def loss_fn(p):                     # the loss as a function of z and of the decoder's parameters
            loss, dz, grads = impl.primal_terms(nets, {**params, **p}, x, p["z"], c)
            return loss, {**grads, "z": dz}
        dec = {k: v for k, v in params.items() if k.startswith("dec.")}
        return check_directional(loss_fn, {"z": z, **dec}, np.random.default_rng(0))
    def value(impl):
        nets, params, x, z, c = setup()
        T, _ = models.adversary(nets, params, x, z, c)
        logp, _ = losses.bernoulli_log_likelihood(x, models.decode(nets, params, z)[0])
        loss, _, grads = impl.primal_terms(nets, params, x, z, c)
        return {"loss = mean(T - log p(x|z))": close_to(loss, np.mean(T - logp)),
                "grads: the decoder's only (psi fixed)": float(set(grads) != {k for k in params if k[:4] == "dec."})}
    return Exercise("ex07_primal_terms", "the AVB primal loss and dL/dz", "mean(T(x, z) - log p(x|z)) with T held "
                    "fixed; dT/dz reaches the encoder through z", "objectives", ("primal_terms",), [
        Check("gradient check (directional)", gradient, TOL_OBJECTIVE, "dz = (dT/dz - d log p(x|z)/dz) / N: "
              "adversary_backward with dT = 1/N, decode_backward with -dlogits / N"),
        Check("value", value, TOL_EXACT, "T minus log p(x|z); adversary_backward(..., param_grads=False)")],
        ("primal_loss",))


def adam_exercise():
    def steps(impl):
        g, p = np.array([1e-3, -5.0, 2.0, -1e-4]), {"w": np.zeros(4), "u": np.ones(4)}
        impl.Adam(lr=0.01).step(p, {"w": g})            # m_hat = g, v_hat = g^2: w moves by lr g / (|g| + eps)
        opt, q = impl.Adam(lr=0.1), {"w": np.zeros(1)}
        opt.step(q, {"w": np.ones(1)})                  # step 1: -lr / (1 + eps), as above
        opt.step(q, {"w": -np.ones(1)}, scale=0.5)      # m = 0.9 0.1 - 0.1 = -0.01, m_hat = -0.01 / (1 - 0.9^2)
        step2 = 0.5 * 0.1 / 19 / (1 + 1e-8)             # = -1/19; v_hat = 1 (g^2 = 1): + scale lr / 19
        return {"step 1 = -lr g / (|g| + eps) ~ -lr sign(g)": close_to(p["w"], -0.01 * g / (np.abs(g) + 1e-8)),
                "no gradient, no change": close_to(p["u"], np.ones(4)),
                "g = 1, then -1 at scale 1/2": close_to(q["w"], [-0.1 / (1 + 1e-8) + step2])}
    return Exercise("ex08_adam_step", "an Adam step", "Kingma & Ba's Algorithm 1 with bias correction, a state per "
                    "parameter name", "optim", ("Adam.step",), [
        Check("hand-computed steps", steps, TOL_EXACT, "t += 1 first; m, v per name, zeros at first; m_hat = m / "
              "(1 - beta1^t), v_hat = v / (1 - beta2^t); the rate is scale * lr")])


def contrast_exercise():
    def setup():                            # mu, sigma, z: (4, 2); c: (2,); w: (4,)
        rng = np.random.default_rng(9)
        mu, sigma = rng.standard_normal((4, 2)), rng.uniform(0.5, 2, (4, 2))
        return mu, sigma, moderate(rng, (4, 2)), moderate(rng, 2), moderate(rng, 4)
    def gradient(impl):
        mu, sigma, z, c, w = setup()
        def loss_fn(p):                     # T(x, z~) = sum_k c_k sin(z~_k): a smooth stand-in for the adversary
            zt = impl.standardise(p["z"], mu, sigma)
            T, dT_dzt = np.sin(zt) @ c, np.cos(zt) * c
            dz = impl.kl_estimate_grad(dT_dzt, p["z"], zt, sigma)
            return float(w @ impl.kl_estimate(T, p["z"], zt, sigma)), {"z": w[:, None] * dz}
        return check(loss_fn, {"z": z})
    def identities(impl):
        mu, sigma, z, _, _ = setup()
        u, zt = np.cos(z), impl.standardise(z, mu, sigma)
        log_ratio = likelihood.gaussian_log_density(z, mu, sigma)[0] - losses.standard_normal_log_density(z)[0]
        return {"z~ of mu + sigma u = u": close_to(impl.standardise(mu + sigma * u, mu, sigma), u),
                "T = 0: log N(z; mu, sigma^2) - log N(z; 0, I)": close_to(
                    impl.kl_estimate(np.zeros(4), z, zt, sigma), log_ratio)}
    return Exercise("ex09_ac_kl_estimate", "AC's standardisation and KL estimate", "T(x, z~) + log r(z|x) - "
                    "log p(z) with r = N(mu, sigma^2) held fixed", "ac_objectives",
                    ("standardise", "kl_estimate", "kl_estimate_grad"), [
        Check("gradient check", gradient, TOL_SMOOTH, "chain rule: dz~/dz = 1 / sigma; d(||z||^2 / 2)/dz = z"),
        Check("identities", identities, TOL_EXACT, "log r - log p = -||z~||^2 / 2 - sum log sigma + ||z||^2 / 2")],
        ("primal_terms",))


def hmc_exercise():
    m, s = np.array([1.0, -0.5]), np.array([0.5, 2.0])
    def target(z):                          # log p(x, z) := log N(z; m, s^2) and r(z|x) = N(0, I), each with its dz
        return (*likelihood.gaussian_log_density(z, m + 0 * z, s + 0 * z), *losses.standard_normal_log_density(z))
    def energy(impl):                       # error 1 - mean acceptance: small steps nearly conserve H
        rng = np.random.default_rng(11)
        z, p0 = rng.standard_normal((100, 2)), rng.standard_normal((100, 2))
        step, log_u = np.full((100, 2), 0.02), np.full(100, -np.inf)          # log u = -inf: accept all
        _, prob = impl.hmc_transition(target, 0.5, (z, *target(z)), step, p0, log_u, 10)
        return 1 - float(np.mean(prob))
    def invariance(impl):                   # f at beta = 0.3 is N(mean, std^2); 2,000 chains drawn from it keep it
        rng, precision = np.random.default_rng(12), 0.3 / s ** 2 + 0.7
        mean, std = 0.3 * m / s ** 2 / precision, precision ** -0.5
        state = (z := mean + std * rng.standard_normal((2000, 2)), *target(z))
        for _ in range(10):                 # large steps, so that the Metropolis test matters
            p0, log_u = rng.standard_normal((2000, 2)), np.log(rng.random(2000))
            state, _ = impl.hmc_transition(target, 0.3, state, np.tile(1.2 * std, (2000, 1)), p0, log_u, 3)
        u = (state[0] - mean) / std         # ~ N(0, I) when f is left invariant
        return {"|mean|": float(np.abs(u.mean(axis=0)).max()), "|variance - 1|": float(np.abs(u.var(axis=0) - 1).max())}
    return Exercise("ex10_hmc_transition", "an HMC transition", "leapfrog nearly conserves H = -log f(z) + ||p||^2 / 2;"
                    " the Metropolis test keeps f invariant", "ais", ("hmc_transition",), [
        Check("step 0.02: 1 - mean acceptance", energy, 1e-3, "p half step, n_leapfrog x (z <- z + h p, p <- p + h "
              "d log f/dz, the last a half step); log f = (1 - beta) log r + beta log p"),
        Check("f kept over 10 steps (standardised)", invariance, 0.15, "accept where log u < H(z, p0) - H(z', p'); "
              "keep the old state where it rejects")])


def importance_exercise():
    data = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])      # K = 3 points, Dx = 3
    def model(slope=1.0):                   # a 1-d latent: logits = z W + b; slope 0: logits ignore z
        W, b = slope * np.array([[1.5, -2.0, 0.7]]), np.array([0.3, -0.4, 1.0])
        return {"dec": network.mlp("dec", [1, 3], "elu")}, {"dec.0.W": W, "dec.0.b": b}
    proposal = likelihood.Gaussian(np.array([[0.3], [-0.4], [-0.1]]), np.full((3, 1), 1.2), prior_weight=0.2)
    def exact(impl):                        # p(z|x) = p(z): every weight is p(x)
        nets, params = model(slope=0.0)
        est, b = impl.importance_sampling(nets, params, data, None, 10, np.random.default_rng(0)), params["dec.0.b"]
        return {"log p(x)": close_to(est.log_px, (data * b - layers.softplus(b)).sum(axis=1)),
                "ESS = S": close_to(est.ess, np.full(3, 10.0))}
    def quadrature(impl):                   # error |log p^ - log p|, about |p^ - p| / p
        nets, params = model()
        z = np.linspace(-12, 12, 4801)[:, None]                                # p(x) = int p(x, z) dz on a grid
        log_joint = [likelihood.log_joint(nets, params, np.tile(x, (len(z), 1)), z, False)[0] for x in data]
        log_px = np.logaddexp.reduce(log_joint, axis=1) + np.log(z[1, 0] - z[0, 0])
        est = impl.importance_sampling(nets, params, data, proposal, 20000, np.random.default_rng(1))
        return float(np.abs(est.log_px - log_px).max())
    return Exercise("ex11_importance_sampling", "importance sampling of log p(x)", "log mean_s p(x, z_s) / r(z_s|x), "
                    "z_s ~ r: exact when r is the posterior", "likelihood", ("importance_sampling",), [
        Check("r = p(z|x): estimate exact, ESS = S", exact, TOL_EXACT, "return estimate(log_w.reshape(K, S))"),
        Check("20,000 draws against quadrature", quadrature, 0.03, "log w = log p(x, z) - log r(z|x), z ~ r "
              "(proposal_sample); then log mean exp of the log weights, not their mean")])


EXERCISES = [affine_exercise(), elu_exercise(), bernoulli_exercise(), kl_exercise(), encoder_exercise(),
             adversary_exercise(), primal_exercise(), adam_exercise(), contrast_exercise(), hmc_exercise(),
             importance_exercise()]   # in the order of the math: layers, losses, the objectives, Adam, AC, evaluation
