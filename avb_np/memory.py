"""Keep freed memory in the process: the one setting avb_np makes to its process, at import.

Why: a training step allocates and frees the same large arrays (activations, gradients, Adam's
scratch) hundreds of times a second. By default glibc's malloc hands freed memory at the top of
its heap back to the kernel, and the next step maps it again: every page of it is then a minor
page fault, zero-filled by the kernel (about 11,000 faults per iteration on the official toy
networks at batch 512; `python benchmarks/speed.py` counts them). Asking malloc to keep
TOP_PAD_MB of slack at the top of the heap (M_TOP_PAD, what MALLOC_TOP_PAD_=268435456 in the
environment does) brings that to about one fault per iteration. The cost is at most that much
more resident memory. Only glibc (Linux) has mallopt; elsewhere nothing happens. Set
AVB_NP_MALLOC_TOP_PAD_MB=0 in the environment to leave malloc as it is.
"""
import ctypes
import ctypes.util
import os

TOP_PAD_MB = 256
M_TOP_PAD = -2          # glibc's malloc.h: mallopt parameter number of the top pad


def keep_freed_memory(megabytes=None):
    """Ask glibc's malloc to keep `megabytes` (default: $AVB_NP_MALLOC_TOP_PAD_MB, else
    TOP_PAD_MB) of freed memory at the top of the heap. Returns True if it was set."""
    if megabytes is None:
        text = os.environ.get("AVB_NP_MALLOC_TOP_PAD_MB", str(TOP_PAD_MB))
        megabytes = int(text) if text.strip().isdigit() else TOP_PAD_MB
    if megabytes <= 0 or os.environ.get("MALLOC_TOP_PAD_"):    # off, or the user chose it already
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(M_TOP_PAD, megabytes << 20) == 1
    except (OSError, AttributeError):                          # not glibc: no mallopt
        return False
