"""Time one training iteration of avb_np on the CPU, beside the same networks in PyTorch eager.

    python benchmarks/speed.py                    # every setting below; prints a Markdown table
    python benchmarks/speed.py --quick            # a few seconds: batch 64, 1 thread, 3 rounds
    python benchmarks/speed.py --baseline DIR     # also time the avb_np/ of another checkout
    python benchmarks/speed.py --split            # avb_np with each minibatch split into a row
                                                  # share per thread (Config.threads; avb_np/parallel.py)
    python benchmarks/speed.py --long 3000        # one long AVB run: ms per iteration over time
                                                  # and subnormal floats (slow arithmetic on many x86 CPUs)

What one "iteration" is:
- AVB: `training.iteration` (Algorithm 1), exactly what `train` runs: a fresh minibatch and
  noise drawn from the run's generator, primal_loss and an Adam step, then `dual_steps` times
  (draw, dual_loss, Adam step). It includes the divergence guard's finite checks; the guard as a whole
  (`_snapshot`, taken by `train` before each iteration, plus the checks) is timed on its own
  and given as a fraction of the iteration.
- VAE: the same `training.iteration`, which for the VAE is: draw, vae_loss, Adam step.
- PyTorch (when installed; not a dependency): the same layer lists, started from the same
  weights, with the same minibatches and noise (drawn as `training` draws them, from a
  generator with the same seed), written the way PyTorch is used
  (autograd, torch.optim.Adam; the primal step asks backward for the encoder's and decoder's
  gradients only).

Networks:
- toy: `config.official_toy()`: encoder concat(x, eps[64]) -> 3 x 64 ELU -> 2, decoder
  3 x 64 ELU -> 4, adversary 256 wide with 5 residual blocks.
- digits: the sizes the digits experiment uses (8x8 binary images): x_dim 64, z_dim 2, encoder
  and decoder 2 x 128 ELU, eps_dim 16, adversary 256 wide with 2 residual blocks. The data are
  random binary images with 32% of the pixels on (the cost does not depend on the values).

How it is measured. Each implementation runs in a process of its own, started with the BLAS
thread count in OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS (and set again with
threadpoolctl where installed), so that neither library's memory or threads disturb the other
and avb_np runs as in a training process. Timings on a shared machine are noisy, so the
processes take turns: a round times each implementation once, in an order rotated every round,
and the table gives medians over the rounds after warm-up; "avb_np / PyTorch" is the median of
the per-round ratios. GFLOP/s counts the matmuls one iteration needs (from the layer shapes:
forward, the weight gradients of the player that steps, the input gradients backpropagation
needs), and the percentage compares it with a 1024 x 256 x 256 float32 matmul timed in the same
rounds by the same library. Page faults are the minor faults of one iteration (memory handed
back to the kernel and mapped again). Only this checkout's worker warms BLAS's buffers as
importing avb_np does (avb_np/memory.py); a --baseline package's worker does so only if that
version of the package does it itself, and PyTorch's never does.
"""
import argparse
import dataclasses
import importlib
import importlib.util
import multiprocessing
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np

try:
    import resource                               # page-fault counts (Unix only)
except ImportError:
    resource = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from avb_np import config, methods, network  # noqa: E402  (the checkout this script belongs to)
from avb_np.memory import keep_freed_memory  # noqa: E402

NETWORKS = {
    "toy": config.official_toy,
    "digits": lambda: config.Config(x_dim=64, z_dim=2, eps_dim=16, enc_hidden=(128, 128),
                                    dec_hidden=(128, 128), adv_width=256, adv_blocks=2),
}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
WARM = "AVB_NP_WARM_BLAS"    # 0: avb_np leaves BLAS's buffers cold at import (avb_np/memory.py)
MATMUL = (1024, 256, 256)   # the adversary's (2N, H) x (H, H) at batch 512
MATMUL_REPEATS = 10         # matmuls per timed call
TIMED = {"avb_np": ("iteration", "guard", "matmul"),   # what each kind of worker times
         "before": ("iteration",), "PyTorch": ("iteration", "matmul")}


