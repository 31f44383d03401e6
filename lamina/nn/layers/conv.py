"""Convolution layers: Conv1d/2d/3d, ConvTranspose1d/2d/3d and CausalConv1d.

Parameters as in PyTorch: ``weight`` (out, in/groups, *k) for convolutions and
(in, out/groups, *k) for transposed ones, ``bias`` (out,). Default initialisation, as in
PyTorch: weight ~ kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with fan_in = weight.shape[1] * prod(k).
"""
import math

from ... import backend as B
from ... import ops
from ...ops.conv import conv, conv_transpose
from ...tensor import Parameter
from .. import init
from ..module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d", "CausalConv1d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(v, n, layer, what):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{layer}: {what} must be an int or a tuple of {n} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


class _ConvNd(Module):
    _dims = 0
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 output_padding, groups, bias, padding_mode, device=None, dtype=None):
        super().__init__()
        name, D = type(self).__name__, self._dims
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _ntuple(kernel_size, D, name, "kernel_size")
        self.stride = _ntuple(stride, D, name, "stride")
        self.dilation = _ntuple(dilation, D, name, "dilation")
        self.output_padding = _ntuple(output_padding, D, name, "output_padding")
        self.groups, self.padding_mode, self.transposed = groups, padding_mode, self._transposed
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or "
                                 f"'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride {self.stride})")
            self.padding = padding
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)] \
                if padding == "same" else [0] * D
            pairs = [(t // 2, t - t // 2) for t in total]
        else:
            self.padding = _ntuple(padding, D, name, "padding")
            pairs = [(p, p) for p in self.padding]
        # F.pad order (last dimension first), for the non-zero padding modes
        self._reversed_padding_repeated_twice = tuple(
            v for lo, hi in reversed(pairs) for v in (lo, hi))
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        wshape = ((in_channels, out_channels // groups) if self._transposed else
                  (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(B.xp.empty(wshape, dtype=dtype))
        self.bias = Parameter(B.xp.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _rename(self, err):
        """The op's error message, prefixed by this layer instead of the op's name."""
        msg = str(err)
        return ValueError(f"{type(self).__name__}({self.extra_repr()}): "
                          f"{msg.split(': ', 1)[1] if ': ' in msg else msg}")

    def extra_repr(self):
        D = self._dims
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * D:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * D:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * D:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         0, groups, bias, padding_mode, device, dtype)

    def forward(self, input):
        try:
            if self.padding_mode != "zeros":
                input = ops.pad(input, self._reversed_padding_repeated_twice,
                                mode=self.padding_mode)
                return conv(input, self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups, self._dims)
            return conv(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups, self._dims)
        except ValueError as e:
            raise self._rename(e) from None


class Conv1d(_Conv):
    """1-D convolution: (N, C_in, L) or (C_in, L) -> (N, C_out, L_out).

    L_out = floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1.
    weight: (C_out, C_in/groups, k), bias: (C_out,); init as in PyTorch (module docstring).
    """
    _dims = 1


class Conv2d(_Conv):
    """2-D convolution: (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out).

    weight: (C_out, C_in/groups, kH, kW), bias: (C_out,); padding int, tuple, 'same' or
    'valid'; groups == C_in gives a depthwise convolution. Init as in PyTorch.
    """
    _dims = 2


class Conv3d(_Conv):
    """3-D convolution: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out).

    weight: (C_out, C_in/groups, kD, kH, kW), bias: (C_out,). Init as in PyTorch.
    """
    _dims = 3


class CausalConv1d(Conv1d):
    """WaveNet-style causal 1-D convolution: (N, C_in, L) -> (N, C_out, ceil(L / stride)).

    The input is left-padded by dilation * (kernel_size - 1), so output t sees only the
    inputs at positions <= t * stride; stacking layers with dilations 1, 2, 4, ... grows the
    receptive field exponentially. Same parameters (names, shapes, init) as Conv1d.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, groups=1,
                 bias=True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups,
                         bias, "zeros", device, dtype)
        self._causal_pad = ((self.dilation[0] * (self.kernel_size[0] - 1), 0),)

    def forward(self, input):
        try:
            return conv(input, self.weight, self.bias, self.stride, self._causal_pad,
                        self.dilation, self.groups, 1)
        except ValueError as e:
            raise self._rename(e) from None

    def extra_repr(self):
        return super().extra_repr() + ", causal=True"


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: only padding_mode='zeros' is supported, "
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        D = self._dims
        output_size = tuple(int(s) for s in output_size)[-D:]
        if len(output_size) != D:
            raise ValueError(f"conv_transpose: output_size must have {D} or {D + 2} "
                             f"elements, got {output_size}")
        spatial = tuple(input.shape[-D:])
        out = []
        for i in range(D):
            lo = ((spatial[i] - 1) * self.stride[i] - 2 * self.padding[i]
                  + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            if not lo <= output_size[i] < lo + self.stride[i]:
                raise ValueError(f"conv_transpose: requested output_size {output_size} is not "
                                 f"reachable from "
                                 f"input of shape {tuple(input.shape)}: dimension {i} must be "
                                 f"in [{lo}, {lo + self.stride[i] - 1}]")
            out.append(output_size[i] - lo)
        return tuple(out)

    def forward(self, input, output_size=None):
        try:
            output_padding = self._output_padding(input, output_size)
            return conv_transpose(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation, self._dims)
        except ValueError as e:
            raise self._rename(e) from None


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution ("deconvolution"): (N, C_in, L) -> (N, C_out, L_out),
    L_out = (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1.

    weight: (C_in, C_out/groups, k), bias: (C_out,); init as in PyTorch (fan_in taken from
    weight.shape[1] * k, as PyTorch does).
    """
    _dims = 1


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution: (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    weight: (C_in, C_out/groups, kH, kW), bias: (C_out,). ``forward(input, output_size)``
    picks output_padding from a requested size, as in PyTorch.
    """
    _dims = 2


class ConvTranspose3d(_ConvTranspose):
    """Transposed 3-D convolution: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""
    _dims = 3
