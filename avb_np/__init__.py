"""avb_np: Adversarial Variational Bayes (Mescheder, Nowozin, Geiger, ICML 2017) in NumPy/CuPy,
with every gradient written by hand and checked (`python -m avb_np.gradcheck`)."""
from .memory import keep_freed_memory, warm_blas

__version__ = "0.1.0"
KEEPS_FREED_MEMORY = keep_freed_memory()   # fewer page faults per training step (avb_np/memory.py)
WARMED_BLAS = warm_blas()                  # full-speed BLAS from the first step (avb_np/memory.py)