# ----------------------------------------------------------------------------- what is timed

def setting(net_name, batch):
    """The Config of a network at a batch size (no logging, no evaluation during training)."""
    cfg = NETWORKS[net_name]()
    cfg.batch_size, cfg.log_every, cfg.eval_every = batch, 0, 0
    return cfg


def make_data(cfg, seed=0):
    """Training data for `cfg`: the 4 toy images, or 1,000 random 8x8 binary images."""
    if cfg.x_dim == 4:
        return np.eye(4)
    return (np.random.default_rng(seed).random((1000, cfg.x_dim)) < 0.32).astype(np.float64)


def load_avb_np(package_dir=None):
    """avb_np's config and training modules: this checkout's, or those in `package_dir`
    (another version, imported under the name avb_np_baseline)."""
    name = "avb_np"
    if package_dir is not None:
        name = "avb_np_baseline"
        spec = importlib.util.spec_from_file_location(name, Path(package_dir) / "__init__.py",
                                                      submodule_search_locations=[str(package_dir)])
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return SimpleNamespace(config=importlib.import_module(f"{name}.config"),
                           training=importlib.import_module(f"{name}.training"),
                           guard=_optional(f"{name}.guard"), draws=_optional(f"{name}.draws"),
                           parallel=_optional(f"{name}.parallel"))


def _optional(module):
    """The module, or None in an older avb_np that lacks it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def numpy_callables(pkg, cfg, method, data, threads=1):
    """{"iteration", "guard", "matmul"} for the avb_np package `pkg`, and the run they step.
    threads > 1: a package that splits its minibatches (avb_np.parallel) does so as `train` does
    with Config.threads = threads: the shares in threads, one BLAS thread each (--split)."""
    training = pkg.training
    known = {f.name for f in dataclasses.fields(pkg.config.Config)}   # an older Config may lack fields
    cfg = dataclasses.replace(cfg, threads=threads) if "threads" in known else cfg
    run = training.new_run(pkg.config.Config(**{k: v for k, v in cfg.to_dict().items() if k in known}),
                           method, np)
    if hasattr(training, "iteration"):                 # Algorithm 1 in one function, the guard watching
        checker = pkg.guard.Guard(run, pkg.draws.HostDraws(run, data), training.primal_loss)
        shares = pkg.parallel.used(run) if pkg.parallel else 1
        losses = None
        if shares > 1:                                # as train runs it: held for the rest of this process
            losses = (pkg.parallel.split(training.primal_loss, shares), pkg.parallel.split(training.dual_loss, shares))
            pkg.parallel.one_blas_thread(shares).__enter__()

        def guarded():                                # one iteration exactly as `train` runs it
            checker.snapshot()
            checker.read(*training.iteration(run, checker.draws, checker, losses))
        return {"iteration": guarded, "guard": lambda: guard_work(pkg, run, method, cfg),
                "matmul": matmul_block(np, threads if shares > 1 else None)}, run
    iteration = training.avb_iteration if method == "avb" else training.vae_iteration
    players = ["primal"] + ["dual"] * (cfg.dual_steps if method == "avb" else 0)
    loss = np.float32(1.0)
    if pkg.guard is None:                              # an older avb_np: checks after each step
        def guard():                                  # what the guard adds to one iteration
            training._snapshot(run)
            for player in players:
                training._check_finite(run, player, loss)
        return {"iteration": lambda: iteration(run, data), "guard": guard,
                "matmul": matmul_block(np)}, run
    primal = training.avb_primal if method == "avb" else training.vae_primal
    checker = pkg.guard.Guard(run, training.HostDraws(run, data), primal)   # steps the players, gathers checks

    def guarded():                                    # one iteration exactly as `train` runs it
        checker.begin()
        checker.verify(*iteration(run, checker))

    return {"iteration": guarded, "guard": lambda: guard_work(pkg, run, method, cfg),
            "matmul": matmul_block(np)}, run


def guard_work(pkg, run, method, cfg):
    """The guard's own work in one iteration: the copy, and the size checks of the parameters
    and (as many) gradients, read at once."""
    players = ["primal"] + ["dual"] * (cfg.dual_steps if method == "avb" else 0)
    pkg.guard._snapshot(run)
    arrays = list(run.params.values())
    sizes = [pkg.guard._largest(np, arrays) for _ in range(2 * len(players))]
    float(np.concatenate(sizes).max())


def matmul_block(lib, threads=None):
    """A callable doing MATMUL_REPEATS float32 matmuls of MATMUL's shape with numpy or torch;
    with `threads`, BLAS runs that many threads for them (a split run holds it at one)."""
    rng = np.random.default_rng(0)
    M, K, N = MATMUL
    a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)
    if lib is not np:
        a, b = lib.from_numpy(a), lib.from_numpy(b)

    def block():
        for _ in range(MATMUL_REPEATS):
            a @ b
    if threads is None:
        return block

    def with_threads():
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            block()
    return with_threads


def torch_networks(torch, run):
    """`run`'s layer lists in PyTorch: forward(net, h) on copies of run's current parameters,
    kept as {name: tensor} in nn.Linear's layout (weight (out, in)) with requires_grad."""
    F = torch.nn.functional
    acts = {"elu": F.elu, "relu": F.relu, "leaky_relu": lambda h: F.leaky_relu(h, 0.2),
            "tanh": torch.tanh, "softplus": F.softplus, "sigmoid": torch.sigmoid,
            "identity": lambda h: h}                       # as in avb_np.layers.ACTIVATIONS
    params = {name: torch.from_numpy(np.ascontiguousarray(p.T if p.ndim == 2 else p)).clone()
              .requires_grad_(True) for name, p in run.params.items()}

    def forward(net, h):
        for layer in net:
            if isinstance(layer, network.Affine):
                h = F.linear(h, params[layer.name + ".W"], params[layer.name + ".b"])
            elif isinstance(layer, network.Act):
                h = acts[layer.kind](h)
            else:                                          # h + W2 act(W1 h + b1) + b2
                p = lambda k: params[f"{layer.name}.{k}"]
                h = h + F.linear(acts[layer.act](F.linear(h, p("W1"), p("b1"))), p("W2"), p("b2"))
        return h
    return forward, params


