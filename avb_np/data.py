"""The synthetic data set of the toy experiment and minibatch sampling."""
import numpy as np


def toy_data():
    """The four 2x2 binary images with one pixel on: x_k = one-hot(k), shape (4, 4)."""
    return np.eye(4)


def sample_batch(rng, data, batch_size):
    """A minibatch drawn uniformly with replacement from the rows of `data` (host arrays)."""
    return data[rng.integers(0, data.shape[0], size=batch_size)]
