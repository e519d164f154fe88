"""Cold and warm BLAS buffers: float32 matrix products of the networks' sizes, timed in a fresh
process with and without the warm-up that importing avb_np makes (avb_np/memory.py, point 2).

    python benchmarks/blas_warmup.py            # a table: GFLOP/s per product shape, cold vs warm
    python benchmarks/blas_warmup.py --threads 2

Two fresh processes, one with AVB_NP_WARM_BLAS=0 (cold) and one without (warm), import avb_np
and then time the same products (the same random inputs), each process all the shapes in the
order of the table. A line after the table says whether the two processes' products were
bit-identical: the warm-up changes how fast the library computes, never what.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(512, 256, 256), (1024, 256, 256), (4096, 256, 256), (256, 4096, 256), (512, 64, 256),
          (1024, 66, 64)]                # (rows, inner, columns): adversary, weight gradient, small nets
CHILD = """
import hashlib, json, sys, time
import numpy as np
import avb_np
from threadpoolctl import threadpool_limits
shapes, threads, repeats = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = {"warmed": avb_np.WARMED_BLAS, "rates": [], "digest": hashlib.md5()}
with threadpool_limits(limits=threads, user_api="blas"):
    for m, k, n in shapes:
        a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        out["digest"].update((a @ b).tobytes())
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        out["rates"].append(2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9)
out["digest"] = out["digest"].hexdigest()
print(json.dumps(out))
"""


def child(warm, threads, repeats):
    """GFLOP/s per shape, and a digest of the products, from a fresh process."""
    env = {**os.environ, "AVB_NP_WARM_BLAS": "1" if warm else "0"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([SHAPES, threads, repeats])], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the {'warm' if warm else 'cold'} process failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--repeats", type=int, default=30, help="products timed per shape (default 30)")
    args = ap.parse_args(argv)
    for flag in ("threads", "repeats"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    cold, warm = child(False, args.threads, args.repeats), child(True, args.threads, args.repeats)
    if cold["warmed"] or not warm["warmed"]:
        sys.exit("the warm-up did not follow AVB_NP_WARM_BLAS (avb_np.WARMED_BLAS); see avb_np/memory.py")
    command = " ".join(["python benchmarks/blas_warmup.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"float32 products with {args.threads} BLAS thread(s), GFLOP/s; command: {command}")
    print("| rows x inner x columns | cold GFLOP/s | warm GFLOP/s | warm / cold |\n|---|---|---|---|")
    for (m, k, n), c, w in zip(SHAPES, cold["rates"], warm["rates"]):
        print(f"| {m} x {k} x {n} | {c:.1f} | {w:.1f} | {w / c:.2f} |")
    same = cold["digest"] == warm["digest"]
    print(f"products bit-identical cold and warm: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
