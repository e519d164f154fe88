"""The GPU check, in one command for the first machine with a GPU (about 2-4 minutes):

    python benchmarks/gpu.py [--out docs/gpu_benchmark.md] [--steps 200]

1. runs the tests that need CuPy and a GPU (the NumPy/CuPy parity of every layer, loss and
   objective, and training, saving and the guard on the GPU) and records how many passed;
2. times AVB iterations (Algorithm 1: a primal step and 2 adversary steps, the guard watching)
   on NumPy, on CuPy with host draws and with device draws, and, where PyTorch with CUDA is
   installed, the same networks and losses written with torch.autograd, as a reference;
3. writes a Markdown table of milliseconds per iteration to --out and prints it.

Each timing is the median over `--repeats` blocks of `--steps` iterations after a warm-up
block. Where CuPy or a GPU is missing it says so and exits with status 2.
"""
import argparse
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avb_np import backend, config, methods, training  # noqa: E402
from avb_np.network import Affine, Residual  # noqa: E402

CUPY_TESTS = ["tests/test_backend.py", "tests/test_robust_training.py::test_training_on_cupy"]
SIZES = {  # name -> (Config, data width): the toy problem and the image experiments' networks
    "toy (Dx 4, batch 512)": (config.Config(), 4),
    "digits (Dx 64, batch 128)": (config.digits(), 64),
    "MNIST z 32 (Dx 784, batch 128)": (config.mnist(32), 784),
}


def run_cupy_tests():
    """pytest on the CuPy tests: (passed, failed, skipped, seconds, last line)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", *CUPY_TESTS], cwd=ROOT,
                         capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-200:]
    count = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}
    return count.get("passed", 0), count.get("failed", 0) + count.get("error", 0), count.get("skipped", 0), \
        time.perf_counter() - t0, last


def time_avb(cfg, x_dim, xp, draws, steps, repeats, sync):
    """Median ms per AVB iteration of training.train on random binary data."""
    cfg = config.Config(**{**vars(cfg), "lr_schedule": "constant", "log_every": 0, "eval_every": 0,
                           "steps": 10**9, "dynamic": False})
    data = (np.random.default_rng(0).random((2000, x_dim)) < 0.3).astype(np.float64)
    run = training.new_run(cfg, "avb", xp)
    times = []
    for block in range(repeats + 1):                     # the first block warms up (kernels, caches)
        sync()
        t0 = time.perf_counter()
        training.train(run, data, steps, log=None, draws=draws)
        sync()
        if block:
            times.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(times)


def torch_avb(cfg, x_dim, steps, repeats):
    """The same AVB iteration in PyTorch on CUDA (autograd, torch.optim.Adam, device draws), or
    None where PyTorch with CUDA is missing."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev, nets = torch.device("cuda"), methods.build_nets(cfg, "avb")

    class Block(torch.nn.Module):                        # h + W2 act(W1 h + b1) + b2
        def __init__(self, width, act):
            super().__init__()
            self.inner = torch.nn.Sequential(torch.nn.Linear(width, width), activation(act),
                                              torch.nn.Linear(width, width))

        def forward(self, h):
            return h + self.inner(h)

    def activation(kind):
        return {"elu": torch.nn.ELU(), "relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(0.2),
                "tanh": torch.nn.Tanh()}[kind]

    def build(layers):
        return torch.nn.Sequential(*[torch.nn.Linear(l.n_in, l.n_out) if isinstance(l, Affine) else
                                     Block(l.width, l.act) if isinstance(l, Residual) else
                                     activation(l.kind) for l in layers]).to(dev)
    enc, dec, adv = build(nets["enc"]), build(nets["dec"]), build(nets["adv"])
    opt_p = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr_primal)
    opt_d = torch.optim.Adam(adv.parameters(), lr=cfg.lr_dual)
    data = (torch.rand(2000, x_dim, device=dev) < 0.3).float()
    N, softplus = cfg.batch_size, torch.nn.functional.softplus

    def T(x, z):
        return adv(torch.cat([x, z], 1))[:, 0] + cfg.prior_term * (z * z).sum(1)

    def iteration():
        x = data[torch.randint(0, len(data), (N,), device=dev)]
        z = enc(torch.cat([x, torch.randn(N, cfg.eps_dim, device=dev)], 1))
        logits = dec(z)
        log_lik = (x * logits - softplus(logits)).sum(1)
        primal = (T(x, z) - log_lik).mean()              # psi held fixed: only theta, phi step
        opt_p.zero_grad()
        primal.backward()
        opt_p.step()
        for _ in range(cfg.dual_steps):
            x = data[torch.randint(0, len(data), (N,), device=dev)]
            with torch.no_grad():
                z = enc(torch.cat([x, torch.randn(N, cfg.eps_dim, device=dev)], 1))
            dual = (softplus(-T(x, z)) + softplus(T(x, torch.randn(N, cfg.z_dim, device=dev)))).mean()
            opt_d.zero_grad()
            dual.backward()
            opt_d.step()
        return primal.detach(), dual.detach()

    times = []
    for block in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            losses = iteration()
        float(torch.stack(losses).sum())                 # read the losses, as training.train does
        torch.cuda.synchronize()
        if block:
            times.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "gpu_benchmark.md"), help="Markdown file to write")
    p.add_argument("--steps", type=int, default=200, help="iterations per timed block (default 200)")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per cell; the median is shown (default 3)")
    p.add_argument("--numpy-steps", type=int, default=20, help="iterations per block on NumPy (default 20)")
    args = p.parse_args(argv)
    try:
        cp = backend.load("cupy")
    except backend.BackendError as err:
        sys.exit(f"gpu.py: error: {err}")
    passed, failed, skipped, seconds, last = run_cupy_tests()
    print(f"CuPy tests: {last} ({seconds:.0f} s)", flush=True)

    def gpu_sync():
        cp.cuda.Device().synchronize()
    rows = []
    for name, (cfg, x_dim) in SIZES.items():
        row = {"numpy": time_avb(cfg, x_dim, np, "host", args.numpy_steps, args.repeats, lambda: None),
               "cupy, host draws": time_avb(cfg, x_dim, cp, "host", args.steps, args.repeats, gpu_sync),
               "cupy, device draws": time_avb(cfg, x_dim, cp, "device", args.steps, args.repeats, gpu_sync),
               "torch cuda": torch_avb(cfg, x_dim, args.steps, args.repeats)}
        rows.append((name, row))
        print(name, {k: None if v is None else round(v, 3) for k, v in row.items()}, flush=True)
    gpu = cp.cuda.runtime.getDeviceProperties(0)["name"]
    gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    lines = [f"GPU: {gpu}; CuPy {cp.__version__}; NumPy {np.__version__}; Python {platform.python_version()}; "
             f"`python benchmarks/gpu.py --steps {args.steps} --repeats {args.repeats}`",
             "", f"CuPy tests ({', '.join(CUPY_TESTS)}): {passed} passed, {failed} failed, {skipped} skipped "
             f"in {seconds:.0f} s", "",
             "Milliseconds per AVB iteration (a primal step and 2 adversary steps), median of "
             f"{args.repeats} blocks:", "",
             "| networks | " + " | ".join(rows[0][1]) + " |", "|---" * (len(rows[0][1]) + 1) + "|"]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in row.values()) + " |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text + f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
