"""Layer modules against torch.nn (values, input and parameter gradients, float64
gradcheck), and the init functions' statistics."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn

import lamina
import lamina.nn as nn
from lamina.autograd import gradcheck
from helpers import check_op, noncontig, rand


def check_layer(layer, tlayer, *arrays, atol=1e-5, rtol=1e-4, seed=0):
    """Copy torch's parameters into ``layer``; compare outputs, input gradients and
    parameter gradients with torch; then gradcheck inputs and parameters in float64."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in tlayer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    layer.load_state_dict({k: v.numpy() for k, v in tlayer.state_dict().items()})
    xs = [a.astype(np.float32) for a in arrays]
    lx = [lamina.tensor(a, requires_grad=True) for a in xs]
    tx = [torch.tensor(a, requires_grad=True) for a in xs]
    out, tout = layer(*lx), tlayer(*tx)
    assert out.shape == tuple(tout.shape) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=atol, rtol=rtol)
    v = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    out.backward(v)
    tout.backward(torch.tensor(v))
    for i, (a, b) in enumerate(zip(lx, tx)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol * 10,
                                   rtol=rtol * 10, err_msg=f"input {i} gradient")
    for (n, p), tp in zip(layer.named_parameters(), tlayer.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=atol * 10,
                                   rtol=rtol * 10, err_msg=f"{n} gradient")
    layer.double().zero_grad()
    gin = [lamina.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    params = list(layer.parameters())
    assert gradcheck(lambda *t: layer(*t[:len(gin)]), gin + params)


# ---------------------------------------------------------------- Linear
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,), (1, 1, 4)])
def test_linear(bias, shape):
    check_layer(nn.Linear(4, 3, bias=bias), tnn.Linear(4, 3, bias=bias), rand(*shape, seed=1))


def test_linear_noncontiguous_input():
    check_layer(nn.Linear(3, 2), tnn.Linear(3, 2), noncontig(rand(4, 3, seed=2)))


def test_linear_large_magnitude():
    check_layer(nn.Linear(3, 2), tnn.Linear(3, 2), rand(4, 3, seed=3) * 1e3, rtol=1e-4,
                atol=1e-2)  # outputs ~1e3 in float32: atol scaled to the magnitude


def test_linear_default_init_and_attrs():
    lamina.manual_seed(0)
    lin = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    for p in (lin.weight, lin.bias):
        assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
    assert np.abs(lin.weight.numpy()).max() > 0.9 * bound    # spans the torch range
    assert lin.weight.shape == (40, 50) and lin.bias.shape == (40,)
    assert nn.Linear(2, 3, bias=False).bias is None
    assert nn.Linear(2, 3, dtype=lamina.float64).weight.dtype == np.float64


def test_linear_bad_input_names_layer_and_shapes():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=3\): input of "
                                         r"shape \(2, 5\) does not end in 4 features"):
        lin(lamina.zeros(2, 5))
    with pytest.raises(ValueError, match=r"Linear.*shape \(\)"):
        lin(lamina.tensor(1.0))


@pytest.mark.parametrize("rows", [[3, 5, 2, 4], [3, 1100, 2], [1200, 1]])
@pytest.mark.parametrize("flat", [False, True])
def test_linear_reused_in_a_loop_merges_weight_grads_like_torch(rows, flat):
    """One Linear applied to several inputs (as an RNN's output layer is, every step): the
    per-use weight and bias gradients are stacked lazily (pieces over 1024 rows are not);
    also with the weight used by another op, an existing .grad, and the optimizer's
    lazily-zeroed flat gradients (write_into)."""
    lin, t = nn.Linear(6, 4), tnn.Linear(6, 4)
    lin.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    xs = [rand(n, 6, seed=k).astype(np.float32) for k, n in enumerate(rows)]
    if flat:
        opt = lamina.optim.SGD(lin.parameters(), lr=0.0)
        opt.zero_grad()
    else:
        lin.weight.grad = lamina.tensor(np.ones((4, 6), np.float32))
        t.weight.grad = torch.ones(4, 6)

    def loss(layer, tensor):
        out = sum((layer(tensor(x)) ** 2).sum() for x in xs)
        return out + (layer.weight * layer.weight).sum()
    loss(lin, lamina.tensor).backward()
    loss(t, torch.tensor).backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(lin.bias.grad.numpy(), t.bias.grad.numpy(), rtol=1e-4,
                               atol=1e-4)


def test_linear_reused_gradcheck():
    lin = nn.Linear(3, 2, dtype=lamina.float64)
    xs = [lamina.tensor(rand(n, 3, seed=n).astype(np.float64), requires_grad=True)
          for n in (2, 1, 3)]
    assert gradcheck(lambda *a: sum((lin(x) ** 2).sum() for x in a[:3]),
                     xs + [lin.weight, lin.bias])


