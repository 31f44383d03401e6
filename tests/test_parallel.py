"""lamina.parallel: the intra-op threads (opt-in, and the default split of convolutions)
give the same results as one thread; OpenBLAS's idle threads stop spinning soon."""
import numpy as np
import pytest

import lamina
import lamina.nn.functional as F
from lamina import nn, parallel


@pytest.fixture
def two_threads(monkeypatch):
    if parallel._blas is None:
        pytest.skip("NumPy is not linked to its bundled OpenBLAS here")
    monkeypatch.setattr(parallel, "_MATMUL_MIN", 1 << 10)  # split small test products too
    start = parallel.threads_setting()     # None unless $LAMINA_NUM_THREADS says otherwise
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(start)


def test_set_num_threads_validates_and_controls_openblas():
    with pytest.raises(ValueError, match="positive"):
        parallel.set_num_threads(0)
    if parallel._blas is None:
        pytest.skip("NumPy is not linked to its bundled OpenBLAS here")
    start, before = parallel.threads_setting(), parallel._blas[1]()
    parallel.set_num_threads(2)
    try:
        assert parallel.get_num_threads() == 2
        assert parallel._blas[1]() == 1  # lamina splits, OpenBLAS runs single-threaded
        parallel.set_num_threads(1)
        assert parallel._blas[1]() == parallel._blas_default  # OpenBLAS's own threads back
        assert parallel.split_parts(8, 1 << 40) == 1 and parallel.threads_setting() == 1
        parallel.set_num_threads(None)  # the default: only convolutions split
        assert parallel.get_num_threads() == 1 and parallel.threads_setting() is None
        assert parallel.split_parts(8, 1 << 40) == min(8, parallel._blas_default)
        assert parallel.split_parts(8, parallel.SPLIT_MIN - 1) == 1
        assert parallel.parts_for(8) == 1
    finally:
        parallel.set_num_threads(start)
    assert parallel._blas[1]() == before


def test_run_returns_in_order_and_raises_after_all_parts():
    assert parallel.run(lambda i: i * 10, 3) == [0, 10, 20]
    finished = []

    def part(i):
        if i == 0:
            raise KeyError("part 0")
        finished.append(i)
        return i
    with pytest.raises(KeyError, match="part 0"):
        parallel.run(part, 2)
    assert finished == [1]
    assert parallel.run(lambda i: i + 1, 2) == [1, 2]  # the worker survived the error


def test_nested_parts_run_serially(two_threads):
    inner = parallel.run(lambda i: parallel.parts_for(8), 2)
    assert inner == [1, 1]
    assert parallel.parts_for(8) == 2


@pytest.mark.parametrize("sa, sb", [((37, 23), (23, 41)), ((5, 700), (700, 3)),
                                    ((6, 9, 20), (6, 20, 11)), ((3, 30, 8), (8, 50)),
                                    ((2, 40, 7), (1, 7, 9))])
