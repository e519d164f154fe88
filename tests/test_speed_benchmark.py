"""benchmarks/speed.py: its quick mode runs, and its FLOP count matches a count by hand."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avb_np import methods, network, training
from avb_np.config import Config

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("speed", REPO / "benchmarks" / "speed.py")
speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speed)


def test_quick_mode_prints_the_table():
    """`python benchmarks/speed.py --quick --no-torch` exits 0 within a minute and prints one
    row per method and network, each with a positive time, a GFLOP/s figure and the guard's
    share; it names NumPy's BLAS."""
    res = subprocess.run([sys.executable, "benchmarks/speed.py", "--quick", "--no-torch"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "BLAS" in res.stdout
    for method in ("AVB", "VAE"):
        for net in ("toy", "digits"):
            row = re.search(rf"^\| {method} \| {net} \| 64 \| 1 \| ([0-9.]+) \| ([0-9]+) \(.*\| ([0-9.]+)% \|$",
                            res.stdout, re.MULTILINE)
            assert row, f"no {method} {net} row in:\n{res.stdout}"
            assert float(row.group(1)) > 0 and float(row.group(3)) >= 0


def test_matmul_flops_by_hand():
    """An MLP 3 -> 4 -> 2 on 5 rows: the forward is 2*5*(3*4 + 4*2) = 200 FLOPs; the backward
    adds 200 for the weight gradients and 2*5*4*2 = 80 for the input gradient of the second
    layer (120 more with the first layer's)."""
    net = network.mlp("m", [3, 4, 2], "elu")
    assert speed.matmul_flops(net, 5, backward=False) == 200
    assert speed.matmul_flops(net, 5) == 480
    assert speed.matmul_flops(net, 5, first_input_grad=True) == 600
    assert speed.matmul_flops(net, 5, weight_grads=False, first_input_grad=True) == 400


def test_iteration_flops_by_hand():
    """One AVB iteration of a tiny model (N = 10, two adversary steps), each matmul listed:
    encoder (7,5),(5,2); decoder (2,5),(5,4); adversary (6,6), a block (6,6),(6,6), (6,1).
    Primal: encoder 900 forward + 900 weights + 200 inputs; decoder 600 * 3; adversary 2280
    forward + 2280 inputs. Each adversary step: encoder forward 900; adversary on 20 rows
    4560 forward + 4560 weights + 3120 inputs. VAE: encoder (4,5),(5,4) 800 + 800 + 400,
    decoder 1800."""
    cfg = Config(eps_dim=3, enc_hidden=(5,), dec_hidden=(5,), adv_width=6, adv_blocks=1, batch_size=10)
    primal = (900 + 900 + 200) + 1800 + (2280 + 2280)
    dual = 900 + 4560 + 4560 + 3120
    assert speed.iteration_flops(cfg, methods.build_nets(cfg, "avb"), "avb") == primal + 2 * dual
    assert speed.iteration_flops(cfg, methods.build_nets(cfg, "vae"), "vae") == 2000 + 1800


def test_pytorch_networks_are_avb_np_networks():
    """The PyTorch side of the comparison computes the same functions: the encoder, decoder and
    adversary bodies of an AVB run and the VAE's encoder, built by speed.torch_networks from
    avb_np's layer lists and weights (moved off their initial values, so the zero-initialised
    residual branch counts), agree with avb_np.network.forward to rtol 1e-5, atol 1e-6 (float32
    rounding). Skipped where PyTorch is not installed; it is not a dependency."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for method in ("avb", "vae"):
        cfg = Config(eps_dim=3, enc_hidden=(8, 8), dec_hidden=(8,), adv_width=16, adv_blocks=2)
        run = training.new_run(cfg, method, np)
        for p in run.params.values():
            p += (0.3 * rng.standard_normal(p.shape)).astype(p.dtype)
        forward, _ = speed.torch_networks(torch, run)
        for name, net in run.nets.items():
            h = rng.standard_normal((5, net[0].n_in)).astype(np.float32)
            expected, _ = network.forward(net, run.params, h)
            with torch.no_grad():
                got = forward(net, torch.from_numpy(h)).numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{method} {name}")
