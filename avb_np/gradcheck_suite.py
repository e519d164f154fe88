"""The components that `python -m avb_np.gradcheck` and the tests check, with their tolerances.

Each case is a scalar loss of named float64 arrays. A layer is checked through the projection
L = sum(out * G) with a fixed random G, whose gradient with respect to `out` is G, so
backward(G) must equal dL/d(input) and dL/d(every parameter).
"""
import argparse

import numpy as np

from . import (ac_objectives, eight_schools, gradcheck, layers, likelihood, losses, methods, models, objectives,
               targets, vi_objectives)
from .config import Config
from .gradcheck import TOL_OBJECTIVE, TOL_SMOOTH, Case, moderate, projected  # noqa: F401 (gradcheck_suite.moderate, ...)

def layer_cases(rng, N=4, D=5, H=3):
    cases = []
    W, b = rng.standard_normal((D, H)), rng.standard_normal(H)
    cases.append(Case("affine", projected(layers.affine_forward, layers.affine_backward,
                                          ["x", "W", "b"], moderate(rng, (N, H))),
                      {"x": rng.standard_normal((N, D)), "W": W, "b": b}, TOL_SMOOTH))
    for act, (fwd, bwd) in layers.ACTIVATIONS.items():
        # Inputs avoid 0, where ReLU and leaky ReLU have their kink.
        x = moderate(rng, (N, D))
        cases.append(Case(act, projected(fwd, bwd, ["x"], moderate(rng, (N, D))),
                          {"x": x}, TOL_SMOOTH))
    for act in ("relu", "elu"):
        # W1's pre-activations stay away from 0 with these inputs (checked in the tests).
        p = {"h": rng.standard_normal((N, H)), "W1": rng.standard_normal((H, H)),
             "b1": rng.standard_normal(H), "W2": rng.standard_normal((H, H)),
             "b2": rng.standard_normal(H)}
        fwd = lambda h, W1, b1, W2, b2, act=act: layers.residual_forward(h, W1, b1, W2, b2, act)
        cases.append(Case(f"residual ({act})",
                          projected(fwd, layers.residual_backward, list(p), moderate(rng, (N, H))),
                          p, TOL_SMOOTH))
    return cases


def loss_cases(rng, N=4, D=5):
    x = (rng.random((N, D)) < 0.5).astype(np.float64)
    w = moderate(rng, N)  # per-example weights make the check see every row separately

    def bernoulli(p):
        logp, dlogits = losses.bernoulli_log_likelihood(x, p["logits"])
        return float(w @ logp), {"logits": w[:, None] * dlogits}

    def adversary(p):
        loss, dT_q, dT_p = losses.adversary_loss(p["T_q"], p["T_p"])
        return loss, {"T_q": dT_q, "T_p": dT_p}

    def kl(p):
        kl, dmu, dlog_sigma = losses.gaussian_kl(p["mu"], p["log_sigma"])
        return float(w @ kl), {"mu": w[:, None] * dmu, "log_sigma": w[:, None] * dlog_sigma}

    def normal(p):
        logp, dz = losses.standard_normal_log_density(p["z"])
        return float(w @ logp), {"z": w[:, None] * dz}

    return [
        Case("bernoulli_log_likelihood", bernoulli, {"logits": moderate(rng, (N, D))}, TOL_SMOOTH),
        Case("adversary_loss", adversary, {"T_q": moderate(rng, N), "T_p": moderate(rng, N)}, TOL_SMOOTH),
        Case("gaussian_kl", kl, {"mu": moderate(rng, (N, 2)),
                                 "log_sigma": moderate(rng, (N, 2), 0.2, 1.0)}, TOL_SMOOTH),
        Case("standard_normal_log_density", normal, {"z": moderate(rng, (N, 2))}, TOL_SMOOTH),
    ]


def objective_cases(rng, N=6):
    """The three training objectives of small networks, for every parameter of the player that
    minimises them (the noise eps and the prior samples z_p held fixed).

    Checked along a random direction per parameter: among a few hundred entries some are near
    0 by chance (|a| ~ 1e-7), where the entrywise error is dominated by the finite difference's
    own rounding (~1e-11 absolute); a directional derivative has the size of the whole gradient.
    """
    cfg = Config(eps_dim=3, enc_hidden=(5, 5), dec_hidden=(5,), adv_width=6, adv_blocks=1, out_gain=1.0)
    x = np.eye(4)[rng.integers(0, 4, N)]
    eps, z_p = rng.standard_normal((N, cfg.eps_dim)), rng.standard_normal((N, cfg.z_dim))
    avb = methods.build_nets(cfg, "avb")
    params = models.init_all_params(avb, rng, np, np.float64)
    for p in params.values():  # move off the initial values (zero biases, zero W2) to test everything
        p += 0.3 * rng.standard_normal(p.shape)
    adv = {k: v for k, v in params.items() if k.startswith("adv.")}
    primal = {k: v for k, v in params.items() if not k.startswith("adv.")}

    def primal_fn(p):
        return objectives.primal_loss(avb, {**adv, **p}, x, eps, cfg.prior_term)

    def dual_fn(p):
        return objectives.dual_loss(avb, {**primal, **p}, x, eps, z_p, cfg.prior_term)

    vae = methods.build_nets(cfg, "vae")
    vae_params = models.init_all_params(vae, rng, np, np.float64)
    for p in vae_params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    eps_vae = rng.standard_normal((N, cfg.z_dim))
    return [
        Case("AVB primal loss", primal_fn, primal, TOL_OBJECTIVE, directional=True),
        Case("AVB adversary loss", dual_fn, adv, TOL_OBJECTIVE, directional=True),
        Case("VAE loss", lambda p: objectives.vae_loss(vae, p, x, eps_vae), vae_params, TOL_OBJECTIVE, directional=True),
    ]


def model_cases(rng):
    """The layers, losses and objectives of the models (adaptive contrast's too), and AIS's gradients."""
    return (layer_cases(rng) + loss_cases(rng) + objective_cases(rng) + ac_objectives.gradcheck_cases(rng)
            + likelihood.gradcheck_cases(rng))


def cases(rng):
    """Every case, in the order the table prints them: the models', then variational inference's."""
    return (model_cases(rng) + vi_objectives.gradcheck_cases(rng) + targets.gradcheck_cases(rng)
            + eight_schools.gradcheck_cases(rng))


def main(argv=None):
    """`python -m avb_np.gradcheck`: check every case below; exit status 1 if any fails."""
    parser = argparse.ArgumentParser(prog="python -m avb_np.gradcheck", description=(
        "Check the gradient of every layer, loss and objective of avb_np against central "
        "finite differences in float64 and print one row per parameter."))
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default 0)")
    args = parser.parse_args(argv)
    rows = []
    rng = np.random.default_rng(args.seed)
    for case in cases(rng):
        if case.directional:
            errors, label = gradcheck.check_directional(case.loss_fn, case.params, rng), " (directional)"
        else:
            errors, label = gradcheck.check(case.loss_fn, case.params), ""
        rows.extend((case.component + label, name, err, case.tol) for name, err in errors.items())
    print(gradcheck.format_table(rows))
    failed = sum(err > tol for _, _, err, tol in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0
