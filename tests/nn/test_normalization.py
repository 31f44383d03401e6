"""Normalization: batch/layer/group norm, local response and local contrast normalization,
weight normalization. Values, input and parameter gradients and running statistics
against PyTorch in float32 and float64, float64 gradcheck, and the error messages."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as tF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.autograd import gradcheck
from helpers import check_module, check_op, rand

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return (1e-5, 1e-4) if dtype == np.float32 else (1e-10, 1e-8)


def _batch(shape, seed):
    """Random input with a different offset and scale per channel (dim 1)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    cshape = (1, c) + (1,) * (len(shape) - 2)
    off = rng.uniform(-3, 3, cshape)
    scale = rng.uniform(0.5, 2.0, cshape)
    return rng.standard_normal(shape) * scale + off


def _torch_weight_norm(module, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nn.utils.weight_norm(module, **kw)


# ---------------------------------------------------------------- batch norm
BN_CASES = [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 5)),
            ("BatchNorm2d", (3, 2, 4, 3)), ("BatchNorm3d", (2, 2, 3, 2, 3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,shape", BN_CASES)
def test_batchnorm_training_steps(cls, shape, dtype):
    c = shape[1]
    layer = check_module(getattr(nn, cls)(c, momentum=0.3), getattr(tnn, cls)(c, momentum=0.3),
                         _batch(shape, 1), dtype=dtype, steps=3)
    assert layer.num_batches_tracked.dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,shape", BN_CASES)
def test_batchnorm_eval_uses_running_stats(cls, shape, dtype):
    c = shape[1]
    t = getattr(tnn, cls)(c)
    with torch.no_grad():
        t.running_mean.copy_(torch.randn(c))
        t.running_var.copy_(torch.rand(c) + 0.5)
        t.num_batches_tracked.fill_(7)
    layer = check_module(getattr(nn, cls)(c).eval(), t.eval(), _batch(shape, 2), dtype=dtype,
                         steps=2)
    assert int(layer.num_batches_tracked.item()) == 7  # eval does not count batches


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_momentum_none_cumulative(dtype):
    check_module(nn.BatchNorm2d(3, momentum=None), tnn.BatchNorm2d(3, momentum=None),
                 _batch((2, 3, 3, 2), 3), dtype=dtype, steps=3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(affine=False), dict(bias=False),
                                dict(track_running_stats=False),
                                dict(affine=False, track_running_stats=False, eps=1e-2)])
def test_batchnorm_options(kw, dtype):
    layer = check_module(nn.BatchNorm1d(3, **kw), tnn.BatchNorm1d(3, **kw),
                         _batch((4, 3, 2), 4), dtype=dtype, steps=2)
    assert list(layer.state_dict()) == list(tnn.BatchNorm1d(3, **kw).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_no_running_stats_uses_batch_stats_in_eval(dtype):
    layer = check_module(nn.BatchNorm2d(2, track_running_stats=False).eval(),
                         tnn.BatchNorm2d(2, track_running_stats=False).eval(),
                         _batch((3, 2, 2, 3), 5), dtype=dtype)
    assert layer.running_mean is None and layer.num_batches_tracked is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (1, 3, 4)), ("BatchNorm2d", (1, 2, 2, 3))])
def test_batchnorm_batch_one_with_positions(cls, shape, dtype):
    c = shape[1]
    check_module(getattr(nn, cls)(c), getattr(tnn, cls)(c), _batch(shape, 6), dtype=dtype,
                 steps=2)


def test_batchnorm_single_value_per_channel_in_training_raises_like_torch():
    for shape in [(1, 3), (1, 3, 1)]:
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            tnn.BatchNorm1d(3)(torch.zeros(shape))
        with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when "
                                             r"training, got input of shape \(1, 3"):
            nn.BatchNorm1d(3)(lamina.zeros(*shape))
    # evaluation mode normalises a single sample with the running statistics
    check_module(nn.BatchNorm1d(3).eval(), tnn.BatchNorm1d(3).eval(), _batch((1, 3), 7))


