"""Regularization layers: Dropout (elementwise and channel-wise), DropPath (stochastic
depth), DropConnectLinear and GaussianNoise. All act only in training mode
(``module.train()``) and are the identity after ``module.eval()``."""
from .. import functional as F
from ..module import Module
from .linear import Linear

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "DropPath", "DropConnectLinear",
           "GaussianNoise"]


def _check_p(layer, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{layer}: dropout probability has to be between 0 and 1, but got {p}")


class Dropout(Module):
    """Zeroes each element with probability p in training and scales the others by
    1/(1-p) (inverted dropout); identity in eval. Any shape."""

    _dropout = staticmethod(F.dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        _check_p(type(self).__name__, p)
        self.p, self.inplace = p, inplace

    def forward(self, x):
        try:
            return self._dropout(x, self.p, self.training)
        except ValueError as e:  # wrong rank for the channel-wise variants
            raise ValueError(f"{type(self).__name__}({self.extra_repr()}): {e}") from None

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeroes whole channels of (N, C, L) or (C, L) inputs with probability p."""
    _dropout = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Zeroes whole channels (feature maps) of (N, C, H, W) inputs with probability p."""
    _dropout = staticmethod(F.dropout2d)


class Dropout3d(Dropout):
    """Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) inputs with probability p."""
    _dropout = staticmethod(F.dropout3d)


class DropPath(Module):
    """Stochastic depth for residual branches: in training each sample's branch output
    (N, *) is dropped with probability p and kept ones are scaled by 1/(1-p); identity in
    eval. Use as ``x + drop_path(branch(x))``."""

    def __init__(self, p=0.0, scale_by_keep=True):
        super().__init__()
        _check_p("DropPath", p)
        self.p, self.scale_by_keep = p, scale_by_keep

    def forward(self, x):
        return F.drop_path(x, self.p, self.training, self.scale_by_keep)

    def extra_repr(self):
        return f"p={self.p}"


class DropConnectLinear(Linear):
    """Linear layer with DropConnect (Wan et al., 2013): in training each weight is zeroed
    with probability p (one mask per forward pass, shared by the batch) and the kept ones
    scaled by 1/(1-p); the bias is not dropped. In eval the plain Linear.

    Parameters, their names and their initialisation are Linear's, so Linear state dicts
    load into it.
    """

    def __init__(self, in_features, out_features, bias=True, p=0.5, dtype=None):
        _check_p("DropConnectLinear", p)
        super().__init__(in_features, out_features, bias, dtype)
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return super().forward(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"DropConnectLinear(in_features={self.in_features}, out_features="
                             f"{self.out_features}): input of shape {tuple(x.shape)} does not "
                             f"end in {self.in_features} features")
        return F.drop_connect(x, self.weight, self.bias, self.p, True)

    def extra_repr(self):
        return super().extra_repr() + f", p={self.p}"


class GaussianNoise(Module):
    """Adds N(0, std^2) noise to the input in training (corruption for denoising
    autoencoders, or a regularizer); identity in eval."""

    def __init__(self, std=0.1):
        super().__init__()
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be non-negative, got {std}")
        self.std = std

    def forward(self, x):
        return F.gaussian_noise(x, self.std, self.training)

    def extra_repr(self):
        return f"std={self.std}"
