"""Weight initialisers with ``torch.nn.init``'s names, arguments and formulas.

Each writes into its tensor in place (a Parameter, a plain Tensor or a NumPy array),
records nothing in the autograd graph, returns the tensor, and draws from lamina's
generator, so results repeat under ``lamina.manual_seed`` (or pass ``generator=``, a
``numpy.random.Generator``). Fans follow PyTorch: for a weight (out, in, k1, k2, ...)
fan_in = in * k1 * k2 * ... and fan_out = out * k1 * k2 * ....

Default initialisation of the layers (the same as PyTorch's; k = 1 / fan_in):

==========================  =========================================================
layer                       parameters at construction
==========================  =========================================================
Linear(in, out)             weight, bias ~ U(-sqrt(k), sqrt(k)), fan_in = in
                            (kaiming_uniform_(a=sqrt(5)) for the weight)
Bilinear(in1, in2, out)     weight, bias ~ U(-1/sqrt(in1), 1/sqrt(in1))
Conv1d/2d/3d                weight, bias ~ U(-sqrt(k), sqrt(k)),
                            fan_in = in_channels / groups * prod(kernel_size)
ConvTranspose1d/2d/3d       the same formula on the weight (in, out / groups, *kernel):
                            fan_in = out_channels / groups * prod(kernel_size)
Embedding                   weight ~ N(0, 1); the padding_idx row is 0
BatchNorm1d/2d/3d           weight 1, bias 0; running_mean 0, running_var 1,
                            num_batches_tracked 0
LayerNorm, GroupNorm        weight 1, bias 0
InstanceNorm (affine=True)  weight 1, bias 0
PReLU                       weight 0.25 (num_parameters values)
RNN / LSTM / GRU            every weight and bias ~ U(-1/sqrt(hidden), 1/sqrt(hidden))
MultiheadAttention          in_proj_weight xavier_uniform_, in_proj_bias 0,
                            out_proj.weight as Linear, out_proj.bias 0
==========================  =========================================================
"""
import math
import warnings

from .. import backend as B
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_",
           "ones_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "sparse_"]


def _arr(t):
    return t.data if isinstance(t, Tensor) else t


def _rng(generator):
    return B.rng() if generator is None else generator


def _fill(t, values):
    _arr(t)[...] = values
    return t


def _fans(t):
    """(fan_in, fan_out) of a weight (out, in, *kernel)."""
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = 1
    for n in shape[2:]:
        receptive *= n
    return shape[1] * receptive, shape[0] * receptive


_calculate_fan_in_and_fan_out = _fans


def _calculate_correct_fan(t, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(t)
    return fan_in if mode == "fan_in" else fan_out


_UNIT_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The factor to scale a variance-preserving init by for ``nonlinearity``:
    1 for linear/conv*/sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2))
    for leaky_relu (slope = param, default 0.01), 3/4 for selu."""
    if nonlinearity in _UNIT_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r} (expected one of "
                     f"{', '.join(_UNIT_GAIN)}, tanh, relu, leaky_relu, selu)")


# ---------------------------------------------------------------- plain distributions
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape))


# Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9)
_QA = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
       1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_QB = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
       6.680131188771972e+01, -1.328068155288572e+01)
_QC = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
       -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_QD = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
       3.754408661907416e+00)


def _poly(coefs, x):
    out = coefs[0]
    for c in coefs[1:]:
        out = out * x + c
    return out


def _norm_ppf(p):
    """Standard normal quantile of probabilities p in (0, 1) (an array)."""
    xp = B.xp
    low = xp.minimum(p, 1 - p)  # the tail formula on the nearer tail, mirrored
    q = xp.sqrt(-2 * xp.log(xp.maximum(low, 1e-300)))
    tail = _poly(_QC, q) / (_poly(_QD, q) * q + 1)
    tail = xp.where(p < 0.5, tail, -tail)
    r = (p - 0.5) ** 2
    central = (p - 0.5) * _poly(_QA, r) / (_poly(_QB, r) * r + 1)
    return xp.where(low < 0.02425, tail, central)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, not in units of std),
    by the inverse CDF of a uniform draw between the CDF values of a and b."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")

    def cdf(x):
        return 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))

    lo, hi = cdf(a), cdf(b)
    u = _rng(generator).uniform(lo, hi, tensor.shape)
    u = B.xp.clip(u, 1e-300, 1 - 1e-16)
    return _fill(tensor, B.xp.clip(mean + std * _norm_ppf(u), a, b))


def constant_(tensor, val):
    """Fill with ``val``."""
    _arr(tensor).fill(val)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    """The identity matrix (rectangular allowed) into a 2-D tensor."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _fill(tensor, B.xp.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """The identity convolution into a (out, in, *kernel) weight (3-5 dims): channel d of
    each of ``groups`` groups passes through the kernel centre unchanged."""
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3, 4 and 5-D tensors are supported, got shape {shape}")
    if shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({shape[0]}) must be divisible by groups ({groups})")
    per_group = shape[0] // groups
    n = min(per_group, shape[1])
    arr = _arr(tensor)
    arr.fill(0)
    d = B.xp.arange(n)
    out = (B.xp.arange(groups)[:, None] * per_group + d).reshape(-1)
    centre = tuple(k // 2 for k in shape[2:])
    arr[(out, B.xp.tile(d, groups)) + centre] = 1
    return tensor


# ---------------------------------------------------------------- variance scaling
def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _empty(tensor):
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015): U(-b, b), b = gain * sqrt(3 / fan), gain = calculate_gain(
    nonlinearity, a) (a: the negative slope of a leaky_relu) and fan by ``mode``."""
    if _empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015): N(0, std^2), std = gain / sqrt(fan)."""
    if _empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor, gain=1, generator=None):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, from the QR decomposition of a
    Gaussian one (signs fixed so it is uniform over the orthogonal group), reshaped to
    the tensor (rows = dim 0, the other dims flattened), times ``gain``."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {tuple(tensor.shape)}")
    size = _arr(tensor).size
    if size == 0:
        return tensor
    rows = tensor.shape[0]
    cols = size // rows
    g = _rng(generator).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = B.xp.linalg.qr(g)
    q *= B.xp.sign(B.xp.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Martens (2010): N(0, std^2) with ceil(sparsity * rows) entries of every column set to
    zero, at random rows (2-D tensors)."""
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only 2-D tensors are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparse_: sparsity must be in [0, 1], got {sparsity}")
    rows, cols = tensor.shape
    rng = _rng(generator)
    values = rng.normal(0.0, std, (rows, cols))
    n_zero = int(math.ceil(sparsity * rows))
    if n_zero:
        # a random permutation of the rows of each column: its first n_zero are zeroed
        zero_rows = rng.random((rows, cols)).argsort(axis=0)[:n_zero]
        B.xp.put_along_axis(values, zero_rows, 0.0, axis=0)
    return _fill(tensor, values)