def test_empty_batch_passes_through_like_torch():
    for layer, t, shape in [(nn.BatchNorm1d(3), tnn.BatchNorm1d(3), (0, 3)),
                            (nn.GroupNorm(1, 3), tnn.GroupNorm(1, 3), (0, 3, 2)),
                            (nn.LayerNorm(3), tnn.LayerNorm(3), (0, 3))]:
        y, ty = layer(lamina.zeros(*shape)), t(torch.zeros(shape))
        assert y.shape == tuple(ty.shape) == shape
        for name, b in t.named_buffers():
            np.testing.assert_array_equal(getattr(layer, name).numpy(), b.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_larger_batches_several_steps_then_eval(dtype):
    """Different batches each step: outputs, grads and buffers track torch; then eval."""
    atol, rtol = _tol(dtype)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    layer = nn.BatchNorm2d(8, momentum=0.2).to(dtype)
    t = tnn.BatchNorm2d(8, momentum=0.2).to(tdt)
    with torch.no_grad():
        t.weight.copy_(torch.randn(8))
        t.bias.copy_(torch.randn(8))
    layer.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    rng = np.random.default_rng(0)
    for step in range(4):
        if step == 3:
            layer.eval(), t.eval()
        x = _batch((16, 8, 9, 7), 10 + step).astype(dtype)
        g = rng.standard_normal(x.shape).astype(dtype)
        lx, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = layer(lx), t(tx)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=atol, rtol=rtol)
        layer.zero_grad()
        t.zero_grad()
        y.backward(lamina.tensor(g))
        ty.backward(torch.tensor(g))
        assert lx.grad.dtype == dtype and layer.weight.grad.dtype == dtype
        np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), atol=atol * 10,
                                   rtol=rtol * 10)
        for name in ("weight", "bias"):
            np.testing.assert_allclose(getattr(layer, name).grad.numpy(),
                                       getattr(t, name).grad.numpy(), atol=atol * 10,
                                       rtol=rtol * 10)
        for name, b in t.named_buffers():
            np.testing.assert_allclose(getattr(layer, name).numpy(), b.numpy(), atol=atol,
                                       rtol=rtol, err_msg=f"step {step}: {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_functional_batch_norm(training, dtype):
    rm, rv = rand(3, seed=1), rand(3, low=0.5, high=2.0, seed=2)

    def run(mod, x, w, b):
        r = [mod.tensor(rm.astype(dtype)), mod.tensor(rv.astype(dtype))]
        return mod_bn[mod](x, r[0], r[1], w, b, training, 0.25, 1e-3)

    mod_bn = {lamina: F.batch_norm, torch: tF.batch_norm}
    atol, rtol = _tol(dtype)
    check_op(lambda x, w, b: run(lamina, x, w, b), lambda x, w, b: run(torch, x, w, b),
             _batch((4, 3, 5), 8), rand(3, seed=3), rand(3, seed=4), dtype=dtype,
             atol=atol, rtol=rtol)
    # without weight and bias; without running statistics in training
    check_op(lambda x: F.batch_norm(x, None, None, training=True),
             lambda x: tF.batch_norm(x, None, None, training=True),
             _batch((5, 2, 3), 9), dtype=dtype, atol=atol, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(512, 64), (64, 16, 20)])
def test_functional_batch_norm_larger(shape, dtype):
    """Long reductions (no gradcheck: too many elements) in both code paths of the sums."""
    atol, rtol = _tol(dtype)
    c = shape[1]
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: tF.batch_norm(x, None, None, w, b, training=True),
             _batch(shape, 25), rand(c, seed=1), rand(c, seed=2), dtype=dtype, atol=atol,
             rtol=rtol, check_grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_batch_norm_updates_running_stats_in_place(dtype):
    atol, rtol = _tol(dtype)
    x = _batch((6, 4, 5), 11).astype(dtype)
    lrm, lrv = lamina.tensor(rand(4, seed=1, dtype=dtype)), lamina.tensor(np.ones(4, dtype))
    trm, trv = torch.tensor(lrm.numpy().copy()), torch.tensor(lrv.numpy().copy())
    for _ in range(2):
        F.batch_norm(lamina.tensor(x), lrm, lrv, training=True, momentum=0.4)
        tF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.4)
    np.testing.assert_allclose(lrm.numpy(), trm.numpy(), atol=atol, rtol=rtol)
    np.testing.assert_allclose(lrv.numpy(), trv.numpy(), atol=atol, rtol=rtol)
    with pytest.raises(RuntimeError, match="running_mean and running_var must be defined"):
        F.batch_norm(lamina.tensor(x), None, None, training=False)


def test_batchnorm_state_dict_from_torch_and_repr():
    t = tnn.BatchNorm2d(4)
    t(torch.randn(3, 4, 2, 2))
    layer = nn.BatchNorm2d(4)
    layer.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    assert list(layer.state_dict()) == list(t.state_dict())
    assert int(layer.num_batches_tracked.item()) == 1
    assert repr(layer) == repr(t)
    for p in (layer.weight, layer.bias, layer.running_mean, layer.running_var):
        assert p.dtype == np.float32
    layer.reset_parameters()
    assert layer.running_mean.numpy().tolist() == [0.0] * 4
    assert layer.num_batches_tracked.item() == 0


