"""Layer-library coverage beyond the per-family test files.

- float64 parity (rtol 1e-8) where only float32 was compared (Linear, F.linear,
  Flatten / Unflatten, InceptionModule in float32), the straight-through step against
  PyTorch's detach trick;
- more edge cases: 1-D 'same' / 'valid' convolutions, depthwise 3-D and transposed
  convolutions, kernels as large as the padded input, ceil_mode windows that would start
  in the padding (PyTorch drops them), stride > kernel in 3-D, weight norm on real conv
  layers, batch norm trained for several steps and then evaluated (1-D and 3-D);
- empty reductions where PyTorch allows them (losses, softmax, conv and pooling on an
  empty batch);
- large logits in float64;
- wrong inputs: the error names the layer, what it expected and the shape it got, and is
  raised by lamina (not from inside NumPy);
- structure: convolution and pooling run the same Python lines whatever the batch size
  and the output size (no loop over batch elements or output pixels), and never recurse;
- default initialisation of the layers the init table does not list, against PyTorch.
"""
import math
import os
import sys
import traceback
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
import lamina.ops.conv as conv_ops
from helpers import check_module, check_op, rand

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

DTYPES = [np.float32, np.float64]


def tol(dtype):
    """The issue's tolerances: float32 rtol 1e-4, float64 rtol 1e-8."""
    return dict(atol=1e-5, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-8)


def check(lam_fn, torch_fn, *arrays, dtype, gradcheck=True, **kw):
    """check_op at the issue's tolerances; the float64 gradcheck with the float64 run."""
    return check_op(lam_fn, torch_fn, *arrays, dtype=dtype,
                    check_grad=gradcheck and dtype == np.float64, **tol(dtype), **kw)


def distinct(*shape, seed=0):
    """Values 0.05 apart in random order: no ties, so max pooling is differentiable."""
    n = math.prod(shape)
    return ((np.random.default_rng(seed).permutation(n) - n / 2) * 0.05).reshape(shape)


# ---------------------------------------------------------------- Linear, Flatten, Unflatten
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (1, 4), (2, 3, 4), (4,)],
                         ids=["batch", "batch1", "3d", "unbatched"])
def test_linear_parity_in_both_dtypes(shape, bias, dtype):
    check_module(nn.Linear(4, 3, bias=bias), tnn.Linear(4, 3, bias=bias), rand(*shape, seed=1),
                 dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_linear_all_gradients(dtype):
    x, w, b = rand(2, 3, 5, seed=2), rand(4, 5, seed=3), rand(4, seed=4)
    check(F.linear, TF.linear, x, w, b, dtype=dtype)
    check(lambda a, c: F.linear(a, c), lambda a, c: TF.linear(a, c), x, w, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda M: M.Flatten(), lambda M: M.Flatten(0, -1), lambda M: M.Flatten(2, 3),
    lambda M: M.Unflatten(1, (2, 3)), lambda M: M.Unflatten(-1, (2, -1)),
], ids=["Flatten", "Flatten_all", "Flatten_2_3", "Unflatten", "Unflatten_minus1"])
def test_flatten_unflatten_parity_in_both_dtypes(make, dtype):
    check_module(make(nn), make(tnn), rand(2, 6, 2, 2, seed=5), dtype=dtype)


