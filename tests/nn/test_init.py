"""lamina.nn.init beyond tests/nn/test_layers.py: every gain and fan against PyTorch, the
statistics of each initialiser (bounds, std, truncation moments, sparsity per column,
dirac/eye exactly as torch), the generator argument, in-place writes without a graph,
the errors, and the default initialisation table of the module docstring (checked on
both lamina's and torch's layers)."""
import math
import typing
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
from lamina.nn import init

TORCH_NONLINEARITIES = typing.get_args(
    typing.get_type_hints(tnn.init.calculate_gain)["nonlinearity"])


def _param(*shape, dtype=np.float32):
    return nn.Parameter(lamina.zeros(*shape, dtype=dtype))


def _close(value, expected, rel, what):
    assert abs(value / expected - 1) < rel, f"{what}: {value} vs expected {expected}"


# ---------------------------------------------------------------- gains and fans
def test_every_torch_nonlinearity_has_torch_gain():
    assert "selu" in TORCH_NONLINEARITIES and "conv_transpose3d" in TORCH_NONLINEARITIES
    for name in TORCH_NONLINEARITIES:
        assert init.calculate_gain(name) == tnn.init.calculate_gain(name), name
    for slope in (None, 0, 0.2, 1, 3.5, -0.1):
        assert init.calculate_gain("leaky_relu", slope) == \
            tnn.init.calculate_gain("leaky_relu", slope)
    # param is ignored by the other nonlinearities, as in torch
    assert init.calculate_gain("tanh", 0.3) == tnn.init.calculate_gain("tanh", 0.3)


def test_calculate_gain_errors():
    for bad in (True, "0.1"):
        with pytest.raises(ValueError):
            tnn.init.calculate_gain("leaky_relu", bad)
        with pytest.raises(ValueError, match="calculate_gain: negative_slope"):
            init.calculate_gain("leaky_relu", bad)
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'.*selu"):
        init.calculate_gain("gelu")


@pytest.mark.parametrize("shape", [(4, 6, 3), (3, 8, 2, 2), (2, 3, 3, 3, 3), (5, 1), (1, 7)],
                         ids=["conv1d", "convT2d", "conv3d", "col", "row"])
def test_fans_and_correct_fan_match_torch(shape):
    t = torch.zeros(*shape)
    assert init._fans(lamina.zeros(*shape)) == tnn.init._calculate_fan_in_and_fan_out(t)
    for mode in ("fan_in", "fan_out"):
        assert init._calculate_correct_fan(lamina.zeros(*shape), mode) == \
            tnn.init._calculate_correct_fan(t, mode)


# ---------------------------------------------------------------- variance scaling on conv weights
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2), ("selu", 0),
                                            ("tanh", 0), ("conv2d", 0)])
def test_kaiming_on_conv_weight_uses_torch_bound_and_std(nonlinearity, a, mode):
    shape = (48, 32, 3, 3)   # 13,824 values: std within ~1% (3% is > 4 sigma)
    t = torch.zeros(shape)
    std = tnn.init.calculate_gain(nonlinearity, a) / \
        math.sqrt(tnn.init._calculate_correct_fan(t, mode))
    w = _param(*shape)
    init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    bound = std * math.sqrt(3)
    assert np.abs(w.numpy()).max() <= bound * (1 + 1e-6)
    assert np.abs(w.numpy()).max() > 0.99 * bound
    _close(w.numpy().std(), std, 0.03, "kaiming_uniform_ std")
    init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    _close(w.numpy().std(), std, 0.03, "kaiming_normal_ std")
    assert abs(w.numpy().mean()) < 0.05 * std


def test_xavier_on_conv_weight_uses_receptive_field():
    shape = (40, 30, 3, 3)
    fan_in, fan_out = 30 * 9, 40 * 9
    w = _param(*shape)
    init.xavier_uniform_(w, gain=init.calculate_gain("tanh"))
    bound = 5 / 3 * math.sqrt(6 / (fan_in + fan_out))
    assert bound * 0.99 < np.abs(w.numpy()).max() <= bound * (1 + 1e-6)
    init.xavier_normal_(w, gain=0.5)
    _close(w.numpy().std(), 0.5 * math.sqrt(2 / (fan_in + fan_out)), 0.03, "xavier_normal_")


def test_uniform_and_normal_parameters():
    w = _param(300, 200)
    init.uniform_(w, -0.5, 1.5)
    assert w.numpy().min() >= -0.5 and w.numpy().max() < 1.5
    _close(w.numpy().mean(), 0.5, 0.02, "uniform mean")
    _close(w.numpy().std(), 2 / math.sqrt(12), 0.02, "uniform std")
    init.normal_(w, 3.0, 0.25)
    _close(w.numpy().mean(), 3.0, 0.01, "normal mean")
    _close(w.numpy().std(), 0.25, 0.02, "normal std")


