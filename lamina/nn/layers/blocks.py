"""Macro modules built from other layers (no backward code of their own): residual
blocks, the Inception module and the Highway layer."""
from ... import ops
from ..containers import Sequential
from ..module import Module
from .activation import ReLU
from .conv import Conv2d
from .linear import Identity, Linear
from .normalization import BatchNorm2d
from .pooling import MaxPool2d

__all__ = ["ResidualBlock", "InceptionModule", "Highway"]


def _check_nchw(block, x, channels):
    """A 4-D input with ``channels`` channels, or an error naming the block."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{type(block).__name__}({block.extra_repr()}): expected an input of "
                         f"shape (N, {channels}, H, W), got shape {tuple(x.shape)}")


def _conv_bn(cin, cout, kernel, stride=1, padding=0, norm=True):
    """conv (no bias when followed by batch norm) [+ BatchNorm2d]."""
    conv = Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=not norm)
    return Sequential(conv, BatchNorm2d(cout)) if norm else Sequential(conv)


class ResidualBlock(Module):
    """He et al.'s residual unit: out = relu(F(x) + shortcut(x)). (N, Cin, H, W) ->
    (N, Cout, H/stride, W/stride).

    ``kind='basic'``: F = conv3x3-BN-ReLU-conv3x3-BN. ``kind='bottleneck'``: F =
    conv1x1 (to ``out_channels // expansion``)-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN.
    The shortcut is the identity, or a strided 1x1 convolution + BN (projection) when the
    shape changes. ``residual=False`` drops the shortcut, giving the plain block of the
    same depth (for the notes' plain-vs-residual experiment).
    """

    def __init__(self, in_channels, out_channels, stride=1, kind="basic", expansion=4,
                 norm=True, residual=True):
        super().__init__()
        if kind not in ("basic", "bottleneck"):
            raise ValueError(f"ResidualBlock: kind must be 'basic' or 'bottleneck', got {kind!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.kind, self.residual = stride, kind, residual
        if kind == "basic":
            self.body = Sequential(_conv_bn(in_channels, out_channels, 3, stride, 1, norm),
                                   ReLU(), _conv_bn(out_channels, out_channels, 3, 1, 1, norm))
        else:
            width = max(1, out_channels // expansion)
            self.body = Sequential(_conv_bn(in_channels, width, 1, 1, 0, norm), ReLU(),
                                   _conv_bn(width, width, 3, stride, 1, norm), ReLU(),
                                   _conv_bn(width, out_channels, 1, 1, 0, norm))
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = _conv_bn(in_channels, out_channels, 1, stride, 0, norm)
        else:
            self.shortcut = Identity()

    def forward(self, x):
        _check_nchw(self, x, self.in_channels)
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return ops.relu(out)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, "
                f"kind={self.kind!r}, residual={self.residual}")


class InceptionModule(Module):
    """Szegedy et al.'s Inception module: four branches concatenated along channels.
    (N, Cin, H, W) -> (N, c1 + c3 + c5 + pool_proj, H, W).

    1x1 conv; 1x1 reduce then 3x3; 1x1 reduce then 5x5; 3x3 max pool (stride 1) then
    1x1 projection. Each conv is followed by ReLU (and BatchNorm before it if ``norm``).
    """

    def __init__(self, in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, norm=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = c1 + c3 + c5 + pool_proj

        def unit(cin, cout, k):
            return [*_conv_bn(cin, cout, k, 1, k // 2, norm), ReLU()]

        self.branch1 = Sequential(*unit(in_channels, c1, 1))
        self.branch3 = Sequential(*unit(in_channels, c3_reduce, 1), *unit(c3_reduce, c3, 3))
        self.branch5 = Sequential(*unit(in_channels, c5_reduce, 1), *unit(c5_reduce, c5, 5))
        self.branch_pool = Sequential(MaxPool2d(3, stride=1, padding=1),
                                      *unit(in_channels, pool_proj, 1))

    def forward(self, x):
        _check_nchw(self, x, self.in_channels)
        return ops.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                        self.branch_pool(x)], dim=1)

    def extra_repr(self):
        return f"{self.in_channels} -> {self.out_channels}"


class Highway(Module):
    """Srivastava et al.'s highway layer: y = H(x) * T(x) + x * (1 - T(x)), with
    H = activation(W_H x + b_H) and the transform gate T = sigmoid(W_T x + b_T).
    (*, features) -> (*, features). The gate bias starts at ``gate_bias`` (negative, so
    the layer first carries its input through)."""

    def __init__(self, features, gate_bias=-1.0, activation=None):
        super().__init__()
        self.features = features
        self.transform = Linear(features, features)
        self.gate = Linear(features, features)
        self.gate.bias.data[...] = gate_bias
        self.activation = activation if activation is not None else ReLU()

    def forward(self, x):
        if x.ndim < 1 or x.shape[-1] != self.features:
            raise ValueError(f"Highway({self.extra_repr()}): expected an input of shape "
                             f"(*, {self.features}), got shape {tuple(x.shape)}")
        h = self.activation(self.transform(x))
        t = ops.sigmoid(self.gate(x))
        return x + t * (h - x)

    def extra_repr(self):
        return f"features={self.features}"