def torch_callables(torch, cfg, method, data):
    """{"iteration", "matmul"} in PyTorch eager: the layer lists and initial weights of
    avb_np's new run for `cfg`, and the same draws from the same generator."""
    from avb_np import draws as host, training
    F = torch.nn.functional
    run = training.new_run(cfg, method, np)
    nets = run.nets
    forward, params = torch_networks(torch, run)

    def adversary(x, z):                          # T(x, z) = NN(x, z) + c ||z||^2
        return forward(nets["adv"], torch.cat([x, z], 1))[:, 0] + cfg.prior_term * (z * z).sum(1)

    def log_p(x, logits):                         # log p(x|z), Bernoulli
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

    rng = run.rng                                 # the numpy run's stream: the same minibatches
    draws = host.HostDraws(run, data)
    draw = lambda dim: [torch.from_numpy(draws.batch()), torch.from_numpy(draws.normal(dim))]
    primal = [p for k, p in params.items() if k.startswith(("enc.", "dec."))]
    dual = [p for k, p in params.items() if k.startswith("adv.")]
    opt_primal = torch.optim.Adam(primal, lr=cfg.lr_primal)
    N = cfg.batch_size

    if "adv" not in nets:                         # the VAE step
        def vae_iteration():
            x, eps = draw(cfg.z_dim)
            mu, log_sigma = forward(nets["enc"], x).chunk(2, dim=1)
            z = mu + log_sigma.exp() * eps
            kl = (0.5 * (mu * mu + (2 * log_sigma).exp()) - log_sigma - 0.5).sum(1)
            loss = (kl - log_p(x, forward(nets["dec"], z))).mean()
            opt_primal.zero_grad()
            loss.backward()
            opt_primal.step()
        return {"iteration": vae_iteration, "matmul": matmul_block(torch)}

    opt_dual = torch.optim.Adam(dual, lr=cfg.lr_dual)

    def avb_iteration():
        x, eps = draw(cfg.eps_dim)
        z = forward(nets["enc"], torch.cat([x, eps], 1))
        loss = (adversary(x, z) - log_p(x, forward(nets["dec"], z))).mean()
        opt_primal.zero_grad()
        loss.backward(inputs=primal)              # psi held fixed: no adversary gradients
        opt_primal.step()
        for _ in range(cfg.dual_steps):
            x, eps = draw(cfg.eps_dim)
            z_p = torch.from_numpy(rng.standard_normal((N, cfg.z_dim)).astype(cfg.dtype))
            with torch.no_grad():
                z_q = forward(nets["enc"], torch.cat([x, eps], 1))
            T = adversary(torch.cat([x, x]), torch.cat([z_q, z_p]))
            loss = (F.softplus(-T[:N]) + F.softplus(T[N:])).mean()
            opt_dual.zero_grad()
            loss.backward()
            opt_dual.step()
    return {"iteration": avb_iteration, "matmul": matmul_block(torch)}