# ---------------------------------------------------------------- parameter-free layers
@pytest.mark.parametrize("make,tmake", [
    (nn.ReLU, tnn.ReLU), (nn.Tanh, tnn.Tanh), (nn.Sigmoid, tnn.Sigmoid),
    (nn.Identity, tnn.Identity)])
@pytest.mark.parametrize("shape", [(3, 4), (2, 1, 3), ()])
def test_activations(make, tmake, shape):
    check_op(lambda x: make()(x), lambda x: tmake()(x), rand(*shape, seed=4))


def test_activations_large_magnitude():
    x = np.array([-1e4, -50.0, -1.5, 2.5, 50.0, 1e4])
    for make, tmake in ((nn.Tanh, tnn.Tanh), (nn.Sigmoid, tnn.Sigmoid)):
        check_op(lambda t: make()(t), lambda t: tmake()(t), x, check_grad=False)


def test_relu_at_zero_matches_torch():
    check_op(lambda t: nn.ReLU()(t), lambda t: tnn.ReLU()(t), np.array([-1.0, 0.0, 0.0, 2.0]),
             check_grad=False)   # not differentiable at 0: torch's subgradient 0 is compared


@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (-2, -1)])
def test_flatten(start, end):
    check_op(lambda x: nn.Flatten(start, end)(x), lambda x: tnn.Flatten(start, end)(x),
             rand(2, 3, 2, 2, seed=5))


def test_flatten_default_and_unflatten():
    check_op(lambda x: nn.Flatten()(x), lambda x: tnn.Flatten()(x), rand(2, 3, 2, seed=6))
    check_op(lambda x: nn.Unflatten(1, (2, 3))(x), lambda x: tnn.Unflatten(1, (2, 3))(x),
             rand(2, 6, seed=7))
    check_op(lambda x: nn.Unflatten(-1, (3, 1))(x), lambda x: tnn.Unflatten(-1, (3, 1))(x),
             noncontig(rand(2, 3, seed=8)))


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
def test_softmax_modules(dim, cls):
    x = rand(3, 4, seed=9)
    check_op(lambda t: getattr(nn, cls)(dim)(t), lambda t: getattr(tnn, cls)(dim)(t), x)
    big = x * 1e3   # stability: huge logits must not overflow
    check_op(lambda t: getattr(nn, cls)(dim)(t), lambda t: getattr(tnn, cls)(dim)(t), big,
             check_grad=False, atol=1e-3)  # log-softmax of ~1e3 logits is ~1e3: float32 ulp


# ---------------------------------------------------------------- losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss(reduction):
    x, t = rand(5, 4, seed=10), np.array([0, 3, 1, 1, 2])
    check_op(lambda a, b: nn.CrossEntropyLoss(reduction=reduction)(a, b),
             lambda a, b: tnn.CrossEntropyLoss(reduction=reduction)(a, b), x, t)


def test_cross_entropy_loss_options():
    x, t = rand(6, 3, seed=11), np.array([0, 2, -100, 1, 2, 0])
    w = np.array([0.5, 2.0, 1.0], np.float32)
    check_op(lambda a, b: nn.CrossEntropyLoss(weight=lamina.tensor(w))(a, b),
             lambda a, b: tnn.CrossEntropyLoss(weight=torch.tensor(w))(a, b), x, t,
             check_grad=False)  # the float32 weight makes the float64 gradcheck mixed-dtype
    check_op(lambda a, b: nn.CrossEntropyLoss(label_smoothing=0.1)(a, b),
             lambda a, b: tnn.CrossEntropyLoss(label_smoothing=0.1)(a, b), x, t)
    check_op(lambda a, b: nn.CrossEntropyLoss()(a, b), lambda a, b: tnn.CrossEntropyLoss()(a, b),
             rand(2, 3, 4, seed=12), np.array([[0, 1, 2, 0], [2, 2, 1, 0]]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_loss(reduction):
    x, t = rand(4, 3, seed=13), rand(4, 3, low=0, high=1, seed=14)
    check_op(lambda a, b: nn.BCEWithLogitsLoss(reduction=reduction)(a, b),
             lambda a, b: tnn.BCEWithLogitsLoss(reduction=reduction)(a, b), x, t)


def test_bce_with_logits_pos_weight_and_large_logits():
    pw = np.array([1.0, 3.0, 0.5], np.float32)
    x, t = rand(4, 3, seed=15), (rand(4, 3, seed=16) > 0).astype(np.float64)
    check_op(lambda a, b: nn.BCEWithLogitsLoss(pos_weight=lamina.tensor(pw))(a, b),
             lambda a, b: tnn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(a, b), x, t,
             check_grad=False)  # float32 pos_weight: see above
    check_op(lambda a, b: nn.BCEWithLogitsLoss()(a, b), lambda a, b: tnn.BCEWithLogitsLoss()(a, b),
             np.array([[-200.0, 200.0, 0.0]]), np.array([[1.0, 0.0, 0.5]]), check_grad=False)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    check_op(lambda a, b: nn.MSELoss(reduction=reduction)(a, b),
             lambda a, b: tnn.MSELoss(reduction=reduction)(a, b),
             rand(3, 4, seed=17), rand(3, 4, seed=18))


def test_mse_loss_shape_error():
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3,\) must match input "
                                         r"shape \(2, 3\)"):
        nn.MSELoss()(lamina.zeros(2, 3), lamina.zeros(3))


