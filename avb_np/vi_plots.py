"""The VI experiment's figures (PNG, no display needed): q's samples over the exact posterior's contours.

Each function saves its figure and returns the Figure, so a test can read what it shows.
Importing this module needs matplotlib (pip install -e ".[plot]")."""
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


def box_window(box, zs, pad=0.03):
    """The plotted part of the (z1, z2) plane, (lo1, hi1, lo2, hi2): the target's `box`, widened
    on each side where a sample lies outside it (plus `pad` of the box's width), so that no
    sample of q is cut off. zs: a list of samples z: (S, D), D >= 2."""
    z = np.concatenate([z[:, :2] for z in zs])              # (sum of S, 2): (z1, z2) of every sample
    lo, hi = np.array(box[0::2], dtype=float), np.array(box[1::2], dtype=float)
    margin = pad * (hi - lo)
    lo = np.where(z.min(axis=0) < lo, z.min(axis=0) - margin, lo)
    hi = np.where(z.max(axis=0) > hi, z.max(axis=0) + margin, hi)
    return lo[0], hi[0], lo[1], hi[1]


def _exact_contours(ax, target, n=200):
    """Contours of the exact (z1, z2) density of `target` enclosing 99, 90 and 50% of its mass
    (computed on an n x n grid over target.box); returns the cell masses (n, n)."""
    log_mass, a, b = grid_log_mass(target, n)
    mass = np.exp(log_mass)
    ax.contour(a, b, mass.T, levels=hpd_levels(mass), colors="k", linewidths=0.8)   # .T: rows are z2
    ax.set(xlabel=target.labels[0], ylabel=target.labels[1])
    return mass


def _samples_panel(ax, target, z, title, lim):
    """q's samples z: (S, D) over the exact contours, within lim = (lo1, hi1, lo2, hi2)."""
    _exact_contours(ax, target)
    ax.scatter(z[:, 0], z[:, 1], s=2, alpha=0.4, color="#d62728", rasterized=True)
    ax.set(xlim=lim[:2], ylim=lim[2:])
    ax.set_title(title, fontsize=9)


def figure_2d(tgts, samples, path, kls=None, n_show=2000):
    """One row per method, one column per 2-d target: n_show samples of q over the contours of p.
    The panels of a column show the same part of the plane: the target's box, or more if a
    sample lies outside it.

    tgts: [Target]; samples: {method: {target name: z (S, 2)}}; kls: {method: {target name: KL}}.
    Saves to path and returns the Figure.
    """
    methods = list(samples)
    shown = {m: {t.name: samples[m][t.name][:n_show] for t in tgts} for m in methods}
    fig, axes = plt.subplots(len(methods), len(tgts), figsize=(3.2 * len(tgts), 3.0 * len(methods)),
                             squeeze=False)
    for j, t in enumerate(tgts):
        lim = box_window(t.box, [shown[m][t.name] for m in methods])
        for i, method in enumerate(methods):
            kl = f", KL {kls[method][t.name]:.3f}" if kls else ""
            _samples_panel(axes[i, j], t, shown[method][t.name], f"{method} on {t.name}{kl}", lim)
    masses = ", ".join(f"{m:.0%}" for m in MASSES)
    fig.suptitle(f"samples of q (red) over the exact posterior (contours: {masses} of its mass)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)                                          # frees pyplot's copy; the Figure stays readable
    return fig


def figure_marginals(tgts, samples, path, n_show=2000):
    """One row per target: its exact (z1, z2) marginal (e.g. (mu, log tau)) as an image, then one
    panel per method with q's samples over the exact contours. The panels of a row show the same
    part of the plane: the target's box, or more if a sample lies outside it. Saves to path and
    returns the Figure."""
    methods = list(samples)
    shown = {m: {t.name: samples[m][t.name][:n_show] for t in tgts} for m in methods}
    fig, axes = plt.subplots(len(tgts), 1 + len(methods), figsize=(3.2 * (1 + len(methods)), 3.0 * len(tgts)),
                             squeeze=False)
    for i, t in enumerate(tgts):
        lim = box_window(t.box, [shown[m][t.name] for m in methods])
        mass = _exact_contours(axes[i, 0], t)
        axes[i, 0].imshow(mass.T, origin="lower", extent=t.box, aspect="auto", cmap="Blues")
        axes[i, 0].set(xlim=lim[:2], ylim=lim[2:])          # after imshow, which sets them to its extent
        axes[i, 0].set_title(f"{t.name}: exact p({t.labels[0]}, {t.labels[1]} | y)", fontsize=9)
        for j, method in enumerate(methods):
            _samples_panel(axes[i, j + 1], t, shown[method][t.name], f"{method}", lim)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
