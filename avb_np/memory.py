"""Two settings avb_np makes to its process at import, both about memory, both for speed only.

1. Keep freed memory in the process (`keep_freed_memory`). A training step allocates and frees
   the same large arrays (activations, gradients, Adam's scratch) hundreds of times a second. By
   default glibc's malloc hands freed memory at the top of its heap back to the kernel, and the
   next step maps it again: every page of it is then a minor page fault, zero-filled by the
   kernel (about 11,000 faults per iteration on the official toy networks at batch 512; `python
   benchmarks/speed.py` counts them). Asking malloc to keep TOP_PAD_MB of slack at the top of the
   heap (M_TOP_PAD, what MALLOC_TOP_PAD_=268435456 in the environment does) brings that to about
   one fault per iteration. The cost is at most that much more resident memory. Only glibc
   (Linux) has mallopt; elsewhere nothing happens. AVB_NP_MALLOC_TOP_PAD_MB=0 (or off) turns
   it off.

2. Warm up the BLAS library's work buffers (`warm_blas`). Measured with OpenBLAS 0.3.31 (its
   Haswell kernels, on an AMD EPYC under KVM): a thread's float32 matrix products of this
   package's sizes (inner and output dimensions up to 256) run 3-4 times slower than the
   library's peak until that thread has made one product with wider operands, such as 512 x
   512 x 512 (4096 x 256 x 256 is not enough), and at full speed from then on, with
   bit-identical results. The products of the official networks are all narrower, so a run
   would never get there by itself. Why is not established (it behaves like the pages of the
   per-thread work buffers); docs/speed.md has the numbers. So at import one such product is
   made with one BLAS thread (the buffer of the calling thread) and, where the library's
   default is more threads, one with that number (the buffers of its worker threads): a few
   tens of ms. parallel.py does the same in each of its share threads. AVB_NP_WARM_BLAS=0 (or
   false, no, off) turns it off; a failure here only leaves the buffers cold.
"""
import ctypes
import ctypes.util
import os

TOP_PAD_MB = 256
M_TOP_PAD = -2          # glibc's malloc.h: mallopt parameter number of the top pad
WARM_SIZE = 512         # the product that warms a thread's BLAS buffers: WARM_SIZE^3, float32
OFF = ("0", "false", "no", "off")   # values of the two environment variables that turn a setting off


def keep_freed_memory(megabytes=None):
    """Ask glibc's malloc to keep `megabytes` (default: $AVB_NP_MALLOC_TOP_PAD_MB, else
    TOP_PAD_MB) of freed memory at the top of the heap. Returns True if it was set."""
    if megabytes is None:
        text = os.environ.get("AVB_NP_MALLOC_TOP_PAD_MB", str(TOP_PAD_MB)).strip().lower()
        megabytes = int(text) if text.isdigit() else 0 if text in OFF else TOP_PAD_MB
    if megabytes <= 0 or os.environ.get("MALLOC_TOP_PAD_"):    # off, or the user chose it already
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(M_TOP_PAD, megabytes << 20) == 1
    except (OSError, AttributeError):                          # not glibc: no mallopt
        return False


def warm_blas():
    """One WARM_SIZE^3 float32 product with one BLAS thread, then one with the default number
    if that is more (point 2 above), unless $AVB_NP_WARM_BLAS is 0. Returns True if it made them."""
    if not warm_blas_on():
        return False
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"):
            warm_product()
        if max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] or [1]) > 1:
            warm_product()
        return True
    except Exception:                                          # for speed only: never stop an import
        return False


def warm_blas_on():
    """False if $AVB_NP_WARM_BLAS is 0, false, no or off."""
    return os.environ.get("AVB_NP_WARM_BLAS", "1").strip().lower() not in OFF


def warm_product():
    """The product that warms the calling thread's BLAS buffers (with the current BLAS threads)."""
    import numpy as np
    a = np.ones((WARM_SIZE, WARM_SIZE), np.float32)
    a @ a
