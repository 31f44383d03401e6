"""The reuse pool for big kernel temporaries (lamina.ops.workspace)."""
import numpy as np

import lamina
from lamina import nn
from lamina.ops import workspace

SHAPE = (512, 1024)            # 2 MiB of float32, above MIN_BYTES


def setup_function(_):
    workspace.clear()


def _address(a):
    return a.__array_interface__["data"][0]


def test_a_free_array_is_reused():
    a = workspace.empty(SHAPE, np.float32)
    where = _address(a)
    del a
    b = workspace.empty(SHAPE, np.float32)
    assert _address(b) == where


def test_an_array_still_referred_to_is_not_handed_out():
    a = workspace.empty(SHAPE, np.float32)
    a[...] = 1.0
    b = workspace.empty(SHAPE, np.float32)
    assert not np.shares_memory(a, b)
    b[...] = 2.0
    assert (a == 1.0).all()


def test_a_live_view_keeps_its_base_out_of_reuse():
    a = workspace.empty(SHAPE, np.float32)
    view = a[3:5]
    view[...] = 7.0
    del a
    b = workspace.empty(SHAPE, np.float32)
    b[...] = 0.0
    assert (view == 7.0).all()


def test_same_size_other_shape_shares_storage_but_dtype_does_not():
    a = workspace.empty(SHAPE, np.float32)
    where = _address(a)
    del a
    b = workspace.empty((1024, 512), np.float32)
    assert _address(b) == where and b.shape == (1024, 512)
    del b
    c = workspace.empty((256, 1024), np.float64)
    assert _address(c) != where and c.dtype == np.float64


def test_small_arrays_are_not_kept_and_zeros_are_zero():
    small = workspace.empty((4, 4), np.float32)
    assert small.base is None and workspace.kept_bytes() == 0
    z = workspace.empty(SHAPE, np.float32)
    z[...] = 5.0
    del z
    assert (workspace.zeros(SHAPE, np.float32) == 0).all()


def test_per_size_cap_and_clear():
    held = [workspace.empty(SHAPE, np.float32) for _ in range(workspace.PER_SIZE + 2)]
    assert workspace.kept_bytes() == workspace.PER_SIZE * held[0].nbytes
    workspace.clear()
    assert workspace.kept_bytes() == 0


def test_lstm_outputs_kept_alive_are_not_overwritten_by_the_next_call():
    lamina.manual_seed(0)
    lstm = nn.LSTM(64, 256)
    x = lamina.randn(64, 32, 64)
    out1, (h1, c1) = lstm(x)
    first = out1.numpy().copy(), h1.numpy().copy(), c1.numpy().copy()
    out2, _ = lstm(lamina.randn(64, 32, 64))       # same shapes: would reuse free buffers
    assert not np.shares_memory(out1.numpy(), out2.numpy())
    for kept, now in zip(first, (out1, h1, c1)):
        np.testing.assert_array_equal(kept, now.numpy())
    # and the graph of the first call still backpropagates to the right gradients
    (out1.sum() + c1.sum()).backward()
    g1 = lstm.weight_hh_l0.grad.numpy().copy()
    lstm.zero_grad()
    out1b, (_, c1b) = lstm(x)
    (out1b.sum() + c1b.sum()).backward()
    np.testing.assert_allclose(g1, lstm.weight_hh_l0.grad.numpy(), rtol=1e-5, atol=1e-6)
