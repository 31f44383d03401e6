"""Pooling and resampling: values, input gradients and indices against PyTorch in float32
and float64, float64 gradcheck, edge cases (overlap, stride > kernel, padding, dilation,
ceil_mode, count_include_pad, uneven adaptive windows, ties, NaN, batch 1, unbatched,
non-contiguous input) and error messages."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.autograd import gradcheck
from helpers import check_module, check_op, noncontig, rand

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-8, atol=1e-10)}


def both(lam_fn, torch_fn, *arrays, gc=True, **kw):
    """check_op in float32 (parity only) and float64 (parity + gradcheck)."""
    check_op(lam_fn, torch_fn, *arrays, dtype=np.float32, check_grad=False, **TOL[np.float32],
             **kw)
    return check_op(lam_fn, torch_fn, *arrays, dtype=np.float64, check_grad=gc,
                    **TOL[np.float64], **kw)


def distinct(*shape, seed=0):
    """Values 0.05 apart in random order: no ties, so max pooling is differentiable."""
    n = math.prod(shape)
    return ((np.random.default_rng(seed).permutation(n) - n / 2) * 0.05).reshape(shape)


def pool_fns(n, kind):
    return getattr(F, f"{kind}_pool{n}d"), getattr(TF, f"{kind}_pool{n}d")


# ---------------------------------------------------------------- max pooling
MAX_CASES = [
    # n, shape, kernel, stride, padding, dilation, ceil_mode
    (1, (2, 3, 11), 3, 2, 1, 1, False),
    (1, (2, 3, 10), 2, 3, 0, 1, False),          # stride > kernel
    (1, (2, 2, 12), 3, 2, 1, 2, True),           # dilation, ceil_mode
    (2, (2, 3, 7, 8), 2, None, 0, 1, False),     # default stride, odd size
    (2, (2, 3, 6, 7), 3, 1, 1, 1, False),        # overlap, padding
    (2, (2, 2, 9, 8), (2, 3), (3, 2), (1, 0), (2, 1), True),
    (2, (2, 3, 7, 7), 2, 3, 0, 1, False),        # stride > kernel (gaps)
    (2, (1, 2, 7, 7), 2, 2, 0, 1, True),         # ceil_mode adds a window (batch 1)
    (2, (2, 2, 5, 5), 3, 2, 1, 1, True),         # ceil window starting in the input
    (2, (2, 2, 4, 4), 6, 1, 1, 1, False),        # kernel as large as the padded input
    (2, (3, 6, 5), 2, 1, 1, 2, False),           # unbatched
    (3, (2, 2, 5, 6, 4), 2, None, 0, 1, False),
    (3, (1, 2, 5, 5, 6), 3, 2, 1, 1, True),
]


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool(case):
    n, shape, k, s, p, d, ceil = case
    lf, tf = pool_fns(n, "max")
    x = distinct(*shape)
    outs = both(lambda t: lf(t, k, s, p, d, ceil, True),
                lambda t: tf(t, k, s, p, d, ceil, True), x)
    assert outs[1].dtype == np.int64


def test_max_pool_module_defaults_and_noncontiguous():
    x = noncontig(distinct(2, 3, 8, 6))
    assert not x.flags.c_contiguous
    for dtype in (np.float32, np.float64):
        check_module(nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                     torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), x, dtype=dtype)
        check_module(nn.MaxPool1d(2), torch.nn.MaxPool1d(2), distinct(2, 3, 9), dtype=dtype)
        check_module(nn.MaxPool3d((1, 2, 2)), torch.nn.MaxPool3d((1, 2, 2)),
                     distinct(1, 2, 3, 4, 4), dtype=dtype)
    assert repr(nn.MaxPool2d(2)) == repr(torch.nn.MaxPool2d(2))
    out, idx = nn.MaxPool2d(2, return_indices=True)(lamina.tensor(x))
    assert out.shape == (2, 3, 4, 3) and idx.shape == out.shape


@pytest.mark.parametrize("n", [1, 2, 3])
def test_max_pool_ties_go_to_first_max(n):
    """Gradient and index go to the first maximum in scan order, as in PyTorch."""
    rng = np.random.default_rng(1)
    shape = (2, 3) + (6,) * n
    for x in (rng.integers(0, 3, shape).astype(np.float64), np.zeros(shape)):
        for k, s, p in ((2, 2, 0), (3, 1, 1), (3, 2, 1)):
            lf, tf = pool_fns(n, "max")
            check_op(lambda t: lf(t, k, s, p, return_indices=True),
                     lambda t: tf(t, k, s, p, return_indices=True), x,
                     dtype=np.float64, check_grad=False, **TOL[np.float64])


def test_max_pool_nan_and_inf_match_torch():
    x = distinct(1, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 3] = x[0, 1, 0, 0] = np.nan
    x[0, 1, 5, :] = -np.inf  # a window of -inf next to padding
    x[0, 1, 4, :] = -np.inf
    for k, s, p in ((2, 2, 0), (3, 1, 1), (2, 2, 1)):
        lo, li = F.max_pool2d(lamina.tensor(x), k, s, p, return_indices=True)
        to, ti = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
        np.testing.assert_array_equal(lo.numpy(), to.numpy())
        np.testing.assert_array_equal(li.numpy(), ti.numpy())


def test_max_pool_inference_path_and_no_grad():
    x = distinct(2, 3, 8, 8)
    with lamina.no_grad():
        out = F.max_pool2d(lamina.tensor(x, requires_grad=True), 3, 2, 1)
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), TF.max_pool2d(torch.tensor(x), 3, 2, 1).numpy())


# ---------------------------------------------------------------- average pooling
AVG_CASES = [
    # n, shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    (1, (2, 3, 11), 3, 2, 1, False, True, None),
    (1, (2, 3, 11), 3, 2, 1, True, False, None),
    (1, (2, 3, 10), 2, 3, 0, False, True, None),
    (2, (2, 3, 7, 8), 2, None, 0, False, True, None),
    (2, (2, 3, 6, 7), 3, 1, 1, False, True, None),
    (2, (2, 3, 6, 7), 3, 1, 1, False, False, None),
    (2, (2, 2, 7, 7), 2, 2, 0, True, True, None),        # ceil_mode adds a window
    (2, (2, 2, 8, 9), (3, 2), (2, 3), (1, 1), True, True, None),
    (2, (2, 2, 8, 9), (3, 2), (2, 3), (1, 1), True, False, None),
    (2, (1, 2, 5, 5), 3, 2, 1, False, True, 4),         # divisor_override
    (2, (2, 2, 4, 4), 6, 1, 1, False, False, None),      # kernel = padded input
    (2, (3, 6, 5), 2, 1, 1, False, True, None),          # unbatched
    (3, (2, 2, 5, 6, 4), 2, None, 0, False, True, None),
    (3, (1, 2, 5, 5, 6), 3, 2, 1, True, False, None),
    (3, (1, 2, 4, 4, 4), 2, 2, 1, True, True, 3),
]


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool(case):
    n, shape, k, s, p, ceil, cip, div = case
    lf, tf = pool_fns(n, "avg")
    extra = () if n == 1 else (div,)
    x = rand(*shape, seed=2)
    both(lambda t: lf(t, k, s, p, ceil, cip, *extra), lambda t: tf(t, k, s, p, ceil, cip, *extra),
         x)


def test_avg_pool_modules():
    x = noncontig(rand(2, 3, 7, 6, seed=3))
    for dtype in (np.float32, np.float64):
        check_module(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                     torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), x,
                     dtype=dtype)
        check_module(nn.AvgPool1d(3, 1, 1), torch.nn.AvgPool1d(3, 1, 1), rand(2, 3, 9),
                     dtype=dtype)
        check_module(nn.AvgPool3d(2, divisor_override=3),
                     torch.nn.AvgPool3d(2, divisor_override=3), rand(1, 2, 4, 4, 5), dtype=dtype)
    for m, t in ((nn.AvgPool1d(3), torch.nn.AvgPool1d(3)),
                 (nn.AvgPool2d(2), torch.nn.AvgPool2d(2))):
        assert repr(m) == repr(t)


# ---------------------------------------------------------------- lp pooling
@pytest.mark.parametrize("p,k,s,ceil", [(2, 3, 2, False), (2, 2, None, True), (3, 3, 1, False),
                                        (1.5, 2, 3, True)])
def test_lp_pool(p, k, s, ceil):
    x1 = rand(2, 3, 9, low=0.2, high=2.0, seed=4)   # positive: x^p defined for odd/fractional p
    x2 = rand(2, 2, 7, 6, low=0.2, high=2.0, seed=5)
    both(lambda t: F.lp_pool1d(t, p, k, s, ceil), lambda t: TF.lp_pool1d(t, p, k, s, ceil), x1)
    both(lambda t: F.lp_pool2d(t, p, k, s, ceil), lambda t: TF.lp_pool2d(t, p, k, s, ceil), x2)


def test_lp_pool_signed_input_and_modules():
    x = rand(2, 3, 6, 7, seed=6)  # p = 2 on signed values
    both(lambda t: F.lp_pool2d(t, 2, 2), lambda t: TF.lp_pool2d(t, 2, 2), x)
    both(lambda t: F.lp_pool2d(t, math.inf, 2), lambda t: TF.lp_pool2d(t, math.inf, 2),
         distinct(2, 2, 6, 6) + 0.01)
    for dtype in (np.float32, np.float64):
        check_module(nn.LPPool2d(2, (2, 3), stride=2), torch.nn.LPPool2d(2, (2, 3), stride=2),
                     x, dtype=dtype)
        check_module(nn.LPPool1d(3, 2), torch.nn.LPPool1d(3, 2), rand(2, 2, 8, low=0.1, high=1),
                     dtype=dtype)
    assert repr(nn.LPPool2d(2, 3)) == repr(torch.nn.LPPool2d(2, 3))


# ---------------------------------------------------------------- log-sum-exp pooling
def lse_reference(x, k, s, r):
    kh, kw = k
    sh, sw = s
    oh, ow = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    out = np.empty(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            w = x[..., i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(x.shape[:-2] + (-1,))
            out[..., i, j] = np.log(np.mean(np.exp(r * w), axis=-1)) / r
    return out


@pytest.mark.parametrize("k,s,r", [((2, 2), (2, 2), 1.0), ((3, 2), (1, 2), 0.5),
                                   ((2, 3), (3, 2), 4.0), ((3, 3), (2, 2), -2.0)])
def test_lse_pool2d_formula_and_gradcheck(k, s, r):
    x = rand(2, 3, 7, 8, seed=7)
    out = F.lse_pool2d(lamina.tensor(x), k, s, r)
    np.testing.assert_allclose(out.numpy(), lse_reference(x, k, s, r), rtol=1e-12, atol=1e-12)
    out32 = F.lse_pool2d(lamina.tensor(x.astype(np.float32)), k, s, r)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), lse_reference(x, k, s, r), rtol=1e-5, atol=1e-6)
    assert gradcheck(lambda t: F.lse_pool2d(t, k, s, r),
                     [lamina.tensor(x[:1, :2], requires_grad=True)])


def test_lse_pool2d_limits_stability_and_module():
    x = distinct(2, 3, 6, 6)
    xt = lamina.tensor(x * 40)  # exp(r x) overflows without the max factored out
    big = F.lse_pool2d(xt, 2, r=10.0)
    assert np.isfinite(big.numpy()).all()
    # r -> inf is max pooling, r -> 0 is average pooling
    np.testing.assert_allclose(F.lse_pool2d(lamina.tensor(x), 2, r=1e4).numpy(),
                               TF.max_pool2d(torch.tensor(x), 2).numpy(), atol=2e-4)
    np.testing.assert_allclose(F.lse_pool2d(lamina.tensor(x), 2, r=1e-6).numpy(),
                               TF.avg_pool2d(torch.tensor(x), 2).numpy(), atol=1e-5)
    m = nn.LSEPool2d(3, stride=1, r=2.0)
    out = m(lamina.tensor(x, requires_grad=True))
    np.testing.assert_allclose(out.numpy(), lse_reference(x, (3, 3), (1, 1), 2.0), rtol=1e-12)
    assert gradcheck(m, [lamina.tensor(x[:1, :1], requires_grad=True)])
    assert gradcheck(lambda t: F.lse_pool1d(t, 3, 2, 1.5),
                     [lamina.tensor(rand(2, 2, 9, seed=8), requires_grad=True)])


# ---------------------------------------------------------------- adaptive pooling
ADAPTIVE_CASES = [
    (1, (2, 3, 7), 3), (1, (2, 3, 5), 2), (1, (2, 3, 9), 1), (1, (2, 3, 8), 4),
    (1, (2, 2, 3), 5),                                    # output larger than input
    (2, (2, 3, 7, 5), (3, 2)), (2, (2, 3, 7, 7), 1), (2, (2, 3, 8, 6), (4, 3)),
    (2, (2, 3, 6, 7), (None, 3)), (2, (3, 5, 7), (2, 4)), (2, (1, 2, 3, 4), (5, 6)),
    (3, (1, 2, 5, 4, 7), (2, 3, 3)), (3, (2, 2, 4, 4, 4), 1),
]


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_avg_pool(case):
    n, shape, out = case
    lf, tf = getattr(F, f"adaptive_avg_pool{n}d"), getattr(TF, f"adaptive_avg_pool{n}d")
    both(lambda t: lf(t, out), lambda t: tf(t, out), rand(*shape, seed=9))


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_max_pool(case):
    n, shape, out = case
    lf, tf = getattr(F, f"adaptive_max_pool{n}d"), getattr(TF, f"adaptive_max_pool{n}d")
    both(lambda t: lf(t, out, True), lambda t: tf(t, out, True), distinct(*shape, seed=10))


def test_adaptive_max_pool_ties_nan_and_modules():
    x = np.random.default_rng(11).integers(0, 2, (2, 3, 7, 5)).astype(np.float64)
    check_op(lambda t: F.adaptive_max_pool2d(t, (3, 2), True),
             lambda t: TF.adaptive_max_pool2d(t, (3, 2), True), x, dtype=np.float64,
             check_grad=False, **TOL[np.float64])
    x = distinct(1, 1, 5, 5)
    x[0, 0, 1, 1] = x[0, 0, 3, 2] = np.nan
    lo, li = F.adaptive_max_pool2d(lamina.tensor(x), 3, True)
    to, ti = TF.adaptive_max_pool2d(torch.tensor(x), 3, True)
    np.testing.assert_array_equal(lo.numpy(), to.numpy())
    np.testing.assert_array_equal(li.numpy(), ti.numpy())
    xn = noncontig(rand(2, 3, 7, 6, seed=12))
    for dtype in (np.float32, np.float64):
        check_module(nn.AdaptiveAvgPool2d((3, 4)), torch.nn.AdaptiveAvgPool2d((3, 4)), xn,
                     dtype=dtype)
        check_module(nn.AdaptiveAvgPool1d(1), torch.nn.AdaptiveAvgPool1d(1), rand(2, 3, 5),
                     dtype=dtype)
        check_module(nn.AdaptiveMaxPool2d(1), torch.nn.AdaptiveMaxPool2d(1), xn, dtype=dtype)
        check_module(nn.AdaptiveMaxPool1d(3), torch.nn.AdaptiveMaxPool1d(3),
                     distinct(2, 3, 7), dtype=dtype)
    out, idx = nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(lamina.tensor(xn))
    _, tidx = torch.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(torch.tensor(xn))
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


# ---------------------------------------------------------------- k-max pooling
def torch_kmax(t, k, dim):
    idx = t.topk(k, dim).indices.sort(dim).values
    return t.gather(dim, idx)


@pytest.mark.parametrize("shape,k,dim", [((2, 3, 10), 4, -1), ((2, 7, 3), 3, 1), ((9,), 9, 0),
                                         ((1, 2, 6), 1, 2)])
def test_kmax_pool(shape, k, dim):
    both(lambda t: F.kmax_pool(t, k, dim), lambda t: torch_kmax(t, k, dim), distinct(*shape))


def test_kmax_pool_order_ties_and_module():
    x = lamina.tensor([[3.0, 1.0, 5.0, 2.0, 5.0, 0.0, 3.0]])
    np.testing.assert_array_equal(F.kmax_pool(x, 3).numpy(), [[3.0, 5.0, 5.0]])
    np.testing.assert_array_equal(F.kmax_pool(x, 4).numpy(), [[3.0, 5.0, 5.0, 3.0]])
    m = nn.KMaxPool(2)
    xt = lamina.tensor(distinct(2, 3, 8), requires_grad=True)
    out = m(xt)
    out.sum().backward()
    assert out.shape == (2, 3, 2) and xt.grad.numpy().sum() == 12
    with pytest.raises(ValueError, match=r"kmax_pool.*\(2, 3, 8\)"):
        F.kmax_pool(xt, 9)


# ---------------------------------------------------------------- unpooling
@pytest.mark.parametrize("n,shape,k,s,p", [(1, (2, 3, 9), 2, 2, 0), (1, (2, 3, 10), 3, 3, 1),
                                           (2, (2, 3, 6, 8), 2, 2, 0), (2, (1, 2, 7, 7), 3, 2, 1),
                                           (2, (3, 5, 6), (2, 3), (2, 3), 0)])
def test_max_unpool_round_trip(n, shape, k, s, p):
    x = distinct(*shape) + 0.01  # no zeros, so "nonzero" marks the unpooled positions
    pooled, idx = getattr(F, f"max_pool{n}d")(lamina.tensor(x), k, s, p, return_indices=True)
    tpooled, tidx = getattr(TF, f"max_pool{n}d")(torch.tensor(x), k, s, p, return_indices=True)
    lu, tu = getattr(F, f"max_unpool{n}d"), getattr(TF, f"max_unpool{n}d")
    # overlapping windows can share a maximum: unpooling writes it twice and the numerical
    # derivative only sees one write, so gradcheck applies to disjoint windows only
    both(lambda t: lu(t, idx, k, s, p), lambda t: tu(t, tidx, k, s, p), pooled.numpy(),
         gc=np.all(np.array(s) >= np.array(k)))
    # every max lands back where it came from, everything else is zero
    up = lu(pooled, idx, k, s, p, output_size=x.shape).numpy()
    keep = up != 0
    np.testing.assert_array_equal(up[keep], x[keep])
    planes = idx.numpy().reshape(-1, idx.shape[-1] if n == 1 else idx.shape[-1] * idx.shape[-2])
    distinct_switches = sum(len(np.unique(row)) for row in planes)
    assert keep.sum() == distinct_switches


def test_max_unpool_output_size_and_module():
    x = distinct(2, 3, 7, 7)
    pooled, idx = F.max_pool2d(lamina.tensor(x), 2, return_indices=True)
    _, tidx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    for size in ((7, 7), (2, 3, 7, 7), (6, 7)):
        both(lambda t: F.max_unpool2d(t, idx, 2, output_size=size),
             lambda t: TF.max_unpool2d(t, tidx, 2, output_size=size), pooled.numpy())
    m, tm = nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)
    out = m(pooled, idx, output_size=(7, 7))
    np.testing.assert_array_equal(out.numpy(), tm(torch.tensor(pooled.numpy()), tidx,
                                                  output_size=(7, 7)).numpy())
    assert repr(m) == repr(tm)
    with pytest.raises(ValueError, match="max_unpool2d.*output_size"):
        F.max_unpool2d(pooled, idx, 2, output_size=(9, 7))
    with pytest.raises(ValueError, match="max_unpool2d.*out of range"):
        F.max_unpool2d(pooled, idx, 2, output_size=(5, 5))
    with pytest.raises(ValueError, match=r"max_unpool2d: indices.*\(2, 3, 3, 3\)"):
        F.max_unpool2d(pooled, idx[:1], 2)


# ---------------------------------------------------------------- interpolation
INTERP_CASES = [
    # shape, size, scale_factor, mode, align_corners
    ((2, 3, 5, 4), None, 2, "nearest", None),
    ((2, 3, 5, 4), (7, 9), None, "nearest", None),
    ((2, 3, 7, 6), (5, 4), None, "nearest", None),        # downsampling
    ((2, 3, 5, 4), None, 1.7, "nearest", None),
    ((2, 3, 5, 4), None, (1.5, 2.5), "nearest-exact", None),
    ((2, 3, 5, 4), None, 2, "bilinear", False),
    ((2, 3, 5, 4), None, 2, "bilinear", True),
    ((2, 3, 5, 4), (9, 7), None, "bilinear", False),
    ((2, 3, 5, 4), (9, 7), None, "bilinear", True),
    ((1, 2, 7, 8), (4, 3), None, "bilinear", False),      # downsampling, batch 1
    ((1, 2, 7, 8), (4, 1), None, "bilinear", True),
    ((2, 3, 5, 4), None, 1.3, "bilinear", False),
    ((2, 3, 6), None, 2.5, "linear", False),
    ((2, 3, 6), 11, None, "linear", True),
    ((2, 3, 6), 4, None, "nearest", None),
    ((1, 2, 3, 4, 3), (5, 6, 4), None, "trilinear", False),
    ((1, 2, 3, 4, 3), None, 2, "nearest", None),
    ((2, 3, 7, 5), (3, 2), None, "area", None),
]


@pytest.mark.parametrize("case", INTERP_CASES)
def test_interpolate(case):
    shape, size, sf, mode, ac = case
    both(lambda t: F.interpolate(t, size, sf, mode, ac),
         lambda t: TF.interpolate(t, size, sf, mode, ac), rand(*shape, seed=13))


def test_interpolate_recompute_scale_and_upsample_module():
    x = rand(2, 3, 5, 4, seed=14)
    both(lambda t: F.interpolate(t, scale_factor=1.7, mode="bilinear",
                                 recompute_scale_factor=True),
         lambda t: TF.interpolate(t, scale_factor=1.7, mode="bilinear",
                                  recompute_scale_factor=True), x)
    xn = noncontig(x)
    for dtype in (np.float32, np.float64):
        check_module(nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2), xn,
                     dtype=dtype)
        check_module(nn.Upsample(size=(7, 6), mode="bilinear", align_corners=True),
                     torch.nn.Upsample(size=(7, 6), mode="bilinear", align_corners=True), xn,
                     dtype=dtype)
        check_module(nn.UpsamplingBilinear2d(scale_factor=2),
                     torch.nn.UpsamplingBilinear2d(scale_factor=2), x, dtype=dtype)
    assert repr(nn.Upsample(scale_factor=2)) == repr(torch.nn.Upsample(scale_factor=2))
    same = F.interpolate(lamina.tensor(x), size=(5, 4), mode="bilinear")
    np.testing.assert_array_equal(same.numpy(), x)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call,pattern", [
    (lambda x: F.max_pool2d(x, 5), r"max_pool2d: input of shape \(2, 3, 4, 4\) is too small"),
    (lambda x: F.avg_pool2d(x, 3, padding=2), r"avg_pool2d: padding \(2, 2\) must be at most "
                                              r"half of kernel_size \(3, 3\)"),
    (lambda x: F.max_pool2d(x, 2, padding=2, dilation=3), r"max_pool2d: padding"),
    (lambda x: F.max_pool2d(x, 2, stride=0), r"max_pool2d: stride must be positive"),
    (lambda x: F.max_pool1d(x, 2), r"max_pool1d: expected a 2-D \(C, L\) or 3-D \(N, C, L\) "
                                   r"input, got shape \(2, 3, 4, 4\)"),
    (lambda x: F.max_pool3d(x[0], 2), r"max_pool3d: expected .* got shape \(3, 4, 4\)"),
    (lambda x: F.max_pool2d(x[0, 0], 2), r"max_pool2d: expected a 3-D .* got shape \(4, 4\)"),
    (lambda x: F.lse_pool2d(x, 5), r"lse_pool2d: input of shape \(2, 3, 4, 4\) is too small"),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 2, 2)), r"adaptive_avg_pool2d: output_size"),
    (lambda x: F.adaptive_max_pool1d(x, 2), r"adaptive_max_pool1d: expected .* \(2, 3, 4, 4\)"),
    (lambda x: F.interpolate(x, scale_factor=2, mode="linear"),
     r"interpolate: mode 'linear' expects a 3-D .* \(2, 3, 4, 4\)"),
    (lambda x: F.interpolate(x), r"interpolate: give exactly one of size and scale_factor"),
    (lambda x: F.interpolate(x, size=3, align_corners=True), r"interpolate: align_corners"),
    (lambda x: nn.MaxPool2d(3)(x[:, :, :2, :2]),
     r"max_pool2d: input of shape \(2, 3, 2, 2\) is too small"),
])
def test_errors_name_op_and_shapes(call, pattern):
    x = lamina.tensor(rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=pattern):
        call(x)


def test_noncontiguous_inputs_directly():
    """Strided views (a transposed tensor) go through every primitive unchanged."""
    x = distinct(2, 3, 7, 6)
    xt = lamina.tensor(x).transpose(-1, -2)
    assert not xt.data.flags.c_contiguous
    tt = torch.tensor(x).transpose(-1, -2)
    pairs = [
        (lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
         lambda t: TF.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
        (lambda t: F.avg_pool2d(t, 2, 1, 1), lambda t: TF.avg_pool2d(t, 2, 1, 1)),
        (lambda t: F.adaptive_max_pool2d(t, (4, 3)), lambda t: TF.adaptive_max_pool2d(t, (4, 3))),
        (lambda t: F.adaptive_avg_pool2d(t, (4, 3)), lambda t: TF.adaptive_avg_pool2d(t, (4, 3))),
        (lambda t: F.interpolate(t, (9, 5), mode="bilinear"),
         lambda t: TF.interpolate(t, (9, 5), mode="bilinear")),
    ]
    for lf, tf in pairs:
        np.testing.assert_allclose(lf(xt).numpy(), tf(tt).numpy(), rtol=1e-12, atol=1e-12)
    lse = F.lse_pool2d(xt, 2, 1, 2.0).numpy()
    np.testing.assert_allclose(lse, lse_reference(np.swapaxes(x, -1, -2), (2, 2), (1, 1), 2.0),
                               rtol=1e-12)


def test_nearest_with_scale_factor_keeps_the_forward_indices_in_backward():
    """1-D/3-D 'nearest' with a scale_factor whose output size equals the input size (or
    twice it): PyTorch's forward uses floor(i / scale) but its backward sends gradients as if
    the indices were i (or i // 2). lamina matches the forward values and differentiates
    that forward (checked by gradcheck)."""
    x = rand(2, 3, 4, seed=15)
    lo = F.interpolate(lamina.tensor(x, requires_grad=True), scale_factor=1.14)
    np.testing.assert_array_equal(
        lo.numpy(), TF.interpolate(torch.tensor(x), scale_factor=1.14).numpy())
    np.testing.assert_array_equal(lo.numpy()[..., :2], x[..., [0, 0]])
    for shape, sf in (((2, 3, 4), 1.14), ((2, 3, 3), 2.08), ((1, 2, 3, 2, 2), (2.08, 1.1, 1))):
        assert gradcheck(lambda t: F.interpolate(t, scale_factor=sf),
                         [lamina.tensor(rand(*shape, seed=16), requires_grad=True)])


def test_empty_batch_flows_through_forward_and_backward():
    x = np.zeros((0, 3, 6, 6))
    for lf, tf in ((lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1)),
                   (lambda t: F.avg_pool2d(t, 2), lambda t: TF.avg_pool2d(t, 2)),
                   (lambda t: F.adaptive_max_pool2d(t, 4), lambda t: TF.adaptive_max_pool2d(t, 4)),
                   (lambda t: F.interpolate(t, size=(5, 7)), lambda t: TF.interpolate(t, (5, 7)))):
        lx = lamina.tensor(x, requires_grad=True)
        out = lf(lx)
        assert out.shape == tuple(tf(torch.tensor(x)).shape)
        out.sum().backward()
        assert lx.grad.shape == x.shape
