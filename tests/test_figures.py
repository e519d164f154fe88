"""What the figures show: every plotted value inside its panel, each experiment's own reference
lines, and demo.py without matplotlib (--help works; a run that draws stops before training)."""
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from avb_np import evaluation, image_plots, plots, targets, vi_plots
from avb_np.data import toy_data
from common import tiny, trained

REPO = Path(__file__).resolve().parents[1]
TOY_REFERENCE = {"optimum -log 4": -math.log(4)}


# ----------------------------------------------------------------------------- helpers (also used by test_demo)

def plotted(ax):
    """Every data point drawn in ax as (x, y) rows: line vertices and scatter points (NaN dropped).
    Reference lines (axhline: x in axes coordinates) are left out; see reference_lines."""
    points = [np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
              for line in ax.lines if line.get_transform() == ax.transData]
    points += [c.get_offsets() for c in ax.collections                  # scatter: one offset per point
               if len(c.get_offsets()) and c.get_offset_transform() == ax.transData]
    xy = np.concatenate(points) if points else np.empty((0, 2))
    return xy[np.isfinite(xy).all(axis=1)]


def reference_lines(ax):
    """The horizontal reference lines of ax (drawn with axhline): {label: y}."""
    return {line.get_label(): float(line.get_ydata()[0]) for line in ax.lines
            if line.get_transform() != ax.transData}


def assert_all_shown(ax):
    """Every plotted point and every reference line of ax lies inside its x- and y-limits."""
    xy = plotted(ax)
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    hidden = xy[(xy[:, 0] < x0) | (xy[:, 0] > x1) | (xy[:, 1] < y0) | (xy[:, 1] > y1)]
    assert len(hidden) == 0, (f"{ax.get_title()!r}: {len(hidden)} points outside {(x0, x1)} x {(y0, y1)}, "
                              f"e.g. {hidden[0]}")
    for label, y in reference_lines(ax).items():
        assert y0 <= y <= y1, f"{ax.get_title()!r}: reference line {label} at {y} outside {(y0, y1)}"


def record_figures(monkeypatch):
    """Keep the Figure each figure function returns, under the function's name: {name: Figure}."""
    figures = {}
    for module in (plots, image_plots, vi_plots):
        for name in [n for n in dir(module) if n.startswith("figure_")]:
            def keep(*args, _draw=getattr(module, name), _name=name, **kwargs):
                figures[_name] = _draw(*args, **kwargs)
                return figures[_name]
            monkeypatch.setattr(module, name, keep)
    return figures


# ----------------------------------------------------------------------------- training curves

def fake_run(method, steps, ll_steps, log_likelihood, primal):
    """A Run as figure_curves reads it: only .method and .history."""
    dual = np.full(len(steps), np.nan) if method == "vae" else 1.3 + 0.1 * np.cos(steps)   # VAE: no adversary
    history = {"step": list(steps), "primal": list(primal), "dual": list(dual),
               "ll_step": list(ll_steps), "log_likelihood": list(log_likelihood)}
    return SimpleNamespace(method=method, history=history)


def digits_like():
    """Histories near the digits experiment's values: log p(x) from -25 up to -18.5, losses 18-40."""
    steps, ll_steps = np.arange(1, 1001), np.arange(250, 1001, 250)
    return {"AVB": fake_run("avb", steps, ll_steps, [-25.0, -21.0, -19.2, -18.5], 18 + 22 * np.exp(-steps / 200)),
            "VAE": fake_run("vae", steps, ll_steps, [-23.0, -20.0, -19.0, -18.9], 19 + 20 * np.exp(-steps / 150))}


def toy_like():
    """Histories near the toy's values: log p(x) from -3.6 (below -3, where the panel used to be
    cut off) up to -1.40, just under the optimum -log 4."""
    steps, ll_steps = np.arange(1, 1001), np.arange(250, 1001, 250)
    return {"AVB": fake_run("avb", steps, ll_steps, [-3.6, -1.9, -1.45, -1.40], 1.4 + 2 * np.exp(-steps / 100)),
            "VAE": fake_run("vae", steps, ll_steps, [-2.2, -1.6, -1.5, -1.48], 1.5 + 2 * np.exp(-steps / 100))}


@pytest.mark.parametrize("runs, reference", [(digits_like(), None), (toy_like(), TOY_REFERENCE)],
                         ids=["digits, no reference", "toy, -log 4"])
def test_curves_show_every_value_and_only_the_experiments_reference_lines(runs, reference, tmp_path):
    """Both panels of curves.png hold every recorded loss and log-likelihood (exactly, no
    tolerance: the limits are compared with the values), the log-likelihood panel carries exactly
    the reference lines passed (the toy's -log 4; none for digits), and the PNG is written."""
    fig = plots.figure_curves(runs, tmp_path / "curves.png", reference=reference)
    losses, ll = fig.axes
    for ax in (losses, ll):
        assert_all_shown(ax)
    assert reference_lines(ll) == (reference or {})
    assert reference_lines(losses) == {}
    drawn = plotted(ll)[:, 1]
    recorded = np.concatenate([r.history["log_likelihood"] for r in runs.values()])
    np.testing.assert_array_equal(np.sort(drawn), np.sort(recorded))   # each value drawn once, none added
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_curves_of_digits_values_are_on_screen(tmp_path):
    """The bug this guards against: digits log-likelihoods near -20 drawn with the toy's y-limits
    (-3, -1.3) fell off the panel. Now the panel's y-range is within a few nats of the data."""
    fig = plots.figure_curves(digits_like(), tmp_path / "curves.png")
    y0, y1 = fig.axes[1].get_ylim()
    assert -27 < y0 <= -25 and -18.5 <= y1 < -17


