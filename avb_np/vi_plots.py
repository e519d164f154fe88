"""The VI experiment's figures (PNG, no display needed): q's samples over the exact posterior's contours."""
import matplotlib

matplotlib.use("Agg")  # render to files; works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .targets import grid_log_mass  # noqa: E402

MASSES = (0.99, 0.9, 0.5)   # the contours enclose these fractions of the exact mass (highest density first)


def hpd_levels(mass):
    """Density levels whose upper sets hold MASSES of the cell masses `mass`: (n, n) -> ascending levels."""
    m = np.sort(mass.ravel())[::-1]
    cum = np.cumsum(m) / m.sum()
    return [m[min(np.searchsorted(cum, f), len(m) - 1)] for f in MASSES]


def _exact_contours(ax, target, n=200):
    """Contours of the exact (z1, z2) density of `target` enclosing 99, 90 and 50% of its mass."""
    log_mass, a, b = grid_log_mass(target, n)
    mass = np.exp(log_mass)
    ax.contour(a, b, mass.T, levels=hpd_levels(mass), colors="k", linewidths=0.8)   # .T: rows are z2
    lo1, hi1, lo2, hi2 = target.box
    ax.set(xlim=(lo1, hi1), ylim=(lo2, hi2), xlabel=target.labels[0], ylabel=target.labels[1])
    return mass, a, b


def _samples_panel(ax, target, z, title, n_show):
    _exact_contours(ax, target)
    ax.scatter(z[:n_show, 0], z[:n_show, 1], s=2, alpha=0.4, color="#d62728", rasterized=True)
    ax.set_title(title, fontsize=9)


def figure_2d(tgts, samples, path, kls=None, n_show=2000):
    """One row per method, one column per 2-d target: n_show samples of q over the contours of p.

    tgts: [Target]; samples: {method: {target name: z (S, 2)}}; kls: {method: {target name: KL}}.
    """
    methods = list(samples)
    fig, axes = plt.subplots(len(methods), len(tgts), figsize=(3.2 * len(tgts), 3.0 * len(methods)),
                             squeeze=False)
    for i, method in enumerate(methods):
        for j, t in enumerate(tgts):
            kl = f", KL {kls[method][t.name]:.3f}" if kls else ""
            _samples_panel(axes[i, j], t, samples[method][t.name], f"{method} on {t.name}{kl}", n_show)
    masses = ", ".join(f"{m:.0%}" for m in MASSES)
    fig.suptitle(f"samples of q (red) over the exact posterior (contours: {masses} of its mass)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_marginals(tgts, samples, path, n_show=2000):
    """One row per target: its exact (z1, z2) marginal (e.g. (mu, log tau)) as an image, then one
    panel per method with q's samples over the exact contours."""
    methods = list(samples)
    fig, axes = plt.subplots(len(tgts), 1 + len(methods), figsize=(3.2 * (1 + len(methods)), 3.0 * len(tgts)),
                             squeeze=False)
    for i, t in enumerate(tgts):
        mass, a, b = _exact_contours(axes[i, 0], t)
        axes[i, 0].imshow(mass.T, origin="lower", extent=t.box, aspect="auto", cmap="Blues")
        axes[i, 0].set_title(f"{t.name}: exact p({t.labels[0]}, {t.labels[1]} | y)", fontsize=9)
        for j, method in enumerate(methods):
            _samples_panel(axes[i, j + 1], t, samples[method][t.name], f"{method}", n_show)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
