"""Intra-op threads for the NumPy backend.

NumPy releases the GIL inside its copy and ufunc loops and around BLAS calls, so Python
threads can run large array statements at the same time. With ``n > 1`` threads
(``LAMINA_NUM_THREADS=n`` or ``lamina.parallel.set_num_threads(n)``) lamina cuts its
heaviest work into ``n`` independent parts itself: a convolution's batch (patch copies
and products, forward and backward), large matrix products (:func:`matmul`, along the
batch, M or N; this includes the fused LSTM's per-step products, cut by gate rows), and
runs OpenBLAS single-threaded, process-wide.

The default setting (neither given) splits only convolutions of at least
``SPLIT_MIN`` multiply-adds a pass: their batch goes to one Python thread per
OpenBLAS thread while OpenBLAS runs single-threaded for that call;
large elementwise passes (ReLU, batch norm and max pooling, from ``PIECES_MIN``
elements on) are cut into batch ranges the same way (:func:`pieces`); everything
else leaves threading to OpenBLAS. Whole images per thread make one meeting
of the threads per call, where OpenBLAS's own threads meet at the end of each of a
convolution's many products (hundreds a layer).

OpenBLAS's idle worker threads spin for ~2^28 cycles (~0.1 s here) after each threaded
product before they sleep; lamina's threads running next to such a spinner lost more
than they gained (a wide-CNN step 1.37x slower with the convolutions split). So at
import lamina shortens that wait to 2^25 cycles (~13 ms) unless
``OPENBLAS_THREAD_TIMEOUT`` is set in the environment (then OpenBLAS's own reading of it
stands). Not shorter: with 2^22 (~1.6 ms) threads fell asleep inside a convolution's
longer copies, and products right after waking them ran several times slower (LeNet-5's
6 -> 16 backward 15 ms instead of 5, ``benchmarks/bench_conv.py``). Measured on the
2-vCPU AMD VM (benchmarks/RESULTS.md, 2026-12-03, late; paired in-process A/B against
one thread and the long wait): wide CNN step 0.83x, LeNet-5 0.97x, char LSTM and
LSTMCell loop within +-2%.

``LAMINA_NUM_THREADS=2`` was measured differently on two AMD VMs: the wide CNN step
~20% faster on one with AVX2 only (2026-12-02), the same on one with AVX-512
(2026-12-03), where it made the char LSTM 1.4x and the LSTMCell loop 1.3x slower (their
small per-step products lose OpenBLAS's two threads). Hence not the default.
"""
import _thread
import ctypes
import glob
import itertools
import os
import threading

from . import backend as B


def _find_openblas():
    """``(set_num_threads, get_num_threads, library)`` of the OpenBLAS NumPy links, or
    None."""
    import numpy
    libs = os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", "_64_", ""):
            try:
                set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}")
                get_ = getattr(lib, f"scipy_openblas_get_num_threads{suffix}")
            except AttributeError:
                continue
            set_.argtypes, set_.restype = [ctypes.c_int], None
            get_.argtypes, get_.restype = [], ctypes.c_int
            return set_, get_, lib
    return None


_blas = _find_openblas()
# OpenBLAS's thread count when lamina was imported (given back by set_num_threads(1))
_blas_default = _blas[1]() if _blas is not None else None
_inside = threading.local()  # set while this thread runs a part (no nested pools)
_threads = 1
_default = True  # no thread count given: only convolutions split (split_parts)
# log2 of the cycles OpenBLAS's idle threads spin before sleeping, set at import
BLAS_THREAD_TIMEOUT = 25
# in the default setting, convolutions of fewer multiply-adds a pass stay on one thread
# (LeNet-5's layers, 30 M and less: ~3% slower split, in a paired A/B)
SPLIT_MIN = 1 << 27


def _set_blas_thread_timeout(log2_cycles):
    """Restart OpenBLAS's thread pool with its idle spin limited to 2^log2_cycles cycles
    (OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` when it starts its threads; the variable
    is set only for that reading). Returns False where this OpenBLAS lacks the entry
    points (the threads are then left as they were)."""
    if _blas is None:
        return False
    lib = _blas[2]
    read_env = getattr(lib, "openblas_read_env", None)
    shutdown = getattr(lib, "blas_thread_shutdown_", None)
    if read_env is None or shutdown is None:
        return False
    old = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(int(log2_cycles))
    try:
        read_env()
    finally:
        if old is None:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        else:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = old
    shutdown()  # started again, reading the new limit, by the next threaded call
    return True


