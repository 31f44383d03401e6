"""Activations (functional and modules) against torch: values, input and parameter
gradients in float32 and float64, float64 gradcheck, kinks and extreme inputs, errors."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.ops import activation as act
from helpers import check_module, check_op, rand

DTYPES = [np.float32, np.float64]


def tol(dtype):
    """The issue's tolerances: float32 rtol 1e-4, float64 rtol 1e-8."""
    return dict(atol=1e-5, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-8)


# (lamina functional, torch functional) pairs on random inputs in [-3, 3]
FUNCTIONAL = {
    "relu": (F.relu, TF.relu),
    "threshold": (lambda x: F.threshold(x, 0.3, -2.0), lambda x: TF.threshold(x, 0.3, -2.0)),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "leaky_relu_0": (lambda x: F.leaky_relu(x, 0.0), lambda x: TF.leaky_relu(x, 0.0)),
    "elu": (F.elu, TF.elu),
    "elu_0.5": (lambda x: F.elu(x, 0.5), lambda x: TF.elu(x, 0.5)),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: TF.gelu(x, approximate="tanh")),
    "softplus": (F.softplus, TF.softplus),
    "softplus_beta": (lambda x: F.softplus(x, 2.0, 3.0), lambda x: TF.softplus(x, 2.0, 3.0)),
    "tanh": (F.tanh, torch.tanh),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "hardtanh": (F.hardtanh, TF.hardtanh),
    "hardtanh_bounds": (lambda x: F.hardtanh(x, -2.0, 0.5), lambda x: TF.hardtanh(x, -2.0, 0.5)),
    "abs": (F.abs, torch.abs),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: TF.softmax(x, 1)),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_functional_parity_and_gradcheck(name, dtype):
    fn, tfn = FUNCTIONAL[name]
    check_op(fn, tfn, rand(3, 5, low=-3, high=3, seed=1), dtype=dtype, **tol(dtype))


# (lamina module, torch module) built fresh for each test
MODULES = {
    "ReLU": (lambda: nn.ReLU(), lambda: tnn.ReLU()),
    "Threshold": (lambda: nn.Threshold(-0.5, 7.0), lambda: tnn.Threshold(-0.5, 7.0)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), lambda: tnn.LeakyReLU(0.1)),
    "PReLU": (lambda: nn.PReLU(), lambda: tnn.PReLU()),
    "PReLU_C": (lambda: nn.PReLU(3), lambda: tnn.PReLU(3)),
    "ELU": (lambda: nn.ELU(1.5), lambda: tnn.ELU(1.5)),
    "GELU": (lambda: nn.GELU(), lambda: tnn.GELU()),
    "GELU_tanh": (lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh")),
    "Softplus": (lambda: nn.Softplus(0.5, 2.0), lambda: tnn.Softplus(0.5, 2.0)),
    "Tanh": (lambda: nn.Tanh(), lambda: tnn.Tanh()),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda: tnn.Sigmoid()),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 1.5), lambda: tnn.Hardtanh(-0.5, 1.5)),
    "Softmax": (lambda: nn.Softmax(1), lambda: tnn.Softmax(1)),
    "LogSoftmax": (lambda: nn.LogSoftmax(-1), lambda: tnn.LogSoftmax(-1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(MODULES))
def test_module_parity_and_gradcheck(name, dtype):
    make, tmake = MODULES[name]
    # (N, C, L) with C = 3, so per-channel PReLU applies along dim 1
    check_module(make(), tmake(), rand(2, 3, 4, low=-3, high=3, seed=2), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_parameter_gradient_4d_and_default_init(dtype):
    layer = nn.PReLU(4)
    assert layer.weight.shape == (4,) and np.all(layer.weight.numpy() == 0.25)
    assert list(layer.state_dict()) == ["weight"]
    check_module(layer, tnn.PReLU(4), rand(2, 4, 3, 2, low=-3, high=3, seed=3), dtype=dtype)
    check_module(nn.PReLU(1, init=0.1), tnn.PReLU(1, init=0.1), rand(5, low=-3, high=3, seed=4),
                 dtype=dtype, randomize=False)


def test_prelu_functional_weight_gradient():
    for w in (np.array([0.3]), np.array([0.1, -0.2, 0.5])):
        check_op(F.prelu, TF.prelu, rand(4, 3, 2, low=-3, high=3, seed=5), w,
                 dtype=np.float64, **tol(np.float64))


def test_prelu_wrong_channels_names_layer_and_shapes():
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\).*\(N, 3, \*\).*\(2, 4, 5\)"):
        nn.PReLU(3)(lamina.zeros(2, 4, 5))
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\).*\(3,\)"):
        nn.PReLU(3)(lamina.zeros(3))