@pytest.mark.parametrize("layer,x,match", [
    (nn.BatchNorm2d(3), (2, 4, 5, 5), r"BatchNorm2d\(3\).*\(N, 3, H, W\).*\(2, 4, 5, 5\)"),
    (nn.BatchNorm2d(3), (2, 3, 5), r"BatchNorm2d\(3\).*\(N, 3, H, W\).*\(2, 3, 5\)"),
    (nn.BatchNorm1d(3), (2, 3, 4, 4), r"BatchNorm1d\(3\).*\(N, 3\) or \(N, 3, L\).*\(2, 3, 4, 4\)"),
    (nn.BatchNorm1d(3), (2, 5), r"BatchNorm1d\(3\).*\(2, 5\)"),
    (nn.BatchNorm3d(2), (2, 2, 3, 3), r"BatchNorm3d\(2\).*\(N, 2, D, H, W\).*\(2, 2, 3, 3\)"),
    (nn.LayerNorm((3, 4)), (2, 4, 3), r"LayerNorm\(\(3, 4\)\).*\(\*, 3, 4\).*\(2, 4, 3\)"),
    (nn.LayerNorm(4), (), r"LayerNorm\(\(4,\)\).*\(\)"),
    (nn.GroupNorm(2, 4), (2, 6, 3), r"GroupNorm\(2, 4\).*\(N, 4, \*\).*\(2, 6, 3\)"),
    (nn.GroupNorm(2, 4), (4,), r"GroupNorm\(2, 4\).*\(4,\)"),
    (nn.LocalResponseNorm(3), (2, 4), r"LocalResponseNorm\(3\).*\(2, 4\)"),
    (nn.LocalContrastNorm(), (2, 4), r"LocalContrastNorm.*\(2, 4\)"),
])
def test_layer_errors_name_layer_and_shapes(layer, x, match):
    with pytest.raises(ValueError, match=match):
        layer(lamina.zeros(*x))