# ---------------------------------------------------------------- trunc_normal_
def _truncated_moments(mean, std, a, b):
    def pdf(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    def cdf(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))
    al, be = (a - mean) / std, (b - mean) / std
    z = cdf(be) - cdf(al)
    m = (pdf(al) - pdf(be)) / z
    var = 1 + (al * pdf(al) - be * pdf(be)) / z - m * m
    return mean + std * m, std * math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 2.0, 0.0, 3.0),
                                          (0.0, 1.0, 2.5, 4.0), (0.0, 0.02, -0.04, 0.04),
                                          (-1.0, 0.5, -5.0, -1.2)])
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    w = _param(400, 500, dtype=np.float64)
    init.trunc_normal_(w, mean, std, a, b)
    d = w.numpy()
    assert d.min() >= a and d.max() <= b
    m, s = _truncated_moments(mean, std, a, b)
    assert abs(d.mean() - m) < 0.01 * s, (d.mean(), m)
    _close(d.std(), s, 0.01, "truncated std")
    # the ends of [a, b] where the density is not negligible are reached (no mass lost
    # to the inverse-CDF approximation)
    peak = min(max(mean, a), b)
    for end, near in ((a, d.min() < a + 0.01 * (b - a)), (b, d.max() > b - 0.01 * (b - a))):
        if math.exp(((peak - mean) ** 2 - (end - mean) ** 2) / (2 * std * std)) > 0.05:
            assert near, f"no samples near the end {end}"


def test_trunc_normal_defaults_match_torch_distribution():
    w = _param(200, 300)
    init.trunc_normal_(w)
    t = tnn.init.trunc_normal_(torch.empty(200, 300))
    assert w.numpy().min() >= -2 and w.numpy().max() <= 2
    _close(w.numpy().std(), t.std().item(), 0.02, "trunc_normal_ std vs torch")


def test_normal_quantile_approximation():
    p = np.concatenate([np.logspace(-300, -1, 200), np.linspace(0.02, 0.98, 200),
                        1 - np.logspace(-15, -1, 100)])
    ref = torch.special.ndtri(torch.tensor(p, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(init._norm_ppf(p), ref, rtol=1e-8, atol=1e-12)


def test_trunc_normal_error():
    with pytest.raises(ValueError, match="trunc_normal_: need a < b, got a=1, b=1"):
        init.trunc_normal_(_param(3, 3), a=1, b=1)


# ---------------------------------------------------------------- sparse_
@pytest.mark.parametrize("shape,sparsity", [((100, 30), 0.1), ((7, 5), 0.3), ((9, 4), 0.0),
                                            ((6, 8), 1.0), ((10, 3), 0.05)])
def test_sparse_zeros_per_column(shape, sparsity):
    w = _param(*shape)
    init.sparse_(w, sparsity, std=0.5)
    zeros = (w.numpy() == 0).sum(axis=0)
    np.testing.assert_array_equal(zeros, [math.ceil(sparsity * shape[0])] * shape[1])
    t = tnn.init.sparse_(torch.empty(*shape), sparsity, std=0.5)
    np.testing.assert_array_equal(zeros, (t.numpy() == 0).sum(axis=0))


def test_sparse_values_and_random_rows():
    w = _param(1000, 200)
    init.sparse_(w, 0.5, std=0.02)
    d = w.numpy()
    _close(d[d != 0].std(), 0.02, 0.02, "sparse_ nonzero std")
    zero_rows = [frozenset(np.flatnonzero(d[:, j] == 0)) for j in range(20)]
    assert len(set(zero_rows)) == 20  # each column zeroes its own rows
    row_fraction = (d == 0).mean(axis=1)  # every row is zeroed about half the time
    assert 0.3 < row_fraction.min() and row_fraction.max() < 0.7


def test_sparse_errors():
    for shape in [(5,), (2, 3, 4)]:
        with pytest.raises(ValueError, match=rf"sparse_: only 2-D tensors are supported, got "
                                             rf"shape {re_shape(shape)}"):
            init.sparse_(_param(*shape), 0.1)
    with pytest.raises(ValueError, match="sparsity must be in"):
        init.sparse_(_param(3, 3), 1.5)


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


# ---------------------------------------------------------------- deterministic fills
@pytest.mark.parametrize("shape,groups", [((4, 3, 3), 1), ((6, 4, 3, 3), 2), ((2, 2, 3, 3, 3), 1),
                                          ((3, 5, 3), 1), ((4, 2, 2, 4), 1), ((6, 2, 5, 5), 3)])
def test_dirac_matches_torch(shape, groups):
    w = _param(*shape)
    init.dirac_(w, groups)
    np.testing.assert_array_equal(w.numpy(), tnn.init.dirac_(torch.empty(shape), groups).numpy())


def test_dirac_is_the_identity_convolution():
    w = _param(5, 5, 3, 3)
    init.dirac_(w)
    x = torch.randn(2, 5, 6, 7)
    np.testing.assert_allclose(TF.conv2d(x, torch.tensor(w.numpy()), padding=1).numpy(),
                               x.numpy(), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye_matches_torch(shape):
    w = _param(*shape)
    w.data[...] = 7
    init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), tnn.init.eye_(torch.empty(shape)).numpy())


@pytest.mark.parametrize("shape", [(4, 8, 3, 3), (30, 4, 2)])
def test_orthogonal_conv_shapes(shape):
    w = _param(*shape, dtype=np.float64)
    init.orthogonal_(w, gain=init.calculate_gain("relu"))
    m = w.numpy().reshape(shape[0], -1) / math.sqrt(2)
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, np.eye(len(small)), atol=1e-12)


