"""The data sets: fixed splits, binarisation, minibatches, and the MNIST file formats.

MNIST tests write tiny IDX and .amat files, register their real sizes and sha256 digests in a
swapped checksum table, and load them. No test touches the network: mnist.urlopen is replaced
for every test, by a server of in-memory bytes or by a function that fails the test if called.
"""
import gzip
import hashlib
import io
import os
import struct
import sys
from urllib.error import HTTPError, URLError

import numpy as np
import pytest

from avb_np import data, mnist
from avb_np.data import sample_batch

MIRROR = "http://mirror.invalid/mnist/"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a URL that a test did not serve fails the test."""
    def refuse(url, timeout=None):
        raise AssertionError(f"test tried to open {url}")
    monkeypatch.setattr(mnist, "urlopen", refuse)


def serve(monkeypatch, pages):
    """Make mnist.urlopen answer from `pages` (url -> bytes, or an exception to raise)."""
    def fake(url, timeout=None):
        page = pages[url]
        if isinstance(page, Exception):
            raise page
        return io.BytesIO(page)
    monkeypatch.setattr(mnist, "urlopen", fake)


def entry(raw):
    """A checksum-table entry describing the bytes `raw`."""
    return mnist.Entry(len(raw), "sha256", hashlib.sha256(raw).hexdigest(), (MIRROR,))


def idx(array, code=0x08):
    """The gzip IDX encoding of a uint8 array: magic (0, 0, code, ndim), big-endian dims, values."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def amat(images):
    """The .amat text of binary images (N, 784): one line of space-separated 0/1 per image."""
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in images).encode()


def tiny_idx(rng):
    """Raw bytes of a tiny IDX set (12 training, 3 test images of 28x28) and its arrays."""
    x, x_test = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    y, y_test = rng.integers(0, 10, 12), rng.integers(0, 10, 3)
    raws = {"train-images-idx3-ubyte.gz": idx(x), "train-labels-idx1-ubyte.gz": idx(y),
            "t10k-images-idx3-ubyte.gz": idx(x_test), "t10k-labels-idx1-ubyte.gz": idx(y_test)}
    return raws, (x, y, x_test, y_test)


def write(folder, raws):
    """Write each name -> bytes into folder; return the checksum table describing them."""
    for name, raw in raws.items():
        (folder / name).write_bytes(raw)
    return {name: entry(raw) for name, raw in raws.items()}


def data_error(call, *words):
    """Assert that call() raises mnist.DataError whose message contains each of `words`."""
    with pytest.raises(mnist.DataError) as info:
        call()
    for word in words:
        assert str(word) in str(info.value), (word, str(info.value))


# ----------------------------------------------------------------------------- toy and digits

def test_toy_shapes():
    """The toy set: the four one-hot 2x2 images in every split, labels 0..3, toy_data unchanged."""
    ds = data.load("toy")
    assert ds.x_dim == 4 and ds.image_shape == (2, 2) and not ds.dynamic
    for x, y in ((ds.train, ds.train_labels), (ds.valid, ds.valid_labels), (ds.test, ds.test_labels)):
        assert x.dtype == np.float64 and np.array_equal(x, np.eye(4)) and list(y) == [0, 1, 2, 3]
    assert np.array_equal(data.toy_data(), np.eye(4))


def test_digits_split():
    """Digits: splits of 1257/180/360 that together hold every image exactly once (so they are
    disjoint), binary float64 with 30-34% of pixels on (the threshold gives 32.3%), labels 0..9,
    and the same arrays from a second call."""
    from sklearn.datasets import load_digits
    ds = data.load("digits")
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1257, 180, 360)
    assert ds.x_dim == 64 and ds.image_shape == (8, 8) and not ds.dynamic
    x = np.concatenate([ds.train, ds.valid, ds.test])
    y = np.concatenate([ds.train_labels, ds.valid_labels, ds.test_labels])
    assert x.dtype == np.float64 and set(np.unique(x)) == {0.0, 1.0}
    assert 0.30 < x.mean() < 0.34
    for labels in (ds.train_labels, ds.valid_labels, ds.test_labels):
        assert set(labels) == set(range(10))
    full = load_digits()   # the multiset of (image, label) rows must be the whole data set
    rows = lambda a, b: sorted(map(tuple, np.hstack([a, b[:, None]]).tolist()))   # noqa: E731
    assert rows(x, y) == rows((full.data >= 8).astype(float), full.target)
    again = data.load("digits")
    for split in ("train", "valid", "test", "train_labels", "valid_labels", "test_labels"):
        assert np.array_equal(getattr(ds, split), getattr(again, split)), split