def test_functional_errors():
    x = lamina.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"batch_norm: weight should have shape \(3,\)"):
        F.batch_norm(x, None, None, lamina.ones(4), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean should have shape \(3,\)"):
        F.batch_norm(x, lamina.zeros(2), lamina.ones(2))
    with pytest.raises(ValueError, match=r"batch_norm: .*at least 2 dimensions.*\(3,\)"):
        F.batch_norm(lamina.zeros(3), None, None, training=True)
    with pytest.raises(ValueError, match=r"group_norm: .*channels \(3\).*\(2, 3, 4\).*"
                                         r"num_groups=2"):
        F.group_norm(x, 2)
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(3\) must be divisible "
                                         r"by num_groups \(2\)"):
        nn.GroupNorm(2, 3)
    with pytest.raises(ValueError, match=r"layer_norm: given normalized_shape=\[5\].*"
                                         r"\(2, 3, 4\)"):
        F.layer_norm(x, (5,))
    with pytest.raises(ValueError, match=r"layer_norm: weight should have shape \(4,\)"):
        F.layer_norm(x, (4,), lamina.ones(3))
    with pytest.raises(ValueError, match=r"local_response_norm: .*3 or more.*\(2, 3\)"):
        F.local_response_norm(lamina.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        F.local_contrast_norm(lamina.zeros(1, 2, 5, 5), kernel_size=4)
    with pytest.raises(ValueError, match="sigma must be positive"):
        F.local_contrast_norm(lamina.zeros(1, 2, 5, 5), kernel_size=3, sigma=0)


# ---------------------------------------------------------------- layer norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ns", [(5,), (4, 5)])
@pytest.mark.parametrize("kw", [{}, dict(elementwise_affine=False), dict(bias=False),
                                dict(eps=0.1)])
def test_layernorm(ns, kw, dtype):
    layer = check_module(nn.LayerNorm(ns, **kw), tnn.LayerNorm(ns, **kw),
                         _batch((3, 4, 5), 12), dtype=dtype)
    assert list(layer.state_dict()) == list(tnn.LayerNorm(ns, **kw).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_int_shape_and_larger_parity(dtype):
    atol, rtol = _tol(dtype)
    check_module(nn.LayerNorm(7), tnn.LayerNorm(7), rand(2, 7, seed=3) * 10 + 5, dtype=dtype)
    x = _batch((32, 24, 64), 13)
    check_op(lambda x, w, b: F.layer_norm(x, (64,), w, b),
             lambda x, w, b: tF.layer_norm(x, (64,), w, b), x, rand(64, seed=1),
             rand(64, seed=2), dtype=dtype, atol=atol, rtol=rtol, check_grad=False)


# ---------------------------------------------------------------- group norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_groupnorm(groups, dtype):
    check_module(nn.GroupNorm(groups, 6), tnn.GroupNorm(groups, 6), _batch((2, 6, 3, 2), 14),
                 dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(affine=False), dict(bias=False), dict(eps=0.5)])
def test_groupnorm_options_and_2d_input(kw, dtype):
    check_module(nn.GroupNorm(2, 4, **kw), tnn.GroupNorm(2, 4, **kw), _batch((3, 4), 15),
                 dtype=dtype)
    check_module(nn.GroupNorm(2, 4, **kw), tnn.GroupNorm(2, 4, **kw), _batch((2, 4, 5), 16),
                 dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_functional_larger(dtype):
    atol, rtol = _tol(dtype)
    check_op(lambda x, w, b: F.group_norm(x, 4, w, b), lambda x, w, b: tF.group_norm(x, 4, w, b),
             _batch((8, 16, 6, 5), 17), rand(16, seed=1), rand(16, seed=2), dtype=dtype,
             atol=atol, rtol=rtol, check_grad=False)


# ---------------------------------------------------------------- local response norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
def test_local_response_norm(size, dtype):
    atol, rtol = _tol(dtype)
    for args in [(1e-4, 0.75, 1.0), (0.8, 0.6, 0.5)]:
        check_op(lambda x: F.local_response_norm(x, size, *args),
                 lambda x: tF.local_response_norm(x, size, *args), rand(2, 5, 3, 2, seed=size),
                 dtype=dtype, atol=atol, rtol=rtol)
    check_module(nn.LocalResponseNorm(size, 0.5, 0.75, 2.0),
                 tnn.LocalResponseNorm(size, 0.5, 0.75, 2.0), rand(2, 4, 5, seed=size),
                 dtype=dtype)


# ---------------------------------------------------------------- local contrast norm
def _lcn_reference(x, kernel_size, sigma, eps):
    """Direct per-pixel implementation: explicit 2-d Gaussian window over all channels,
    weights renormalised over the part inside the image."""
    n, c, h, w = x.shape
    r = kernel_size // 2
    off = np.arange(-r, r + 1)
    win = np.exp(-(off[:, None] ** 2 + off[None, :] ** 2) / (2.0 * sigma ** 2))

    def local_mean(a):  # a: (n, c, h, w) -> (n, h, w)
        out = np.zeros((n, h, w))
        for i in range(h):
            for j in range(w):
                tot, wsum = np.zeros(n), 0.0
                for p in range(kernel_size):
                    for q in range(kernel_size):
                        ii, jj = i + off[p], j + off[q]
                        if 0 <= ii < h and 0 <= jj < w:
                            tot += win[p, q] * a[:, :, ii, jj].sum(axis=1)
                            wsum += win[p, q] * c
                out[:, i, j] = tot / wsum
        return out

    v = x - local_mean(x)[:, None]
    s = np.sqrt(local_mean(v * v))
    den = np.maximum(np.maximum(s, s.mean(axis=(1, 2), keepdims=True)), eps)
    return v / den[:, None], v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_size,sigma,shape", [(3, 1.0, (2, 3, 5, 4)),
                                                     (5, None, (1, 2, 6, 7)),
                                                     (9, 2.0, (2, 2, 5, 6)),
                                                     (1, None, (2, 3, 2, 2))])
def test_local_contrast_norm_matches_direct_numpy(kernel_size, sigma, shape, dtype):
    x = _batch(shape, 18)
    sig = (kernel_size - 1) / 4.0 if sigma is None else sigma
    sig = sig or 1.0  # a 1x1 window has weight 1 whatever sigma
    ref, _ = _lcn_reference(x, kernel_size, sig, 1e-5)
    y = F.local_contrast_norm(lamina.tensor(x.astype(dtype)), kernel_size, sigma)
    assert y.dtype == dtype and y.shape == x.shape
    atol, rtol = _tol(dtype)
    np.testing.assert_allclose(y.numpy(), ref, atol=atol * 10, rtol=rtol)
    y3 = nn.LocalContrastNorm(kernel_size, sigma)(lamina.tensor(x[0].astype(dtype)))
    np.testing.assert_allclose(y3.numpy(), ref[0], atol=atol * 10, rtol=rtol)


