"""Activation modules (torch.nn names and arguments). Elementwise ones take any shape and
return the same shape; ``inplace`` is accepted for compatibility (lamina computes out of
place)."""
import math

from ... import backend as B
from ... import ops
from ...tensor import Parameter
from .. import functional as F
from .. import init
from ..module import Module

__all__ = ["ReLU", "Threshold", "LeakyReLU", "PReLU", "ELU", "GELU", "Softplus", "Tanh",
           "Sigmoid", "Hardtanh", "Abs", "Softmax", "LogSoftmax", "Step", "Maxout"]


class ReLU(Module):
    """max(x, 0)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return ops.relu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Threshold(Module):
    """x where x > threshold, else value."""

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, x):
        return F.threshold(x, self.threshold, self.value)

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}" + \
            (", inplace=True" if self.inplace else "")


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """Leaky ReLU with learned negative slopes: one shared (num_parameters=1) or one per
    channel (dim 1 of the input, num_parameters=C). Parameter ``weight`` (num_parameters,),
    initialised to ``init`` (0.25) as in PyTorch."""

    def __init__(self, num_parameters=1, init=0.25, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        self.weight = Parameter(B.xp.full(num_parameters, init, dtype=dtype))

    def reset_parameters(self):
        init.constant_(self.weight, self.init)

    def forward(self, x):
        try:
            return F.prelu(x, self.weight)
        except ValueError:
            raise ValueError(f"PReLU(num_parameters={self.num_parameters}): expected an input "
                             f"(N, {self.num_parameters}, *) with {self.num_parameters} "
                             f"channels in dim 1, got shape {tuple(x.shape)}") from None

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x * Phi(x); ``approximate='tanh'`` for the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Tanh(Module):
    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return ops.sigmoid(x)


class Hardtanh(Module):
    """clip(x, min_val, max_val)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val "
                             f"({max_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + \
            (", inplace=True" if self.inplace else "")


class Abs(Module):
    """|x|: absolute-value rectification (Jarrett et al., 2009). Gradient sign(x), 0 at 0."""

    def forward(self, x):
        return ops.abs(x)


class Softmax(Module):
    """Softmax over ``dim`` (default -1, the last dimension; PyTorch's deprecated implicit
    dim choice is not reproduced)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) over ``dim``, computed stably."""

    def forward(self, x):
        return ops.log_softmax(x, self.dim)


class Step(Module):
    """Heaviside step, 1 where x > 0 else 0; ``straight_through`` gives it the identity
    gradient (zeroed where |x| > ``clip`` if given) instead of 0. See :func:`F.step`."""

    def __init__(self, straight_through=False, clip=None):
        super().__init__()
        self.straight_through, self.clip = straight_through, clip

    def forward(self, x):
        return F.step(x, self.straight_through, self.clip)

    def extra_repr(self):
        return f"straight_through={self.straight_through}" + \
            (f", clip={self.clip}" if self.clip is not None else "")


class Maxout(Module):
    """Maxout unit (Goodfellow et al., 2013): a linear map to out_features * pool_size
    pieces, then the max over each group of ``pool_size`` consecutive pieces.

    x: (*, in_features) -> (*, out_features). Parameters ``weight``
    (out_features * pool_size, in_features) and ``bias`` (out_features * pool_size,), with
    rows j*k .. j*k+k-1 feeding output j; initialised as ``Linear(in, out * k)``:
    U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features, out_features, pool_size, bias=True, dtype=None):
        super().__init__()
        if pool_size < 1:
            raise ValueError(f"Maxout: pool_size must be >= 1, got {pool_size}")
        self.in_features, self.out_features, self.pool_size = in_features, out_features, \
            pool_size
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        n = out_features * pool_size
        self.weight = Parameter(B.xp.empty((n, in_features), dtype=dtype))
        self.bias = Parameter(B.xp.empty(n, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Maxout(in_features={self.in_features}, out_features="
                             f"{self.out_features}, pool_size={self.pool_size}): input of shape "
                             f"{tuple(x.shape)} does not end in {self.in_features} features")
        return F.maxout(ops.linear(x, self.weight, self.bias), self.pool_size, dim=-1)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pool_size={self.pool_size}, bias={self.bias is not None}")
