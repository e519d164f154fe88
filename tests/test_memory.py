"""The package keeps freed memory at import (avb_np/memory.py): a training step on the official
toy networks at batch 512 then makes almost no minor page faults, where glibc's default makes
thousands (it hands the freed arrays back to the kernel and maps them again each step)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")

SCRIPT = """
import resource
import numpy as np
import avb_np
from avb_np import config, data, draws, guard, training
cfg = config.official_toy()
cfg.log_every = cfg.eval_every = 0
run = training.new_run(cfg, "avb", np)
d = draws.HostDraws(run, data.toy_data())
g = guard.Guard(run, d, training.primal_loss)
def step():
    g.snapshot()
    g.read(*training.iteration(run, d, g))
for _ in range(2):                 # the heap grows to its working size
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(1):
    step()
print(avb_np.KEEPS_FREED_MEMORY, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0))
"""


def faults(pad):
    env = {**os.environ, "AVB_NP_MALLOC_TOP_PAD_MB": pad, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MALLOC_TOP_PAD_", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    return out[0] == "True", float(out[1])


def test_a_training_step_makes_almost_no_page_faults():
    """With AVB_NP_MALLOC_TOP_PAD_MB=0 (glibc's default) an AVB iteration makes over 1,000 minor
    faults (about 12,000 seen); with the default (256 MB kept) at least 20 times fewer (3 to 200
    seen, after two iterations of warm-up). Skipped where the C library has no mallopt."""
    kept, with_pad = faults("256")
    if not kept:
        pytest.skip("this C library has no mallopt (not glibc)")
    off, without = faults("0")
    assert not off
    assert 1000 < without and 20 * with_pad < without, (with_pad, without)


def warmed(setting):
    """avb_np.WARMED_BLAS in a fresh process with AVB_NP_WARM_BLAS=setting (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "AVB_NP_WARM_BLAS"}
    env.update({} if setting is None else {"AVB_NP_WARM_BLAS": setting})
    out = subprocess.run([sys.executable, "-c", "import avb_np; print(avb_np.WARMED_BLAS)"],
                         cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return out.strip() == "True"


def test_import_warms_blas_unless_told_not_to():
    """Importing the package makes the warm-up products (avb_np/memory.py, point 2) by default
    and with AVB_NP_WARM_BLAS=1; with AVB_NP_WARM_BLAS=0 it makes none."""
    assert warmed(None) and warmed("1")
    assert not warmed("0")


def test_each_share_thread_warms_its_own_buffers(monkeypatch):
    """A new pool of share threads (avb_np/parallel.py) makes one warm-up product in each of its
    threads, all of them under way at the same moment, so that each holds a BLAS buffer of its own."""
    import threading

    from avb_np import memory, parallel

    seen, lock = [], threading.Lock()
    def product():
        with lock:
            seen.append(threading.current_thread().name)
        assert threading.active_count() >= 4         # the main thread and the pool's 3 all exist now
    monkeypatch.setattr(memory, "warm_product", product)
    monkeypatch.setattr(parallel, "_POOLS", {})
    parallel.split(lambda run, draws: None, 3)
    parallel._POOLS[3].shutdown()
    assert len(seen) == 3 and len(set(seen)) == 3, seen
    assert all(name.startswith("avb_np-share") for name in seen), seen

    seen.clear()
    monkeypatch.setenv("AVB_NP_WARM_BLAS", "0")
    monkeypatch.setattr(parallel, "_POOLS", {})
    parallel.split(lambda run, draws: None, 3)
    parallel._POOLS[3].shutdown()
    assert seen == []