def test_curves_without_a_recorded_log_likelihood_say_why(tmp_path):
    """A run shorter than Config.eval_every records no log-likelihood: the panel says so."""
    runs = {"AVB": fake_run("avb", np.arange(1, 11), [], [], np.linspace(3, 2, 10))}
    fig = plots.figure_curves(runs, tmp_path / "curves.png", reference=TOY_REFERENCE)
    assert any("no exact log-likelihood recorded" in t.get_text() for t in fig.axes[1].texts)
    assert_all_shown(fig.axes[1])


# ----------------------------------------------------------------------------- latent-plane figures

def far_samples(monkeypatch, point):
    """Make evaluation.sample_q put its first sample of the first data row at `point`, as a badly
    trained encoder might (the figures once cut the plane at |z| = 4)."""
    sample_q = evaluation.sample_q

    def sample_far(*args, **kwargs):
        z = sample_q(*args, **kwargs)
        z[0, 0] = point
        return z
    monkeypatch.setattr(evaluation, "sample_q", sample_far)


def test_toy_figures_show_every_sample(monkeypatch, tmp_path):
    """samples.png and posterior.png of a tiny run with one encoder sample at (6.3, -5.2): the
    panels widen to [-7, 7]^2 and hold every sample; the posterior's histograms count all of them."""
    far_samples(monkeypatch, (6.3, -5.2))
    runs = {"VAE": trained(tiny(), "vae", 0), "AVB": trained(tiny(), "avb", 0)}
    fig = plots.figure_samples(runs, toy_data(), tmp_path / "samples.png", n_samples=64)
    for ax in fig.axes:
        assert_all_shown(ax)
        assert ax.get_xlim() == (-7, 7) and ax.get_ylim() == (-7, 7)
    fig = plots.figure_posterior(runs["AVB"], toy_data(), tmp_path / "posterior.png", n_samples=64, n=40)
    for k in range(4):                                    # row 2: one 2-d histogram per data point
        counts = fig.axes[4 + k].collections[0].get_array()
        assert counts.sum() == 64, k


def test_latent_figure_shows_every_code(monkeypatch, tmp_path):
    """latent.png with one code at (-7.5, 2): every panel widens to [-8, 8]^2 and holds every
    code; images.png has a strip of test images and two per model."""
    far_samples(monkeypatch, (-7.5, 2.0))
    runs = {"AVB": trained(tiny(), "avb", 0), "VAE": trained(tiny(), "vae", 0)}
    dataset = SimpleNamespace(test=toy_data(), test_labels=np.arange(4), image_shape=(2, 2))
    fig = image_plots.figure_latent(runs, dataset, tmp_path / "latent.png")
    for ax in fig.axes[:2]:                               # the third is the colour bar
        assert_all_shown(ax)
        assert ax.get_xlim() == (-8, 8)
    fig = image_plots.figure_images(runs, dataset, tmp_path / "images.png", n=4)
    assert len(fig.axes) == 1 + 2 * len(runs)


def test_vi_figures_show_every_sample(tmp_path):
    """vi_2d.png and vi_schools.png with samples inside the banana's box and one far outside it
    (at (9, -6)): each panel holds every sample and still the whole box, where the exact mass is."""
    banana = targets.banana()
    z = np.random.default_rng(0).standard_normal((500, 2))
    z[0] = (9.0, -6.0)
    samples = {"meanfield": {"banana": z}, "avb": {"banana": 0.5 * z[::-1]}}
    figs = [vi_plots.figure_2d([banana], samples, tmp_path / "vi_2d.png", n_show=400),
            vi_plots.figure_marginals([banana], samples, tmp_path / "vi_schools.png", n_show=500)]
    lo1, hi1, lo2, hi2 = banana.box
    for fig in figs:
        for ax in fig.axes:
            assert_all_shown(ax)
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            assert x0 <= lo1 and x1 >= hi1 and y0 <= lo2 and y1 >= hi2
    assert figs[0].axes[0].get_xlim()[1] > 9                  # n_show = 400: z[0] is drawn


# ----------------------------------------------------------------------------- without matplotlib

NO_MATPLOTLIB = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv[0] = 'demo.py'; "
                 "runpy.run_path('demo.py', run_name='__main__')")   # `import matplotlib` now fails


def demo_without_matplotlib(*argv):
    """`python demo.py *argv` in a fresh interpreter where matplotlib cannot be imported."""
    return subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("experiment", [[], ["digits"], ["mnist"], ["vi"]], ids=["toy", "digits", "mnist", "vi"])
def test_help_works_without_matplotlib(experiment):
    """`python demo.py [EXPERIMENT] --help` exits 0 and prints the usage when matplotlib is missing."""
    res = demo_without_matplotlib(*experiment, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage:") and "--steps" in res.stdout


@pytest.mark.parametrize("experiment", [[], ["digits"], ["vi", "--targets", "banana"]], ids=["toy", "digits", "vi"])
def test_a_run_without_matplotlib_stops_before_training(experiment, tmp_path):
    """A run that would draw figures, with matplotlib missing, exits nonzero with one line (no
    traceback) naming the install command, before training: nothing printed, nothing written."""
    out = tmp_path / "out"
    res = demo_without_matplotlib(*experiment, "--steps", "2", "--out", str(out))
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr, res.stderr
    assert 'pip install -e ".[plot]"' in res.stderr
    assert res.stdout == "" and not out.exists()
