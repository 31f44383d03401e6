"""Saving and loading: ``lamina.save(obj, path)`` / ``lamina.load(path)``.

``obj`` is a (nested) dict/list/tuple of Tensors, NumPy arrays and plain values (numbers,
strings, booleans, None) — a model's ``state_dict()``, or a checkpoint such as
``{"model": ..., "optimizer": ..., "epoch": 3, "rng": ...}``.

The file is in the safetensors format (readable by the ``safetensors`` library and
others): an 8-byte little-endian header length, a JSON header giving every array's
dtype, shape and byte range, then the raw bytes. Everything that is not an array goes,
as JSON, into the header's ``__metadata__`` under ``"lamina"``, together with the
SHA-256 of the data section. So loading never runs code from the file (no pickle), and
a truncated or altered file is detected.

Writing is atomic: a temporary file in the same directory, flushed and fsynced, then
renamed over the target; a crash mid-save leaves the previous file intact.
"""
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

from .tensor import Tensor, from_numpy

FORMAT = "lamina-checkpoint/1"
_DT = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
       "I16": np.int16, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16,
       "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
_CODE = {np.dtype(v): k for k, v in _DT.items()}


class CheckpointError(ValueError):
    """A file that cannot be loaded: the message names the file and what is wrong."""


def _encode(obj, arrays, path):
    """JSON-able structure; arrays are replaced by {"__array__": key, "tensor": bool}."""
    if isinstance(obj, (Tensor, np.ndarray)):
        arr = obj.data if isinstance(obj, Tensor) else obj
        if arr.dtype not in _CODE:
            raise TypeError(f"lamina.save: cannot store dtype {arr.dtype} at {path or 'root'}")
        key = path or "root"
        while key in arrays:
            key += "_"
        arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")  # keeps 0-d
        return {"__array__": key, "tensor": isinstance(obj, Tensor)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _encode(v, arrays, f"{path}.{k}" if path else k)
                                 for k, v in obj.items()}}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"lamina.save: dict key {k!r} at {path or 'root'} is not a "
                                f"str, number, bool or None")
            items.append([k, _encode(v, arrays, f"{path}.{k}" if path else str(k))])
        return {"__items__": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, arrays, f"{path}.{i}" if path else str(i)) for i, v in enumerate(obj)]
        return {"__tuple__": enc} if isinstance(obj, tuple) else enc
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not np.isfinite(obj):
            return {"__float__": repr(obj)}
        return obj
    raise TypeError(f"lamina.save: cannot store a {type(obj).__name__} at {path or 'root'} "
                    f"(only Tensors, arrays, dicts, lists, tuples, numbers, strings, None)")


def _decode(obj, arrays, as_numpy):
    if isinstance(obj, list):
        return [_decode(v, arrays, as_numpy) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            a = arrays[obj["__array__"]]
            return from_numpy(a) if obj["tensor"] and not as_numpy else a
        if "__dict__" in obj:
            return {k: _decode(v, arrays, as_numpy) for k, v in obj["__dict__"].items()}
        if "__items__" in obj:
            return {k: _decode(v, arrays, as_numpy) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays, as_numpy) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
    return obj


def _atomic_write(path, chunks):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save(obj, path):
    """Write ``obj`` (see the module docstring) to ``path`` atomically."""
    arrays = {}
    structure = _encode(obj, arrays, "")
    header, offset = {}, 0
    digest = hashlib.sha256()
    blobs = []
    for key, a in arrays.items():
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[key] = {"dtype": _CODE[a.dtype], "shape": list(a.shape),
                       "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        digest.update(b)
        blobs.append(b)
    header["__metadata__"] = {"format": FORMAT, "lamina": json.dumps(structure),
                              "sha256": digest.hexdigest()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)            # align the data section
    _atomic_write(path, [struct.pack("<Q", len(head)), head] + blobs)


def load(path, as_numpy=False):
    """Read what :func:`save` wrote (Tensors come back as Tensors, arrays as arrays;
    ``as_numpy=True`` gives arrays throughout). A plain safetensors file from elsewhere
    loads as a flat ``{name: array}`` dict. Raises :class:`CheckpointError` naming the
    file for anything truncated, corrupt or not a checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"lamina.load: no such file: {path}")
    with open(path, "rb") as f:
        raw = f.read()

    def bad(why):
        return CheckpointError(f"lamina.load: {path}: {why}")

    if len(raw) < 8:
        raise bad(f"file is {len(raw)} bytes long, too short to be a checkpoint")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise bad(f"header claims {n} bytes but the file has {len(raw) - 8} after the length "
                  f"field (truncated, or not a safetensors/lamina file)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not valid JSON ({e}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n:]
    arrays, end = {}, 0
    for key, info in header.items():
        try:
            dtype = np.dtype(_DT[info["dtype"]]).newbyteorder("<")
            shape = tuple(int(s) for s in info["shape"])
            a, b = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"entry {key!r} has a malformed description {info!r}") from None
        if not 0 <= a <= b <= len(data) or b - a != int(np.prod(shape)) * dtype.itemsize:
            raise bad(f"entry {key!r} (shape {shape}, {info['dtype']}) has byte range {a}..{b}"
                      f" that does not fit the {len(data)} data bytes: truncated or corrupt")
        arrays[key] = np.frombuffer(data[a:b], dtype=dtype).reshape(shape).astype(
            dtype.newbyteorder("="), copy=True)
        end = max(end, b)
    if meta.get("format") != FORMAT:
        return arrays if as_numpy else {k: from_numpy(v) for k, v in arrays.items()}
    if "sha256" in meta and hashlib.sha256(data[:end]).hexdigest() != meta["sha256"]:
        raise bad("data section does not match its SHA-256 checksum: the file was altered "
                  "or damaged")
    try:
        structure = json.loads(meta["lamina"])
    except (KeyError, json.JSONDecodeError) as e:
        raise bad(f"metadata is unreadable ({e})") from None
    return _decode(structure, arrays, as_numpy)