def set_num_threads(n):
    """Use ``n`` threads for lamina's large products and convolutions.

    With ``n > 1`` lamina cuts that work into parts itself and runs OpenBLAS
    single-threaded (process-wide: NumPy products outside lamina then run on one core
    too); ``n = 1`` gives OpenBLAS back the thread count it had when lamina was imported
    and keeps all of lamina's work on the calling thread; ``None`` restores the default
    setting (convolutions split, see the module docstring). Without NumPy's bundled
    OpenBLAS (another BLAS, or CuPy) lamina cannot do this and stays at 1, leaving
    threading to the BLAS.
    """
    global _threads, _default
    if n is None:
        _threads, _default = 1, True
    else:
        n = int(n)
        if n < 1:
            raise ValueError(f"set_num_threads: expected a positive number of threads, "
                             f"got {n}")
        _threads, _default = (n if _blas is not None else 1), False
    if _blas is not None:
        _blas[0](1 if _threads > 1 else _blas_default)


def get_num_threads():
    """lamina's thread count for large products (1 in the default setting, where only
    convolutions split, see :func:`split_parts`)."""
    return _threads


def threads_setting():
    """What :func:`set_num_threads` last got: an int, or None for the default setting
    (to restore it afterwards)."""
    return None if _default else _threads


def parts_for(work_items):
    """How many parts to cut ``work_items`` independent items into: 1 when running in
    parallel would not pay (one item, one thread, a non-NumPy backend, or already inside
    a part)."""
    if _threads == 1 or B.name != "numpy" or getattr(_inside, "active", False):
        return 1
    return max(1, min(_threads, work_items))


def split_parts(work_items, macs):
    """Parts to cut a convolution's batch (``work_items`` chunks, ``macs`` multiply-adds)
    into: ``parts_for`` once a thread count is set; in the default setting one per
    OpenBLAS thread from ``SPLIT_MIN`` multiply-adds on (run them with
    :func:`run_split`)."""
    if not _default:
        return parts_for(work_items)
    if _blas is None or B.name != "numpy" or getattr(_inside, "active", False) \
            or macs < SPLIT_MIN:
        return 1
    return max(1, min(_blas_default, work_items))


def run_split(fn, parts):
    """``run(fn, parts)`` for :func:`split_parts`'s parts; in the default setting
    OpenBLAS runs single-threaded (process-wide) while they do."""
    if parts <= 1 or not _default:
        return run(fn, parts)
    return _on_one_blas_thread(lambda: run(fn, parts))


def _on_one_blas_thread(call):
    """``call()`` with OpenBLAS set to one thread (process-wide), then given back its own
    count."""
    _blas[0](1)
    try:
        return call()
    finally:
        _blas[0](_blas_default)


def unthreaded_blas(fn, *args):
    """``fn(*args)`` with OpenBLAS on one thread, in the default setting on a multi-thread
    OpenBLAS (elsewhere just ``fn(*args)``).

    For small, memory-bound products (batch norm's channel sums, a gemv over the whole
    activation): threaded, they gain little and leave OpenBLAS's worker spinning on the
    second core for its idle wait, where the next convolution's split wants to run
    (measured: the wide CNN step ~7% faster, benchmarks/RESULTS.md 2026-12-04)."""
    if not _default or _blas is None or _blas_default <= 1 or B.name != "numpy" \
            or getattr(_inside, "active", False):
        return fn(*args)
    return _on_one_blas_thread(lambda: fn(*args))


# arrays of fewer elements than this run their elementwise passes in one piece (the
# hand-off, ~30 us, against ~0.1 ms of work)
PIECES_MIN = 1 << 20
PIECES_PER_THREAD = 2


def pieces_parts(n, elements):
    """How many threads :func:`pieces` would use for ``n`` rows and ``elements``."""
    if elements < PIECES_MIN or B.name != "numpy" or getattr(_inside, "active", False):
        return 1
    return max(1, min(n, _blas_default if _default and _blas is not None else _threads))


