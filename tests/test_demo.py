"""`python demo.py` end to end, for a few iterations (the full run is timed in the README)."""
import functools
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avb_np import checkpoint, evaluation, training, vi
from avb_np.config import Config
from avb_np.data import toy_data
from common import assert_same_state, interrupt_call, interrupt_dual_loss
from test_figures import assert_all_shown, record_figures, reference_lines

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import demo  # noqa: E402

KEYS = {"log_likelihood", "elbo", "kl", "reconstruction_error", "posterior_kl", "seconds"}


def test_demo_writes_results_and_figures(tmp_path, capsys, monkeypatch):
    """A 30-iteration run prints the table and writes results.json (the documented keys, finite
    numbers, the optimum -log 4), the three figures (every sample and loss inside its panel, the
    curves with the toy's -log 4 line) and the checkpoint. It runs with NumPy set to
    raise on overflow, division by zero and invalid values (NaN): training, evaluation and
    figures trigger none of them. Underflow to 0 (e.g. exp of a very negative log-density) is
    the correct result and stays ignored, as by default."""
    figures = record_figures(monkeypatch)
    monkeypatch.setattr(evaluation, "evaluate", functools.partial(evaluation.evaluate, n_samples=20_000, n_mc=2_000,
                                                                  bins=100))   # fewer draws than the demo's
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        demo.main(["--steps", "30", "--save-every", "20", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "AVB" in out and "VAE" in out and "OPTIMUM" in out
    results = json.loads((tmp_path / "results.json").read_text())
    for method in ("avb", "vae"):
        assert KEYS <= set(results[method])
        assert all(np.isfinite(results[method][k]) for k in KEYS)
        assert results[method]["log_likelihood"] < -np.log(4) + 1e-3   # no model beats the optimum
    np.testing.assert_allclose(results["optimum"]["log_likelihood"], -np.log(4))
    for name in ("samples.png", "posterior.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name       # smoke check: written, not blank
    assert set(figures) == {"figure_samples", "figure_posterior", "figure_curves"}
    for fig in figures.values():
        for ax in fig.axes:
            assert_all_shown(ax)
    assert reference_lines(figures["figure_curves"].axes[1]) == {"optimum -log 4": -np.log(4)}
    assert {m: r.step for m, r in checkpoint.load(tmp_path / "checkpoint.npz").items()} == {"avb": 30, "vae": 30}


COMMON_FLAGS = ("--steps", "--seed", "--backend", "--out", "--lr-primal", "--lr-dual", "--save-every", "--resume",
                "--ac", "--adv-width", "--adv-blocks")


@pytest.mark.parametrize("experiment, flags", [
    ([], ("--full",)), (["digits"], ("--z-dim", "--ais-temps", "--ais-chains", "--n-test")),
    (["mnist"], ("--z-dim", "--data-dir", "--download", "--source")),
    (["vi"], ("--targets", "--methods", "--adv-width", "--adv-blocks"))])
def test_demo_help(experiment, flags):
    """`python demo.py [EXPERIMENT] --help` exits 0 and lists every flag of that experiment."""
    res = subprocess.run([sys.executable, "demo.py", *experiment, "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    common = ("--steps", "--seed", "--out") if experiment == ["vi"] else COMMON_FLAGS
    for flag in common + flags:
        assert flag in res.stdout, flag


BAD_FLAGS = [["--steps", "0"], ["--steps", "abc"], ["--steps", "1.5"], ["--seed", "-1"],
             ["--save-every", "-2"], ["--lr-dual", "0"], ["--lr-primal", "nan"], ["--lr-primal", "-0.001"],
             ["--backend", "torch"]]


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=[" ".join(f) for f in BAD_FLAGS])
def test_bad_flags_are_usage_errors(flags, capsys):
    """A bad value prints the usage and a message naming the flag, and exits with code 2."""
    with pytest.raises(SystemExit) as info:
        demo.parse_args(flags)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage:") and f"argument {flags[0]}:" in err
    assert repr(flags[1]) in err or flags[1] in err


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, capsys):
    """Ctrl-C in AVB's 4th iteration (7th adversary step) saves OUT/checkpoint.npz, prints the
    resume command and exits with 130. Running the printed command gives, bit for bit, the runs
    of an uninterrupted demo (saving every 2 iterations, i.e. training in chunks). The table and
    figures are skipped (report is replaced) to keep this test fast."""
    reports, dual_loss = [], training.dual_loss
    monkeypatch.setattr(demo, "report", lambda runs, data, cfg, out: reports.append(runs))
    interrupt_dual_loss(monkeypatch, at=7)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        demo.main(["--steps", "6", "--out", str(out)])
    assert info.value.code == 130
    command = capsys.readouterr().out.strip().splitlines()[-1].strip()
    saved = out / "checkpoint.npz"
    assert command == f"python demo.py --steps 6 --seed 0 --out {out} --resume {saved}"
    assert {m: r.step for m, r in checkpoint.load(saved).items()} == {"avb": 3, "vae": 0}   # all created first
    monkeypatch.setattr(training, "dual_loss", dual_loss)                  # no more interrupts

    with pytest.raises(SystemExit) as info:               # other flags than the saved run's
        demo.main(["--steps", "6", "--full", "--out", str(out), "--resume", str(saved)])
    assert "adv_width: checkpoint 64 vs expected 256" in str(info.value.code)
    demo.main(shlex.split(command)[2:])                   # the printed command
    demo.main(["--steps", "6", "--save-every", "2", "--out", str(tmp_path / "reference")])
    resumed, reference = reports
    for method in ("avb", "vae"):
        assert_same_state(resumed[method], reference[method])


def test_resume_errors_name_the_problem(tmp_path):
    """A missing checkpoint, or one past --steps, ends with a message, not a traceback."""
    with pytest.raises(SystemExit) as info:
        demo.main(["--out", str(tmp_path), "--resume", str(tmp_path / "none.npz")])
    assert "no checkpoint at" in str(info.value.code)
    path = tmp_path / "three.npz"
    checkpoint.save(path, {"vae": training.train(training.new_run(Config(), "vae", np), toy_data(), 3)})
    with pytest.raises(SystemExit) as info:
        demo.main(["--steps", "2", "--out", str(tmp_path), "--resume", str(path)])
    assert "vae run is at iteration 3, beyond --steps 2" in str(info.value.code)
    checkpoint.save(path, {m: training.new_run(Config(), m, np) for m in ("avb", "avb-ac")})
    with pytest.raises(SystemExit) as info:                 # an AVB+AC run, resumed without --ac
        demo.main(["--out", str(tmp_path), "--resume", str(path)])
    assert "holds the runs ['avb', 'avb-ac'], among them AVB with adaptive contrast; pass --ac" in str(info.value.code)


def test_ci_runs_the_readme_test_command():
    """.ci/run's last line, the test command, appears word for word in the README."""
    command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in command and command in (REPO / "README.md").read_text()


def test_digits_demo(tmp_path, capsys, monkeypatch):
    """`python demo.py digits --ac` for a few iterations, scoring 8 test images with a short AIS: the
    table lists the three models (AVB+AC's AIS and IS start from its encoder's moments), results.json holds finite numbers, AIS (a stochastic lower bound, loose
    with 10 temperatures on a barely trained model) is not above the exact value (quadrature) by
    more than 3 s.e. + 0.05, importance sampling (1,000 draws) is within 0.5 nats of it (the
    estimators' accuracy is pinned in tests/test_likelihood.py), and the figures are written: every
    code and loss inside its panel, no reference line (the toy's -log 4 is not the digits')."""
    out = tmp_path / "digits"
    figures = record_figures(monkeypatch)
    demo.main(["digits", "--ac", "--steps", "20", "--n-test", "8", "--ais-temps", "10", "--ais-chains", "2",
               "--out", str(out)])
    text = capsys.readouterr().out
    assert "AVB " in text and "AVB+AC" in text and "VAE" in text and "AIS" in text
    results = json.loads((out / "results.json").read_text())
    for method in ("avb", "avb-ac", "vae"):
        r = results[method]
        assert np.isfinite([r["log_likelihood"], r["elbo"], r["kl"], *r["ais"], *r["is"]]).all()
        assert r["ais"][0] - r["log_likelihood"] < 3 * r["ais"][1] + 0.05, r
        assert abs(r["is"][0] - r["log_likelihood"]) < 0.5, r
    assert results["config"]["x_dim"] == 64 and results["config"]["z_dim"] == 2
    for name in ("images.png", "latent.png", "curves.png"):
        assert (out / name).stat().st_size > 10_000, name            # smoke check: written, not blank
    for fig in (figures["figure_latent"], figures["figure_curves"]):
        for ax in fig.axes:
            assert_all_shown(ax)
    assert reference_lines(figures["figure_curves"].axes[1]) == {}


def test_mnist_demo_on_tiny_files(tmp_path, monkeypatch, capsys):
    """`python demo.py mnist --data-dir DIR --z-dim 8` on tiny IDX files written here (their checksums
    swapped into the table): trains with dynamic binarisation and scores by AIS and IS; a folder
    without the files ends in a message naming the file and the --download flag, not a traceback."""
    from avb_np import mnist
    from test_data import tiny_idx, write
    monkeypatch.setattr(mnist, "FILES", write(tmp_path, tiny_idx(np.random.default_rng(0))[0]))
    monkeypatch.setattr(mnist, "VALID_SIZE", 2)
    out = tmp_path / "out"
    demo.main(["mnist", "--data-dir", str(tmp_path), "--z-dim", "8", "--steps", "3", "--ais-temps", "3",
               "--ais-chains", "2", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["dynamic"] and results["config"]["x_dim"] == 784
    assert np.isfinite(results["avb"]["ais"][0]) and "log_likelihood" not in results["avb"]
    with pytest.raises(SystemExit) as info:
        demo.main(["mnist", "--data-dir", str(tmp_path / "empty"), "--steps", "3"])
    assert "train-images-idx3-ubyte.gz" in str(info.value.code) and "--download" in str(info.value.code)


def test_vi_demo(tmp_path, capsys, monkeypatch):
    """`python demo.py vi` for 20 iterations on one 2-d and one Eight Schools target: every method
    is in the table and in vi_results.json, with finite numbers beside the exact answers, and
    both figures are written, every sample inside its panel; an unknown target is refused by name."""
    out = tmp_path / "vi"
    figures = record_figures(monkeypatch)
    monkeypatch.setattr(vi, "compare", functools.partial(vi.compare, n_kl=20_000, n_elbo=5_000))   # fewer draws
    demo.main(["vi", "--steps", "20", "--targets", "banana,eight_schools_mirror", "--out", str(out)])
    assert "Eight Schools" in capsys.readouterr().out
    results = json.loads((out / "vi_results.json").read_text())
    for target in ("banana", "eight_schools_mirror"):
        assert set(results[target]["methods"]) == {"avb", "avb-ac", "meanfield", "fullrank"}
        assert all(np.isfinite(r["elbo"]) for r in results[target]["methods"].values())
    assert abs(results["eight_schools_mirror"]["exact"]["p_tau_negative"] - 0.5) < 1e-9
    for name in ("vi_2d.png", "vi_schools.png"):
        assert (out / name).stat().st_size > 10_000, name            # smoke check: written, not blank
    for fig in (figures["figure_2d"], figures["figure_marginals"]):
        for ax in fig.axes:
            assert_all_shown(ax)
    with pytest.raises(SystemExit) as info:
        demo.main(["vi", "--targets", "donut", "--out", str(out)])
    assert "donut" in str(info.value.code)


def test_vi_demo_refuses_to_replace_and_resumes_after_an_interrupt(tmp_path, capsys, monkeypatch):
    """A second `demo.py vi` into the same folder is refused (vi_results.json is there) unless
    --overwrite. Ctrl-C in the second of two fits saves the finished one in vi_partial.json
    and prints the command that resumes (exit code 130); that command finishes the rest, and its
    numbers equal an uninterrupted run's exactly (each fit has its own random stream)."""
    flags = ["vi", "--steps", "20", "--targets", "ring", "--methods", "meanfield,avb"]
    monkeypatch.setattr("avb_np.vi_plots.figure_2d", lambda *a, **k: None)   # figures: tested above
    monkeypatch.setattr(vi, "compare", functools.partial(vi.compare, n_kl=20_000, n_elbo=5_000))
    whole = demo.main(flags + ["--out", str(tmp_path / "whole")])
    with pytest.raises(SystemExit) as info:
        demo.main(flags + ["--out", str(tmp_path / "whole")])
    assert "vi_results.json" in str(info.value.code) and "--overwrite" in str(info.value.code)
    fit = interrupt_call(monkeypatch, vi, "fit", at=2)
    out = tmp_path / "cut"
    with pytest.raises(SystemExit) as info:
        demo.main(flags + ["--out", str(out)])
    assert info.value.code == 130
    printed = capsys.readouterr().out
    command = printed.strip().splitlines()[-1].strip()
    assert "saved the finished fits (1)" in printed and command.endswith(f"--resume {out / 'vi_partial.json'}")
    monkeypatch.setattr(vi, "fit", fit)
    resumed = demo.main(shlex.split(command)[2:])
    assert not (out / "vi_partial.json").exists()
    for target in ("ring",):
        for method in ("meanfield", "avb"):
            a, b = whole[target]["methods"][method], resumed[target]["methods"][method]
            assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}



def test_a_saved_run_is_never_overwritten_unasked(tmp_path, monkeypatch):
    """A rerun into an --out that holds a checkpoint stops before training, naming the checkpoint
    and both ways on (--resume, --overwrite), and leaves the file as it was; --overwrite replaces
    it. `--resume ''` (an unset shell variable) is a usage error, not a fresh run."""
    monkeypatch.setattr(demo, "report", lambda runs, data, cfg, out: None)
    demo.main(["--steps", "2", "--out", str(tmp_path)])
    saved = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit) as info:
        demo.main(["--steps", "3", "--out", str(tmp_path)])
    message = str(info.value.code)
    assert "checkpoint.npz" in message and "--resume" in message and "--overwrite" in message
    assert (tmp_path / "checkpoint.npz").read_bytes() == saved
    demo.main(["--steps", "3", "--out", str(tmp_path), "--overwrite"])
    assert checkpoint.load(tmp_path / "checkpoint.npz")["avb"].step == 3
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--resume", ""])
    assert info.value.code == 2


def test_ctrl_c_during_evaluation_exits_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the table and figures are made ends with exit code 130 and a message naming the
    saved checkpoint and the command that evaluates it, not a traceback."""
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, "report", interrupted)
    with pytest.raises(SystemExit) as info:
        demo.main(["--steps", "2", "--out", str(tmp_path)])
    assert info.value.code == 130
    out = capsys.readouterr()
    text = out.out + out.err
    assert "interrupted during evaluation" in text and f"--resume {tmp_path / 'checkpoint.npz'}" in text


@pytest.mark.parametrize("argv, words", [
    (["--out", ""], ["out must be a path, got ''"]),
    (["--adv-width", "1000000", "--steps", "1"], ["too large", "adv_width"]),
    (["--adv-blocks", "20000", "--steps", "1"], ["adv_blocks", "at most"]),
    (["digits", "--ais-chains", "10000000", "--steps", "1"], ["--ais-chains", "too large"]),
    (["--steps", "2", "digits"], ["the experiment comes first", "python demo.py digits --steps 2"]),
    (["mnist", "--data-dir", "FILE"], ["is a file, not a folder"]),
    (["vi", "--adv-width", "100000000", "--steps", "1"], ["VIConfig.batch_size", "widest layer"]),
])
def test_bad_flags_end_in_one_line_before_any_work(argv, words, tmp_path, monkeypatch):
    """A bad flag, file or size stops the demo with one line naming it (no traceback), before
    any training; nothing is written into --out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a folder")
    argv = [a if a != "FILE" else str(tmp_path / "FILE") for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        demo.main(argv + out)
    message = str(info.value.code)
    assert info.value.code not in (0, None) and all(w in message for w in words), message
    assert not (tmp_path / "out").exists() or not any(p.name != ".avb_np.lock" for p in (tmp_path / "out").iterdir())
