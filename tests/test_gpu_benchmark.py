"""benchmarks/gpu.py, without a GPU: its AVB timing runs on the strict CuPy stand-in, and the
command stops in one line where no GPU is visible."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from avb_np import config

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu)


def test_avb_timing_runs_on_the_device_path(strict_cupy_module):
    """Two timed blocks of 2 iterations, host and device draws: positive milliseconds."""
    for draws in ("host", "device"):
        ms = gpu.time_avb(config.Config(), 4, strict_cupy_module, draws, 2, 1, lambda: None)
        assert np.isfinite(ms) and ms > 0


def test_without_gpu_it_stops_in_one_line(strict_cupy_module, monkeypatch, tmp_path):
    def no_gpu():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setattr(strict_cupy_module.cuda.runtime, "getDeviceCount", no_gpu)
    with pytest.raises(SystemExit, match="^gpu.py: error: backend 'cupy' was asked for but no GPU is visible"):
        gpu.main(["--out", str(tmp_path / "t.md")])
    assert not (tmp_path / "t.md").exists()