# ---------------------------------------------------------------- step, straight-through
def _torch_step(t, straight_through=False, clip=None):
    hard = (t > 0).to(t.dtype)
    if not straight_through:
        return hard
    keep = torch.ones_like(t) if clip is None else (t.abs() <= clip).to(t.dtype)
    return hard.detach() + (t - t.detach()) * keep


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip", [None, 1.0, 0.25])
def test_step_straight_through_matches_torch_detach_trick(clip, dtype):
    x = np.concatenate([rand(3, 5, low=-3, high=3, seed=6).ravel(), [0.0, -0.0, 1.0, -1.0]])
    # a deliberate non-derivative: parity of values and gradients only, no gradcheck
    check(lambda t: F.step(t, True, clip), lambda t: _torch_step(t, True, clip), x,
          dtype=dtype, gradcheck=False)
    check(lambda t: nn.Step(True, clip)(t), lambda t: _torch_step(t, True, clip), x,
          dtype=dtype, gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_values_match_torch(dtype):
    x = np.array([-2.0, -1e-30, 0.0, 1e-30, 0.5, 3.0])
    check(F.step, _torch_step, x, dtype=dtype, grad=False)


# ---------------------------------------------------------------- empty reductions
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [
    ((0, 4), 1), ((3, 0), 0), ((2, 0, 3), -1), ((3, 0), 1),
], ids=["empty_batch", "empty_other_dim", "empty_middle", "empty_reduced_dim"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_over_empty_tensors(name, shape, dim, dtype):
    check(lambda t: getattr(F, name)(t, dim), lambda t: getattr(TF, name)(t, dim),
          np.zeros(shape), dtype=dtype, gradcheck=False)


# loss name: number of float inputs (all differentiable in torch)
_EMPTY_LOSSES = {"mse_loss": 2, "l1_loss": 2, "smooth_l1_loss": 2, "huber_loss": 2,
                 "binary_cross_entropy": 2, "binary_cross_entropy_with_logits": 2,
                 "hinge_embedding_loss": 2, "gaussian_nll_loss": 3}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy's mean of an empty slice
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(_EMPTY_LOSSES))
def test_elementwise_losses_on_empty_input_like_torch(name, reduction, dtype):
    # torch: 'mean' of nothing is nan, 'sum' is 0, 'none' is empty; the gradient is empty
    arrays = [np.zeros((0, 3)) for _ in range(_EMPTY_LOSSES[name])]
    check(lambda *t: getattr(F, name)(*t, reduction=reduction),
          lambda *t: getattr(TF, name)(*t, reduction=reduction), *arrays, dtype=dtype,
          gradcheck=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_losses_on_empty_batch_like_torch(reduction, dtype):
    idx = np.zeros(0, np.int64)
    check(lambda x: F.nll_loss(x, lamina.tensor(idx), reduction=reduction),
          lambda x: TF.nll_loss(x, torch.tensor(idx), reduction=reduction), np.zeros((0, 3)),
          dtype=dtype, gradcheck=False)
    check(lambda x, q: F.cross_entropy(x, q, reduction=reduction),
          lambda x, q: TF.cross_entropy(x, q, reduction=reduction), np.zeros((0, 3)),
          np.zeros((0, 3)), dtype=dtype, gradcheck=False)
    check(lambda a, b: F.cosine_embedding_loss(a, b, lamina.tensor(idx), reduction=reduction),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(idx), reduction=reduction),
          np.zeros((0, 3)), np.zeros((0, 3)), dtype=dtype, gradcheck=False)
    check(lambda a, b, c: F.triplet_margin_loss(a, b, c, reduction=reduction),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, reduction=reduction),
          np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), dtype=dtype, gradcheck=False)
    empty = np.zeros((0, 3), dtype)
    check(lambda x: F.soft_margin_loss(x, lamina.tensor(empty), reduction=reduction),
          lambda x: TF.soft_margin_loss(x, torch.tensor(empty), reduction=reduction),
          np.zeros((0, 3)), dtype=dtype, gradcheck=False)
    check(lambda a, b, y: F.margin_ranking_loss(a, b, y, reduction=reduction),
          lambda a, b, y: TF.margin_ranking_loss(a, b, y, reduction=reduction),
          np.zeros(0), np.zeros(0), np.zeros(0), dtype=dtype, gradcheck=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_kl_div_on_empty_batch_like_torch(reduction, dtype):
    check(lambda x, t: F.kl_div(x, t, reduction=reduction),
          lambda x, t: TF.kl_div(x, t, reduction=reduction), np.zeros((0, 3)), np.zeros((0, 3)),
          dtype=dtype, gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", [
    (lambda m, x, w: m.conv1d(x[:, :, 0], w[..., 0], padding=1)),
    (lambda m, x, w: m.conv2d(x, w, stride=2)),
    (lambda m, x, w: m.conv_transpose2d(x, w.transpose(0, 1), stride=2)),
    (lambda m, x, w: m.adaptive_avg_pool2d(x, (2, 3))),
    (lambda m, x, w: m.lp_pool2d(x, 2, 2)),
    (lambda m, x, w: m.avg_pool2d(x, 3, 2, 1, True, False)),
    (lambda m, x, w: m.interpolate(x, scale_factor=2, mode="bilinear")),
], ids=["conv1d", "conv2d", "conv_transpose2d", "adaptive_avg", "lp_pool", "avg_pool_ceil",
        "bilinear"])
def test_conv_and_pooling_on_empty_batch_like_torch(call, dtype):
    x, w = np.zeros((0, 2, 5, 5)), rand(3, 2, 3, 3, seed=7)
    check(lambda a, b: call(F, a, b), lambda a, b: call(TF, a, b), x, w, dtype=dtype, gradcheck=False)


# ---------------------------------------------------------------- large logits in float64
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_and_bce_large_logits_both_dtypes(dtype):
    a = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [5.0, 5.0, 5.0]])
    t = np.array([1, 2, 0])
    for kw in ({}, {"label_smoothing": 0.2}):
        out = check(lambda x: F.cross_entropy(x, lamina.tensor(t), reduction="none", **kw),
                    lambda x: TF.cross_entropy(x, torch.tensor(t), reduction="none", **kw), a,
                    dtype=dtype, gradcheck=False)
        assert np.isfinite(out[0].numpy()).all()
    q = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    check(lambda x, p: F.cross_entropy(x, p, reduction="none"),
          lambda x, p: TF.cross_entropy(x, p, reduction="none"), a, q, dtype=dtype,
          gradcheck=False)
    z = np.array([[100.0, -100.0, 30.0], [-30.0, 0.0, 1e4]])
    y = np.array([[0.0, 1.0, 1.0], [0.0, 0.5, 0.0]])
    pw = np.array([2.0, 0.5, 1.0])
    out = check(lambda x, s: F.binary_cross_entropy_with_logits(
                    x, s, pos_weight=lamina.tensor(pw.astype(dtype)), reduction="none"),
                lambda x, s: TF.binary_cross_entropy_with_logits(
                    x, s, pos_weight=torch.tensor(pw.astype(dtype)), reduction="none"),
                z, y, dtype=dtype, gradcheck=False)
    assert np.isfinite(out[0].numpy()).all()


