"""The demo's figures (PNG, no display needed): encoder samples over decoder regions, exact posteriors, training curves."""
import math

import matplotlib

matplotlib.use("Agg")  # render to files; works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from . import evaluation  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]          # one per data point
LIGHT = ListedColormap(["#c6dbef", "#fcbba1", "#c7e9c0", "#fdd0a2"])  # the same, for regions
LIM = 4.0  # plotted part of the latent plane: [-LIM, LIM]^2


def decision_regions(run, data, n=300):
    """For each cell of an n x n grid, the data point x_k that the decoder makes most likely: (n, n)."""
    # argmax_k of log p(x_k|z) + log p(z): the prior term is the same for every k
    return evaluation.log_joint(run.nets, run.params, data, n, LIM).argmax(axis=0).reshape(n, n)


def _panel(ax, run, data, z, title):
    """Decision regions shaded behind encoder samples z: (K, S, 2), one colour per data point."""
    ax.imshow(decision_regions(run, data).T, origin="lower", extent=[-LIM, LIM, -LIM, LIM],
              cmap=LIGHT, vmin=-0.5, vmax=3.5, interpolation="nearest")
    for k in range(len(z)):
        ax.scatter(z[k, :, 0], z[k, :, 1], s=3, color=COLORS[k], alpha=0.6, label=f"x{k + 1}")
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), title=title, xlabel="z1", ylabel="z2", aspect="equal")


def figure_samples(runs, data, path, n_samples=512, seed=2):
    """The paper's synthetic-example figure: n_samples encoder samples per data point, VAE beside AVB."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5))
    for ax, (name, run) in zip(np.atleast_1d(axes), runs.items()):
        z = evaluation.sample_q(run, data, n_samples, np.random.default_rng(seed))
        _panel(ax, run, data, z, f"{name}: q(z|x) samples, decoder regions")
    np.atleast_1d(axes)[-1].legend(loc="upper right", markerscale=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_posterior(run, data, path, n_samples=2000, seed=3, n=200):
    """Row 1: the exact posterior p(z|x_k) from quadrature; row 2: AVB's samples for the same x_k."""
    K = len(data)
    log_post = evaluation.log_posterior(run.nets, run.params, data, n, LIM)
    z = evaluation.sample_q(run, data, n_samples, np.random.default_rng(seed))
    fig, axes = plt.subplots(2, K, figsize=(3 * K, 6), sharex=True, sharey=True)
    for k in range(K):
        axes[0, k].imshow(np.exp(log_post[k]).T, origin="lower", extent=[-LIM, LIM, -LIM, LIM],
                          cmap="viridis")
        axes[0, k].set_title(f"exact p(z | x{k + 1})")
        axes[1, k].hist2d(z[k, :, 0], z[k, :, 1], bins=60, range=[[-LIM, LIM], [-LIM, LIM]],
                          cmap="viridis")
        axes[1, k].set_title(f"AVB q(z | x{k + 1}), {n_samples} samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_curves(runs, path):
    """Training losses and the exact log-likelihood over iterations, with the optimum -log 4."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        h = run.history
        label = "primal loss" if run.method != "vae" else "negative ELBO"
        ax1.plot(h["step"], h["primal"], lw=0.6, label=f"{name} {label}")
        if run.method != "vae":
            ax1.plot(h["step"], h["dual"], lw=0.6, label=f"{name} adversary loss")
        ax2.plot(h["ll_step"], h["log_likelihood"], marker=".", label=name)
    ax2.axhline(-math.log(4), color="k", ls="--", lw=1, label="optimum -log 4")
    if not any(r.history["log_likelihood"] for r in runs.values()):   # fewer iterations than eval_every
        ax2.text(0.5, 0.5, "no exact log-likelihood recorded:\nfewer iterations than Config.eval_every",
                 transform=ax2.transAxes, ha="center", va="center")
    ax1.set(xlabel="iteration", ylabel="loss (nats)", title="training losses")
    ax2.set(xlabel="iteration", ylabel="log p(x) (nats)", title="exact log-likelihood (quadrature)")
    ax2.set_ylim(max(-3.0, min(min(r.history["log_likelihood"], default=-3) for r in runs.values()) - 0.05),
                 -1.3)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
