"""Big temporaries that kernels reuse from step to step instead of allocating afresh.

A new multi-megabyte NumPy array gets fresh pages from the C allocator (mmap), and the
first touch of each 4 KiB page is a page fault: the fused LSTM's buffers cost ~4,700
faults (~10 ms) on every char-LSTM training step measured here. ``empty(shape, dtype)``
instead hands back a kept array of the same size and dtype when nothing else refers to
it (nor to any view of it: a NumPy view holds its base, so CPython's reference count
tells), and otherwise makes a new one and keeps it for next time.

Only arrays of at least ``MIN_BYTES`` are kept (the allocator's free lists serve small
ones well), at most ``PER_SIZE`` of each size and ``MAX_BYTES`` in all; ``clear()`` drops
them. On other backends (CuPy has its own memory pool) this is plain ``xp.empty``.
(The convolution engine's ``conv._buffer`` is the per-call form of the same idea: its
scratch arrays never leave one call, so it reuses them without this check.)
"""
import sys
import threading

from .. import backend as B

MIN_BYTES = 1 << 20
PER_SIZE = 4
MAX_BYTES = 256 << 20

_kept = {}          # (nbytes, dtype) -> [flat arrays]
_kept_bytes = 0
_lock = threading.Lock()


def empty(shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype``, reused when one is free."""
    xp = B.xp
    dtype = B.xp.dtype(dtype)
    shape = tuple(shape)
    size = 1
    for d in shape:
        size *= d
    nbytes = size * dtype.itemsize
    if B.name != "numpy" or nbytes < MIN_BYTES:
        return xp.empty(shape, dtype=dtype)
    global _kept_bytes
    key = (nbytes, dtype)
    with _lock:
        flats = _kept.get(key)
        if flats is None:
            flats = _kept[key] = []
        for flat in flats:
            # referents: the list, this loop variable and getrefcount's argument
            if sys.getrefcount(flat) == 3:
                return flat.reshape(shape)
        flat = xp.empty(size, dtype=dtype)
        if len(flats) < PER_SIZE and _kept_bytes + nbytes <= MAX_BYTES:
            flats.append(flat)
            _kept_bytes += nbytes
        return flat.reshape(shape)


def zeros(shape, dtype):
    """Like :func:`empty`, filled with zeros."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def clear():
    """Forget every kept array (memory goes back once nothing else refers to it)."""
    global _kept_bytes
    with _lock:
        _kept.clear()
        _kept_bytes = 0


def kept_bytes():
    """Bytes held by kept arrays."""
    return _kept_bytes