# ---------------------------------------------------------------- convolution edge cases
CONV_EXTRA = {
    # name: (D, x shape, w shape, bias, kwargs)
    "1d_same_odd": (1, (2, 3, 9), (4, 3, 3), True, dict(padding="same")),
    "1d_same_even_dilated": (1, (1, 2, 8), (3, 2, 4), True, dict(padding="same", dilation=2)),
    "1d_valid_no_bias": (1, (2, 3, 7), (2, 3, 3), False, dict(padding="valid")),
    "1d_kernel_fills_padded_input_batch1": (1, (1, 2, 5), (3, 2, 9), True, dict(padding=2)),
    "1d_stride_gt_kernel_tuple_args": (1, (2, 2, 11), (3, 2, 2), True,
                                       dict(stride=(4,), padding=(1,), dilation=(3,))),
    "1d_depthwise_no_bias": (1, (2, 4, 7), (4, 1, 3), False, dict(groups=4, dilation=2)),
    "2d_depthwise_stride_gt_kernel_dilated": (2, (1, 4, 9, 8), (4, 1, 2, 2), True,
                                              dict(groups=4, stride=3, dilation=2, padding=1)),
    "2d_odd_sizes_tuple_padding": (2, (3, 1, 7, 5), (2, 1, 3, 4), True,
                                   dict(padding=(2, 1), stride=(2, 1))),
    "2d_same_depthwise": (2, (2, 3, 5, 4), (3, 1, 3, 2), True, dict(padding="same", groups=3)),
    "3d_depthwise": (3, (2, 3, 4, 5, 4), (3, 1, 3, 3, 3), True, dict(groups=3, padding=1)),
    "3d_valid_dilated": (3, (1, 2, 5, 5, 6), (2, 2, 2, 2, 3), False,
                         dict(padding="valid", dilation=(2, 1, 2))),
    "3d_kernel_fills_padded_input": (3, (1, 1, 2, 3, 2), (2, 1, 4, 5, 4), True, dict(padding=1)),
    "3d_stride_gt_kernel_padding": (3, (2, 2, 5, 6, 5), (2, 2, 2, 2, 2), True,
                                    dict(stride=3, padding=(1, 0, 1))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CONV_EXTRA))
def test_conv_more_edge_cases(case, dtype):
    D, xs, ws, bias, kw = CONV_EXTRA[case]
    lam, tor = getattr(F, f"conv{D}d"), getattr(TF, f"conv{D}d")
    arrays = (rand(*xs, seed=8), rand(*ws, low=-1, high=1, seed=9))
    arrays += (rand(ws[0], seed=10),) if bias else ()
    check(lambda *t: lam(*t, **kw), lambda *t: tor(*t, **kw), *arrays, dtype=dtype)


