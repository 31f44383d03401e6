"""Bilinear and Embedding against torch (values, input and parameter gradients, float32 and
float64, gradcheck); dropout family, DropPath, DropConnect, Gaussian noise (statistics,
masks, gradients, eval, seeding); L1/L2 penalties and the max-norm constraint."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.nn.functional.regularization import keep_mask
from lamina.nn.utils import flat_parameters, l1_penalty, l2_penalty, max_norm_
from helpers import check_module, check_op, rand

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-8)


# ---------------------------------------------------------------- Bilinear
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(4,), (2, 3), (), (1,)])
def test_bilinear_module(lead, bias, dtype):
    check_module(nn.Bilinear(3, 4, 2, bias=bias), tnn.Bilinear(3, 4, 2, bias=bias),
                 rand(*lead, 3, seed=1), rand(*lead, 4, seed=2), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bilinear_functional_all_gradients(dtype):
    x1, x2 = rand(5, 3, seed=3), rand(5, 2, seed=4)
    w, b = rand(4, 3, 2, seed=5), rand(4, seed=6)
    check_op(F.bilinear, TF.bilinear, x1, x2, w, b, dtype=dtype, **tol(dtype))
    check_op(lambda a, c, d: F.bilinear(a, c, d), lambda a, c, d: TF.bilinear(a, c, d),
             x1, x2, w, dtype=dtype, **tol(dtype))


def test_bilinear_default_init_and_state_dict():
    lamina.manual_seed(0)
    layer = nn.Bilinear(16, 5, 30)
    bound = 1 / math.sqrt(16)
    assert layer.weight.shape == (30, 16, 5) and layer.bias.shape == (30,)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound     # U(-b, b)
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert set(layer.state_dict()) == set(tnn.Bilinear(16, 5, 30).state_dict())


def test_bilinear_wrong_sizes_name_layer_and_shapes():
    layer = nn.Bilinear(3, 4, 2)
    with pytest.raises(ValueError, match=r"Bilinear\(in1_features=3, in2_features=4, "
                                         r"out_features=2\).*\(5, 3\) and \(5, 5\)"):
        layer(lamina.zeros(5, 3), lamina.zeros(5, 5))
    with pytest.raises(ValueError, match=r"Bilinear.*\(5, 2\) and \(5, 4\)"):
        layer(lamina.zeros(5, 2), lamina.zeros(5, 4))
    with pytest.raises(ValueError, match=r"Bilinear.*\(5, 3\) and \(4, 4\)"):
        layer(lamina.zeros(5, 3), lamina.zeros(4, 4))
    with pytest.raises(ValueError, match=r"bilinear: inputs of shapes \(2, 3\) and \(2, 4\)"):
        F.bilinear(lamina.zeros(2, 3), lamina.zeros(2, 4), lamina.zeros(2, 3))


# ---------------------------------------------------------------- Embedding
IDX = np.array([[1, 2, 4, 5], [4, 3, 2, 9], [0, 2, 2, 2]])   # repeats, and padding index 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_module(dtype):
    check_module(nn.Embedding(10, 3), tnn.Embedding(10, 3), IDX, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{"padding_idx": 2}, {"padding_idx": -8},
                                    {"scale_grad_by_freq": True},
                                    {"padding_idx": 4, "scale_grad_by_freq": True}])
def test_embedding_module_padding_and_freq_scaling(kwargs, dtype):
    # the padding row's zero gradient and the frequency scaling are deliberate departures
    # from the true derivative, so no gradcheck here: the values and weight gradients must
    # equal torch's (the unmodified gradient is gradchecked in test_embedding_module)
    check_module(nn.Embedding(10, 3, **kwargs), tnn.Embedding(10, 3, **kwargs), IDX,
                 dtype=dtype, grad=False)
    t = tnn.Embedding(10, 3, **kwargs).to(torch.float64 if dtype == np.float64 else
                                         torch.float32)
    e = nn.Embedding(10, 3, **kwargs, dtype=dtype)
    e.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    g = rand(*IDX.shape, 3, seed=17).astype(dtype)
    e(lamina.tensor(IDX)).backward(lamina.tensor(g))
    t(torch.tensor(IDX)).backward(torch.tensor(g))
    np.testing.assert_allclose(e.weight.grad.numpy(), t.weight.grad.numpy(), **tol(dtype))
    if "padding_idx" in kwargs:
        assert not e.weight.grad.numpy()[kwargs["padding_idx"]].any()


def test_embedding_repeated_indices_scatter_add_and_padding_row_zero():
    emb = nn.Embedding(5, 2, padding_idx=0)
    out = emb(lamina.tensor([[1, 1, 0], [1, 4, 0]]))
    g = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    out.backward(lamina.tensor(g))
    want = np.zeros((5, 2), np.float32)
    want[1] = g[0, 0] + g[0, 1] + g[1, 0]
    want[4] = g[1, 1]
    np.testing.assert_array_equal(emb.weight.grad.numpy(), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_max_norm_renormalizes_like_torch(dtype):
    for norm_type in (2.0, 1.0):
        t = tnn.Embedding(8, 4, max_norm=1.5, norm_type=norm_type).to(
            torch.float64 if dtype == np.float64 else torch.float32)
        with torch.no_grad():
            t.weight.mul_(2)
        e = nn.Embedding(8, 4, max_norm=1.5, norm_type=norm_type, dtype=dtype)
        e.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
        idx = np.array([[0, 3, 3], [7, 1, 0]])
        out, tout = e(lamina.tensor(idx)), t(torch.tensor(idx))
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol(dtype))
        np.testing.assert_allclose(e.weight.numpy(), t.weight.detach().numpy(), **tol(dtype))


def test_embedding_default_init_and_padding_row():
    lamina.manual_seed(1)
    e = nn.Embedding(400, 50, padding_idx=3)
    w = e.weight.numpy()
    assert w.dtype == np.float32 and w.shape == (400, 50)
    assert np.all(w[3] == 0)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02       # N(0, 1)
    assert e.padding_idx == 3 and nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4
    lamina.manual_seed(1)
    assert np.array_equal(nn.Embedding(400, 50, padding_idx=3).weight.numpy(), w)


def test_embedding_from_pretrained_and_weight():
    table = rand(5, 3, seed=8).astype(np.float32)
    e = nn.Embedding.from_pretrained(lamina.tensor(table))
    assert not e.weight.requires_grad and e.num_embeddings == 5 and e.embedding_dim == 3
    out = e(lamina.tensor([4, 0]))
    np.testing.assert_array_equal(out.numpy(), table[[4, 0]])
    assert not out.requires_grad
    e = nn.Embedding.from_pretrained(lamina.tensor(table), freeze=False, padding_idx=1)
    assert e.weight.requires_grad
    e(lamina.tensor([1, 2, 2])).sum().backward()
    np.testing.assert_array_equal(e.weight.grad.numpy()[:, 0], [0, 0, 2, 0, 0])
    e = nn.Embedding(5, 3, _weight=table)
    np.testing.assert_array_equal(e.weight.numpy(), table)
    with pytest.raises(ValueError, match=r"Embedding: _weight of shape \(5, 3\) does not match"):
        nn.Embedding(4, 3, _weight=table)
    with pytest.raises(ValueError, match="from_pretrained: embeddings must be 2-D"):
        nn.Embedding.from_pretrained(lamina.zeros(5))


def test_embedding_errors():
    e = nn.Embedding(10, 3)
    with pytest.raises(IndexError, match=r"Embedding\(10, 3\): embedding: index 10 is out of "
                                         r"range for 10 embeddings.*input shape \(2,\)"):
        e(lamina.tensor([3, 10]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        e(lamina.tensor([-1, 2]))
    with pytest.raises(TypeError, match=r"Embedding\(10, 3\).*integer tensor.*float32"):
        e(lamina.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx 10 must be within num_embeddings"):
        nn.Embedding(10, 3, padding_idx=10)
    with pytest.raises(ValueError, match="embedding: weight must be 2-D"):
        F.embedding(lamina.tensor([0]), lamina.zeros(3))
    assert e(lamina.tensor(np.zeros((0, 2), np.int64))).shape == (0, 2, 3)


# ---------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    lamina.manual_seed(0)
    x = lamina.ones(1000, 1000)
    y = F.dropout(x, p).numpy()
    assert y.dtype == np.float32
    assert abs((y == 0).mean() - p) < 0.003                    # fraction zeroed ~ p
    assert abs(y.mean() - 1.0) < 0.01                          # inverted scaling keeps the mean
    assert np.allclose(y[y != 0], 1 / (1 - p))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_gradient_is_mask_times_scale(dtype):
    lamina.manual_seed(3)
    xd = rand(40, 30, low=0.5, high=2.0, seed=9).astype(dtype)  # no zeros: y / x is the mask
    x = lamina.tensor(xd, requires_grad=True)
    y = nn.Dropout(0.3)(x)
    mask = np.where(y.numpy() == 0, 0.0, 1 / 0.7).astype(dtype)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), xd * mask, rtol=1e-6 if dtype == np.float32
                               else 1e-15)
    g = rand(40, 30, seed=10).astype(dtype)
    y.backward(lamina.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), g * mask, rtol=1e-6 if dtype == np.float32
                               else 1e-14)


def test_dropout_eval_and_p_zero_are_identity():
    x = lamina.tensor(rand(5, 4, seed=11), requires_grad=True)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x and F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x and nn.Dropout(0.0)(x) is x
    x4 = x.reshape(5, 4, 1, 1)
    assert F.dropout2d(x4, 0.5, False) is x4 and F.drop_path(x, 0.5, False) is x
    assert F.dropout1d(x, 0.5, False) is x and F.gaussian_noise(x, 1.0, False) is x
    assert F.drop_path(x, 0.0) is x and F.dropout2d(x4, 0.0) is x4
    y = nn.Dropout2d(0.9).eval()(lamina.tensor(rand(2, 3, 4, 4, seed=12)))
    np.testing.assert_array_equal(y.numpy(), rand(2, 3, 4, 4, seed=12))


def test_dropout_p_one_zeroes_everything_like_torch():
    x = lamina.tensor(rand(3, 4, seed=13), requires_grad=True)
    y = F.dropout(x, 1.0)
    tx = torch.tensor(rand(3, 4, seed=13), requires_grad=True)
    ty = TF.dropout(tx, 1.0)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    assert not np.isnan(F.dropout2d(lamina.ones(2, 3, 2, 2), 1.0).numpy()).any()


def test_dropout_reproducible_under_manual_seed():
    x = lamina.ones(50, 20)
    layers = (nn.Dropout(0.4), nn.Dropout2d(0.4), nn.DropPath(0.4), nn.GaussianNoise(0.3))
    for layer in layers:
        xi = x.reshape(50, 20, 1, 1) if isinstance(layer, nn.Dropout2d) else x
        lamina.manual_seed(123)
        a = layer(xi).numpy()
        b = layer(xi).numpy()
        lamina.manual_seed(123)
        np.testing.assert_array_equal(layer(xi).numpy(), a)
        assert not np.array_equal(a, b)        # a fresh draw on every call


def test_dropout_rejects_bad_p():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout: dropout probability has to be between "
                                             r"0 and 1, but got"):
            F.dropout(lamina.ones(2), bad)
        for cls in (nn.Dropout, nn.Dropout2d, nn.DropPath):
            with pytest.raises(ValueError, match=f"{cls.__name__}: dropout probability"):
                cls(bad)
        with pytest.raises(ValueError, match="drop_path: dropout probability"):
            F.drop_path(lamina.ones(2, 2), bad)
        with pytest.raises(ValueError, match="DropConnectLinear: dropout probability"):
            nn.DropConnectLinear(3, 2, p=bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout2d_zeroes_whole_channels(dtype):
    lamina.manual_seed(5)
    x = lamina.tensor(np.ones((64, 32, 3, 5), dtype), requires_grad=True)
    y = nn.Dropout2d(0.25)(x)
    yd = y.numpy()
    assert yd.dtype == dtype
    per_channel = yd.reshape(64, 32, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))     # constant per (n, c)
    vals = per_channel[:, :, 0]
    assert set(np.unique(vals)) <= {0.0, dtype(1 / 0.75)}
    assert abs((vals == 0).mean() - 0.25) < 0.03
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), yd)            # g = 1: grad = mask * scale


def test_dropout1d_3d_and_unbatched_channel_masks():
    lamina.manual_seed(6)
    for fn, shape, keep in ((F.dropout1d, (8, 6, 7), 2), (F.dropout1d, (6, 7), 1),
                            (F.dropout3d, (4, 6, 2, 3, 2), 2), (F.dropout3d, (6, 2, 3, 2), 1),
                            (F.dropout2d, (8, 6, 7), 2)):
        y = fn(lamina.ones(*shape), 0.5).numpy()
        flat = y.reshape(shape[:keep] + (-1,))
        assert np.all(flat.min(-1) == flat.max(-1)), fn.__name__
        assert (flat[..., 0] == 0).any() and (flat[..., 0] != 0).any()
    with pytest.raises(ValueError, match=r"dropout2d: expected a 4-D input \(N, C, \.\.\.\).*"
                                         r"\(2, 3\)"):
        F.dropout2d(lamina.ones(2, 3))


def test_drop_path_per_sample():
    lamina.manual_seed(7)
    x = lamina.tensor(np.ones((2000, 3, 4), np.float32), requires_grad=True)
    y = F.drop_path(x, 0.3)
    yd = y.numpy().reshape(2000, -1)
    assert np.all(yd.min(1) == yd.max(1))                         # whole sample kept or dropped
    assert abs((yd[:, 0] == 0).mean() - 0.3) < 0.03
    assert set(np.unique(yd)) == {0.0, np.float32(1 / 0.7)}
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    y = F.drop_path(lamina.ones(500, 2), 0.5, scale_by_keep=False).numpy()
    assert set(np.unique(y)) == {0.0, 1.0}
    assert nn.DropPath(0.5).eval()(x) is x


def test_drop_connect_linear_train_and_eval():
    layer = nn.DropConnectLinear(6, 4, p=0.5)
    tlayer = tnn.Linear(6, 4)
    layer.load_state_dict({k: v.numpy() for k, v in tlayer.state_dict().items()})
    xd = rand(5, 6, seed=14).astype(np.float32)
    # eval: the plain Linear
    layer.eval()
    np.testing.assert_allclose(layer(lamina.tensor(xd)).numpy(),
                               tlayer(torch.tensor(xd)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # train: linear with the weight times one inverted-scaled mask
    layer.train()
    lamina.manual_seed(9)
    x = lamina.tensor(xd, requires_grad=True)
    y = layer(x)
    lamina.manual_seed(9)
    m = keep_mask((4, 6), 0.5, np.dtype(np.float32))
    assert set(np.unique(m)) == {0.0, 2.0}
    w, b = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), xd @ (w * m).T + b, rtol=1e-5, atol=1e-6)
    g = rand(5, 4, seed=15).astype(np.float32)
    y.backward(lamina.tensor(g))
    np.testing.assert_allclose(layer.weight.grad.numpy(), m * (g.T @ xd), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), g @ (w * m), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"DropConnectLinear\(in_features=6.*\(5, 3\)"):
        layer(lamina.zeros(5, 3))


def test_gaussian_noise():
    lamina.manual_seed(10)
    x = lamina.tensor(np.full((500, 400), 3.0, np.float32), requires_grad=True)
    layer = nn.GaussianNoise(0.5)
    y = layer(x)
    noise = y.numpy() - 3.0
    assert y.dtype == np.float32
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.5) < 0.005
    y.backward(lamina.ones(500, 400))
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((500, 400), np.float32))
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="GaussianNoise: std must be non-negative"):
        nn.GaussianNoise(-1.0)
    y64 = F.gaussian_noise(lamina.zeros(10, dtype=lamina.float64), 1.0)
    assert y64.dtype == np.float64


# ---------------------------------------------------------------- penalties, max-norm
def _mlp():
    lamina.manual_seed(11)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.mark.parametrize("exclude", [False, True])
def test_l1_l2_penalties_values_and_gradients(exclude):
    model = _mlp()
    params = list(model.parameters())
    used = [p for p in params if p.ndim >= 2] if exclude else params
    l1 = l1_penalty(model, exclude_biases=exclude)
    l2 = l2_penalty(model, exclude_biases=exclude)
    assert l1.shape == () and l2.shape == ()
    np.testing.assert_allclose(l1.item(), sum(np.abs(p.numpy()).sum() for p in used), rtol=1e-6)
    np.testing.assert_allclose(l2.item(), sum((p.numpy() ** 2).sum() for p in used), rtol=1e-6)
    (l1 + 0.5 * l2).backward()
    for p in params:
        is_used = any(p is u for u in used)
        want = np.sign(p.numpy()) + p.numpy() if is_used else np.zeros_like(p.numpy())
        got = p.grad.numpy() if p.grad is not None else np.zeros_like(p.numpy())
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_penalties_accept_lists_tensors_and_skip_frozen():
    w = lamina.tensor([[1.0, -2.0]], requires_grad=True)
    b = lamina.tensor([3.0], requires_grad=True)
    assert l1_penalty([w, b]).item() == 6.0 and l2_penalty(w).item() == 5.0
    assert l1_penalty([w, b], exclude_biases=True).item() == 3.0
    frozen = lamina.tensor([5.0])
    assert l2_penalty([frozen]).item() == 0.0
    with pytest.raises(TypeError, match="l1_penalty: expected a Module"):
        l1_penalty([np.ones(2)])


@pytest.mark.parametrize("dim", [0, 1])
def test_max_norm_matches_torch_renorm(dim):
    w = rand(6, 5, seed=16)
    w[(slice(None, None, 2),) if dim == 0 else (slice(None), slice(None, None, 2))] *= 0.2
    t = torch.renorm(torch.tensor(w), 2, dim, 1.5)
    p = lamina.nn.Parameter(w.copy())
    max_norm_([p], 1.5, dim=dim)
    np.testing.assert_allclose(p.numpy(), t.numpy(), rtol=1e-12)
    norms = np.sqrt((p.numpy() ** 2).sum(axis=1 - dim))
    assert norms.max() <= 1.5 + 1e-9 and (norms < 1.5 - 1e-3).any()   # small ones untouched
    for norm_type in (1.0, 3.0, float("inf")):
        p = lamina.nn.Parameter(w.copy())
        max_norm_(p, 1.2, dim=dim, norm_type=norm_type)
        np.testing.assert_allclose(p.numpy(), torch.renorm(torch.tensor(w), norm_type, dim,
                                                           1.2).numpy(), rtol=1e-12)


def test_max_norm_on_module_constrains_weights_in_place_not_biases():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4)) \
        if hasattr(nn, "Conv2d") else nn.Sequential(nn.Linear(12, 4))
    with lamina.no_grad():
        for p in model.parameters():
            p.mul_(10)
    flat, _ = flat_parameters(model)
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    views = {n: p.data for n, p in model.named_parameters()}
    max_norm_(model, 2.0)
    for n, p in model.named_parameters():
        assert p.data is views[n]                          # still views of the flat buffer
        if p.ndim >= 2:
            want = torch.renorm(torch.tensor(before[n]), 2, 0, 2.0).numpy()
            np.testing.assert_allclose(p.numpy(), want, rtol=1e-5)
        else:
            np.testing.assert_array_equal(p.numpy(), before[n])
    assert np.shares_memory(flat, model[-1].weight.data)