def matmul_flops(net, rows, backward=True, weight_grads=True, first_input_grad=False):
    """FLOPs of the matmuls of `net` on `rows` rows, 2 * rows * n_in * n_out each: the forward,
    and if `backward` the weight gradients (if `weight_grads`) and the input gradients (the
    first layer's only if `first_input_grad`). A residual block has two (width, width) matmuls."""
    shapes = []
    for layer in net:
        if isinstance(layer, network.Affine):
            shapes.append((layer.n_in, layer.n_out))
        elif isinstance(layer, network.Residual):
            shapes += [(layer.width, layer.width)] * 2
    flops = 0
    for i, (n_in, n_out) in enumerate(shapes):
        passes = 1 + backward * (weight_grads + (i > 0 or first_input_grad))
        flops += passes * 2 * rows * n_in * n_out
    return flops


def iteration_flops(cfg, nets, method):
    """Matmul FLOPs one iteration needs. Primal step: encoder and decoder forward and backward,
    the adversary forward and its input gradient dT/d(x, z) (no weight gradients); each
    adversary step: the encoder forward, the adversary forward and backward on 2N rows."""
    N = cfg.batch_size
    enc_dec = (matmul_flops(nets["enc"], N) +                       # dx, deps not needed
               matmul_flops(nets["dec"], N, first_input_grad=True))  # dz needed
    if method == "vae":
        return enc_dec
    primal = enc_dec + matmul_flops(nets["adv"], N, weight_grads=False, first_input_grad=True)
    dual = matmul_flops(nets["enc"], N, backward=False) + matmul_flops(nets["adv"], 2 * N)
    return primal + cfg.dual_steps * dual


# ----------------------------------------------------------------------------- worker processes

def serve(conn, kind, threads, baseline_dir, malloc_pad, split=False, warm=None):
    """The loop of a worker process: build the callables of a setting, time them on request.

    kind: "avb_np" (this checkout), "before" (the package in baseline_dir) or "PyTorch".
    warm: the user's AVB_NP_WARM_BLAS, given back to a baseline package before it is imported.
    Messages: ("setup", network, batch, method), ("time", name) -> (seconds, minor faults),
    ("subnormals",) -> count, ("info",) -> a line naming the library, ("stop",).
    """
    if malloc_pad:                                    # every process keeps this much (all kinds)
        keep_freed_memory(malloc_pad)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        pass                                      # the environment variables have done it
    torch = None
    if kind == "PyTorch":
        import torch
        torch.set_num_threads(threads)
    if kind == "before":                  # it warms BLAS at its import (avb_np/memory.py) if that
        if warm is None:                  # version does and the user's environment lets it
            os.environ.pop(WARM, None)
        else:
            os.environ[WARM] = warm
    pkg = load_avb_np(baseline_dir if kind == "before" else None)
    fns, run = {}, None
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "stop":
                return
            if msg[0] == "setup":
                cfg = setting(msg[1], msg[2])
                data = make_data(cfg)
                if torch:
                    fns, run = torch_callables(torch, cfg, msg[3], data), None
                else:
                    fns, run = numpy_callables(pkg, cfg, msg[3], data, threads if split else 1)
                reply = None
            elif msg[0] == "time":
                f0, t0 = minor_faults(), time.perf_counter()
                fns[msg[1]]()
                reply = (time.perf_counter() - t0, minor_faults() - f0)
            elif msg[0] == "subnormals":
                reply = subnormals(run) if run else 0
            elif msg[0] == "info":
                reply = library_info(torch)
            conn.send(("ok", reply))
        except Exception:                         # reported by the parent, with the traceback
            conn.send(("error", traceback.format_exc()))