# ---------------------------------------------------------------- edge cases
@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_around_and_above_threshold(dtype):
    x = np.array([-30.0, -1.0, 0.0, 19.5, 20.0, 20.5, 25.0, 40.0, 1e4])
    check_op(F.softplus, TF.softplus, x, dtype=dtype, check_grad=False, **tol(dtype))
    for beta, thr in ((2.0, 5.0), (0.5, 1.0)):
        check_op(lambda t: F.softplus(t, beta, thr), lambda t: TF.softplus(t, beta, thr),
                 x / 4, dtype=dtype, check_grad=False, **tol(dtype))
    y = F.softplus(lamina.tensor(np.array([25.0, 1e4], dtype=dtype)))
    assert np.array_equal(y.numpy(), np.array([25.0, 1e4], dtype=dtype))  # linear region
    inf = np.array([np.inf, -np.inf], dtype=dtype)
    check_op(F.softplus, TF.softplus, inf, dtype=dtype, check_grad=False, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_large_magnitude(approximate, dtype):
    x = np.array([-1e4, -40.0, -10.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 10.0, 40.0, 1e4])
    check_op(lambda t: F.gelu(t, approximate), lambda t: TF.gelu(t, approximate=approximate),
             x, dtype=dtype, check_grad=False, **tol(dtype))


def test_gelu_gradcheck_wide_range():
    x = np.linspace(-6, 6, 25) + 0.01
    check_op(F.gelu, TF.gelu, x, dtype=np.float64, **tol(np.float64))


def test_erf_fallback_matches_math_erf():
    z = np.concatenate([np.linspace(-30, 30, 2001), [0.0, 2.4999999, 2.5, -2.5, 1e-8, 1e300]])
    want = np.array([math.erf(v) for v in z])
    got = act.erf_fallback(z)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    erfc = np.array([math.erfc(v) for v in z[z > 0]])
    np.testing.assert_allclose(1 - got[z > 0], erfc, rtol=1e-9, atol=1e-16)
    assert act.erf_fallback(z[:-1].astype(np.float32)).dtype == np.float32


def test_gelu_without_scipy_uses_fallback_erf(monkeypatch):
    monkeypatch.setitem(act._erf_impl, lamina.backend.name, act.erf_fallback)
    check_op(F.gelu, TF.gelu, rand(4, 5, low=-6, high=6, seed=13), dtype=np.float64,
             **tol(np.float64))


def test_float32_erfc_accuracy():
    # the float32 GELU uses its own erfc (exp(-a^2) times a fitted polynomial)
    a = np.linspace(0, 9, 20001).astype(np.float32)
    want = np.array([math.erfc(v) for v in a.astype(np.float64)])
    rel = np.abs(act._erfc_nonneg32(a).astype(np.float64) / want - 1)
    assert rel[a < 2].max() < 5e-7 and rel[a < 3].max() < 1e-6 and rel.max() < 5e-6
    x = np.linspace(-12, 12, 4001).astype(np.float32)
    want = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])
    cdf = act._normal_cdf(x).astype(np.float64)
    assert np.abs(cdf - want).max() < 2e-7


@pytest.mark.parametrize("dtype", DTYPES)
def test_kinks_match_torch_subgradients(dtype):
    x = np.array([-1.0, -0.5, 0.0, 0.3, 0.5, 1.0, 2.0])   # 0 for relu-likes, bounds of others
    cases = [(F.relu, TF.relu), (F.leaky_relu, TF.leaky_relu), (F.elu, TF.elu),
             (lambda t: F.threshold(t, 0.5, 3.0), lambda t: TF.threshold(t, 0.5, 3.0)),
             (lambda t: F.threshold(t, 0.3, 0.3), lambda t: TF.threshold(t, 0.3, 0.3)),
             (F.hardtanh, TF.hardtanh), (F.abs, torch.abs),
             (lambda t: F.hardtanh(t, -0.5, 0.5), lambda t: TF.hardtanh(t, -0.5, 0.5))]
    for fn, tfn in cases:
        check_op(fn, tfn, x, dtype=dtype, check_grad=False, **tol(dtype))
    check_op(F.prelu, TF.prelu, x.reshape(1, 7), np.array([0.2]), dtype=dtype,
             check_grad=False, **tol(dtype))


def test_threshold_value_replaces_at_and_below_threshold():
    y = F.threshold(lamina.tensor([-1.0, 0.5, 0.50001, 2.0]), 0.5, -9.0)
    assert y.tolist() == pytest.approx([-9.0, -9.0, 0.50001, 2.0])


def test_leaky_relu_zero_slope_is_relu():
    x = lamina.tensor(rand(4, 5, seed=6), requires_grad=True)
    y = F.leaky_relu(x, 0.0)
    assert np.array_equal(y.numpy(), F.relu(x).numpy())