TRANSPOSE_EXTRA = {
    # name: (D, x shape, w shape (Cin, Cout/groups, *k), bias, kwargs)
    "1d_batch1_stride_gt_kernel": (1, (1, 2, 5), (2, 3, 2), True, dict(stride=3, output_padding=1)),
    "1d_tuple_args": (1, (2, 2, 6), (2, 2, 3), False, dict(stride=(2,), padding=(2,),
                                                          dilation=(2,))),
    "2d_depthwise_bias": (2, (2, 3, 4, 4), (3, 1, 3, 3), True,
                          dict(groups=3, stride=2, padding=1, output_padding=1)),
    "2d_stride_gt_kernel_dilation": (2, (1, 2, 3, 4), (2, 2, 2, 2), True,
                                     dict(stride=(3, 4), dilation=(2, 1), output_padding=(2, 3))),
    "3d_groups": (3, (1, 4, 2, 3, 2), (4, 1, 2, 2, 2), True, dict(groups=2, stride=2)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(TRANSPOSE_EXTRA))
def test_conv_transpose_more_edge_cases(case, dtype):
    D, xs, ws, bias, kw = TRANSPOSE_EXTRA[case]
    lam, tor = getattr(F, f"conv_transpose{D}d"), getattr(TF, f"conv_transpose{D}d")
    arrays = (rand(*xs, seed=11), rand(*ws, low=-1, high=1, seed=12))
    arrays += (rand(ws[1] * kw.get("groups", 1), seed=13),) if bias else ()
    check(lambda *t: lam(*t, **kw), lambda *t: tor(*t, **kw), *arrays, dtype=dtype)


CONV_MODULES = {
    "Conv1d_same_even_dilated": (lambda M: M.Conv1d(3, 4, 4, padding="same", dilation=2),
                                 (2, 3, 9)),
    "Conv1d_valid_no_bias": (lambda M: M.Conv1d(3, 2, 3, padding="valid", bias=False),
                             (1, 3, 6)),
    "Conv2d_batch1_stride_gt_kernel": (lambda M: M.Conv2d(2, 3, 2, stride=3, dilation=2,
                                                          padding=1), (1, 2, 8, 7)),
    "Conv2d_unbatched": (lambda M: M.Conv2d(2, 3, 3, padding=1), (2, 5, 4)),
    "Conv3d_depthwise": (lambda M: M.Conv3d(3, 6, (1, 3, 3), groups=3, padding=(0, 1, 1)),
                         (2, 3, 2, 4, 5)),
    "ConvTranspose1d_depthwise": (lambda M: M.ConvTranspose1d(4, 4, 3, stride=2, groups=4,
                                                              output_padding=1), (2, 4, 5)),
    "ConvTranspose2d_batch1_no_bias": (lambda M: M.ConvTranspose2d(2, 3, 3, stride=3,
                                                                   bias=False), (1, 2, 3, 2)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CONV_MODULES))
def test_conv_modules_more_edge_cases(case, dtype):
    build, shape = CONV_MODULES[case]
    check_module(build(nn), build(tnn), rand(*shape, seed=14), dtype=dtype)


# ---------------------------------------------------------------- pooling edge cases
MAX_EXTRA = [
    # n, shape, kernel, stride, padding, dilation, ceil_mode
    (1, (2, 2, 4), 2, 3, 1, 1, True),          # ceil window starting in the padding: dropped
    (2, (1, 2, 4, 7), 2, 3, 1, 1, True),       # the same in both axes, batch 1
    (3, (1, 1, 4, 4, 5), 2, 3, 1, 1, True),
    (2, (2, 2, 6, 6), 2, 3, 1, 2, True),       # dilation with ceil_mode
    (1, (1, 3, 4), 6, 1, 1, 1, False),         # kernel as large as the padded input
    (3, (1, 2, 2, 3, 2), (4, 5, 4), 1, (1, 1, 1), 1, False),
    (3, (2, 1, 7, 6, 7), 2, 3, 1, 2, False),   # stride > kernel, padding, dilation in 3-D
    (1, (1, 2, 9), 3, 1, 1, 3, True),          # dilation 3, batch 1
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX_EXTRA, ids=[str(c) for c in MAX_EXTRA])
def test_max_pool_more_edge_cases(case, dtype):
    n, shape, k, s, p, d, ceil = case
    lf, tf = getattr(F, f"max_pool{n}d"), getattr(TF, f"max_pool{n}d")
    out = check(lambda t: lf(t, k, s, p, d, ceil, True), lambda t: tf(t, k, s, p, d, ceil, True),
                distinct(*shape), dtype=dtype)
    assert out[1].dtype == np.int64


AVG_EXTRA = [
    # n, shape, kernel, stride, padding, ceil_mode, count_include_pad
    (1, (2, 2, 4), 2, 3, 1, True, True),
    (1, (2, 2, 4), 2, 3, 1, True, False),
    (2, (1, 2, 4, 7), 2, 3, 1, True, True),
    (2, (1, 2, 4, 7), 2, 3, 1, True, False),
    (3, (1, 1, 4, 4, 5), 2, 3, 1, True, True),
    (1, (1, 3, 4), 6, 1, 1, False, False),     # kernel = padded input
    (2, (1, 2, 2, 3), (4, 5), 1, (1, 1), False, False),
    (3, (1, 2, 4, 3, 2), (4, 3, 2), 1, 0, False, True),   # (torch's avg_pool3d: unpadded)
    (3, (2, 1, 7, 6, 7), 2, 3, 1, False, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_EXTRA, ids=[str(c) for c in AVG_EXTRA])
def test_avg_pool_more_edge_cases(case, dtype):
    n, shape, k, s, p, ceil, cip = case
    lf, tf = getattr(F, f"avg_pool{n}d"), getattr(TF, f"avg_pool{n}d")
    check(lambda t: lf(t, k, s, p, ceil, cip), lambda t: tf(t, k, s, p, ceil, cip),
          rand(*shape, seed=15), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,k,s,ceil", [(2, 2, 3, False), (2, 2, 3, True), (3, (3, 2), (1, 4), True),
                                        (1, 4, 1, False)])
def test_lp_pool_stride_gt_kernel_and_whole_input(p, k, s, ceil, dtype):
    x2 = rand(2, 2, 7, 8, low=0.2, high=2.0, seed=16)
    check(lambda t: F.lp_pool2d(t, p, k, s, ceil), lambda t: TF.lp_pool2d(t, p, k, s, ceil), x2,
          dtype=dtype)
    k1 = k if isinstance(k, int) else k[0]
    s1 = s if isinstance(s, int) else s[0]
    x1 = rand(1, 3, 4 if k1 == 4 else 8, low=0.2, high=2.0, seed=17)
    check(lambda t: F.lp_pool1d(t, p, k1, s1, ceil), lambda t: TF.lp_pool1d(t, p, k1, s1, ceil),
          x1, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_modules_batch1_and_unbatched(dtype):
    x = distinct(1, 2, 7, 5)
    check_module(nn.MaxPool2d(2, stride=3, padding=1, ceil_mode=True),
                 tnn.MaxPool2d(2, stride=3, padding=1, ceil_mode=True), x, dtype=dtype)
    check_module(nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                 tnn.AvgPool2d(3, 2, 1, count_include_pad=False), x[0], dtype=dtype)
    check_module(nn.AdaptiveMaxPool2d((2, 3)), tnn.AdaptiveMaxPool2d((2, 3)), x[0], dtype=dtype)
    check_module(nn.AdaptiveAvgPool1d(3), tnn.AdaptiveAvgPool1d(3), x[0, :, 0], dtype=dtype)
    check_module(nn.MaxPool3d(2, 1, 1, dilation=2), tnn.MaxPool3d(2, 1, 1, dilation=2),
                 distinct(2, 3, 4, 3), dtype=dtype)
    check_module(nn.Upsample(size=(4, 7), mode="bilinear"),
                 tnn.Upsample(size=(4, 7), mode="bilinear"), x, dtype=dtype)


# ---------------------------------------------------------------- normalization
def _torch_weight_norm(module, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nn.utils.weight_norm(module, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make,shape,dim", [
    (lambda M: M.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 5), 0),
    (lambda M: M.Conv1d(3, 2, 2, groups=1), (1, 3, 6), None),
    (lambda M: M.ConvTranspose2d(2, 3, 2, stride=2), (1, 2, 3, 3), 1),
], ids=["Conv2d", "Conv1d_dim_None", "ConvTranspose2d_dim1"])
def test_weight_norm_on_conv_layers(make, shape, dim, dtype):
    t = _torch_weight_norm(make(tnn), dim=dim)
    layer = nn.utils.weight_norm(make(nn), dim=dim)
    assert sorted(n for n, _ in layer.named_parameters()) == \
        sorted(n for n, _ in t.named_parameters())
    check_module(layer, t, rand(*shape, seed=18), dtype=dtype, steps=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,shape,kw", [
    ("BatchNorm1d", (6, 3, 4), {}),
    ("BatchNorm1d", (5, 3), dict(momentum=0.5, eps=1e-3)),
    ("BatchNorm3d", (2, 2, 3, 2, 3), dict(momentum=None)),
    ("BatchNorm2d", (4, 3, 2, 2), dict(affine=False)),
])
def test_batchnorm_trained_several_steps_then_evaluated(cls, shape, kw, dtype):
    """Running statistics lamina accumulated itself (not copied from torch) over several
    different batches, then used in eval; parameter gradients along the way."""
    atol, rtol = tol(dtype)["atol"], tol(dtype)["rtol"]
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    t = getattr(tnn, cls)(shape[1], **kw).to(tdt)
    layer = getattr(nn, cls)(shape[1], **kw).to(dtype)
    if t.affine:
        with torch.no_grad():
            t.weight.copy_(torch.rand(shape[1]) + 0.5)
            t.bias.copy_(torch.randn(shape[1]))
    layer.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    rng = np.random.default_rng(19)
    for step in range(5):
        if step == 4:
            layer.eval(), t.eval()
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        lx, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = layer(lx), t(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=atol, rtol=rtol,
                                   err_msg=f"step {step}: output")
        layer.zero_grad()
        t.zero_grad()
        y.backward(lamina.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), atol=atol * 10,
                                   rtol=rtol * 10, err_msg=f"step {step}: input gradient")
        for name, p in t.named_parameters():
            np.testing.assert_allclose(getattr(layer, name).grad.numpy(), p.grad.numpy(),
                                       atol=atol * 10, rtol=rtol * 10,
                                       err_msg=f"step {step}: {name} gradient")
        for name, b in t.named_buffers():
            np.testing.assert_allclose(getattr(layer, name).numpy(), b.numpy(), atol=atol,
                                       rtol=rtol, err_msg=f"step {step}: {name}")
    assert int(layer.num_batches_tracked.item()) == 4