def test_matmul_pieces_equal_numpy(two_threads, sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    at = np.asfortranarray(a) if a.ndim == 2 else a
    out = np.full(np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1]), np.nan)
    parallel.matmul(at, b, out=out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def _conv_grads(x, w, b, **kw):
    lx, lw, lb = (lamina.tensor(v, requires_grad=True) for v in (x, w, b))
    y = F.conv2d(lx, lw, lb, **kw)
    (y * y).sum().backward()
    return [y.numpy(), lx.grad.numpy(), lw.grad.numpy(), lb.grad.numpy()]


@pytest.mark.parametrize("cin, kw", [(3, dict(padding=1)), (20, dict(padding=1)),
                                     (4, dict(stride=2, padding=2, dilation=2)),
                                     (6, dict(groups=2, padding=1))])
def test_conv_with_two_threads_matches_one(cin, kw):
    if parallel._blas is None:
        pytest.skip("NumPy is not linked to its bundled OpenBLAS here")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, cin, 11, 10))
    w = rng.standard_normal((8, cin // kw.get("groups", 1), 3, 3))
    b = rng.standard_normal(8)
    from lamina.ops import conv as C
    start = parallel.threads_setting()
    chunk, split_min = C._CHUNK, parallel.SPLIT_MIN
    try:
        parallel.set_num_threads(1)
        one = _conv_grads(x, w, b, **kw)
        C._CHUNK = 2000  # several chunks, so both threads get images
        parallel.set_num_threads(2)
        two = _conv_grads(x, w, b, **kw)
        parallel.set_num_threads(None)  # the default split, OpenBLAS single-threaded
        calls = []
        run_split = parallel.run_split
        parallel.run_split = lambda fn, parts: calls.append(parts) or run_split(fn, parts)
        try:
            _conv_grads(x, w, b, **kw)
            assert calls and max(calls) == 1  # too small a convolution to split
            calls.clear()
            parallel.SPLIT_MIN = 0
            split = _conv_grads(x, w, b, **kw)
        finally:
            parallel.run_split = run_split
        assert parallel._blas[1]() == parallel._blas_default  # given back after the call
    finally:
        C._CHUNK, parallel.SPLIT_MIN = chunk, split_min
        parallel.set_num_threads(start)
    assert max(calls) == min(2, parallel._blas_default)
    for u, v, s in zip(one, two, split):
        np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(s, u, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_recurrent_with_two_threads_matches_one(mode):
    rng = np.random.default_rng(2)
    lamina.manual_seed(0)
    layer = getattr(nn, mode)(5, 7, bidirectional=True).double()
    x = rng.standard_normal((6, 20, 5))
    lengths = np.sort(rng.integers(1, 7, 20))[::-1].copy()

    def grads():
        layer.zero_grad()
        lx = lamina.tensor(x, requires_grad=True)
        out = layer(lx, lengths=lengths)[0]
        (out * out).sum().backward()
        return [out.numpy(), lx.grad.numpy()] + [p.grad.numpy().copy()
                                                  for p in layer.parameters()]
    one = grads()
    start = parallel.threads_setting()
    parallel.set_num_threads(2)
    try:
        two = grads()
    finally:
        parallel.set_num_threads(start)
    for u, v in zip(one, two):
        np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-11)


def test_linear_with_two_threads_matches_one(two_threads):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 33, 17))
    lin = nn.Linear(17, 29).double()
    lx = lamina.tensor(x, requires_grad=True)
    out = lin(lx)
    out.sum().backward()
    w, b = lin.weight.numpy(), lin.bias.numpy()
    np.testing.assert_allclose(out.numpy(), x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(lx.grad.numpy(), np.ones((4, 33, 29)) @ w, rtol=1e-12)
    np.testing.assert_allclose(lin.weight.grad.numpy(),
                               np.ones((4 * 33, 29)).T @ x.reshape(-1, 17), rtol=1e-12)


def test_openblas_idle_threads_stop_spinning_soon():
    """After a threaded product OpenBLAS's idle workers spin ~2^28 cycles (~0.1 s) by
    default; lamina shortens that at import (unless OPENBLAS_THREAD_TIMEOUT is set), so a
    pause after a product costs the process almost no CPU, and products still agree."""
    import os
    import time
    if parallel._blas is None or parallel._blas_default < 2:
        pytest.skip("needs NumPy's bundled, multi-threaded OpenBLAS")
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        pytest.skip("OPENBLAS_THREAD_TIMEOUT is set: OpenBLAS's own reading of it stands")
    a = np.random.default_rng(4).standard_normal((400, 400)).astype(np.float32)

    def idle_cpu_after_product():
        a @ a
        t = time.process_time()
        time.sleep(0.2)
        return time.process_time() - t
    start = parallel.threads_setting()
    parallel.set_num_threads(1)  # OpenBLAS threaded
    try:
        spent = min(idle_cpu_after_product() for _ in range(3))
        assert spent < 0.03, f"{spent:.3f} s of CPU in a 0.2 s pause after a product"
        assert parallel._set_blas_thread_timeout(28)  # OpenBLAS's default: the spin is back
        assert min(idle_cpu_after_product() for _ in range(3)) > 0.04
    finally:
        assert parallel._set_blas_thread_timeout(parallel.BLAS_THREAD_TIMEOUT)
        parallel.set_num_threads(start)
    np.testing.assert_allclose(a @ a, a.astype(np.float64) @ a, rtol=1e-3, atol=1e-3)


def test_unthreaded_blas_runs_openblas_on_one_thread_and_restores_it():
    if parallel._blas is None or parallel._blas_default < 2:
        pytest.skip("needs NumPy's bundled, multi-threaded OpenBLAS")
    start = parallel.threads_setting()
    parallel.set_num_threads(None)  # the default setting
    try:
        seen = parallel.unthreaded_blas(lambda a, b: (parallel._blas[1](), a + b), 2, 3)
        assert seen == (1, 5) and parallel._blas[1]() == parallel._blas_default

        def fail():
            raise KeyError("inside")
        with pytest.raises(KeyError, match="inside"):
            parallel.unthreaded_blas(fail)
        assert parallel._blas[1]() == parallel._blas_default  # restored after an error
        parallel.set_num_threads(1)  # a thread count given: OpenBLAS's setting stands
        assert parallel.unthreaded_blas(parallel._blas[1]) == parallel._blas_default
    finally:
        parallel.set_num_threads(start)


def test_batch_norm_channel_sums_leave_no_openblas_thread_spinning():
    """Batch norm's channel sums (a gemv over the activation) run on one OpenBLAS thread
    in the default setting, so even with OpenBLAS's long idle spin nothing burns the
    second core afterwards (where a split convolution's part runs next); the sums agree
    with NumPy's."""
    import os
    import time
    from lamina.ops import normalization
    if parallel._blas is None or parallel._blas_default < 2:
        pytest.skip("needs NumPy's bundled, multi-threaded OpenBLAS")
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        pytest.skip("OPENBLAS_THREAD_TIMEOUT is set: OpenBLAS's own reading of it stands")
    x = np.random.default_rng(5).standard_normal((128, 32, 28 * 28)).astype(np.float32)
    big = np.random.default_rng(6).standard_normal((400, 400)).astype(np.float32)

    def idle_cpu_after(fn):
        fn()
        t = time.process_time()
        time.sleep(0.2)
        return time.process_time() - t
    start = parallel.threads_setting()
    parallel.set_num_threads(None)
    assert parallel._set_blas_thread_timeout(28)  # ~0.1 s spin after threaded calls
    try:
        assert min(idle_cpu_after(lambda: big @ big) for _ in range(3)) > 0.04  # spins
        assert min(idle_cpu_after(lambda: normalization._channel_sum(x))
                   for _ in range(3)) < 0.03
    finally:
        assert parallel._set_blas_thread_timeout(parallel.BLAS_THREAD_TIMEOUT)
        parallel.set_num_threads(start)
    np.testing.assert_allclose(normalization._channel_sum(x),
                               x.astype(np.float64).sum(axis=(0, 2)), rtol=1e-4)


def test_pieces_cover_the_range_once_and_match_one_piece(monkeypatch):
    """parallel.pieces hands out every row exactly once (more ranges than threads, taken
    in turn); batch norm, ReLU and max pooling computed in pieces equal the one-piece
    results, forward and backward, in float64."""
    if parallel._blas is None:
        pytest.skip("NumPy is not linked to its bundled OpenBLAS here")
    start = parallel.threads_setting()
    parallel.set_num_threads(2)  # two threads even where OpenBLAS has one
    try:
        seen = np.zeros(37, int)

        def mark(lo, hi):
            seen[lo:hi] += 1
        parallel.pieces(mark, 37, 1 << 40)
        assert (seen == 1).all()
        seen[:] = 0
        parallel.pieces(mark, 37, 10)  # small: one call
        assert (seen == 1).all()

        rng = np.random.default_rng(7)
        x = rng.standard_normal((9, 5, 6, 7))
        g = rng.standard_normal(x.shape)

        def run():
            lx = lamina.tensor(x, requires_grad=True)
            bn = nn.BatchNorm2d(5).double()
            with lamina.no_grad():
                bn.weight.data[...] = rng.standard_normal(5)
            y = F.max_pool2d(F.relu(bn(lx)), 2)
            y.backward(lamina.tensor(g[:, :, :3, :3]))
            return (y.numpy(), lx.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy(),
                    bn.running_var.numpy())
        rng = np.random.default_rng(8)
        whole = run()
        monkeypatch.setattr(parallel, "PIECES_MIN", 1)
        calls = []
        real = parallel.run_split
        monkeypatch.setattr(parallel, "run_split",
                            lambda fn, parts: (calls.append(parts), real(fn, parts))[1])
        rng = np.random.default_rng(8)
        split = run()
        assert len(calls) >= 6 and min(calls) == 2  # BN, ReLU, pooling ran in pieces
    finally:
        parallel.set_num_threads(start)
    for a, b in zip(whole, split):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
