"""The demo's figures (PNG, no display needed): encoder samples over decoder regions, exact
posteriors, training curves. Each function saves its figure and returns the Figure, so a test
can read what it shows (fig.axes, their limits and lines).

Importing this module needs matplotlib (pip install -e ".[plot]"); demo.py imports it only when
it draws, so its --help works without."""
import math

import matplotlib

matplotlib.use("Agg")  # render to files; works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from . import evaluation, quadrature  # noqa: E402
from .methods import METHODS  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]          # one per data point
LIGHT = ListedColormap(["#c6dbef", "#fcbba1", "#c7e9c0", "#fdd0a2"])  # the same, for regions
LIM = 4.0  # plotted part of the latent plane: [-LIM, LIM]^2, or wider if a sample lies outside


def window(z):
    """Half-width w of the plotted square [-w, w]^2: LIM, or the next whole number above the
    largest |z| if a sample lies further out, so that no sample is cut off. z: any shape."""
    return max(LIM, math.ceil(np.abs(z).max()))


def decision_regions(run, data, n=300, lim=LIM):
    """For each cell of an n x n grid over [-lim, lim]^2, the data point x_k that the decoder
    makes most likely: (n, n)."""
    # argmax_k of log p(x_k|z) + log p(z): the prior term is the same for every k
    return quadrature.log_joint_on_grid(run.nets, run.params, data, n, lim).argmax(axis=0).reshape(n, n)


def _panel(ax, run, data, z, title, lim):
    """Decision regions shaded behind encoder samples z: (K, S, 2), one colour per data point."""
    ax.imshow(decision_regions(run, data, lim=lim).T, origin="lower", extent=[-lim, lim, -lim, lim],
              cmap=LIGHT, vmin=-0.5, vmax=3.5, interpolation="nearest")
    for k in range(len(z)):
        ax.scatter(z[k, :, 0], z[k, :, 1], s=3, color=COLORS[k], alpha=0.6, label=f"x{k + 1}")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, xlabel="z1", ylabel="z2", aspect="equal")


def figure_samples(runs, data, path, n_samples=512, seed=2):
    """The paper's synthetic-example figure: n_samples encoder samples per data point, VAE beside
    AVB, all panels over the same square. Saves to path and returns the Figure."""
    z = {name: evaluation.sample_q(run, data, n_samples, np.random.default_rng(seed))   # (K, S, 2) each
         for name, run in runs.items()}
    lim = max(window(zk) for zk in z.values())              # one square for all, so panels compare
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5))
    for ax, (name, run) in zip(np.atleast_1d(axes), runs.items()):
        _panel(ax, run, data, z[name], f"{name}: q(z|x) samples, decoder regions", lim)
    np.atleast_1d(axes)[-1].legend(loc="upper right", markerscale=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)                                          # frees pyplot's copy; the Figure stays readable
    return fig


def figure_posterior(run, data, path, n_samples=2000, seed=3, n=200):
    """Row 1: the exact posterior p(z|x_k) from quadrature; row 2: AVB's samples for the same x_k.
    Saves to path and returns the Figure."""
    K = len(data)
    z = evaluation.sample_q(run, data, n_samples, np.random.default_rng(seed))   # (K, S, 2)
    lim = window(z)
    log_post = quadrature.log_posterior(run.nets, run.params, data, n, lim)     # (K, n, n)
    fig, axes = plt.subplots(2, K, figsize=(3 * K, 6), sharex=True, sharey=True)
    for k in range(K):
        axes[0, k].imshow(np.exp(log_post[k]).T, origin="lower", extent=[-lim, lim, -lim, lim],
                          cmap="viridis")
        axes[0, k].set_title(f"exact p(z | x{k + 1})")
        axes[1, k].hist2d(z[k, :, 0], z[k, :, 1], bins=60, range=[[-lim, lim], [-lim, lim]],
                          cmap="viridis")
        axes[1, k].set_title(f"AVB q(z | x{k + 1}), {n_samples} samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def figure_curves(runs, path, reference=None):
    """Left: the training losses; right: the exact log-likelihood recorded during training.

    runs: {name: Run} (only run.method and run.history are read). reference: {label: value}, the
    horizontal lines that belong to this experiment on the log-likelihood panel (the toy's
    {"optimum -log 4": -log 4}), or None for none. Both panels are scaled to what they show, so
    every recorded value and every reference line is inside them. Saves to path and returns the
    Figure.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        h = run.history
        adversary = METHODS[run.method].dual is not None
        label = "primal loss" if adversary else "negative ELBO"
        ax1.plot(h["step"], h["primal"], lw=0.6, label=f"{name} {label}")
        if adversary:                                       # (the VAE's dual is NaN)
            ax1.plot(h["step"], h["dual"], lw=0.6, label=f"{name} adversary loss")
        ax2.plot(h["ll_step"], h["log_likelihood"], marker=".", label=name)
    for label, value in (reference or {}).items():          # axhline widens the y-limits to hold it
        ax2.axhline(value, color="k", ls="--", lw=1, label=label)
    if not any(r.history["log_likelihood"] for r in runs.values()):   # fewer iterations than eval_every
        ax2.text(0.5, 0.5, "no exact log-likelihood recorded:\nfewer iterations than Config.eval_every",
                 transform=ax2.transAxes, ha="center", va="center")
    ax1.set(xlabel="iteration", ylabel="loss (nats)", title="training losses")
    ax2.set(xlabel="iteration", ylabel="log p(x) (nats)", title="exact log-likelihood (quadrature)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
