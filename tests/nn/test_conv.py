"""Convolutions against torch: F.conv1d/2d/3d, F.conv_transpose1d/2d/3d, causal conv1d and
their modules (values, input/weight/bias gradients in float32 and float64, float64
gradcheck), default init, and the error messages."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
import lamina.ops.conv as conv_ops

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
from helpers import check_module, check_op, noncontig, rand

F64 = dict(dtype=np.float64, atol=1e-10, rtol=1e-8)
F32 = dict(dtype=np.float32, atol=1e-5, rtol=1e-4)
DTYPES = pytest.mark.parametrize("tol", [F32, F64], ids=["f32", "f64"])


def _w(*shape, seed=1):
    return rand(*shape, seed=seed, low=-1.0, high=1.0)


def _check_conv(D, x, w, b, tol, check_grad=True, **kw):
    lam = getattr(F, f"conv{D}d")
    tor = getattr(TF, f"conv{D}d")
    arrays = (x, w) if b is None else (x, w, b)
    check_op(lambda *t: lam(*t, **kw), lambda *t: tor(*t, **kw), *arrays,
             check_grad=check_grad, **tol)


# ---------------------------------------------------------------- forward convolutions
CONV_CASES = {
    # name: (D, x shape, w shape, bias, kwargs)
    "1d": (1, (2, 3, 9), (4, 3, 3), True, dict(padding=1)),
    "1d_stride_gt_kernel_dil": (1, (2, 2, 13), (3, 2, 2), True,
                                dict(stride=3, padding=2, dilation=2)),
    "1d_depthwise": (1, (2, 3, 8), (6, 1, 3), True, dict(groups=3, padding=1)),
    "2d": (2, (2, 3, 7, 6), (4, 3, 3, 2), True, dict(padding=(1, 0))),
    "2d_stride_dil": (2, (2, 2, 9, 10), (3, 2, 3, 2), True,
                      dict(stride=(2, 3), dilation=(2, 1), padding=1)),
    "2d_stride_gt_kernel": (2, (2, 2, 8, 7), (3, 2, 2, 2), True, dict(stride=3)),
    "2d_groups2": (2, (2, 4, 5, 5), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    "2d_depthwise": (2, (2, 3, 6, 6), (3, 1, 3, 3), True, dict(groups=3, padding=1)),
    "2d_depthwise_mult": (2, (1, 3, 5, 6), (6, 1, 3, 3), False, dict(groups=3, stride=2)),
    "2d_same_odd": (2, (2, 2, 5, 6), (3, 2, 3, 5), True, dict(padding="same")),
    "2d_same_even": (2, (2, 2, 5, 6), (3, 2, 4, 2), True, dict(padding="same")),
    "2d_same_dilated_even": (2, (1, 2, 7, 6), (2, 2, 2, 4), True,
                             dict(padding="same", dilation=(3, 2))),
    "2d_valid": (2, (2, 2, 6, 5), (3, 2, 3, 3), True, dict(padding="valid")),
    "2d_kernel_fills_padded_input": (2, (2, 2, 3, 3), (3, 2, 5, 5), True, dict(padding=1)),
    "2d_batch1_odd": (2, (1, 3, 7, 5), (2, 3, 3, 3), True, dict(padding=2)),
    "2d_no_bias": (2, (2, 3, 5, 5), (4, 3, 3, 3), False, dict(stride=2, padding=1)),
    "2d_1x1": (2, (2, 4, 3, 5), (3, 4, 1, 1), True, {}),
    "3d": (3, (2, 2, 4, 5, 4), (3, 2, 2, 3, 2), True,
           dict(stride=(1, 2, 1), padding=(1, 0, 1), dilation=(1, 1, 2))),
    "3d_groups_same": (3, (1, 4, 3, 4, 3), (2, 2, 2, 3, 2), True,
                       dict(groups=2, padding="same")),
    "3d_stride_gt_kernel": (3, (2, 1, 5, 5, 4), (2, 1, 1, 2, 1), False,
                            dict(stride=(2, 3, 2))),
}


@DTYPES
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_functional(case, tol):
    D, xs, ws, bias, kw = CONV_CASES[case]
    _check_conv(D, rand(*xs, seed=0), _w(*ws), _w(ws[0], seed=2) if bias else None, tol,
                **kw)


@DTYPES
@pytest.mark.parametrize("D", [1, 2, 3])
def test_conv_noncontiguous_input(D, tol):
    base = rand(*((2, 3) + (5,) * D), seed=3)
    x = noncontig(base)
    assert not x.flags.c_contiguous
    lx = lamina.from_numpy(x.astype(tol["dtype"]))
    assert not lx.data.flags.c_contiguous
    w = _w(*((2, 3) + (3,) * D)).astype(tol["dtype"])
    y = getattr(F, f"conv{D}d")(lx, lamina.tensor(w), stride=2, padding=1)
    ty = getattr(TF, f"conv{D}d")(torch.tensor(x.astype(tol["dtype"])), torch.tensor(w),
                                  stride=2, padding=1)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), atol=tol["atol"], rtol=tol["rtol"])
    _check_conv(D, x, w.astype(np.float64), None, tol, padding=1)


@DTYPES
def test_conv_larger_parity_many_chunks(tol, monkeypatch):
    """Sizes where the batch is cut into several chunks of unequal length."""
    x, w, b = rand(7, 5, 12, 11, seed=4), _w(6, 5, 3, 3), _w(6, seed=5)
    for chunk in (1, 2000, 1 << 20):
        monkeypatch.setattr(conv_ops, "_CHUNK", chunk)
        _check_conv(2, x, w, b, tol, check_grad=False, padding=1)
        _check_conv(2, x, w, b, tol, check_grad=False, stride=2, dilation=2)
        _check_conv(1, x[:, :, 0], w[:, :, 0], b, tol, check_grad=False, padding=2, groups=1)
    monkeypatch.setattr(conv_ops, "_CHUNK", 300)  # several chunks, small enough to gradcheck
    _check_conv(2, x[:3, :2, :5, :6], w[:2, :2], b[:2], tol, padding=1)
    _check_conv(2, x[:3, :4, :5, :6], w[:4, :2], b[:4], tol, stride=2, groups=2)


@DTYPES
@pytest.mark.parametrize("corr", [True, False], ids=["correlation", "col2im"])
def test_conv_input_gradient_paths(corr, tol, monkeypatch):
    """Stride-1 input gradients go through the flipped-kernel correlation for wide inputs
    and through col2im otherwise: force each path on the same cases."""
    monkeypatch.setattr(conv_ops, "_CORR", corr)
    _check_conv(1, rand(2, 3, 9, seed=21), _w(4, 3, 3), _w(4), tol, padding=(2,), dilation=2)
    _check_conv(2, rand(2, 4, 6, 5, seed=22), _w(6, 2, 3, 2), _w(6), tol, padding=(1, 2),
                groups=2)
    _check_conv(2, rand(1, 2, 5, 7, seed=23), _w(3, 2, 4, 3), None, tol, padding="same",
                dilation=(1, 2))
    _check_conv(3, rand(1, 2, 4, 3, 5, seed=24), _w(2, 2, 2, 2, 3), _w(2), tol,
                padding=(0, 1, 1))
    x, w = rand(2, 3, 4, 5, seed=25), _w(3, 2, 3, 3)
    check_op(lambda *t: F.conv_transpose2d(*t, padding=1),
             lambda *t: TF.conv_transpose2d(*t, padding=1), x, w, **tol)
    if tol is F32:  # wider layers: parity only
        _check_conv(2, rand(4, 16, 9, 8, seed=26), _w(16, 16, 3, 3), _w(16), tol,
                    check_grad=False, padding=1)
        _check_conv(2, rand(4, 32, 7, 7, seed=27), _w(8, 16, 3, 3), _w(8), tol,
                    check_grad=False, padding=2, groups=2, dilation=2)


def test_conv_input_gradient_path_choice():
    def geo(C, stride, groups=1):
        return conv_ops._Geometry(2, C, (8, 8), 16, (3, 3), stride, (1, 1), ((1, 1),) * 2,
                                  groups, (8, 8))
    assert geo(32, (1, 1)).corr and not geo(32, (2, 1)).corr
    assert not geo(6, (1, 1)).corr and not geo(32, (1, 1), groups=32).corr



SHIFT_CASES = {
    # stride-1, single-group cases the shifted-product engine takes when forced
    "1d_pad_dil": (1, (2, 3, 9), (4, 3, 3), True, dict(padding=(2,), dilation=2)),
    "2d_same": (2, (2, 3, 6, 5), (4, 3, 3, 3), True, dict(padding=1)),
    "2d_asym_pairs": (2, (1, 2, 5, 7), (3, 2, 2, 3), False, dict(padding=((0, 1), (2, 0)))),
    "2d_same_even_dil": (2, (2, 2, 7, 6), (2, 2, 2, 4), True,
                         dict(padding="same", dilation=(3, 2))),
    "2d_valid": (2, (3, 2, 6, 5), (3, 2, 3, 3), True, dict(padding="valid")),
    "2d_kernel_fills_padded_input": (2, (2, 2, 3, 3), (3, 2, 5, 5), True, dict(padding=1)),
    "2d_1x1": (2, (2, 4, 3, 5), (3, 4, 1, 1), True, {}),
    "3d": (3, (2, 2, 3, 4, 3), (3, 2, 2, 3, 2), True, dict(padding=(1, 0, 1))),
}


@DTYPES
@pytest.mark.parametrize("case", list(SHIFT_CASES))
def test_conv_shifted_products_engine(case, tol, monkeypatch):
    """Force the shifted-product engine (conv_shift) on small cases: values and all
    gradients against torch, float64 gradcheck, and that the engine really ran."""
    import lamina.ops.conv_shift as shift_ops
    if not shift_ops.usable(np.dtype(tol["dtype"])):
        pytest.skip("no bundled OpenBLAS to call")
    calls = []
    engine = shift_ops.engine
    monkeypatch.setattr(shift_ops, "engine", lambda *a, **k: calls.append(1) or engine(*a, **k))
    monkeypatch.setattr(conv_ops, "_SHIFT", True)
    D, xs, ws, bias, kw = SHIFT_CASES[case]
    arrays = (rand(*xs, seed=31), _w(*ws)) + ((_w(ws[0], seed=32),) if bias else ())
    pairs = kw.get("padding")
    if isinstance(pairs, tuple) and isinstance(pairs[0], tuple):  # lamina-only (lo, hi) form
        flat = tuple(p for lo_hi in reversed(pairs) for p in lo_hi)
        check_op(lambda *t: F.conv2d(*t, padding=pairs),
                 lambda x, *wb: TF.conv2d(TF.pad(x, flat), *wb), *arrays, **tol)
    else:
        _check_conv(D, *arrays if bias else arrays + (None,), tol, **kw)
    assert len(calls) >= 2  # the forward and the backward


@DTYPES
def test_conv_shifted_products_chunks_and_transpose(tol, monkeypatch):
    """Several chunks with a short last one, wide layers, and the stride-1 transposed
    convolution (whose forward is the shifted engine's input gradient)."""
    monkeypatch.setattr(conv_ops, "_SHIFT", True)
    x, w, b = rand(7, 5, 6, 5, seed=33), _w(6, 5, 3, 3), _w(6, seed=34)
    for chunk in (300, 2000, 1 << 20):
        monkeypatch.setattr(conv_ops, "_CHUNK", chunk)
        _check_conv(2, x, w, b, tol, check_grad=tol is F64, padding=1)
    # grid chunks of 5 images (7 = 5 + 2) holding weight-gradient sub-chunks of 1 and of 2
    # images (5 = 2 + 2 + 1)
    import lamina.ops.conv_shift as shift_ops
    monkeypatch.setattr(shift_ops, "GRID_WIDE_MIN", 1)
    monkeypatch.setattr(shift_ops, "GRID_CHUNK", 1300)
    for chunk, nbw in ((2000, 1), (4000, 2)):
        monkeypatch.setattr(conv_ops, "_CHUNK", chunk)
        geo = conv_ops._Geometry(7, 5, (6, 5), 6, (3, 3), (1, 1), (1, 1), ((1, 1),) * 2, 1,
                                 (6, 5))
        assert (geo.shift.nb, geo.shift.nbw) == (5, nbw)
        _check_conv(2, x, w, b, tol, check_grad=tol is F64, padding=1)
    monkeypatch.setattr(conv_ops, "_CHUNK", 1 << 20)
    check_op(lambda *t: F.conv_transpose2d(*t, padding=1),
             lambda *t: TF.conv_transpose2d(*t, padding=1), rand(3, 4, 5, 4, seed=35),
             _w(4, 2, 3, 3), _w(2, seed=36), **tol)
    monkeypatch.setattr(conv_ops, "_SHIFT", None)
    if tol is F32:  # chosen by shape for wide layers
        _check_conv(2, rand(3, 16, 9, 8, seed=37), _w(16, 16, 3, 3), _w(16), tol, padding=1)


@DTYPES
@pytest.mark.parametrize("cin, cout", [(3, 16), (16, 3)], ids=["dx-shifted", "y-shifted"])
def test_conv_shifted_products_mixed_with_im2col(cin, cout, tol, monkeypatch):
    """One phase by shifted products, the others by im2col (LeNet's 6 -> 16 layer is of
    the first kind): values and gradients against torch, both engines really used."""
    import lamina.ops.conv_shift as shift_ops
    if not shift_ops.usable(np.dtype(tol["dtype"])):
        pytest.skip("no bundled OpenBLAS to call")
    used = []
    shifted, im2col = shift_ops.engine, conv_ops._im2col_engine
    monkeypatch.setattr(shift_ops, "engine", lambda *a, **k: used.append("s") or shifted(*a, **k))
    monkeypatch.setattr(conv_ops, "_im2col_engine",
                        lambda *a, **k: used.append("i") or im2col(*a, **k))
    _check_conv(2, rand(3, cin, 6, 5, seed=41), _w(cout, cin, 3, 3), _w(cout, seed=42), tol,
                check_grad=tol is F64, padding=1)
    assert "s" in used and "i" in used

def test_conv_non_native_byte_order_skips_blas_calls():
    """Big-endian arrays cannot go to the raw BLAS calls of the shifted engine: they take
    the NumPy path and still match torch."""
    x = rand(2, 16, 5, 5, seed=47).astype(">f4")
    w = _w(16, 16, 3, 3).astype(">f4")
    y = F.conv2d(lamina.tensor(x), lamina.tensor(w), padding=1).numpy()
    t = TF.conv2d(torch.tensor(x.astype("<f4")), torch.tensor(w.astype("<f4")), padding=1)
    np.testing.assert_allclose(y, t.numpy(), rtol=1e-4, atol=1e-4)

@DTYPES
@pytest.mark.parametrize("case", [c for c in CONV_CASES if "groups" not in CONV_CASES[c][4]])
def test_conv_forward_one_product_per_image(case, tol, monkeypatch):
    """im2col forwards with many outputs an image run one product per image straight into
    the output: force that path on every single-group case (values and gradients)."""
    monkeypatch.setattr(conv_ops, "_BY_IMAGE_MIN", 1)
    monkeypatch.setattr(conv_ops, "_SHIFT", False)
    D, xs, ws, bias, kw = CONV_CASES[case]
    _check_conv(D, rand(*xs, seed=0), _w(*ws), _w(ws[0], seed=2) if bias else None, tol,
                check_grad=tol is F64, **kw)


def test_conv_forward_path_by_output_size():
    """LeNet-5's two layers sit on both sides of the per-image threshold (784 and 100
    outputs an image); by shape, both agree with torch."""
    assert 10 * 10 < conv_ops._BY_IMAGE_MIN <= 28 * 28
    for shape, wshape, pad in (((4, 1, 28, 28), (6, 1, 5, 5), 2),
                               ((4, 6, 14, 14), (16, 6, 5, 5), 0)):
        x, w, b = rand(*shape, seed=48), _w(*wshape), _w(wshape[0], seed=49)
        y = F.conv2d(lamina.tensor(x), lamina.tensor(w), lamina.tensor(b), padding=pad)
        t = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=pad)
        np.testing.assert_allclose(y.numpy(), t.numpy(), rtol=1e-4, atol=1e-5)