# ---------------------------------------------------------------- in place, no graph, rng
_RANDOM = {"uniform_": {}, "normal_": {}, "trunc_normal_": {}, "xavier_uniform_": {},
           "xavier_normal_": {}, "kaiming_uniform_": {}, "kaiming_normal_": {},
           "orthogonal_": {}, "sparse_": {"sparsity": 0.3}}


@pytest.mark.parametrize("name", sorted(_RANDOM))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_without_graph(name, dtype):
    fn = getattr(init, name)
    w = _param(6, 4, dtype=dtype)
    buf = w.data
    with lamina.enable_grad():
        out = fn(w, **_RANDOM[name])
    assert out is w and w.data is buf and w.dtype == dtype
    assert w.is_leaf and w.requires_grad and w.grad_fn is None and w.grad is None
    assert w.numpy().any()
    (w * 2).sum().backward()          # still an ordinary leaf
    np.testing.assert_array_equal(w.grad.numpy(), np.full((6, 4), 2, dtype))
    plain = lamina.zeros(6, 4, dtype=dtype)
    assert fn(plain, **_RANDOM[name]) is plain and not plain.requires_grad
    arr = np.zeros((6, 4), dtype)
    assert fn(arr, **_RANDOM[name]) is arr and arr.any()


@pytest.mark.parametrize("name", sorted(_RANDOM))
def test_reproducible_under_manual_seed_and_generator(name):
    fn = getattr(init, name)

    def draw(seed=None, generator=None):
        if seed is not None:
            lamina.manual_seed(seed)
        w = _param(7, 5)
        fn(w, generator=generator, **_RANDOM[name])
        return w.numpy().copy()
    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))
    # an explicit generator repeats and leaves lamina's own stream alone
    lamina.manual_seed(5)
    a = draw(generator=np.random.default_rng(11))
    after = lamina.rand(3).numpy()
    lamina.manual_seed(5)
    np.testing.assert_array_equal(lamina.rand(3).numpy(), after)
    np.testing.assert_array_equal(draw(generator=np.random.default_rng(11)), a)


def test_constant_fills_keep_dtype():
    w = _param(3, 4, dtype=np.float64)
    assert init.constant_(w, 0.3) is w
    np.testing.assert_array_equal(w.numpy(), np.full((3, 4), 0.3))
    init.ones_(w)
    assert (w.numpy() == 1).all() and w.dtype == np.float64
    init.zeros_(w)
    assert not w.numpy().any()


