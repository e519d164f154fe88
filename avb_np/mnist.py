"""Binarised MNIST (28x28, the paper's benchmark) from files on disk: formats, checksums, download.

Two sources, each a set of files looked up by name in a folder `data_dir`:
- "idx": the original MNIST IDX files (gzip). Pixels become intensities / 255 in [0, 1]. The
  training file's first 55,000 images are the train split, its last 5,000 the valid split, and
  the 10,000 of t10k the test split (as in the paper's official code). Train keeps the
  intensities (dynamic=True: binarise afresh at every minibatch); valid and test are binarised
  once, x = (u < intensity) with u ~ U(0, 1) drawn from np.random.default_rng(BINARISE_SEED),
  valid first, then test, so every run scores the same binary images.
- "amat": Larochelle's fixed binarisation, 50,000 / 10,000 / 10,000 images already in {0, 1},
  one image per line as 784 values "0" or "1" separated by single spaces; no labels.

Every file is checked against the size and digest of the FILES table before it is parsed, and
every failure ends in DataError, naming the file, what was wrong and where a good copy goes.
With download=True a missing file is fetched from the mirrors of its FILES entry into a
temporary file in data_dir, and renamed to its final name only once size and digest match.
"""
import gzip
import hashlib
import http.client
import os
import tempfile
import zlib
from collections import namedtuple
from urllib.error import URLError
from urllib.request import urlopen

import numpy as np

from . import validate


class DataError(ValueError):
    """A data file is missing, corrupt, of the wrong format, or could not be downloaded."""


Entry = namedtuple("Entry", "size algorithm digest mirrors")   # bytes, hashlib name, hex, URL prefixes

