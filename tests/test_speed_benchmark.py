"""benchmarks/speed.py: its quick mode runs, and its FLOP count matches a count by hand."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from avb_np import models, network
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
    assert speed.iteration_flops(cfg, models.build_nets(cfg, "avb"), "avb") == primal + 2 * dual
    assert speed.iteration_flops(cfg, models.build_nets(cfg, "vae"), "vae") == 2000 + 1800