def test_conv_shifted_products_choice():
    def geo(C, Co, stride=(1, 1), groups=1, pad=((1, 1),) * 2):
        return conv_ops._Geometry(2, C, (8, 8), Co, (3, 3), stride, (1, 1), pad, groups,
                                  (8, 8))
    assert geo(32, 32).shift is not None and geo(32, 32).shift_y and geo(32, 32).shift_dx
    # short inner dimensions: that phase stays with im2col (the weight gradient too)
    assert geo(32, 8).shift_y and not geo(32, 8).shift_dx
    assert geo(8, 32).shift_dx and not geo(8, 32).shift_y
    assert geo(8, 8).shift is None
    assert geo(32, 32, stride=(2, 1)).shift is None and geo(32, 32, groups=2).shift is None
    assert geo(32, 32, pad=((3, 3), (1, 1))).shift is None  # outputs beyond the grid

@DTYPES
def test_conv_unbatched_input(tol):
    _check_conv(2, rand(3, 6, 5, seed=6), _w(4, 3, 3, 3), _w(4, seed=7), tol, padding=1)
    _check_conv(1, rand(2, 7, seed=6), _w(3, 2, 2), None, tol, stride=2)
    check_op(lambda *t: F.conv_transpose1d(*t, stride=2), lambda *t: TF.conv_transpose1d(
        *t, stride=2), rand(3, 4, seed=6), _w(3, 2, 3), **tol)


