"""Where the time of a training iteration goes: cProfile over `training.iteration`, by function.

    python benchmarks/profile_step.py                     # the demo's toy networks, AVB
    python benchmarks/profile_step.py --networks official --threads 1

Prints each function's own time as a share of the whole (matrix products show up inside
affine_forward and affine_backward; the elementwise activations in their own functions).
"""
import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

NETWORKS = ("demo", "official")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", choices=NETWORKS, default="demo",
                    help="demo: config.Config() (what `python demo.py` trains); official: config.official_toy()")
    ap.add_argument("--method", choices=("avb", "vae"), default="avb")
    ap.add_argument("--iterations", type=int, default=100, help="profiled iterations (default 100)")
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (default: the library's own)")
    ap.add_argument("--top", type=int, default=10, help="functions listed (default 10)")
    args = ap.parse_args(argv)
    if args.iterations < 1 or args.top < 1 or args.threads < 0:
        ap.error("--iterations and --top must be at least 1, --threads at least 0")
    if args.threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)            # before NumPy loads BLAS
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import speed                                            # one iteration exactly as `train` runs it
    from avb_np import config

    cfg = config.Config() if args.networks == "demo" else config.official_toy()
    cfg.log_every = cfg.eval_every = 0
    step = speed.numpy_callables(speed.load_avb_np(), cfg, args.method, speed.make_data(cfg))[0]["iteration"]

    for _ in range(5):                                      # warm-up: the heap at its working size
        step()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.iterations):
        step()
    profile.disable()
    stats = pstats.Stats(profile)
    total = stats.total_tt
    print(f"{args.method} on the {args.networks} networks, {args.iterations} iterations, "
          f"{1e3 * total / args.iterations:.1f} ms each (under the profiler)")
    print("| function | own ms per iteration | share |\n|---|---|---|")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:args.top]
    for (path, line, name), (_, _, own, _, _) in rows:
        where = f"{Path(path).name}:{name}" if path != "~" else name
        print(f"| {where} | {1e3 * own / args.iterations:.2f} | {100 * own / total:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
