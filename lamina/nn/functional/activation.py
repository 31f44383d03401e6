"""Activation functions, with ``torch.nn.functional``'s names, arguments and defaults.

``inplace=True`` is accepted for compatibility; lamina always computes out of place.
relu, tanh and sigmoid are the elementwise primitives; gelu, elu, softplus, leaky_relu,
prelu, threshold, hardtanh and step are single primitives in :mod:`lamina.ops.activation`;
maxout is a reshape and a max.
"""
from ... import ops
from ...ops import abs, sigmoid, softmax, log_softmax, tanh  # noqa: A004
from ...ops import activation as _act

__all__ = ["relu", "threshold", "leaky_relu", "prelu", "elu", "gelu", "softplus", "tanh",
           "sigmoid", "hardtanh", "abs", "softmax", "log_softmax", "step", "maxout"]


def relu(input, inplace=False):
    """max(x, 0); the gradient at 0 is 0."""
    return ops.relu(input)


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else ``value``."""
    return _act.threshold(input, threshold, value)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x for x > 0, negative_slope * x otherwise."""
    return _act.leaky_relu(input, negative_slope)


def prelu(input, weight):
    """Leaky ReLU with learned slopes ``weight``: (C,) per channel (dim 1) or (1,) shared."""
    return _act.prelu(input, weight)


def elu(input, alpha=1.0, inplace=False):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return _act.elu(input, alpha)


def gelu(input, approximate="none"):
    """x * Phi(x) (exact, with erf) or its tanh approximation (``approximate='tanh'``)."""
    return _act.gelu(input, approximate)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""
    return _act.softplus(input, beta, threshold)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clip(x, min_val, max_val)."""
    return _act.hardtanh(input, min_val, max_val)


def step(input, straight_through=False, clip=None):
    """Heaviside step (1 where x > 0, else 0). Gradient 0, or with ``straight_through`` the
    identity (zeroed where |x| > ``clip`` when ``clip`` is given); see
    :func:`lamina.ops.activation.step`."""
    return _act.step(input, straight_through, clip)


def maxout(input, pool_size, dim=1):
    """Max over groups of ``pool_size`` consecutive features along ``dim`` (Goodfellow et
    al., 2013): (..., C * k, ...) -> (..., C, ...). The gradient goes to each group's
    (first) maximum."""
    nd = input.ndim
    if not -nd <= dim < nd:
        raise IndexError(f"maxout: dim {dim} is out of range for an input of shape "
                         f"{tuple(input.shape)}")
    d = dim % nd
    n = input.shape[d]
    if pool_size < 1 or n % pool_size:
        raise ValueError(f"maxout: size {n} of dim {dim} of the input (shape "
                         f"{tuple(input.shape)}) is not divisible by pool_size {pool_size}")
    shape = input.shape
    grouped = ops.reshape(input, shape[:d] + (n // pool_size, pool_size) + shape[d + 1:])
    return ops.max(grouped, d + 1)[0]
