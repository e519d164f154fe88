"""avb_np: Adversarial Variational Bayes (Mescheder, Nowozin, Geiger, ICML 2017) in NumPy/CuPy,
with every gradient written by hand and checked (`python -m avb_np.gradcheck`)."""
__version__ = "0.1.0"