def test_zero_element_tensors_are_a_no_op_like_torch():
    for name in ("kaiming_uniform_", "kaiming_normal_"):
        with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
            getattr(init, name)(_param(0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert init.orthogonal_(_param(0, 4)).shape == (0, 4)


@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_"])
def test_too_few_dims_for_fans(name):
    with pytest.raises(ValueError, match=r"fan in and fan out need a tensor with at least 2 "
                                         r"dimensions, got shape \(5,\)"):
        getattr(init, name)(_param(5))


def test_other_dimension_errors():
    with pytest.raises(ValueError, match=r"orthogonal_: only tensors with 2 or more dimensions "
                                         r"are supported, got shape \(4,\)"):
        init.orthogonal_(_param(4))
    with pytest.raises(ValueError, match=r"eye_: only 2-D tensors are supported, got shape "
                                         r"\(2, 2, 2\)"):
        init.eye_(_param(2, 2, 2))
    with pytest.raises(ValueError, match=r"dirac_: only 3, 4 and 5-D tensors are supported, "
                                         r"got shape \(3, 3\)"):
        init.dirac_(_param(3, 3))
    with pytest.raises(ValueError, match=r"dirac_: dim 0 \(5\) must be divisible by groups"):
        init.dirac_(_param(5, 2, 3), groups=2)
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', got 'fan_avg'"):
        init.kaiming_uniform_(_param(3, 3), mode="fan_avg")


# ---------------------------------------------------------------- the layer defaults table
def _u(bound):
    return ("uniform", bound)


# layer, its row in the table, constructor args, {parameter/buffer: distribution}
_DEFAULTS = [
    ("Linear", "Linear(in, out)", (300, 200), {"weight": _u(1 / math.sqrt(300)), "bias": _u(1 / math.sqrt(300))}),
    ("Bilinear", "Bilinear(in1, in2, out)", (20, 30, 40), {"weight": _u(1 / math.sqrt(20)), "bias": _u(1 / math.sqrt(20))}),
    ("Conv1d", "Conv1d/2d/3d", (16, 24, 5), {"weight": _u(1 / math.sqrt(80)), "bias": _u(1 / math.sqrt(80))}),
    ("Conv2d", "Conv1d/2d/3d", (16, 32, 3), {"weight": _u(1 / 12), "bias": _u(1 / 12)}),
    ("ConvTranspose2d", "ConvTranspose1d/2d/3d", (16, 32, 3), {"weight": _u(1 / math.sqrt(32 * 9)),
                                      "bias": _u(1 / math.sqrt(32 * 9))}),
    ("Embedding", "Embedding", (1000, 20), {"weight": ("normal", 1.0)}),
    ("BatchNorm2d", "BatchNorm1d/2d/3d", (10,), {"weight": ("const", 1), "bias": ("const", 0),
                            "running_mean": ("const", 0), "running_var": ("const", 1),
                            "num_batches_tracked": ("const", 0)}),
    ("LayerNorm", "LayerNorm, GroupNorm", ((4, 5),), {"weight": ("const", 1), "bias": ("const", 0)}),
    ("GroupNorm", "LayerNorm, GroupNorm", (2, 10), {"weight": ("const", 1), "bias": ("const", 0)}),
    ("PReLU", "PReLU", (), {"weight": ("const", 0.25)}),
    ("RNN", "RNN / LSTM / GRU", (10, 50), {"weight_ih_l0": _u(1 / math.sqrt(50)), "bias_hh_l0": _u(1 / math.sqrt(50))}),
    ("LSTM", "RNN / LSTM / GRU", (10, 50), {"weight_hh_l0": _u(1 / math.sqrt(50)), "bias_ih_l0": _u(1 / math.sqrt(50))}),
    ("GRU", "RNN / LSTM / GRU", (10, 50), {"weight_ih_l0": _u(1 / math.sqrt(50)), "bias_hh_l0": _u(1 / math.sqrt(50))}),
]


def _check_distribution(arr, kind, value, what):
    arr = np.asarray(arr, np.float64)
    if kind == "const":
        assert (arr == value).all(), f"{what}: expected all {value}"
    elif kind == "uniform":
        assert np.abs(arr).max() <= value * (1 + 1e-6), f"{what}: exceeds the bound {value}"
        if arr.size >= 2000:
            assert np.abs(arr).max() > 0.98 * value, f"{what}: does not reach {value}"
            _close(arr.std(), value / math.sqrt(3), 0.05, f"{what} std")
    else:
        _close(arr.std(), value, 0.05, f"{what} std")
        assert abs(arr.mean()) < 0.05 * value


@pytest.mark.parametrize("name,doc,args,spec", _DEFAULTS, ids=[d[0] for d in _DEFAULTS])
def test_documented_default_init(name, doc, args, spec):
    assert "\n" + doc in init.__doc__   # a row of the table
    torch.manual_seed(0)
    tlayer = getattr(tnn, name)(*args)
    tstate = dict(tlayer.named_parameters()) | dict(tlayer.named_buffers())
    for key, (kind, value) in spec.items():   # the table is right about torch
        _check_distribution(tstate[key].detach().numpy(), kind, value, f"torch {name}.{key}")
    if not hasattr(nn, name):
        pytest.skip(f"lamina has no {name} yet")
    lamina.manual_seed(0)
    layer = getattr(nn, name)(*args)
    state = dict(layer.named_parameters()) | dict(layer.named_buffers())
    for key, (kind, value) in spec.items():   # and lamina's layer follows it
        _check_distribution(state[key].numpy(), kind, value, f"lamina {name}.{key}")


def test_embedding_padding_row_is_zero():
    if not hasattr(nn, "Embedding"):
        pytest.skip("lamina has no Embedding yet")
    e = nn.Embedding(10, 4, padding_idx=3)
    assert not e.weight.numpy()[3].any() and e.weight.numpy()[[0, 9]].all()
