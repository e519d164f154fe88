"""`python demo.py` end to end, for a few iterations (the full run is timed in the README)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import demo  # noqa: E402

KEYS = {"log_likelihood", "elbo", "kl", "reconstruction_error", "seconds"}


def test_demo_writes_results_and_figures(tmp_path, capsys):
    """A 30-iteration run prints the table and writes results.json (the documented keys, finite
    numbers, the optimum -log 4) and the three figures."""
    demo.main(["--steps", "30", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "AVB" in out and "VAE" in out and "OPTIMUM" in out
    results = json.loads((tmp_path / "results.json").read_text())
    for method in ("avb", "vae"):
        assert KEYS <= set(results[method])
        assert all(np.isfinite(results[method][k]) for k in KEYS)
        assert results[method]["log_likelihood"] < -np.log(4) + 1e-3   # no model beats the optimum
    np.testing.assert_allclose(results["optimum"]["log_likelihood"], -np.log(4))
    for name in ("samples.png", "posterior.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


def test_demo_help():
    """`python demo.py --help` exits 0 and lists every flag."""
    res = subprocess.run([sys.executable, "demo.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for flag in ("--steps", "--seed", "--backend", "--out", "--full"):
        assert flag in res.stdout