def test_digits_without_sklearn(monkeypatch):
    """Without scikit-learn, loading digits raises ImportError saying exactly what to install."""
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)   # makes the import fail
    with pytest.raises(ImportError) as info:
        data.load("digits")
    assert "pip install scikit-learn" in str(info.value) and 'pip install -e ".[data]"' in str(info.value)


def test_load_bad_name_and_missing_dir():
    """An unknown name lists the choices; MNIST without data_dir asks for it."""
    with pytest.raises(ValueError, match="toy.*digits.*mnist.*got 'cifar'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="needs data_dir"):
        data.load("mnist")


# ----------------------------------------------------------------------------- minibatches

def test_sample_batch_default_unchanged():
    """dynamic=False returns data[rng.integers(0, N, batch)] and draws nothing more (bit for bit)."""
    x = np.random.default_rng(0).random((7, 3))
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(sample_batch(a, x, 11), x[b.integers(0, 7, size=11)])
    assert a.bit_generator.state == b.bit_generator.state


def test_sample_batch_dynamic():
    """dynamic=True: binary output, drawn as (u < x[rows]) with u from the same generator after
    the row indices; pixel means match the intensities within 0.015 (> 4 standard errors at
    n = 20,000), and intensities 0 and 1 give exactly 0 and 1."""
    x = np.array([[0.0, 0.25, 0.5, 0.9, 1.0]] * 3)
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    batch = sample_batch(a, x, 20000, dynamic=True)
    rows = x[b.integers(0, 3, size=20000)]
    assert np.array_equal(batch, (b.random(rows.shape) < rows).astype(float))
    assert set(np.unique(batch)) == {0.0, 1.0}
    np.testing.assert_allclose(batch.mean(axis=0), x[0], atol=0.015)
    assert batch[:, 0].max() == 0.0 and batch[:, -1].min() == 1.0


# ----------------------------------------------------------------------------- MNIST files

def test_idx_round_trip(tmp_path, monkeypatch):
    """Tiny IDX files load back: train = intensities / 255 of the first 10 images (dynamic),
    valid = the last 2, test = 3, both binary with 0 -> 0 and 255 -> 1, labels kept, and the
    valid/test binarisation is the same on a second load. Also through data.load("mnist")."""
    raws, (x, y, x_test, y_test) = tiny_idx(np.random.default_rng(0))
    files = write(tmp_path, raws)
    out = mnist.load_mnist(tmp_path, files=files, n_valid=2)
    flat, flat_test = x.reshape(12, 784) / 255.0, x_test.reshape(3, 784) / 255.0
    assert out["dynamic"] and np.array_equal(out["train"], flat[:10])
    assert out["valid"].shape == (2, 784) and out["test"].shape == (3, 784)
    for binary, intensity in ((out["valid"], flat[10:]), (out["test"], flat_test)):
        assert binary.dtype == np.float64 and set(np.unique(binary)) == {0.0, 1.0}
        assert (binary[intensity == 0] == 0).all() and (binary[intensity == 1] == 1).all()
    assert list(out["train_labels"]) == list(y[:10]) and list(out["valid_labels"]) == list(y[10:])
    assert list(out["test_labels"]) == list(y_test)
    again = mnist.load_mnist(tmp_path, files=files, n_valid=2)
    assert np.array_equal(out["valid"], again["valid"]) and np.array_equal(out["test"], again["test"])
    monkeypatch.setattr(mnist, "FILES", files)
    monkeypatch.setattr(mnist, "VALID_SIZE", 2)
    ds = data.load("mnist", data_dir=tmp_path)
    assert ds.dynamic and ds.x_dim == 784 and ds.image_shape == (28, 28)
    assert np.array_equal(ds.test, out["test"])


def test_amat_round_trip(tmp_path, monkeypatch):
    """Tiny .amat files (5/2/3 images) load back exactly, not dynamic, without labels; a line
    with a value other than 0/1 is refused, naming the file and the line."""
    rng = np.random.default_rng(0)
    images = {s: (rng.random((n, 784)) < 0.3).astype(float) for s, n in (("train", 5), ("valid", 2), ("test", 3))}
    monkeypatch.setattr(mnist, "FILES", write(tmp_path, {f"binarized_mnist_{s}.amat": amat(v)
                                                         for s, v in images.items()}))
    ds = data.load("binarized_mnist", data_dir=tmp_path)
    assert not ds.dynamic and ds.train_labels is None and ds.image_shape == (28, 28)
    for s, v in images.items():
        assert np.array_equal(getattr(ds, s), v), s
    bad = bytearray(amat(images["valid"]))
    bad[1568 + 10] = ord("2")                     # line 2, a digit position
    data_error(lambda: mnist.parse_amat("binarized_mnist_valid.amat", bytes(bad)),
               "binarized_mnist_valid.amat", "line 2")


def test_checksum_and_size(tmp_path):
    """A file of the right size but other content fails its checksum (expected and actual digests
    named); a file of the wrong size fails the size check; both name the file and its path."""
    raws, _ = tiny_idx(np.random.default_rng(0))
    files = write(tmp_path, raws)
    name = "train-labels-idx1-ubyte.gz"
    good = files[name]
    files[name] = good._replace(digest="0" * 64)
    data_error(lambda: mnist.load_mnist(tmp_path, files=files, n_valid=2), name, "checksum",
               "0" * 64, good.digest, tmp_path / name)
    files[name] = good._replace(size=good.size + 1)
    data_error(lambda: mnist.load_mnist(tmp_path, files=files, n_valid=2), name, "wrong size",
               f"{good.size + 1:,}", tmp_path / name)


@pytest.mark.parametrize("what, words", [
    ("truncated gzip", ["gzip", "truncated"]),
    ("bad magic", ["magic", "00000903"]),
    ("payload mismatch", ["payload", "(12, 28, 28)"]),
    ("label count", ["12 labels", "11 images"]),
])
def test_malformed_idx(tmp_path, what, words):
    """Files whose checksums match but whose content is not valid MNIST IDX raise DataError
    naming the file and the fault."""
    raws, (x, *_) = tiny_idx(np.random.default_rng(0))
    name = "train-images-idx3-ubyte.gz"
    if what == "truncated gzip":
        raws[name] = raws[name][:-20]
    elif what == "bad magic":
        raws[name] = idx(x, code=0x09)            # signed bytes: not what MNIST holds
    elif what == "payload mismatch":               # header says 12 images, payload holds 11.5
        raws[name] = gzip.compress(gzip.decompress(raws[name])[:-392])
    else:
        raws[name] = idx(x[:11])
    data_error(lambda: mnist.load_mnist(tmp_path, files=write(tmp_path, raws), n_valid=2),
               name, *words)


def test_missing_without_download(tmp_path):
    """A missing file without download=True names the file, its exact path and the flag."""
    raws, _ = tiny_idx(np.random.default_rng(0))
    files = {name: entry(raw) for name, raw in raws.items()}
    data_error(lambda: mnist.load_mnist(tmp_path, files=files), "train-images-idx3-ubyte.gz",
               "missing", tmp_path / "train-images-idx3-ubyte.gz", "download=True")


def test_download(tmp_path, monkeypatch):
    """download=True fetches the missing files into a new folder, loads them, and leaves exactly
    the four files there; a later load without download reads them from disk."""
    raws, _ = tiny_idx(np.random.default_rng(0))
    files = {name: entry(raw) for name, raw in raws.items()}
    serve(monkeypatch, {MIRROR + name: raw for name, raw in raws.items()})
    folder = tmp_path / "new" / "mnist"
    out = mnist.load_mnist(folder, download=True, files=files, n_valid=2)
    assert sorted(os.listdir(folder)) == sorted(raws)
    for name, raw in raws.items():
        assert (folder / name).read_bytes() == raw
    assert np.array_equal(mnist.load_mnist(folder, files=files, n_valid=2)["test"], out["test"])


@pytest.mark.parametrize("failure, words", [
    (URLError("no route to host"), ["no route to host", "check the network"]),
    (HTTPError(MIRROR, 404, "Not Found", None, None), ["404"]),
    (b"not the file", ["wrong size"]),
])
def test_failed_download_leaves_nothing(tmp_path, monkeypatch, failure, words):
    """A download that fails (no network, HTTP error, bad bytes) raises DataError naming the file,
    the URL and where to put a copy; the missing file stays missing, no temporary file is left,
    and the good file already present is not touched."""
    raws, _ = tiny_idx(np.random.default_rng(0))
    files = {name: entry(raw) for name, raw in raws.items()}
    good, missing = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
    (tmp_path / good).write_bytes(raws[good])
    before = os.stat(tmp_path / good).st_mtime_ns
    serve(monkeypatch, {MIRROR + missing: failure})
    data_error(lambda: mnist.load_mnist(tmp_path, download=True, files=files, n_valid=2),
               missing, MIRROR + missing, tmp_path / missing, *words)
    assert os.listdir(tmp_path) == [good]
    assert (tmp_path / good).read_bytes() == raws[good] and os.stat(tmp_path / good).st_mtime_ns == before