class Worker:
    """One implementation in a process of its own, with `threads` BLAS threads."""

    def __init__(self, kind, threads, baseline_dir=None, malloc_pad=0, split=False):
        ctx = multiprocessing.get_context("spawn")
        self.kind, (self.conn, child) = kind, ctx.Pipe()
        pad = "AVB_NP_MALLOC_TOP_PAD_MB"                  # read when the child imports avb_np:
        saved = {v: os.environ.get(v) for v in (*THREAD_VARIABLES, pad, WARM)}  # PyTorch's stays plain
        os.environ.update({v: str(threads) for v in THREAD_VARIABLES})   # read at BLAS start-up
        if malloc_pad or kind == "PyTorch":
            os.environ[pad] = str(malloc_pad)
        if kind != "avb_np":                              # only this checkout's worker warms BLAS
            os.environ[WARM] = "0"                        # when it imports this checkout's avb_np
        try:
            self.process = ctx.Process(target=serve, daemon=True,
                                       args=(child, kind, threads, baseline_dir, malloc_pad,
                                             split and kind == "avb_np", saved[WARM]))
            self.process.start()
        finally:
            for v, value in saved.items():
                if value is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = value

    def __call__(self, *msg):
        self.conn.send(msg)
        status, reply = self.conn.recv()
        if status == "error":
            raise RuntimeError(f"{self.kind} worker failed:\n{reply}")
        return reply

    def close(self):
        self.conn.send(("stop",))
        self.process.join()


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def subnormals(run):
    """How many parameters and Adam moments are subnormal (nonzero, below the dtype's tiny)."""
    arrays = list(run.params.values())
    for opt in (run.opt_primal, run.opt_dual):
        if opt is not None:
            arrays += list(opt.m.values()) + list(opt.v.values())
    return int(sum(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)) for a in arrays))


# ----------------------------------------------------------------------------- measuring

def measure(workers, net_name, batch, method, threads, rounds, warmup, settle):
    """One row of the table: every worker's callables timed in interleaved rounds.

    Before a call in another process than the previous one, wait `settle` seconds: a BLAS
    thread pool keeps its threads spinning for a while after its last call (OpenBLAS about
    2^28 cycles, ~0.1 s), which would take a core from the next process's threads.
    """
    calls = [(w, name) for w in workers for name in TIMED[w.kind]]
    for w in workers:
        w("setup", net_name, batch, method)
    for _ in range(warmup):
        for w, name in calls:
            w("time", name)
    times = {(w.kind, name): [] for w, name in calls}
    faults = {(w.kind, name): [] for w, name in calls}
    last = None
    for r in range(rounds):
        for w, name in calls[r % len(calls):] + calls[:r % len(calls)]:
            if settle and w is not last:
                time.sleep(settle)
            seconds, n = w("time", name)
            times[w.kind, name].append(seconds)
            faults[w.kind, name].append(n)
            last = w
    med = {key: float(np.median(v)) for key, v in times.items()}
    cfg = setting(net_name, batch)
    gflop = iteration_flops(cfg, methods.build_nets(cfg, method), method) / 1e9
    matmul_gflop = MATMUL_REPEATS * 2 * np.prod(MATMUL) / 1e9
    it = med["avb_np", "iteration"]
    row = {"method": method, "networks": net_name, "batch": batch, "threads": threads,
           "ms": 1e3 * it, "gflops": gflop / it, "matmul": matmul_gflop / med["avb_np", "matmul"],
           "guard": med["avb_np", "guard"] / it,
           "faults": float(np.median(faults["avb_np", "iteration"])),
           "drift": drift(times["avb_np", "iteration"]),
           "subnormal": next(w for w in workers if w.kind == "avb_np")("subnormals")}
    if ("before", "iteration") in times:
        row["before_ms"] = 1e3 * med["before", "iteration"]
        row["before_ratio"] = paired_ratio(times["before", "iteration"], times["avb_np", "iteration"])
    if ("PyTorch", "iteration") in times:
        t = med["PyTorch", "iteration"]
        row.update(torch_ms=1e3 * t, torch_gflops=gflop / t,
                   ratio=paired_ratio(times["avb_np", "iteration"], times["PyTorch", "iteration"]),
                   torch_matmul=matmul_gflop / med["PyTorch", "matmul"],
                   torch_faults=float(np.median(faults["PyTorch", "iteration"])))
    return row