def test_conv_float32_stays_float32():
    x = lamina.tensor(rand(2, 3, 6, 6, dtype=np.float32), requires_grad=True)
    w = lamina.tensor(_w(4, 3, 3, 3).astype(np.float32), requires_grad=True)
    b = lamina.tensor(_w(4).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    yt = F.conv_transpose2d(x, lamina.tensor(_w(3, 2, 3, 3).astype(np.float32)), stride=2)
    assert yt.dtype == np.float32


def test_conv_no_grad_records_nothing():
    x = lamina.tensor(rand(1, 2, 5, 5), requires_grad=True)
    w = lamina.tensor(_w(3, 2, 3, 3), requires_grad=True)
    with lamina.no_grad():
        y = F.conv2d(x, w)
    assert not y.requires_grad and y.grad_fn is None


# ---------------------------------------------------------------- transposed convolutions
TRANSPOSE_CASES = {
    # name: (D, x shape, w shape (Cin, Cout/groups, *k), bias, kwargs)
    "1d": (1, (2, 4, 5), (4, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    "1d_stride3_dil": (1, (2, 2, 4), (2, 3, 2), True,
                       dict(stride=3, output_padding=2, dilation=2, padding=1)),
    "1d_groups": (1, (1, 4, 6), (4, 1, 3), False, dict(groups=4, stride=2)),
    "2d": (2, (2, 4, 3, 4), (4, 2, 3, 3), True,
           dict(stride=2, padding=1, output_padding=1, groups=2)),
    "2d_stride3": (2, (2, 3, 3, 2), (3, 2, 3, 2), True,
                   dict(stride=3, output_padding=(2, 1), dilation=(1, 2))),
    "2d_op_below_dilation": (2, (1, 2, 4, 3), (2, 2, 2, 3), True,
                             dict(stride=1, dilation=2, output_padding=1)),
    "2d_batch1_no_bias": (2, (1, 3, 5, 4), (3, 2, 4, 4), False, dict(stride=2, padding=2)),
    "2d_stride1": (2, (2, 2, 4, 4), (2, 3, 3, 3), True, dict(padding=1)),
    "3d": (3, (2, 2, 2, 3, 2), (2, 2, 2, 2, 3), True,
           dict(stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 0))),
}


@DTYPES
@pytest.mark.parametrize("case", list(TRANSPOSE_CASES))
def test_conv_transpose_functional(case, tol):
    D, xs, ws, bias, kw = TRANSPOSE_CASES[case]
    lam, tor = getattr(F, f"conv_transpose{D}d"), getattr(TF, f"conv_transpose{D}d")
    arrays = (rand(*xs, seed=8), _w(*ws, seed=9)) + ((_w(ws[1] * kw.get("groups", 1)),)
                                                      if bias else ())
    check_op(lambda *t: lam(*t, **kw), lambda *t: tor(*t, **kw), *arrays, **tol)


def test_conv_transpose_is_the_input_gradient_of_conv():
    x = lamina.tensor(rand(2, 3, 7, 8, seed=10), requires_grad=True)
    w = lamina.tensor(_w(4, 3, 3, 3))
    y = F.conv2d(x, w, stride=2, padding=1)
    g = rand(*y.shape, seed=11)
    y.backward(lamina.tensor(g))
    xt = F.conv_transpose2d(lamina.tensor(g), w, stride=2, padding=1, output_padding=(0, 1))
    np.testing.assert_allclose(xt.numpy(), x.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- causal convolution
@DTYPES
@pytest.mark.parametrize("k,d,s", [(3, 1, 1), (2, 4, 1), (3, 2, 2), (1, 1, 1)])
def test_causal_conv1d_equals_left_padded_conv(k, d, s, tol):
    x, w, b = rand(2, 3, 11, seed=12), _w(4, 3, k), _w(4, seed=13)
    check_op(lambda *t: F.causal_conv1d(*t, stride=s, dilation=d),
             lambda x_, *t: TF.conv1d(TF.pad(x_, (d * (k - 1), 0)), *t, stride=s, dilation=d),
             x, w, b, **tol)


def test_causal_conv1d_ignores_the_future():
    lamina.manual_seed(0)
    layer = nn.CausalConv1d(2, 3, kernel_size=3, dilation=2).double()
    x = rand(1, 2, 16, seed=14)
    y = layer(lamina.tensor(x)).numpy()
    assert y.shape == (1, 3, 16)
    for t in (0, 5, 11):
        x2 = x.copy()
        x2[..., t + 1:] = rand(1, 2, 15 - t, seed=15 + t)
        y2 = layer(lamina.tensor(x2)).numpy()
        np.testing.assert_array_equal(y2[..., :t + 1], y[..., :t + 1])
        assert not np.allclose(y2[..., t + 1:], y[..., t + 1:])
    # the gradient of output t reaches only inputs <= t, and exactly the dilated taps
    xt = lamina.tensor(x, requires_grad=True)
    layer(xt)[0, :, 9].sum().backward()
    touched = np.nonzero(np.abs(xt.grad.numpy()).sum(axis=(0, 1)))[0]
    assert touched.tolist() == [5, 7, 9]


def test_causal_stack_receptive_field():
    """WaveNet stack with dilations 1, 2, 4, 8 and kernel 2 sees exactly 16 past steps."""
    net = nn.Sequential(*[nn.CausalConv1d(1, 1, 2, dilation=2 ** i) for i in range(4)]).double()
    x = lamina.tensor(rand(1, 1, 40, seed=16), requires_grad=True)
    net(x)[0, 0, 30].backward()
    touched = np.nonzero(x.grad.numpy()[0, 0])[0]
    assert touched.min() == 15 and touched.max() == 30


class _TorchCausal(tnn.Conv1d):
    def forward(self, x):
        return super().forward(TF.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))


@DTYPES
def test_causal_conv1d_module(tol):
    check_module(nn.CausalConv1d(3, 4, 3, dilation=2),
                 _TorchCausal(3, 4, 3, dilation=2), rand(2, 3, 9, seed=17), **tol)


# ---------------------------------------------------------------- modules
MODULE_CASES = {
    "Conv1d": (lambda M: M.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    "Conv1d_reflect": (lambda M: M.Conv1d(2, 3, 3, padding=2, padding_mode="reflect"),
                       (2, 2, 7)),
    "Conv2d": (lambda M: M.Conv2d(3, 4, (3, 2), padding=1, dilation=(1, 2)), (2, 3, 6, 7)),
    "Conv2d_same_even_nobias": (lambda M: M.Conv2d(2, 3, 4, padding="same", bias=False),
                                (2, 2, 5, 6)),
    "Conv2d_depthwise": (lambda M: M.Conv2d(4, 8, 3, groups=4, stride=2), (2, 4, 7, 7)),
    "Conv2d_circular": (lambda M: M.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
                        (1, 2, 5, 4)),
    "Conv2d_replicate_same": (lambda M: M.Conv2d(2, 2, 2, padding="same",
                                                 padding_mode="replicate"), (1, 2, 4, 5)),
    "Conv3d": (lambda M: M.Conv3d(2, 3, 2, padding=(1, 0, 1), stride=(1, 1, 2)),
               (2, 2, 3, 4, 5)),
    "ConvTranspose1d": (lambda M: M.ConvTranspose1d(3, 2, 3, stride=3, output_padding=2,
                                                    padding=1), (2, 3, 5)),
    "ConvTranspose2d": (lambda M: M.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                    output_padding=1, groups=2),
                        (2, 4, 3, 4)),
    "ConvTranspose2d_dil_nobias": (lambda M: M.ConvTranspose2d(2, 3, (2, 3), dilation=2,
                                                               bias=False), (1, 2, 3, 3)),
    "ConvTranspose3d": (lambda M: M.ConvTranspose3d(2, 2, 2, stride=2), (1, 2, 2, 3, 2)),
}


@DTYPES
@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_conv_modules(case, tol):
    build, shape = MODULE_CASES[case]
    check_module(build(nn), build(tnn), rand(*shape, seed=18), **tol)


def test_conv_transpose_output_size():
    lamina.manual_seed(0)
    layer, tlayer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), \
        tnn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    layer.double().load_state_dict({k: v.numpy() for k, v in tlayer.state_dict().items()})
    x = rand(1, 2, 4, 5, seed=19)
    for size in [(7, 9), (8, 10), (1, 2, 8, 9)]:
        y = layer(lamina.tensor(x), output_size=size)
        ty = tlayer(torch.tensor(x), output_size=size)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(2, 3.*output_size \(9, 9\)"):
        layer(lamina.tensor(x), output_size=(9, 9))


@pytest.mark.parametrize("cls,args,wshape", [
    ("Conv1d", (4, 6, 3), (6, 4, 3)),
    ("Conv2d", (4, 6, (3, 5), 1, 0, 1, 2), (6, 2, 3, 5)),
    ("Conv3d", (2, 3, 2), (3, 2, 2, 2, 2)),
    ("ConvTranspose1d", (4, 6, 3), (4, 6, 3)),
    ("ConvTranspose2d", (4, 6, 3, 1, 0, 0, 2), (4, 3, 3, 3)),
    ("CausalConv1d", (4, 6, 3), (6, 4, 3)),
])
def test_conv_default_init_shapes_and_names(cls, args, wshape):
    lamina.manual_seed(0)
    layer = getattr(nn, cls)(*args)
    assert layer.weight.shape == wshape and layer.bias.shape == (args[1],)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(wshape[1] * math.prod(wshape[2:]))  # kaiming_uniform_(a=sqrt(5))
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32
        assert np.abs(p.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.8 * bound
    assert 0.45 * bound < layer.weight.numpy().std() < 0.7 * bound  # U(-b, b): std b/sqrt(3)
    # torch's default init draws from the same distribution
    tl = getattr(tnn, cls if cls != "CausalConv1d" else "Conv1d")(*args)
    assert abs(tl.weight.detach().abs().max().item() - bound) < 0.2 * bound
    assert getattr(nn, cls)(*args, bias=False).bias is None
    assert getattr(nn, cls)(*args, dtype=lamina.float64).weight.dtype == np.float64


def test_conv_repr_matches_torch():
    for args, kw in [((1, 6, 5), dict(padding=2)), ((3, 8, 3), dict(stride=2, groups=1)),
                     ((4, 4, 3), dict(groups=4, bias=False, dilation=2)),
                     ((2, 3, 3), dict(padding="same", padding_mode="reflect"))]:
        assert repr(nn.Conv2d(*args, **kw)) == repr(tnn.Conv2d(*args, **kw))
    assert repr(nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)) == \
        repr(tnn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1))


def test_conv_trains_in_a_model():
    """Two SGD steps on a conv net lower the loss (the layer composes with the rest)."""
    lamina.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = lamina.tensor(rand(8, 1, 6, 6, seed=20, dtype=np.float32))
    y = lamina.tensor(np.arange(8) % 3)
    opt = lamina.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------- errors
def test_conv_error_wrong_channels():
    layer = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)"
                                         r"\): expected input with 3 channels .*\(2, 4, 8, 8\)"):
        layer(lamina.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"conv1d: expected input with 4 channels \(weight "
                                         r"\(2, 2, 3\), groups=2\).*\(1, 3, 5\)"):
        F.conv1d(lamina.zeros(1, 3, 5), lamina.zeros(2, 2, 3), groups=2)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(4, 2.*expected input with 4 "
                                         r"channels.*\(1, 3, 5, 5\)"):
        nn.ConvTranspose2d(4, 2, 3)(lamina.zeros(1, 3, 5, 5))