# ---------------------------------------------------------------- blocks in float32
def test_inception_module_float32_parity():
    from test_blocks import TorchInception
    for norm in (False, True):
        args = (3, 2, 2, 3, 1, 2, 2)
        check_module(nn.InceptionModule(*args, norm=norm), TorchInception(*args, norm=norm),
                     rand(2, 3, 5, 5, seed=20), dtype=np.float32)


# ---------------------------------------------------------------- wrong inputs
def _raised_in_lamina(excinfo):
    """The exception comes from lamina's own checks, not from deep inside NumPy."""
    frames = traceback.extract_tb(excinfo.tb)
    numpy_dir = os.path.dirname(np.__file__)
    assert not frames[-1].filename.startswith(numpy_dir), frames[-1]
    assert excinfo.value.__cause__ is None


WRONG_INPUTS = [
    # (layer, input shape, error type, message pattern: layer, expected, received shape)
    (lambda: nn.MaxPool1d(2), (2, 3, 4, 4), ValueError,
     r"MaxPool1d\(kernel_size=2.*\(N, C, L\).*got shape \(2, 3, 4, 4\)"),
    (lambda: nn.MaxPool2d(3), (2, 3, 2, 2), ValueError,
     r"MaxPool2d\(kernel_size=3.*input of shape \(2, 3, 2, 2\) is too small.*kernel_size "
     r"\(3, 3\)"),
    (lambda: nn.MaxPool2d(2), (4, 4), ValueError,
     r"MaxPool2d\(kernel_size=2.*\(N, C, H, W\).*got shape \(4, 4\)"),
    (lambda: nn.MaxPool3d(3), (1, 2, 2, 4, 4), ValueError,
     r"MaxPool3d\(kernel_size=3.*\(1, 2, 2, 4, 4\) is too small"),
    (lambda: nn.AvgPool1d(5), (1, 2, 3), ValueError,
     r"AvgPool1d\(kernel_size=\(5,\).*\(1, 2, 3\) is too small.*kernel_size \(5,\)"),
    (lambda: nn.AvgPool2d(2), (4, 4), ValueError,
     r"AvgPool2d\(kernel_size=2.*\(N, C, H, W\).*got shape \(4, 4\)"),
    (lambda: nn.AvgPool3d(2), (2, 2, 2), ValueError,
     r"AvgPool3d\(kernel_size=2.*\(N, C, D, H, W\).*got shape \(2, 2, 2\)"),
    (lambda: nn.LPPool1d(2, 2), (1, 2, 3, 3), ValueError,
     r"LPPool1d\(norm_type=2.*\(N, C, L\).*got shape \(1, 2, 3, 3\)"),
    (lambda: nn.LPPool2d(2, 5), (1, 2, 3, 3), ValueError,
     r"LPPool2d\(norm_type=2.*\(1, 2, 3, 3\) is too small.*kernel_size \(5, 5\)"),
    (lambda: nn.LSEPool2d(5), (1, 2, 3, 3), ValueError,
     r"LSEPool2d\(kernel_size=5.*\(1, 2, 3, 3\) is too small"),
    (lambda: nn.AdaptiveAvgPool1d(2), (1, 2, 3, 3), ValueError,
     r"AdaptiveAvgPool1d\(output_size=2\).*\(N, C, L\).*got shape \(1, 2, 3, 3\)"),
    (lambda: nn.AdaptiveAvgPool2d(2), (5,), ValueError,
     r"AdaptiveAvgPool2d\(output_size=2\).*\(N, C, H, W\).*got shape \(5,\)"),
    (lambda: nn.AdaptiveMaxPool2d(2), (5,), ValueError,
     r"AdaptiveMaxPool2d\(output_size=2\).*\(N, C, H, W\).*got shape \(5,\)"),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3), ValueError,
     r"Upsample\(scale_factor=2.0, mode='bilinear'\).*4-D.*got shape \(1, 2, 3\)"),
    (lambda: nn.KMaxPool(5), (1, 2, 3), ValueError,
     r"KMaxPool\(k=5, dim=-1\).*\[1, 3\].*\(1, 2, 3\)"),
    (lambda: nn.Flatten(2, 3), (2, 3), IndexError,
     r"Flatten\(start_dim=2, end_dim=3\).*\(2, 3\).*out of range"),
    (lambda: nn.Unflatten(1, (2, 3)), (2, 5), ValueError,
     r"Unflatten\(dim=1, unflattened_size=\(2, 3\)\).*\(2, 5\)"),
    (lambda: nn.Dropout2d(0.5), (2, 3), ValueError,
     r"Dropout2d\(p=0.5.*4-D input.*got shape \(2, 3\)"),
    (lambda: nn.Dropout3d(0.5), (2, 3, 4), ValueError,
     r"Dropout3d\(p=0.5.*5-D.*got shape \(2, 3, 4\)"),
    (lambda: nn.Conv3d(2, 3, 2), (1, 3, 4, 4, 4), ValueError,
     r"Conv3d\(2, 3, kernel_size=\(2, 2, 2\).*2 channels.*\(1, 3, 4, 4, 4\)"),
    (lambda: nn.Conv3d(2, 3, 2), (2, 2, 4, 4, 4, 4), ValueError,
     r"Conv3d\(2, 3.*5-D input.*\(2, 2, 4, 4, 4, 4\)"),
    (lambda: nn.Conv3d(2, 3, 3), (1, 2, 2, 4, 4), ValueError,
     r"Conv3d\(2, 3.*\(1, 2, 2, 4, 4\).*smaller than the \(dilated\) kernel \(3, 3, 3\)"),
    (lambda: nn.ConvTranspose1d(2, 3, 2), (1, 2, 3, 3), ValueError,
     r"ConvTranspose1d\(2, 3.*3-D input.*\(1, 2, 3, 3\)"),
    (lambda: nn.ConvTranspose3d(2, 3, 2), (1, 3, 3, 3, 3), ValueError,
     r"ConvTranspose3d\(2, 3.*2 channels.*\(1, 3, 3, 3, 3\)"),
    (lambda: nn.CausalConv1d(2, 3, 2), (1, 3, 5), ValueError,
     r"CausalConv1d\(2, 3.*2 channels.*\(1, 3, 5\)"),
    (lambda: nn.CausalConv1d(2, 3, 2), (1, 2, 5, 5), ValueError,
     r"CausalConv1d\(2, 3.*3-D input.*\(1, 2, 5, 5\)"),
    # unbatched inputs: the error shows the shape that was passed, not the one with a
    # batch dimension added inside
    (lambda: nn.Conv2d(3, 4, 3), (5, 6, 6), ValueError,
     r"Conv2d\(3, 4.*3 channels.*got input of shape \(5, 6, 6\) with 5"),
    (lambda: nn.Conv1d(2, 2, 5), (2, 3), ValueError,
     r"Conv1d\(2, 2.*input of shape \(2, 3\).*smaller than the \(dilated\) kernel \(5,\)"),
    (lambda: nn.ConvTranspose2d(4, 2, 3), (3, 5, 5), ValueError,
     r"ConvTranspose2d\(4, 2.*4 channels.*got input of shape \(3, 5, 5\)"),
    (lambda: nn.ResidualBlock(3, 4), (2, 5, 6, 6), ValueError,
     r"ResidualBlock\(3, 4.*\(N, 3, H, W\).*got shape \(2, 5, 6, 6\)"),
    (lambda: nn.ResidualBlock(3, 4), (3, 6, 6), ValueError,
     r"ResidualBlock\(3, 4.*\(N, 3, H, W\).*got shape \(3, 6, 6\)"),
    (lambda: nn.InceptionModule(3, 2, 2, 3, 1, 2, 2), (2, 4, 5, 5), ValueError,
     r"InceptionModule\(3 -> 9\).*\(N, 3, H, W\).*got shape \(2, 4, 5, 5\)"),
    (lambda: nn.Highway(5), (4, 6), ValueError,
     r"Highway\(features=5\).*\(\*, 5\).*got shape \(4, 6\)"),
]


