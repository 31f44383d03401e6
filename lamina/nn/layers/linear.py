"""Fully connected layers and shape plumbing: Linear, Bilinear, Identity, Flatten,
Unflatten."""
import math

from ... import backend as B
from ... import ops
from .. import functional as F
from ...tensor import Parameter
from .. import init
from ..module import Module


class Linear(Module):
    """y = x W^T + b. x: (*, in_features) -> (*, out_features).

    Initialised as in PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        self.weight = Parameter(B.xp.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(B.xp.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        try:
            return ops.linear(x, self.weight, self.bias)
        except ValueError:
            # checked only on failure, so the hot path pays nothing
            if tuple(x.shape[-1:]) != (self.in_features,):
                raise ValueError(f"Linear(in_features={self.in_features}, out_features="
                                 f"{self.out_features}): input of shape {tuple(x.shape)} does "
                                 f"not end in {self.in_features} features") from None
            raise

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """y = x1^T W x2 + b. x1: (*, in1_features), x2: (*, in2_features) -> (*, out_features).

    weight: (out_features, in1_features, in2_features), bias: (out_features,); initialised
    as in PyTorch: W, b ~ U(-1/sqrt(in1), 1/sqrt(in1)).
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, dtype=None):
        super().__init__()
        if in1_features <= 0:
            raise ValueError(f"Bilinear: in1_features must be > 0, got {in1_features}")
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        self.weight = Parameter(B.xp.empty((out_features, in1_features, in2_features),
                                           dtype=dtype))
        self.bias = Parameter(B.xp.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        try:
            return F.bilinear(input1, input2, self.weight, self.bias)
        except ValueError:
            raise ValueError(f"Bilinear(in1_features={self.in1_features}, in2_features="
                             f"{self.in2_features}, out_features={self.out_features}): expected "
                             f"inputs (*, {self.in1_features}) and (*, {self.in2_features}) with "
                             f"equal leading dims, got shapes {tuple(input1.shape)} and "
                             f"{tuple(input2.shape)}") from None

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Identity(Module):
    """Returns its input (placeholder in architectures)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...) for the default dims 1..-1."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        try:
            return ops.flatten(x, self.start_dim, self.end_dim)
        except (ValueError, IndexError) as e:
            raise type(e)(f"Flatten({self.extra_repr()}): input of shape {tuple(x.shape)}: "
                          f"{e}") from None

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        try:
            return ops.unflatten(x, self.dim, self.unflattened_size)
        except (ValueError, IndexError) as e:
            known = math.prod(n for n in self.unflattened_size if n != -1)
            want = f"a multiple of {known}" if -1 in self.unflattened_size else known
            raise type(e)(f"Unflatten({self.extra_repr()}): expected dim {self.dim} of size "
                          f"{want}, got input of shape {tuple(x.shape)} ({e})") from None

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