def test_local_contrast_norm_gradcheck():
    x = lamina.tensor(_batch((2, 2, 4, 5), 19), requires_grad=True)
    assert gradcheck(lambda t: F.local_contrast_norm(t, 3, 1.0), [x])
    x3 = lamina.tensor(_batch((1, 2, 3, 3), 20)[0], requires_grad=True)
    assert gradcheck(lambda t: nn.LocalContrastNorm(5)(t), [x3])


def test_local_contrast_norm_properties():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 12, 12))
    y = F.local_contrast_norm(lamina.tensor(x), 5).numpy()
    # invariant to a positive gain and an offset of the whole input
    y2 = F.local_contrast_norm(lamina.tensor(3.5 * x - 2.0), 5).numpy()
    np.testing.assert_allclose(y2, y, atol=1e-10, rtol=1e-8)
    # the subtractive stage removes the local mean: a linear ramp (plus a per-channel
    # offset, which the channel-summed mean removes too) maps to zero away from the borders
    i, j = np.meshgrid(np.arange(12.0), np.arange(12.0), indexing="ij")
    ramp = (0.3 * i - 0.2 * j)[None, None] + np.array([1.0, -1.0, 0.0])[None, :, None, None]
    _, v = _lcn_reference(ramp, 5, 1.0, 1e-5)
    np.testing.assert_allclose(v[..., 2:-2, 2:-2].sum(axis=1), 0, atol=1e-12)
    # the output has ~zero local mean: its local (Gaussian-window, all-channel) average is
    # far smaller than its spread, whereas the input's local average is not
    _, vy = _lcn_reference(y, 5, 1.0, 1e-5)  # vy = y - local mean of y
    local_mean_y = (y - vy)[:, 0]
    assert np.abs(local_mean_y).mean() < 0.15 * y.std()
    assert abs(y.mean()) < 0.05
    _, vx = _lcn_reference(x + 2.0, 5, 1.0, 1e-5)
    assert np.abs((x + 2.0 - vx)[:, 0]).mean() > 1.0


# ---------------------------------------------------------------- weight norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_linear(dim, dtype):
    t = _torch_weight_norm(tnn.Linear(4, 3), dim=dim)
    layer = nn.utils.weight_norm(nn.Linear(4, 3), dim=dim)
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert layer.weight_g.shape == tuple(t.weight_g.shape)
    check_module(layer, t, rand(5, 4, seed=22), dtype=dtype, steps=2)


class _ConvLike(nn.Module):
    """A module with a (out, in, kh, kw) weight, applied to flattened patches."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(lamina.randn(3, 2, 2, 2).data)

    def forward(self, x):
        return x @ self.weight.reshape(3, -1).T


class _TorchConvLike(tnn.Module):
    def __init__(self):
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(3, 2, 2, 2))

    def forward(self, x):
        return x @ self.weight.reshape(3, -1).T


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 3, -1])
def test_weight_norm_conv_shaped_weight(dim, dtype):
    t = _torch_weight_norm(_TorchConvLike(), dim=dim)
    layer = nn.utils.weight_norm(_ConvLike(), dim=dim)
    assert layer.weight_g.shape == tuple(t.weight_g.shape)
    check_module(layer, t, rand(4, 8, seed=23), dtype=dtype)


def test_weight_norm_init_and_remove():
    torch.manual_seed(0)
    t = tnn.Linear(4, 3)
    layer = nn.Linear(4, 3)
    layer.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    w0 = layer.weight.numpy().copy()
    _torch_weight_norm(t)
    nn.utils.weight_norm(layer)
    np.testing.assert_allclose(layer.weight_g.numpy(), t.weight_g.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.numpy(), w0, rtol=1e-6, atol=1e-7)
    assert list(layer.state_dict()) == ["bias", "weight_g", "weight_v"]
    with pytest.raises(RuntimeError, match="two weight_norm hooks"):
        nn.utils.weight_norm(layer)
    # the weight follows g and v before each call
    with lamina.no_grad():
        layer.weight_g.data *= 2.0
    x = lamina.tensor(rand(2, 4, seed=24).astype(np.float32))
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ (2 * w0).T + layer.bias.numpy(),
                               rtol=1e-5, atol=1e-6)
    nn.utils.remove_weight_norm(layer)
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight"]
    assert isinstance(layer.weight, nn.Parameter)
    np.testing.assert_allclose(layer.weight.numpy(), 2 * w0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ (2 * w0).T + layer.bias.numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found in Linear"):
        nn.utils.remove_weight_norm(layer)
    with pytest.raises(ValueError, match="has no parameter 'kernel'"):
        nn.utils.weight_norm(layer, "kernel")