def test_mlp_with_loss_end_to_end_matches_torch():
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    tnet = tnn.Sequential(tnn.Flatten(), tnn.Linear(6, 5), tnn.ReLU(), tnn.Linear(5, 3))
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x, y = rand(4, 2, 3, seed=19).astype(np.float32), np.array([0, 2, 1, 2])
    loss = nn.CrossEntropyLoss()(net(lamina.tensor(x)), lamina.tensor(y))
    tloss = tnn.CrossEntropyLoss()(tnet(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
    for p, tp in zip(net.parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- init
def _big(*shape):
    return nn.Parameter(lamina.zeros(*shape))


def test_calculate_gain_matches_torch():
    for nl in ["linear", "conv1d", "conv2d", "sigmoid", "tanh", "relu", "selu"]:
        assert nn.init.calculate_gain(nl) == pytest.approx(tnn.init.calculate_gain(nl))
    for slope in (None, 0.2):
        assert nn.init.calculate_gain("leaky_relu", slope) == \
            pytest.approx(tnn.init.calculate_gain("leaky_relu", slope))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        nn.init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(30, 20), (8, 3, 5, 5), (6, 4, 7)])
def test_fans_match_torch(shape):
    assert nn.init._fans(lamina.zeros(*shape)) == \
        tnn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


def _std_close(a, std):
    # 240k samples: the sample std is within ~0.3% of the true one; 2% is > 6 sigma
    assert abs(a.std() / std - 1) < 0.02, (a.std(), std)
    assert abs(a.mean()) < 0.02 * std


def test_xavier():
    w = _big(400, 600)
    a = math.sqrt(6 / 1000) * 2.0
    nn.init.xavier_uniform_(w, gain=2.0)
    d = w.numpy()
    assert np.abs(d).max() <= a and np.abs(d).max() > 0.99 * a
    _std_close(d, a / math.sqrt(3))
    nn.init.xavier_normal_(w)
    _std_close(w.numpy(), math.sqrt(2 / 1000))


def test_kaiming():
    w = _big(600, 400)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    b = math.sqrt(2) * math.sqrt(3 / 400)
    assert np.abs(w.numpy()).max() <= b and np.abs(w.numpy()).max() > 0.99 * b
    _std_close(w.numpy(), b / math.sqrt(3))
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    _std_close(w.numpy(), math.sqrt(2 / 600))
    nn.init.kaiming_normal_(w, a=0.2)   # leaky_relu default, fan_in
    _std_close(w.numpy(), math.sqrt(2 / (1 + 0.04)) / math.sqrt(400))
    with pytest.raises(ValueError, match="mode must be"):
        nn.init.kaiming_normal_(w, mode="fan_avg")
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        nn.init.kaiming_uniform_(_big(5))


@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (6, 2, 3, 3)])
def test_orthogonal(shape):
    w = _big(*shape)
    nn.init.orthogonal_(w, gain=1.5)
    m = w.numpy().reshape(shape[0], -1).astype(np.float64) / 1.5
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, np.eye(len(small)), atol=1e-5)


@pytest.mark.parametrize("fn", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                "kaiming_normal_", "orthogonal_", "uniform_", "normal_"])
def test_init_reproducible_under_manual_seed(fn):
    def draw(seed):
        lamina.manual_seed(seed)
        w = _big(7, 5)
        out = getattr(nn.init, fn)(w)
        assert out is w
        return w.numpy().copy()
    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


def test_init_writes_in_place_into_flat_views():
    net = nn.Linear(3, 4)
    flat, _ = nn.utils.flat_parameters(net)
    nn.init.constant_(net.weight, 2.0)
    nn.init.ones_(net.bias)
    np.testing.assert_array_equal(flat, [2.0] * 12 + [1.0] * 4)
    w = _big(3, 3)
    nn.init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(3))
    nn.init.zeros_(w)
    assert not w.numpy().any() and w.requires_grad