def test_hardtanh_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="hardtanh.*min_val"):
        F.hardtanh(lamina.zeros(2), 1.0, -1.0)
    with pytest.raises(ValueError, match="Hardtanh.*min_val"):
        nn.Hardtanh(1.0, -1.0)


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="gelu: approximate"):
        F.gelu(lamina.zeros(2), "fast")
    with pytest.raises(ValueError, match="GELU: approximate"):
        nn.GELU("fast")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_dtype_argument(dtype):
    x = rand(3, 4, seed=7).astype(np.float32)
    for fn, tfn in ((F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax)):
        check_op(lambda t: fn(t, -1, dtype=lamina.float64 if dtype == np.float64 else None),
                 lambda t: tfn(t, -1, dtype=torch.float64 if dtype == np.float64 else None),
                 x, dtype=np.float32, check_grad=False)


def test_abs_module_matches_torch():
    for dtype in DTYPES:
        check_op(lambda t: nn.Abs()(t), torch.abs, rand(3, 4, seed=8), dtype=dtype, **tol(dtype))


def test_activation_grad_keeps_float32():
    x = lamina.tensor(rand(3, 4, seed=9).astype(np.float32), requires_grad=True)
    for fn in (F.gelu, F.elu, F.softplus, F.leaky_relu, F.hardtanh, F.step,
               lambda t: F.gelu(t, approximate="tanh"), lambda t: F.threshold(t, 0.0, 1.0)):
        x.grad = None
        y = fn(x)
        y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32


# ---------------------------------------------------------------- step
def test_step_values_and_zero_gradient():
    x = lamina.tensor([-2.0, -0.0, 0.0, 1e-9, 3.0], requires_grad=True)
    y = F.step(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0] and y.dtype == np.float32
    y.backward(lamina.ones(5))
    assert np.array_equal(x.grad.numpy(), np.zeros(5, np.float32))


def test_step_straight_through_gradient():
    xd = np.array([-2.0, -0.5, 0.0, 0.7, 1.0, 3.0])
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    x = lamina.tensor(xd, requires_grad=True)
    nn.Step(straight_through=True)(x).backward(lamina.tensor(g))
    assert np.array_equal(x.grad.numpy(), g)       # identity
    x = lamina.tensor(xd, requires_grad=True)
    y = nn.Step(straight_through=True, clip=1.0)(x)
    y.backward(lamina.tensor(g))
    assert np.array_equal(x.grad.numpy(), [0.0, 2.0, 3.0, 4.0, 5.0, 0.0])  # |x| <= 1 only
    assert np.array_equal(y.numpy(), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0])


# ---------------------------------------------------------------- maxout
def maxout_ref(x, k, dim):
    dim %= x.ndim
    shape = list(x.shape)
    shape[dim:dim + 1] = [shape[dim] // k, k]
    return x.reshape(shape).max(axis=dim + 1)


@pytest.mark.parametrize("shape,k,dim", [((4, 6), 2, 1), ((4, 6), 3, -1), ((2, 6, 3, 2), 3, 1),
                                         ((6, 5), 2, 0), ((3, 4), 1, 1), ((2, 8), 8, 1)])
def test_maxout_values_against_numpy(shape, k, dim):
    x = rand(*shape, seed=10)
    np.testing.assert_array_equal(F.maxout(lamina.tensor(x), k, dim).numpy(),
                                  maxout_ref(x, k, dim))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_gradient_against_torch(dtype):
    def tmaxout(t):
        return t.view(2, 3, 2, 2, 3, 2).max(3)[0]
    check_op(lambda t: F.maxout(t, 2, 2), tmaxout, rand(2, 3, 4, 3, 2, seed=11), dtype=dtype,
             **tol(dtype))


class TorchMaxout(tnn.Module):
    def __init__(self, i, o, k):
        super().__init__()
        self.o, self.k = o, k
        self.weight = tnn.Parameter(torch.empty(o * k, i))
        self.bias = tnn.Parameter(torch.empty(o * k))

    def forward(self, x):
        y = TF.linear(x, self.weight, self.bias)
        return y.view(*y.shape[:-1], self.o, self.k).max(-1)[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_maxout_module(shape, dtype):
    layer = nn.Maxout(4, 3, 2)
    assert layer.weight.shape == (6, 4) and layer.bias.shape == (6,)
    assert np.abs(layer.weight.numpy()).max() <= 0.5
    check_module(layer, TorchMaxout(4, 3, 2), rand(*shape, seed=12), dtype=dtype)


def test_maxout_errors():
    with pytest.raises(ValueError, match=r"maxout: size 7 of dim 1 .*\(2, 7\).*pool_size 2"):
        F.maxout(lamina.zeros(2, 7), 2)
    with pytest.raises(ValueError, match=r"Maxout\(in_features=4.*\(2, 5\)"):
        nn.Maxout(4, 3, 2)(lamina.zeros(2, 5))
    with pytest.raises(IndexError, match="maxout: dim 3"):
        F.maxout(lamina.zeros(2, 4), 2, dim=3)


def test_module_reprs():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.PReLU(3)) == "PReLU(num_parameters=3)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