@pytest.mark.parametrize("make,shape,err,pattern", WRONG_INPUTS,
                         ids=[f"{p.split(chr(92))[0]}-{s}" for _, s, _, p in WRONG_INPUTS])
def test_wrong_input_names_layer_expected_and_received(make, shape, err, pattern):
    layer = make()
    with pytest.raises(err, match=pattern) as excinfo:
        layer(lamina.zeros(*shape))
    _raised_in_lamina(excinfo)


def test_unbatched_conv_error_does_not_show_the_internal_batch_dim():
    with pytest.raises(ValueError) as excinfo:
        F.conv2d(lamina.zeros(5, 6, 6), lamina.zeros(4, 3, 3, 3))
    assert "(1, 5, 6, 6)" not in str(excinfo.value) and "(5, 6, 6)" in str(excinfo.value)
    with pytest.raises(ValueError) as excinfo:
        F.conv_transpose1d(lamina.zeros(3, 4), lamina.zeros(2, 3, 3))
    assert "(1, 3, 4)" not in str(excinfo.value) and "(3, 4)" in str(excinfo.value)


def test_max_unpool_module_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"MaxUnpool2d\(kernel_size=\(2, 2\).*\(1, 2, 3, 3\).*"
                                         r"\(1, 2, 3, 2\)") as excinfo:
        nn.MaxUnpool2d(2)(lamina.zeros(1, 2, 3, 3), lamina.tensor(np.zeros((1, 2, 3, 2), np.int64)))
    _raised_in_lamina(excinfo)


