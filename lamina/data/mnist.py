"""MNIST and Fashion-MNIST from IDX files, found offline or downloaded and verified.

Where lamina looks, in order (the first directory holding all four files wins):
``root`` if given, ``$LAMINA_DATA/<name>``, ``$LAMINA_DATA``, ``~/.cache/lamina/<name>``,
and for Fashion-MNIST ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package). Files may be gzipped (``*.gz``) or raw.
``download=True`` fetches missing files from the canonical source into
``~/.cache/lamina/<name>`` (or ``root``), checks each file's SHA-256 against the published
value, and writes it atomically.
"""
import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request

import numpy as np

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

SOURCES = {
    "fashion-mnist": {
        "urls": ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                 "data/fashion/"),
        "system": ("/usr/share/datasets/fashion-mnist",),
        "sha256": {  # of the published .gz files
            "train-images-idx3-ubyte.gz":
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz":
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz":
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz":
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "classes": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"),
        "how": "apt-get install dataset-fashion-mnist (Debian/Ubuntu), or pass download=True",
    },
    "mnist": {
        "urls": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        "system": (),
        "sha256": {
            "train-images-idx3-ubyte.gz":
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz":
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz":
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz":
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "classes": tuple(str(i) for i in range(10)),
        "how": "pass download=True (needs internet), or copy the four IDX files there",
    },
}

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataNotFoundError(FileNotFoundError):
    """The data files are not where lamina looked; the message says where and how."""


def read_idx(path):
    """The array stored in an IDX file (gzipped or raw), with its shape and dtype.

    Raises ValueError naming the file when the magic number, the header or the length
    is wrong (a truncated download, an HTML error page, a different file)."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"read_idx: cannot read {path}: {e} (corrupt or truncated file; "
                         f"delete it and fetch it again)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number "
                         f"{raw[:4].hex() or 'empty file'})")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"read_idx: {path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(_DTYPES[raw[2]])
    want = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - head != want:
        raise ValueError(f"read_idx: {path} holds {len(raw) - head} data bytes, but its header "
                         f"says shape {shape} of {dtype} ({want} bytes): truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape).astype(
        dtype.newbyteorder("="), copy=False)


def _cache_dir(name):
    return os.path.join(os.path.expanduser("~"), ".cache", "lamina", name)


def _candidates(name, root):
    if root is not None:
        return [os.fspath(root)]
    dirs = []
    env = os.environ.get("LAMINA_DATA")
    if env:
        dirs += [os.path.join(env, name), env]
    dirs.append(_cache_dir(name))
    dirs += list(SOURCES[name]["system"])
    return dirs


def _find(directory, stem):
    for fname in (stem + ".gz", stem):
        p = os.path.join(directory, fname)
        if os.path.isfile(p):
            return p
    return None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name, directory, opener=urllib.request.urlopen):
    """Fetch the four .gz files of ``name`` into ``directory``, each verified by SHA-256
    and written atomically (temporary file, fsync, rename). Returns the directory."""
    src = SOURCES[name]
    os.makedirs(directory, exist_ok=True)
    for fname, digest in src["sha256"].items():
        dest = os.path.join(directory, fname)
        if os.path.isfile(dest) and _sha256(dest) == digest:
            continue
        errors = []
        for base in src["urls"]:
            try:
                with opener(base + fname) as resp:
                    payload = resp.read()
            except Exception as e:  # try the next mirror
                errors.append(f"{base}{fname}: {e}")
                continue
            got = hashlib.sha256(payload).hexdigest()
            if got != digest:
                errors.append(f"{base}{fname}: SHA-256 {got} != expected {digest}")
                continue
            fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + fname)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
            break
        else:
            raise DataNotFoundError(f"download {name}: could not fetch a verified {fname}:\n  "
                                    + "\n  ".join(errors))
    return directory


def load_idx_dataset(name, split="train", root=None, download_missing=False):
    """(images uint8 (N, 28, 28), labels int64 (N,)) of ``name`` ('mnist' or
    'fashion-mnist'), split 'train' (60,000) or 'test' (10,000)."""
    if name not in SOURCES:
        raise ValueError(f"load_idx_dataset: unknown dataset {name!r}; choose from "
                         f"{sorted(SOURCES)}")
    if split not in FILES:
        raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")
    stems = FILES[split]
    looked = _candidates(name, root)
    for d in looked:
        paths = [_find(d, s) for s in stems]
        if all(paths):
            break
    else:
        if not download_missing:
            raise DataNotFoundError(
                f"{name} ({split}) not found. lamina looked for {stems[0]}[.gz] and "
                f"{stems[1]}[.gz] in: " + ", ".join(looked) + f". To get it: {SOURCES[name]['how']}"
                f" (or set LAMINA_DATA to a directory holding the files).")
        d = os.fspath(root) if root is not None else _cache_dir(name)
        download(name, d)
        paths = [_find(d, s) for s in stems]
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{name}: {paths[0]} holds shape {images.shape} and {paths[1]} "
                         f"holds shape {labels.shape}; expected (N, H, W) images and N labels")
    return images, labels.astype(np.int64)


def load_fashion_mnist(split="train", root=None, download=False, flatten=False):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT licence): 28×28 greyscale clothing
    images in 10 classes (``FASHION_CLASSES``). Returns float32 images in [0, 1], shape
    (N, 1, 28, 28) (or (N, 784) with ``flatten``), and int64 labels (N,)."""
    return _scaled(load_idx_dataset("fashion-mnist", split, root, download), flatten)


def load_mnist(split="train", root=None, download=False, flatten=False):
    """MNIST handwritten digits (LeCun et al.), as :func:`load_fashion_mnist`."""
    return _scaled(load_idx_dataset("mnist", split, root, download), flatten)


def _scaled(data, flatten):
    images, labels = data
    x = images.astype(np.float32)
    x /= 255.0
    x = x.reshape(len(x), -1) if flatten else x[:, None]
    return x, labels


FASHION_CLASSES = SOURCES["fashion-mnist"]["classes"]
