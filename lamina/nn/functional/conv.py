"""Convolutions as functions (modules in lamina/nn/layers/conv.py). The primitive, with
its backward, is :mod:`lamina.ops.conv`."""
from ...ops.conv import conv, conv_transpose

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "causal_conv1d"]


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """(N, C, L) * (Co, C/groups, K) -> (N, Co, Lout); see :func:`lamina.ops.conv.conv`."""
    return conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """(N, C, H, W) * (Co, C/groups, kH, kW) -> (N, Co, Hout, Wout)."""
    return conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """(N, C, D, H, W) * (Co, C/groups, kD, kH, kW) -> (N, Co, Dout, Hout, Wout)."""
    return conv(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """(N, Cin, L) with weight (Cin, Cout/groups, K) -> (N, Cout, Lout),
    Lout = (L - 1) stride - 2 padding + dilation (K - 1) + output_padding + 1."""
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                          dilation, 1, "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """(N, Cin, H, W) with weight (Cin, Cout/groups, kH, kW) -> (N, Cout, Hout, Wout)."""
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                          dilation, 2, "conv_transpose2d")


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """(N, Cin, D, H, W) with weight (Cin, Cout/groups, kD, kH, kW) -> (N, Cout, ...)."""
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                          dilation, 3, "conv_transpose3d")


def causal_conv1d(input, weight, bias=None, stride=1, dilation=1, groups=1):
    """WaveNet-style causal 1-D convolution: the input is left-padded by
    dilation * (K - 1), so output t depends only on inputs at positions <= t * stride.
    (N, C, L) * (Co, C/groups, K) -> (N, Co, floor((L - 1) / stride) + 1)."""
    k = weight.shape[-1]
    return conv(input, weight, bias, stride, ((dilation * (k - 1), 0),), dilation, groups, 1,
                "causal_conv1d")
