"""Pooling and resampling layers (no parameters; see lamina/nn/functional/pooling.py).

Constructor arguments and defaults are PyTorch's; inputs are (N, C, *spatial) or
unbatched (C, *spatial).
"""
import functools

from .. import functional as F
from ..module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "LPPool1d", "LPPool2d", "LPPool3d", "LSEPool1d", "LSEPool2d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "KMaxPool",
           "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Upsample", "UpsamplingNearest2d",
           "UpsamplingBilinear2d"]


def _named(forward):
    """Prefix the functional's error message (wrong rank, too small an input, ...) with the
    layer, e.g. ``MaxPool2d(kernel_size=3, ...): max_pool2d: input of shape ...``."""
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        try:
            return forward(self, *args, **kwargs)
        except (ValueError, IndexError) as e:
            raise type(e)(f"{type(self).__name__}({self.extra_repr()}): {e}") from None
    return wrapper


class _MaxPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    @_named
    def forward(self, input):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                              self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) -> (N, C, L_out); return_indices also gives the
    argmax positions for :class:`MaxUnpool1d`."""
    _fn = F.max_pool1d


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W) -> (N, C, H_out, W_out), with
    H_out = floor((H + 2 padding - dilation (kernel - 1) - 1) / stride) + 1 (ceil with
    ceil_mode); stride defaults to kernel_size."""
    _fn = F.max_pool2d


class MaxPool3d(_MaxPoolNd):
    """Max over windows of (N, C, D, H, W)."""
    _fn = F.max_pool3d


class AvgPool1d(Module):
    """Mean over windows of (N, C, L) -> (N, C, L_out)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    @_named
    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _single(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


class _AvgPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    @_named
    def forward(self, input):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding,
                              self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of (N, C, H, W); zero padding counts in the divisor when
    count_include_pad; divisor_override replaces every divisor."""
    _fn = F.avg_pool2d


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of (N, C, D, H, W); see :class:`AvgPool2d`."""
    _fn = F.avg_pool3d


class _LPPoolNd(Module):
    _fn = None

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    @_named
    def forward(self, input):
        return type(self)._fn(input, float(self.norm_type), self.kernel_size, self.stride,
                              self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """p-norm pooling of (N, C, L): (sum over the window of x^p)^(1/p)."""
    _fn = F.lp_pool1d


class LPPool2d(_LPPoolNd):
    """p-norm pooling of (N, C, H, W): (sum over the window of x^p)^(1/p)."""
    _fn = F.lp_pool2d


class LPPool3d(_LPPoolNd):
    """p-norm pooling of (N, C, D, H, W)."""
    _fn = F.lp_pool3d


class _LSEPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, r=1.0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.r = r

    @_named
    def forward(self, input):
        return type(self)._fn(input, self.kernel_size, self.stride, self.r)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, r={self.r}"


class LSEPool1d(_LSEPoolNd):
    """Log-sum-exp pooling of (N, C, L): (1/r) log(mean(exp(r x))) over each window."""
    _fn = F.lse_pool1d


class LSEPool2d(_LSEPoolNd):
    """Log-sum-exp pooling of (N, C, H, W): (1/r) log(mean(exp(r x))) over each window, a
    smooth maximum between average (r -> 0) and max (r -> inf) pooling. No PyTorch
    equivalent."""
    _fn = F.lse_pool2d


class _AdaptiveAvgPoolNd(Module):
    _fn = None

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    @_named
    def forward(self, input):
        return type(self)._fn(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, L) to a fixed length (1: global average pooling)."""
    _fn = F.adaptive_avg_pool1d


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, H, W) to a fixed (h, w) (1: global average pooling)."""
    _fn = F.adaptive_avg_pool2d


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, D, H, W) to a fixed size."""
    _fn = F.adaptive_avg_pool3d


class _AdaptiveMaxPoolNd(Module):
    _fn = None

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    @_named
    def forward(self, input):
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, L) to a fixed length (1: global max pooling)."""
    _fn = F.adaptive_max_pool1d


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, H, W) to a fixed (h, w) (1: global max pooling)."""
    _fn = F.adaptive_max_pool2d


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, D, H, W) to a fixed size."""
    _fn = F.adaptive_max_pool3d


class KMaxPool(Module):
    """k-max pooling over ``dim`` (default the last, the sequence axis of (N, C, L)): the k
    largest values in their original order (Kalchbrenner et al., 2014)."""

    def __init__(self, k, dim=-1):
        super().__init__()
        self.k = k
        self.dim = dim

    @_named
    def forward(self, input):
        return F.kmax_pool(input, self.k, self.dim)

    def extra_repr(self):
        return f"k={self.k}, dim={self.dim}"


class _MaxUnpoolNd(Module):
    _fn = None
    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        n = self._n
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride if stride is not None else kernel_size, n)
        self.padding = _ntuple(padding, n)

    @_named
    def forward(self, input, indices, output_size=None):
        return type(self)._fn(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _ntuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool1d`: forward(input, indices, output_size=None)
    puts each value at its index and zeros elsewhere."""
    _fn = F.max_unpool1d
    _n = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool2d` (the deconvnet's "switches"): forward(input,
    indices, output_size=None); default output (H_in - 1) stride - 2 padding + kernel."""
    _fn = F.max_unpool2d
    _n = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool3d`."""
    _fn = F.max_unpool3d
    _n = 3


class Upsample(Module):
    """Resize (N, C, *spatial) to ``size`` or by ``scale_factor`` with
    :func:`lamina.nn.functional.interpolate` (modes 'nearest', 'nearest-exact', 'linear',
    'bilinear', 'trilinear', 'area')."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) \
            else tuple(float(f) for f in scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    @_named
    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        info = f"size={self.size}" if self.scale_factor is None else \
            f"scale_factor={self.scale_factor}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample with mode 'nearest' (PyTorch's legacy class)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample with mode 'bilinear' and align_corners=True (PyTorch's legacy class)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