def test_conv_error_wrong_rank():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*expected a 4-D input.*\(3, 8, 8, 8, "
                                         r"8\)"):
        nn.Conv2d(3, 8, 3)(lamina.zeros(3, 8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"Conv1d\(2, 2.*expected a 3-D input.*\(5,\)"):
        nn.Conv1d(2, 2, 3)(lamina.zeros(5))
    with pytest.raises(ValueError, match=r"conv3d: weight must have 5 dimensions, got shape "
                                         r"\(2, 2, 3, 3\)"):
        F.conv3d(lamina.zeros(1, 2, 4, 4, 4), lamina.zeros(2, 2, 3, 3))


def test_conv_error_input_smaller_than_kernel():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 2, kernel_size=\(5, 5\).*input of shape "
                                         r"\(1, 1, 3, 6\).*padded \(3, 6\).*kernel \(5, 5\)"):
        nn.Conv2d(1, 2, 5)(lamina.zeros(1, 1, 3, 6))
    with pytest.raises(ValueError, match=r"Conv1d.*\(1, 1, 6\).*padded \(8,\).*dilated\) "
                                         r"kernel \(9,\)"):
        nn.Conv1d(1, 1, 3, dilation=4, padding=1)(lamina.zeros(1, 1, 6))
    with pytest.raises(ValueError, match=r"conv_transpose1d: input of shape \(1, 2, 1\).*"
                                         r"empty output"):
        F.conv_transpose1d(lamina.zeros(1, 2, 1), lamina.zeros(2, 1, 1), padding=1)


