"""Shared fixtures: `strict_cupy`, the CPU stand-in for CuPy (tests/strict_cupy.py), installed as
`cupy` for one test.

AVB_STRICT_CUPY=1 python -m pytest -q   installs it for every test and makes it the default
backend (AVB_BACKEND=cupy): the tests that need CuPy run on it instead of being skipped, and
everything that takes backend.current() runs on the device path (docs/gpu.md)."""
import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # before NumPy loads BLAS:
    os.environ.setdefault(_name, "1")   # the tests' matrices are small, and one thread per process never
#                                         oversubscribes the cores when other jobs share the machine

import pytest  # noqa: E402

import strict_cupy  # noqa: E402
from avb_np import backend  # noqa: E402

WHOLE_SUITE = os.environ.get("AVB_STRICT_CUPY", "") not in ("", "0")


@pytest.fixture
def strict_cupy_module(monkeypatch):
    """The stand-in as `import cupy` sees it, for this test (no crossings counted yet)."""
    monkeypatch.setattr(backend, "_xp", None)            # backend.current() reads AVB_BACKEND afresh
    with strict_cupy.installed() as cp:
        yield cp


@pytest.fixture(autouse=WHOLE_SUITE)
def _whole_suite_on_stand_in(monkeypatch):
    if WHOLE_SUITE:
        monkeypatch.setenv("AVB_BACKEND", "cupy")
        monkeypatch.setattr(backend, "_xp", None)
        with strict_cupy.installed():
            yield
    else:
        yield