def test_layers_with_valid_input_still_work_after_an_error():
    layer = nn.MaxPool2d(2)
    with pytest.raises(ValueError):
        layer(lamina.zeros(4, 4))
    assert layer(lamina.zeros(1, 1, 4, 4)).shape == (1, 1, 2, 2)
    block = nn.ResidualBlock(2, 2)
    with pytest.raises(ValueError):
        block(lamina.zeros(1, 3, 4, 4))
    assert block(lamina.zeros(2, 2, 4, 4)).shape == (2, 2, 4, 4)
    assert nn.Highway(3)(lamina.zeros(2, 5, 3)).shape == (2, 5, 3)


# ---------------------------------------------------------------- no loops, no recursion
def _trace(fn, x):
    """Python lines executed inside lamina by forward + backward of ``fn(x)``, and the
    lamina functions that were entered while already running (recursion)."""
    root = os.path.dirname(lamina.__file__)
    lines, depth, recursive = [0], {}, set()

    def tracer(frame, event, arg):
        code = frame.f_code
        if not code.co_filename.startswith(root):
            return None
        if event == "call":
            depth[code] = depth.get(code, 0) + 1
            if depth[code] > 1:
                recursive.add(f"{code.co_filename}:{code.co_name}")
        elif event == "return":
            depth[code] -= 1
        elif event == "line":
            lines[0] += 1
        return tracer

    def run():
        xt = lamina.tensor(x, requires_grad=True)
        out = fn(xt)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()

    run()   # warm up the scratch buffers
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return lines[0], recursive


