"""Keep freed array memory in the process instead of handing it back to the OS at once.

Every training step allocates and frees the same multi-megabyte arrays (activations,
their gradients). glibc's malloc returns such memory to the kernel (``munmap``, or a
trim of the heap top once more than ``M_TRIM_THRESHOLD`` is free there), so the next
step touches fresh pages again and every 4 KiB page costs a page fault: ~2,700 a LeNet-5
step in a process that trains with lamina alone, whose step went from 21-33 ms to 15-17 ms
with the settings below on the project's VM (benchmarks/RESULTS.md, 2026-12-03).

``keep_freed_memory()`` asks glibc to serve blocks up to 32 MiB (its maximum) from the
heap and to trim the heap only when more than ``trim_bytes`` are free at its top: the
memory of one step is then reused by the next without faults, the way PyTorch's caching
allocator works on a GPU. It is process-wide (NumPy arrays made outside lamina, and other
libraries in the process, use the same malloc), so lamina does it at import unless the
environment says ``LAMINA_KEEP_FREED_MEMORY=0``; ``keep_freed_memory(False)`` goes back
to glibc's defaults (except its sliding threshold, which mallopt switches off for good).
Elsewhere than glibc (macOS, musl) it does nothing and returns False.
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_MAX = 32 << 20           # glibc refuses larger mmap thresholds on 64-bit
_DEFAULT = 128 << 10           # glibc's initial thresholds

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc.mallopt.restype = ctypes.c_int
        if not hasattr(_libc, "gnu_get_libc_version"):  # not glibc
            _libc = None
    except (OSError, AttributeError):
        _libc = None

_kept = False


def keep_freed_memory(enable=True, trim_bytes=1 << 30):
    """Reuse freed memory (``enable``) or return it to the OS as glibc does by default.

    Returns True when glibc accepted the settings."""
    global _kept
    if _libc is None:
        return False
    trim_bytes = int(min(trim_bytes, 2 ** 31 - 1))
    if enable:
        ok = _libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1 and \
            _libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes) == 1
    else:
        ok = _libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT) == 1 and \
            _libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT) == 1
        if ok:
            _libc.malloc_trim(0)
    _kept = bool(enable and ok)
    return ok


def keeping_freed_memory():
    """True while lamina's malloc settings are in force."""
    return _kept


if os.environ.get("LAMINA_KEEP_FREED_MEMORY", "1").strip().lower() not in ("0", "false", "no"):
    keep_freed_memory(True)
