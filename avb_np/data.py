"""The data sets, each with a fixed train/valid/test split, and minibatch sampling.

`load(name)` returns a Dataset of float64 arrays (N, Dx), one image per row:
- "toy": the synthetic experiment's four 2x2 images x_k = one-hot(k); train = valid = test.
- "digits": scikit-learn's 8x8 optical digits (1,797 images), binarised at a fixed threshold.
- "mnist": MNIST 28x28 from the IDX files; train holds intensities (dynamic binarisation).
- "binarized_mnist": Larochelle's fixed binarisation of MNIST (.amat files), no labels.
The MNIST file formats, checksums and download live in avb_np/mnist.py.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import mnist

DATASETS = ("toy", "digits", "mnist", "binarized_mnist")
DIGITS_THRESHOLD = 8        # digits pixels run 0..16: pixel >= 8 -> 1 (about 32% of pixels on)
DIGITS_SPLIT = (360, 180)   # test, valid sizes; the remaining 1,257 images are the train split


@dataclass(eq=False)
class Dataset:
    name: str
    train: np.ndarray                        # (N_train, Dx) float64; intensities in [0, 1] if dynamic
    valid: np.ndarray                        # (N_valid, Dx) float64 in {0, 1}
    test: np.ndarray                         # (N_test, Dx) float64 in {0, 1}
    train_labels: Optional[np.ndarray]       # (N_train,) int64 class of each row, or None
    valid_labels: Optional[np.ndarray]       # (N_valid,) or None
    test_labels: Optional[np.ndarray]        # (N_test,) or None
    image_shape: tuple                       # (height, width), height * width = Dx
    dynamic: bool = False                    # True: binarise train afresh at every minibatch

    @property
    def x_dim(self):
        """Dx, the number of pixels of one image."""
        return self.train.shape[1]


def load(name, data_dir=None, download=False):
    """The data set `name` (one of DATASETS) as a Dataset.

    data_dir: the folder holding the MNIST files ("mnist", "binarized_mnist"); unused otherwise.
    download: fetch missing MNIST files into data_dir (see avb_np.mnist.load_mnist).
    """
    if name == "toy":
        labels = np.arange(4, dtype=np.int64)                  # image k has pixel k on
        return Dataset(name, toy_data(), toy_data(), toy_data(), labels, labels.copy(), labels.copy(), (2, 2))
    if name == "digits":
        return _digits()
    if name in ("mnist", "binarized_mnist"):
        if data_dir is None:
            raise ValueError(f"load({name!r}) needs data_dir: the folder holding the MNIST files "
                             f"(or the one to download them into, with download=True)")
        source = "idx" if name == "mnist" else "amat"
        return Dataset(name, image_shape=(mnist.SIDE, mnist.SIDE),
                       **mnist.load_mnist(data_dir, download, source))
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")


def toy_data():
    """The four 2x2 binary images with one pixel on: x_k = one-hot(k), shape (4, 4)."""
    return np.eye(4)


def _digits():
    """scikit-learn's optical digits: 1,797 images of 8x8 (Dx = 64), binarised and split.

    Binarisation is a fixed threshold, x = 1 if pixel >= 8 (pixels run 0..16), which turns on
    about 32% of pixels. It involves no randomness, so every run sees the same binary images.
    Split: a permutation from np.random.default_rng(0) gives test its first 360 images, valid
    the next 180 and train the remaining 1,257. Labels 0..9 are kept.
    """
    try:
        from sklearn.datasets import load_digits   # lazily: scikit-learn is an optional extra
    except ImportError as err:
        raise ImportError("the 'digits' data set needs scikit-learn: pip install scikit-learn "
                          "(or, in this repository, pip install -e \".[data]\")") from err
    digits = load_digits()                                    # ships inside scikit-learn: no download
    x = (digits.data >= DIGITS_THRESHOLD).astype(np.float64)  # (1797, 64) in {0, 1}
    y = digits.target.astype(np.int64)                        # (1797,) in 0..9
    order = np.random.default_rng(0).permutation(len(x))      # the fixed split
    n_test, n_valid = DIGITS_SPLIT
    test, valid, train = order[:n_test], order[n_test:n_test + n_valid], order[n_test + n_valid:]
    return Dataset("digits", x[train], x[valid], x[test], y[train], y[valid], y[test], (8, 8))


def sample_batch(rng, data, batch_size, dynamic=False):
    """A minibatch (batch_size, Dx) drawn uniformly with replacement from the rows of `data` (host arrays).

    dynamic=True: the rows are intensities in [0, 1] and each pixel is binarised afresh,
    x = 1 if u < intensity with u ~ U(0, 1) from the same generator, drawn after the row indices
    (dynamic binarisation, as the paper's official MNIST code does). dynamic=False returns the
    rows as they are and draws nothing more.
    """
    x = data[rng.integers(0, data.shape[0], size=batch_size)]
    if dynamic:
        x = (rng.random(x.shape) < x).astype(x.dtype)   # P(x_i = 1) = intensity_i
    return x