IDX_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
AMAT_MIRRORS = ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",)
FILES = {
    "train-images-idx3-ubyte.gz": Entry(9912422, "md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873", IDX_MIRRORS),
    "train-labels-idx1-ubyte.gz": Entry(28881, "md5", "d53e105ee54ea40749a09fcbcd1e9432", IDX_MIRRORS),
    "t10k-images-idx3-ubyte.gz": Entry(1648877, "md5", "9fb629c4189551a2d022fa330f9573f3", IDX_MIRRORS),
    "t10k-labels-idx1-ubyte.gz": Entry(4542, "md5", "ec29112dd5afa0611ce80d1b7f02629c", IDX_MIRRORS),
    "binarized_mnist_train.amat": Entry(
        78400000, "sha256", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d", AMAT_MIRRORS),
    "binarized_mnist_valid.amat": Entry(
        15680000, "sha256", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2", AMAT_MIRRORS),
    "binarized_mnist_test.amat": Entry(
        15680000, "sha256", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c", AMAT_MIRRORS),
}
SOURCES = ("idx", "amat")
VALID_SIZE = 5000          # the last 5,000 images of the IDX training file form the valid split
BINARISE_SEED = 0          # seed of the one-off binarisation of the IDX valid and test splits
SIDE = 28                  # images are SIDE x SIDE pixels: Dx = 784


def load_mnist(data_dir, download=False, source="idx", files=None, n_valid=None):
    """The splits of binarised MNIST as a dict of float64 arrays (N, 784) and int64 labels (N,).

    Keys: train, valid, test, train_labels, valid_labels, test_labels (None for "amat") and
    dynamic (True for "idx": train holds intensities in [0, 1]; valid and test are binary).
    `files` replaces the FILES table (name -> Entry); `n_valid` (default VALID_SIZE) is the size
    of the IDX valid split. Both defaults are read at call time, so tests can swap them.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be the folder holding the MNIST files (a str or path), "
                        f"got {data_dir!r}")
    folder = os.fspath(data_dir)
    if not folder:
        raise DataError("data_dir is empty: pass the folder holding the MNIST files (demo.py: --data-dir DIR)")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DataError(f"data_dir {folder!r} is a file, not a folder: pass the folder that holds the MNIST "
                        "files (or that --download should fill)")

    def raw(name):
        return read_verified(name, data_dir, download, files)

    if source == "amat":
        names = [f"binarized_mnist_{split}.amat" for split in ("train", "valid", "test")]
        train, valid, test = (parse_amat(name, raw(name)) for name in names)   # (50000|10000, 784)
        return dict(train=train, valid=valid, test=test, train_labels=None, valid_labels=None,
                    test_labels=None, dynamic=False)
    n_valid = validate.positive_int("n_valid", VALID_SIZE if n_valid is None else n_valid)
    x, y = _idx_pair("train", raw)                 # (60000, 784) intensities, (60000,) labels
    x_test, y_test = _idx_pair("t10k", raw)        # (10000, 784), (10000,)
    if n_valid >= len(x):
        raise ValueError(f"n_valid must be smaller than the {len(x)} training images, got {n_valid}")
    rng = np.random.default_rng(BINARISE_SEED)
    # x_bin = 1 if u < intensity, u ~ U(0, 1): the rule of data.sample_batch(dynamic=True), drawn once
    valid = (rng.random(x[-n_valid:].shape) < x[-n_valid:]).astype(np.float64)
    test = (rng.random(x_test.shape) < x_test).astype(np.float64)
    return dict(train=x[:-n_valid], valid=valid, test=test, train_labels=y[:-n_valid],
                valid_labels=y[-n_valid:], test_labels=y_test, dynamic=True)


def _idx_pair(prefix, raw):
    """Images (N, 784) as intensities in [0, 1] and labels (N,) of one IDX file pair."""
    images_name, labels_name = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
    images = parse_idx(images_name, raw(images_name), ndim=3)         # (N, 28, 28) uint8
    labels = parse_idx(labels_name, raw(labels_name), ndim=1)         # (N,) uint8
    if images.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{images_name}: expected {SIDE}x{SIDE} images, got {images.shape[1:]}")
    if len(labels) != len(images):
        raise DataError(f"{labels_name} holds {len(labels)} labels but {images_name} holds "
                        f"{len(images)} images; the two files must come from the same release")
    return images.reshape(len(images), -1) / 255.0, labels.astype(np.int64)


def parse_idx(name, raw, ndim):
    """An unsigned-byte IDX array of `ndim` dimensions from the gzip bytes `raw` of file `name`.

    IDX layout: magic = two zero bytes, a dtype code (0x08: unsigned byte) and the number of
    dimensions; then each dimension as a big-endian uint32; then the values, row-major.
    """
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:   # not gzip, truncated stream, bad CRC
        raise DataError(f"{name} is not a complete gzip file ({err}); it is truncated or corrupt") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{name}: bad IDX magic number {data[:4].hex()}, expected 000008{ndim:02x} "
                        f"(unsigned bytes, {ndim} dimension(s))")
    header = 4 + 4 * ndim                            # magic + one uint32 per dimension
    if len(data) < header:
        raise DataError(f"{name} is truncated inside its IDX header ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))   # big-endian sizes
    if len(data) - header != int(np.prod(dims)):
        raise DataError(f"{name}: the IDX header promises {dims} = {int(np.prod(dims))} values "
                        f"but the payload holds {len(data) - header} bytes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def parse_amat(name, raw):
    """A binary array (N, 784) float64 from the text of an .amat file: N lines of 784 '0'/'1'."""
    line = 2 * SIDE * SIDE                           # 784 digits, each followed by ' ' or '\n'
    chars = np.frombuffer(raw, np.uint8)
    if chars.size == 0 or chars.size % line:
        raise DataError(f"{name}: {chars.size} bytes is not a whole number of lines of "
                        f"{SIDE * SIDE} space-separated values ({line} bytes each)")
    chars = chars.reshape(-1, SIDE * SIDE, 2)        # (N, 784, [digit, separator])
    digits, seps = chars[..., 0], chars[..., 1]
    ok = ((digits == ord("0")) | (digits == ord("1"))).all(axis=1)
    ok &= (seps[:, :-1] == ord(" ")).all(axis=1) & (seps[:, -1] == ord("\n"))
    if not ok.all():
        raise DataError(f"{name}: line {int(np.argmin(ok)) + 1} is not {SIDE * SIDE} values 0 or 1 "
                        f"separated by single spaces")
    return (digits == ord("1")).astype(np.float64)


def read_verified(name, data_dir, download=False, files=None):
    """The bytes of file `name` in data_dir, after checking its size and digest against files[name].

    `files` defaults to FILES. A missing file is downloaded first when `download` is true; an
    existing file is never replaced.
    """
    files = FILES if files is None else files      # looked up at call time, so FILES can be swapped
    entry, path = files[name], os.path.join(os.fspath(data_dir), name)
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not the file {name}; move it away and put the file there")
    if not os.path.exists(path):
        if not download:
            raise DataError(f"{name} is missing: put a copy ({entry.size:,} bytes, {entry.algorithm} "
                            f"{entry.digest}) at {path}, or pass download=True (demo.py: --download) to fetch it")
        return _download(name, entry, path)
    with open(path, "rb") as f:
        raw = f.read()
    problem = _check(raw, entry)
    if problem:
        raise DataError(f"{name} at {path}: {problem}; delete it and call again with download=True (demo.py: --download), "
                        f"or put a good copy at {path}")
    return raw


def _check(raw, entry):
    """None if `raw` has the size and digest of `entry`, else what is wrong."""
    if len(raw) != entry.size:
        return f"wrong size: expected {entry.size:,} bytes, got {len(raw):,}"
    actual = hashlib.new(entry.algorithm, raw).hexdigest()
    if actual != entry.digest:
        return f"wrong {entry.algorithm} checksum: expected {entry.digest}, got {actual}"
    return None


def _download(name, entry, path):
    """Fetch `name` from each mirror in turn; keep the first copy whose size and digest match."""
    try:                                           # a read-only place fails here, before any download
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tempfile.TemporaryFile(dir=os.path.dirname(path)).close()
    except OSError as err:
        raise DataError(f"cannot download {name} into {os.path.dirname(path)!r}: {err.strerror or err}; "
                        "choose a writable --data-dir") from None
    problems = []
    for mirror in entry.mirrors:
        url = mirror + name
        try:
            with urlopen(url, timeout=60) as response:
                raw = response.read()
        except (URLError, OSError, http.client.HTTPException) as err:   # no network, HTTP error, cut off
            problems.append(f"{url}: {err}")
            continue
        problem = _check(raw, entry)
        if problem:
            problems.append(f"{url}: {problem}")
            continue
        # Write beside the target and rename: the final name never holds a partial file.
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.replace(tmp, path)
        except OSError as err:                       # disk full, no permission
            raise DataError(f"{name}: downloaded from {url} but could not write {path} ({err})") from None
        finally:
            if os.path.exists(tmp):                  # write failed: leave nothing behind
                os.remove(tmp)
        return raw
    raise DataError(f"{name}: download failed ({'; '.join(problems)}); check the network, or "
                    f"fetch it by hand and put it at {path}")