_W2 = rand(4, 3, 3, 3, seed=21)
_W1 = rand(4, 3, 3, seed=22)
_W3 = rand(2, 3, 2, 2, 2, seed=23)
# (name, function, small input shape, large input shape): the large one has 8x the batch
# and about 3x the output size per spatial axis; adaptive pooling keeps the in/out ratio
STRUCTURE = [
    ("conv1d", lambda x: F.conv1d(x, lamina.tensor(_W1), padding=1), (1, 3, 5), (8, 3, 15)),
    ("conv2d_strided", lambda x: F.conv2d(x, lamina.tensor(_W2), stride=2, padding=1),
     (1, 3, 5, 5), (8, 3, 15, 13)),
    ("conv2d_depthwise", lambda x: F.conv2d(x, lamina.tensor(_W2[:3, :1]), groups=3,
                                            dilation=2, padding=2), (1, 3, 5, 5), (8, 3, 15, 13)),
    ("conv3d", lambda x: F.conv3d(x, lamina.tensor(_W3), padding=1), (1, 3, 3, 3, 3),
     (8, 3, 9, 9, 7)),
    ("conv_transpose2d", lambda x: F.conv_transpose2d(x, lamina.tensor(_W2[:, :2]), stride=2),
     (1, 4, 3, 3), (8, 4, 9, 8)),
    ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, 1), (1, 3, 5, 5), (8, 3, 15, 13)),
    ("max_pool2d_ceil", lambda x: F.max_pool2d(x, 2, 2, 0, 1, True), (1, 3, 5, 5),
     (8, 3, 15, 13)),
    ("max_pool1d_dilated", lambda x: F.max_pool1d(x, 2, 1, 1, 2), (1, 3, 6), (8, 3, 18)),
    ("max_pool3d", lambda x: F.max_pool3d(x, 2), (1, 2, 4, 4, 4), (8, 2, 12, 12, 10)),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (1, 3, 5, 5),
     (8, 3, 15, 13)),
    ("avg_pool3d", lambda x: F.avg_pool3d(x, 2, 1), (1, 2, 3, 3, 3), (8, 2, 9, 9, 7)),
    ("lp_pool2d", lambda x: F.lp_pool2d(x, 2, 2), (1, 3, 4, 4), (8, 3, 12, 12)),
    ("lse_pool2d", lambda x: F.lse_pool2d(x, 2, r=2.0), (1, 3, 4, 4), (8, 3, 12, 12)),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (1, 3, 5, 7),
     (8, 3, 15, 21)),
    ("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, (2, 3)) if x.shape[-1] == 7
     else F.adaptive_max_pool2d(x, (6, 9)), (1, 3, 5, 7), (8, 3, 15, 21)),
    ("max_unpool2d", lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2),
     (1, 3, 4, 4), (8, 3, 12, 12)),
    ("interpolate_bilinear", lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
     (1, 3, 4, 5), (8, 3, 12, 15)),
    ("interpolate_nearest", lambda x: F.interpolate(x, scale_factor=3), (1, 3, 4, 5),
     (8, 3, 12, 15)),
]


@pytest.mark.parametrize("name,fn,small,large", STRUCTURE, ids=[s[0] for s in STRUCTURE])
def test_no_python_loop_over_batch_or_output_pixels(name, fn, small, large, monkeypatch):
    # one batch chunk for both sizes (the chunking itself is a loop over cache-sized
    # blocks, not over samples): any loop over samples or pixels changes the line count
    monkeypatch.setattr(conv_ops, "_CHUNK", 1 << 30)
    # and one forward path: which one depends on the output size, not on a loop over it
    monkeypatch.setattr(conv_ops, "_BY_IMAGE_MIN", 1)
    n_small, rec_small = _trace(fn, rand(*small, seed=24))
    n_large, rec_large = _trace(fn, rand(*large, seed=25))
    assert not rec_small and not rec_large, f"recursion in {rec_small | rec_large}"
    assert n_large == n_small, (f"{name}: {n_small} lines for input {small}, {n_large} for "
                                f"{large}")


# ---------------------------------------------------------------- default init vs torch
@pytest.mark.parametrize("name,args", [
    ("Conv3d", (8, 16, 3)), ("ConvTranspose1d", (64, 32, 5)), ("ConvTranspose3d", (4, 16, 3)),
    ("Conv1d", (32, 16, 5, 1, 0, 1, 4)), ("Linear", (300, 20)),
], ids=["Conv3d", "ConvTranspose1d", "ConvTranspose3d", "Conv1d_groups", "Linear"])
def test_default_weight_and_bias_bounds_match_torch(name, args):
    """PyTorch: weight ~ kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in taken from torch's own weight."""
    tw = getattr(tnn, name)(*args).weight
    fan_in, _ = tnn.init._calculate_fan_in_and_fan_out(tw)
    bound = 1 / math.sqrt(fan_in)
    lamina.manual_seed(0)
    layer = getattr(nn, name)(*args)
    w, b = layer.weight.numpy().astype(np.float64), layer.bias.numpy()
    assert w.shape == tuple(tw.shape) and b.shape == (tw.shape[0] if "Transpose" not in name
                                                      else tw.shape[1] * layer.groups,)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.05
    assert abs(w.mean()) < 0.05 * bound
    assert np.abs(b).max() <= bound * (1 + 1e-6)


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm3d"])
def test_default_batchnorm_state_matches_torch(name):
    t, layer = getattr(tnn, name)(7), getattr(nn, name)(7)
    tstate = t.state_dict()
    assert list(layer.state_dict()) == list(tstate)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), tstate[k].numpy(), err_msg=k)
        assert str(v.dtype).replace("lamina.", "") == str(tstate[k].dtype).replace("torch.", "")


def test_maxout_and_highway_default_init_follow_linear():
    lamina.manual_seed(0)
    m = nn.Maxout(400, 10, 3)
    bound = 1 / math.sqrt(400)
    w = m.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.05
    hw = nn.Highway(300, gate_bias=-2.0)
    bound = 1 / math.sqrt(300)
    for p in (hw.transform.weight, hw.transform.bias, hw.gate.weight):
        assert np.abs(p.numpy()).max() <= bound
    assert np.all(hw.gate.bias.numpy() == -2.0)