def paired_ratio(a, b):
    """Median over rounds of a[r] / b[r] (both timed in the same round)."""
    return float(np.median(np.asarray(a) / np.asarray(b)))


def drift(seconds):
    """Median of the last third of the rounds over the first third: a run that slows down as it
    goes (subnormal floats) shows a value well above 1."""
    k = max(1, len(seconds) // 3)
    return float(np.median(seconds[-k:]) / np.median(seconds[:k]))


# ----------------------------------------------------------------------------- reporting

def columns(baseline, torch):
    cols = ["method", "networks", "batch", "BLAS threads", "avb_np ms"]
    if baseline:
        cols += ["before ms", "speed-up"]
    if torch:
        cols += ["PyTorch ms", "avb_np / PyTorch"]
    cols += ["avb_np GFLOP/s (of matmul)"]
    if torch:
        cols += ["PyTorch GFLOP/s (of matmul)"]
    return cols + ["page faults avb_np" + (" / PyTorch" if torch else ""), "guard"]


def row_text(r, baseline, torch):
    cells = [r["method"].upper(), r["networks"], str(r["batch"]), str(r["threads"]), f"{r['ms']:.1f}"]
    if baseline:
        cells += [f"{r['before_ms']:.1f}", f"{r['before_ratio']:.2f}x"]
    if torch:
        cells += [f"{r['torch_ms']:.1f}", f"{r['ratio']:.2f}"]
    cells += [f"{r['gflops']:.0f} ({r['gflops'] / r['matmul']:.0%} of {r['matmul']:.0f})"]
    if torch:
        cells += [f"{r['torch_gflops']:.0f} ({r['torch_gflops'] / r['torch_matmul']:.0%} of "
                  f"{r['torch_matmul']:.0f})"]
    cells += [f"{r['faults']:.0f}" + (f" / {r['torch_faults']:.0f}" if torch else ""),
              f"{r['guard']:.1%}"]
    return " | ".join(cells)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def library_info(torch):
    """A line naming NumPy and its BLAS (kernel and threads), or PyTorch and its BLAS."""
    if torch:
        blas = next((w.split("=")[1].rstrip(",") for w in torch.__config__.show().split()
                     if w.startswith("BLAS_INFO=")), "?")
        return (f"PyTorch {torch.__version__}, BLAS {blas}, CPU capability "
                f"{torch.backends.cpu.get_cpu_capability()}")
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i['internal_api']} {i['version']} (kernel {i.get('architecture')}, "
                         f"{i.get('threading_layer')})" for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        try:
            deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            blas = f"{deps['name']} {deps['version']} (kernel unknown without threadpoolctl)"
        except (TypeError, KeyError):
            blas = "unknown (install threadpoolctl to see it)"
    return f"NumPy {np.__version__}, BLAS {blas or 'none found'}"


def long_run(args):
    """Train the toy AVB for `args.long` iterations in a worker; print the median ms per
    iteration and the subnormal count every tenth of the run (subnormal slow-down shows as
    a time that rises with the count)."""
    worker = Worker("avb_np", args.threads[0], malloc_pad=args.malloc_top_pad)
    worker("setup", "toy", args.batch[0], "avb")
    block = max(1, args.long // 10)
    print(f"toy AVB, batch {args.batch[0]}, {args.threads[0]} BLAS thread(s)")
    print("| iterations | median ms / iteration | subnormal parameters and moments |")
    print("|---|---|---|")
    for done in range(block, args.long + 1, block):
        ms = 1e3 * np.median([worker("time", "iteration")[0] for _ in range(block)])
        print(f"| {done} | {ms:.1f} | {worker('subnormals')} |", flush=True)
    worker.close()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="The module docstring says what is timed and how.")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: batch 64, 1 thread, 3 rounds after 1 warm-up")
    p.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    p.add_argument("--methods", nargs="+", choices=("avb", "vae"), default=["avb", "vae"])
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 512 4096)")
    p.add_argument("--threads", type=int, nargs="+", help="BLAS threads (default 1 2)")
    p.add_argument("--rounds", type=int, help="timed rounds per setting (default 15)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3)")
    p.add_argument("--settle", type=float, default=0.15, metavar="SECONDS",
                   help="with more than 1 thread, pause this long before switching to another "
                        "library's process, so its thread pool has gone to sleep (default 0.15)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="a checkout of another avb_np version, timed beside this one")
    p.add_argument("--malloc-top-pad", type=int, default=0, metavar="MB",
                   help="let every process, PyTorch's too, keep this many MB of freed memory (glibc "
                        "M_TOP_PAD); default 0: each as in a plain run (avb_np keeps 256 MB itself, "
                        "avb_np/memory.py; PyTorch leaves malloc as it is)")
    p.add_argument("--split", action="store_true",
                   help="this checkout's avb_np splits each minibatch into as many row shares as there "
                        "are threads (Config.threads, avb_np/parallel.py); default: the plain loop")
    p.add_argument("--long", type=int, default=0, metavar="ITERATIONS",
                   help="instead: time one toy AVB run this long, with subnormal counts")
    args = p.parse_args(argv)
    args.batch = args.batch or ([64] if args.quick else [512, 4096])
    args.threads = args.threads or ([1] if args.quick else [1, 2])
    args.rounds = args.rounds if args.rounds is not None else (3 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if min(args.batch + args.threads + [args.rounds]) < 1 or min(args.warmup, args.long) < 0:
        p.error("--batch, --threads and --rounds must be positive, --warmup and --long not negative")
    if args.malloc_top_pad and not keep_freed_memory(args.malloc_top_pad):
        p.error("--malloc-top-pad needs glibc's malloc (Linux)")
    if args.baseline and not (args.baseline / "avb_np" / "__init__.py").is_file():
        p.error(f"--baseline must be a checkout holding avb_np/__init__.py, got {args.baseline}")
    if args.long:
        return long_run(args)
    torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    kinds = ["avb_np"] + ["before"] * bool(args.baseline) + ["PyTorch"] * torch

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; Python {platform.python_version()}")
    rows = []
    for threads in args.threads:
        workers = [Worker(k, threads, args.baseline and args.baseline / "avb_np", args.malloc_top_pad,
                          args.split) for k in kinds]
        if threads == args.threads[0]:
            print("\n".join(dict.fromkeys(w("info") for w in workers)))
            if not torch:
                print("PyTorch: not timed (not installed, or --no-torch)")
            print(f"medians of {args.rounds} interleaved rounds after {args.warmup} warm-up calls; "
                  f"command: python benchmarks/speed.py {' '.join(argv)}".rstrip())
        for net_name in args.networks:
            for batch in args.batch:
                for method in args.methods:
                    rows.append(measure(workers, net_name, batch, method, threads, args.rounds,
                                        args.warmup, args.settle if threads > 1 else 0))
                    print("  " + row_text(rows[-1], args.baseline, torch), file=sys.stderr, flush=True)
        for w in workers:
            w.close()
    cols = columns(args.baseline, torch)
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + row_text(r, args.baseline, torch) + " |")
    print(f"\nslow-down within a setting (median of the last third of the rounds over the first "
          f"third): at most {max(r['drift'] for r in rows):.2f}x; subnormal parameters and Adam "
          f"moments at the end: {max(r['subnormal'] for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