def test_conv_error_groups_not_dividing():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(3\) and out_channels \(6\) "
                                         r"must be divisible by groups \(2\)"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match=r"conv2d: expected input with 2 channels \(weight "
                                         r"\(4, 1, 3, 3\), groups=2\), got input of shape "
                                         r"\(1, 3, 5, 5\) with 3 channels, which groups=2 does "
                                         r"not divide"):
        F.conv2d(lamina.zeros(1, 3, 5, 5), lamina.zeros(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: groups=3 must divide the output channels "
                                         r"\(4, weight shape \(4, 1, 3, 3\)\)"):
        F.conv2d(lamina.zeros(1, 3, 5, 5), lamina.zeros(4, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match=r"conv_transpose2d: groups=2 must divide the input "
                                         r"channels \(3, input shape \(1, 3, 5, 5\)\)"):
        F.conv_transpose2d(lamina.zeros(1, 3, 5, 5), lamina.zeros(3, 1, 3, 3), groups=2)


def test_conv_error_bad_arguments():
    x = lamina.zeros(1, 2, 6, 6)
    with pytest.raises(ValueError, match=r"conv2d: padding='same' is not supported for "
                                         r"strided"):
        F.conv2d(x, lamina.zeros(2, 2, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' is not supported"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than "
                                         r"either stride \(2, 2\) or dilation \(1, 1\)"):
        F.conv_transpose2d(x, lamina.zeros(2, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(2,\), got \(3,\)"):
        F.conv2d(x, lamina.zeros(2, 2, 3, 3), lamina.zeros(3))
    with pytest.raises(ValueError, match=r"conv2d: stride must be an int or a tuple of 2"):
        F.conv2d(x, lamina.zeros(2, 2, 3, 3), stride=(1, 1, 1))
    with pytest.raises(TypeError, match=r"conv2d: input \(float32\), weight \(float64\)"):
        F.conv2d(x, lamina.zeros(2, 2, 3, 3, dtype=lamina.float64))
    with pytest.raises(ValueError, match=r"Conv2d: padding_mode must be one of"):
        nn.Conv2d(2, 2, 3, padding_mode="mirror")
