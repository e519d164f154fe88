"""Figures of the image experiments (digits, MNIST): data, reconstructions, prior samples, codes.

Images are drawn as the decoder's pixel probabilities sigmoid(f_theta(z)) in grey levels, the
usual way to show a Bernoulli decoder's output (a binary draw from them is noisier to read).
Each function saves its figure and returns the Figure. Importing this module needs matplotlib.
"""
import math

import matplotlib

matplotlib.use("Agg")  # render to files; works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import backend, evaluation, models  # noqa: E402
from .layers import sigmoid  # noqa: E402


def _tile(rows, shape):
    """Images (K, H*W) -> one (H, K*(W+1)) strip with a 1-pixel gap (NaN, drawn grey) between images."""
    H, W = shape
    strip = np.full((H, len(rows) * (W + 1)), np.nan)
    for k, row in enumerate(rows):
        strip[:, k * (W + 1):k * (W + 1) + W] = row.reshape(H, W)
    return strip


def figure_images(runs, dataset, path, n=12, seed=4):
    """Row 1: n test images; then per model its reconstructions (decoder at one encoder sample
    z ~ q(z|x) of each test image) and n samples from the prior (decoder at z ~ N(0, I))."""
    rng = np.random.default_rng(seed)
    x = dataset.test[:n]                                          # (n, Dx)
    strips, titles = [x], ["test images"]
    for name, run in runs.items():
        params = backend.host_params(run.params)
        z_q = evaluation.sample_q(run, x, 1, rng)[:, 0]           # (n, Dz), one sample per image
        z_p = rng.standard_normal((n, run.cfg.z_dim))             # (n, Dz) from the prior
        strips.append(sigmoid(models.decode(run.nets, params, z_q)[0]))
        strips.append(sigmoid(models.decode(run.nets, params, z_p)[0]))
        titles += [f"{name.upper()} reconstructions", f"{name.upper()} samples from the prior"]
    fig, axes = plt.subplots(len(strips), 1, figsize=(n * 0.8, 1.1 * len(strips)))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#b0c4de")   # the gaps between images
    for ax, strip, title in zip(axes, strips, titles):
        ax.imshow(_tile(strip, dataset.image_shape), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)                                                # frees pyplot's copy; the Figure stays readable
    return fig


def figure_latent(runs, dataset, path, seed=5):
    """The 2-d latent plane: one encoder sample z ~ q(z|x) per test image, coloured by its label,
    one panel per model, over the prior's 1-, 2- and 3-sigma circles. All panels show the same
    square [-w, w]^2: w = 4, or the next whole number above the largest |z| if a code lies further out."""
    rng = np.random.default_rng(seed)
    codes = {name: evaluation.sample_q(run, dataset.test, 1, rng)[:, 0]   # (K, 2): one code per test image
             for name, run in runs.items()}
    w = max(4, max(math.ceil(np.abs(z).max()) for z in codes.values()))
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs) + 1, 4.5), layout="constrained")
    angle = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, z) in zip(np.atleast_1d(axes), codes.items()):
        for r in (1, 2, 3):
            ax.plot(r * np.cos(angle), r * np.sin(angle), color="0.8", lw=0.8)
        labels = dataset.test_labels if dataset.test_labels is not None else np.zeros(len(z))  # .amat: none
        points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=8)
        ax.set(xlim=(-w, w), ylim=(-w, w), aspect="equal", xlabel="z1", ylabel="z2",
               title=f"{name.upper()}: a sample of q(z|x) per test image")
    fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