def pieces(fn, n, elements):
    """``fn(lo, hi)`` over ``[0, n)``: in one call, or cut into ``PIECES_PER_THREAD``
    ranges per thread when the pass touches at least ``PIECES_MIN`` ``elements``, for
    elementwise passes over large arrays (ReLU, batch norm's per-channel maps, max
    pooling) that NumPy runs on one core. The
    ranges must write disjoint memory; OpenBLAS runs single-threaded meanwhile (as in
    :func:`run_split`).

    Threads: as for a split convolution (one per OpenBLAS thread in the default setting,
    ``set_num_threads``' count otherwise). Such passes are bound by NumPy's per-call and
    per-element overheads more than by memory here: measured on the 2-vCPU VM, a
    per-channel multiply over (128, 32, 784) float32 ran 1.9x faster on two threads,
    ``maximum(x, 0)`` 1.7x, a plain same-shape subtract only 1.1x."""
    parts = pieces_parts(n, elements)
    if parts <= 1:
        fn(0, n)
        return
    # more ranges than threads, taken in turn by whichever thread is free, so a part
    # starved of its core (by an OpenBLAS worker still spinning after a threaded
    # product) leaves most ranges to the other; against one range per thread the wide
    # CNN step's paired A/B stayed within its noise (0.95-1.06), so this is for safety
    tasks = min(n, parts * PIECES_PER_THREAD)
    cuts = [n * i // tasks for i in range(tasks + 1)]
    turn = itertools.count()

    def part(_):
        for i in iter(turn.__next__, None):
            if i >= tasks:
                return
            fn(cuts[i], cuts[i + 1])
    run_split(part, parts)


class _Worker:
    """A daemon thread that runs one ``fn(i)`` at a time, handed over through two locks
    (measured ~16 µs a round trip here, against ~120 µs for a ThreadPoolExecutor)."""

    def __init__(self):
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._task = self._out = None
        threading.Thread(target=self._loop, daemon=True, name="lamina-worker").start()

    def _loop(self):
        _inside.active = True
        while True:
            self._go.acquire()
            fn, i = self._task
            try:
                self._out = (fn(i), None)
            except BaseException as e:  # handed to the caller
                self._out = (None, e)
            self._task = None
            self._done.release()

    def submit(self, fn, i):
        self._task = (fn, i)
        self._go.release()

    def result(self):
        self._done.acquire()
        out, self._out = self._out, None
        return out


_workers = []
_busy = threading.Lock()  # one parallel region at a time; other callers run serially


def run(fn, parts):
    """``[fn(0), ..., fn(parts - 1)]``, the calls running concurrently (the last on the
    calling thread). ``fn`` must only write memory no other part writes. An exception
    in any part is raised after all parts have finished."""
    if parts <= 1 or not _busy.acquire(blocking=False):
        return [fn(i) for i in range(parts)]
    try:
        while len(_workers) < parts - 1:
            _workers.append(_Worker())
        for i in range(parts - 1):
            _workers[i].submit(fn, i)
        error = last = None
        _inside.active = True
        try:
            last = fn(parts - 1)
        except BaseException as e:  # wait for the others before raising
            error = e
        finally:
            _inside.active = False
        results = []
        for i in range(parts - 1):
            out, e = _workers[i].result()
            error = error or e
            results.append(out)
        if error is not None:
            raise error
        return results + [last]
    finally:
        _busy.release()


# below this many multiply-adds a product runs in one piece (thread hand-off ~30 µs)
_MATMUL_MIN = 1 << 21


def matmul(a, b, out=None):
    """``numpy.matmul(a, b, out=out)`` for a: (..., M, K), b: (..., K, N), cut into
    one piece per thread along the batch, M or N (whichever is largest) when the product
    is large enough to pay for the hand-off."""
    xp = B.xp
    if _threads == 1 or a.ndim < 2 or b.ndim < 2:
        return xp.matmul(a, b, out=out)
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = a.shape[:-2] if a.ndim >= b.ndim else b.shape[:-2]
    nb = 1
    for d in batch:
        nb *= d
    work = nb * M * K * N
    parts = parts_for(max(1, work // _MATMUL_MIN))
    if parts == 1:
        return xp.matmul(a, b, out=out)
    if out is None:
        shape = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (M, N)
        out = xp.empty(shape, xp.result_type(a.dtype, b.dtype))
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0] and a.shape[0] >= parts \
            and a.shape[0] >= max(M, N) // 64:
        n = a.shape[0]  # a batch of products: whole products to each thread
        cut = [n * i // parts for i in range(parts + 1)]
        piece = lambda i: xp.matmul(a[cut[i]:cut[i + 1]], b[cut[i]:cut[i + 1]],
                                    out=out[cut[i]:cut[i + 1]])
    elif M >= N:
        cut = [M * i // parts for i in range(parts + 1)]
        piece = lambda i: xp.matmul(a[..., cut[i]:cut[i + 1], :], b,
                                    out=out[..., cut[i]:cut[i + 1], :])
    else:
        cut = [N * i // parts for i in range(parts + 1)]
        piece = lambda i: xp.matmul(a, b[..., cut[i]:cut[i + 1]],
                                    out=out[..., cut[i]:cut[i + 1]])
    run(piece, parts)
    return out


def _default_threads():
    """``$LAMINA_NUM_THREADS`` if set, else None (the default setting)."""
    env = os.environ.get("LAMINA_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"LAMINA_NUM_THREADS must be a positive integer, got {env!r}") \
                from None
    return None


set_num_threads(_default_threads())
if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
    _set_blas_thread_timeout(BLAS_THREAD_TIMEOUT)
