"""IDX reading, where the MNIST-style loaders look, verified downloads, Shakespeare,
synthetic tasks."""
import gzip
import hashlib
import io
import os
import struct

import numpy as np
import pytest

from lamina.data import mnist, synthetic
from lamina.data import DataNotFoundError, Vocab, NextTokenWindows, load_shakespeare


def write_idx(path, arr, gz=True):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if gz:
        raw = gzip.compress(raw)
    with open(path, "wb") as f:
        f.write(raw)
    return raw


def fake_set(d, n=5, gz=True):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    os.makedirs(d, exist_ok=True)
    ext = ".gz" if gz else ""
    for split in ("train", "test"):
        i, lab = mnist.FILES[split]
        write_idx(os.path.join(d, i + ext), imgs, gz)
        write_idx(os.path.join(d, lab + ext), labels, gz)
    return imgs, labels


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    p = str(tmp_path / ("a.idx" + (".gz" if gz else "")))
    write_idx(p, a, gz)
    np.testing.assert_array_equal(mnist.read_idx(p), a)


def test_read_idx_names_the_file_when_corrupt(tmp_path):
    p = str(tmp_path / "x.gz")
    raw = write_idx(p, np.zeros((4, 28, 28), np.uint8))
    with open(p, "wb") as f:
        f.write(raw[: len(raw) // 2])           # truncated download
    with pytest.raises(ValueError, match="x.gz"):
        mnist.read_idx(p)
    q = str(tmp_path / "page")
    with open(q, "wb") as f:
        f.write(b"<html>404</html>")
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(q)
    r = str(tmp_path / "short")
    full = bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\0" * 7
    with open(r, "wb") as f:
        f.write(full)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        mnist.read_idx(r)


@pytest.mark.parametrize("gz", [True, False])
def test_explicit_root_and_scaling(tmp_path, gz):
    imgs, labels = fake_set(str(tmp_path), gz=gz)
    x, y = mnist.load_fashion_mnist("train", root=tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0] * 255, imgs, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    xf, _ = mnist.load_mnist("test", root=tmp_path, flatten=True)
    assert xf.shape == (5, 784)


def test_lamina_data_env_is_searched(tmp_path, monkeypatch):
    fake_set(str(tmp_path / "mnist"))
    monkeypatch.setenv("LAMINA_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    x, _ = mnist.load_mnist("train")
    assert len(x) == 5


def test_missing_data_message_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as e:
        mnist.load_mnist("train")
    msg = str(e.value)
    assert str(tmp_path / "nothing") in msg and "download=True" in msg
    with pytest.raises(ValueError, match="split"):
        mnist.load_mnist("validation", root=tmp_path)


def test_download_verifies_sha256_and_writes_atomically(tmp_path, monkeypatch):
    src = tmp_path / "server"
    fake_set(str(src))
    served = {f: (src / f).read_bytes() for f in os.listdir(src)}
    digests = {f: hashlib.sha256(b).hexdigest() for f, b in served.items()}
    monkeypatch.setitem(mnist.SOURCES["mnist"], "sha256", digests)
    calls = []

    def opener(url):
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        if url.startswith(mnist.SOURCES["mnist"]["urls"][0]) and name.startswith("train-images"):
            return io.BytesIO(b"corrupted on the first mirror")
        return io.BytesIO(served[name])

    dest = tmp_path / "cache"
    mnist.download("mnist", str(dest), opener=opener)
    for f, b in served.items():
        assert (dest / f).read_bytes() == b
    assert not [f for f in os.listdir(dest) if f.startswith(".")]   # no temp files left
    assert any("train-images" in u for u in calls[1:])              # retried on mirror 2
    n = len(calls)
    mnist.download("mnist", str(dest), opener=opener)               # verified files are kept
    assert len(calls) == n

    def bad_opener(url):
        return io.BytesIO(b"wrong bytes")
    with pytest.raises(DataNotFoundError, match="SHA-256"):
        mnist.download("mnist", str(tmp_path / "other"), opener=bad_opener)
    assert not os.listdir(tmp_path / "other")                       # nothing half-written


REAL = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(REAL), reason="Debian's dataset-fashion-mnist is not "
                    "installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_from_debian_package():
    x, y = mnist.load_fashion_mnist("test", root=REAL)
    assert x.shape == (10000, 1, 28, 28) and np.bincount(y).tolist() == [1000] * 10
    assert 0.25 < x.mean() < 0.31


def test_shakespeare_corpus_and_vocabularies():
    text = load_shakespeare()
    assert len(text) == 1036496
    assert hashlib.sha256(text.encode()).hexdigest().startswith("1fa1358f")
    assert "To be, or not to be" in text
    chars = Vocab.chars(text)
    assert len(chars) == 76
    ids = chars.encode(text[:1000])
    assert ids.dtype == np.int64 and chars.decode(ids) == text[:1000]
    words = Vocab.words(text, min_count=5)
    enc = words.encode("the king is dead xyzzy")
    assert words.decode(enc) == "the king is dead <unk>"
    again = Vocab.from_state_dict(words.state_dict())
    np.testing.assert_array_equal(again.encode("the queen"), words.encode("the queen"))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        chars.encode("\u00e9")
    win = NextTokenWindows(np.arange(20), seq_len=5)
    assert len(win) == 3
    x, y = win[1]
    np.testing.assert_array_equal(x, [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(y, [6, 7, 8, 9, 10])


def test_synthetic_tasks():
    x, y = synthetic.xor()
    assert y.ravel().tolist() == [0, 1, 1, 0]
    x, y = synthetic.two_spirals(300, seed=1)
    assert x.shape == (300, 2) and np.bincount(y).tolist() == [150, 150]
    x, y = synthetic.moons(101)
    assert x.dtype == np.float32 and set(np.unique(y)) == {0, 1}
    x, y = synthetic.polynomial(50, coeffs=(1.0, 2.0), noise=0.0)
    np.testing.assert_allclose(y, 1 + 2 * x, rtol=1e-6)
    x, y = synthetic.reverse_task(4, 6, seed=2)
    np.testing.assert_array_equal(y, x[:, ::-1])
    assert (x > 0).all()
    x, y = synthetic.sort_task(4, 6)
    assert (np.diff(y, axis=1) >= 0).all()
    x, y = synthetic.addition_task(50, digits=3, seed=3)
    a = x[:, :3] @ [100, 10, 1]
    b = x[:, 4:] @ [100, 10, 1]
    assert (x[:, 3] == 10).all()
    np.testing.assert_array_equal(y @ [1000, 100, 10, 1], a + b)
    x, lengths, y = synthetic.anbn(200, max_n=5, seed=4)
    for row, n, label in zip(x, lengths, y):
        s = row[:n].tolist()
        k = s.count(1)
        member = s == [1] * k + [2] * k and n == 2 * k
        assert member == bool(label)
        assert (row[n:] == 0).all()
