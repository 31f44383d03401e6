"""Pooling and resampling functions (see lamina/nn/layers/pooling.py for the modules).

Names, arguments and defaults follow ``torch.nn.functional``. Inputs are ``(N, C, *spatial)``
or unbatched ``(C, *spatial)``. The primitives (with their backward passes) are in
:mod:`lamina.ops.pool`; lp, adaptive-average, k-max pooling and interpolation compose ops.
"""
import math

from ... import backend as B
from ... import ops
from ...ops import pool as P
from ...tensor import Tensor, plain

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "lp_pool1d", "lp_pool2d", "lp_pool3d", "lse_pool1d", "lse_pool2d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "kmax_pool",
           "max_unpool1d", "max_unpool2d", "max_unpool3d", "interpolate", "upsample"]


# ---------------------------------------------------------------- argument checks
def _tuple(op, name, v, n):
    if isinstance(v, (tuple, list)):
        v = tuple(v)
        if len(v) == 1:
            v = v * n
        if len(v) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v}")
    else:
        v = (v,) * n
    return tuple(int(a) for a in v)


def _check_rank(op, x, n):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in (n + 1, n + 2):
        sp = ", ".join("HW"[i] if n == 2 else "DHW"[i] if n == 3 else "L" for i in range(n))
        raise ValueError(f"{op}: expected a {n + 1}-D (C, {sp}) or {n + 2}-D (N, C, {sp}) "
                         f"input, got shape {tuple(x.shape)}")
    spatial = x.shape[x.ndim - n:]
    if 0 in spatial or x.shape[x.ndim - n - 1] == 0:
        raise ValueError(f"{op}: expected non-empty channel and spatial dimensions, got "
                         f"input shape {tuple(x.shape)}")
    return spatial


def _geometry(op, x, n, kernel_size, stride, padding, dilation, ceil_mode):
    """Normalised (kernel, stride, padding, dilation), checked the way PyTorch checks them."""
    spatial = _check_rank(op, x, n)
    k = _tuple(op, "kernel_size", kernel_size, n)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        _tuple(op, "stride", stride, n)
    p = _tuple(op, "padding", padding, n)
    d = _tuple(op, "dilation", dilation, n)
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if min(v) <= 0:
            raise ValueError(f"{op}: {name} must be positive, got {v}")
    if min(p) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{op}: padding {p} must be at most half of kernel_size {k}")
    out = tuple(P.out_len(*a, ceil_mode) for a in zip(spatial, k, s, p, d))
    if min(out) < 1:
        eff = tuple((ki - 1) * di + 1 for ki, di in zip(k, d))
        padded = tuple(si + 2 * pi for si, pi in zip(spatial, p))
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} is too small: kernel_size {k}"
                         f" with dilation {d} spans {eff}, padded spatial size is {padded}, "
                         f"so the output size would be {out}")
    return k, s, p, d


# ---------------------------------------------------------------- max / average pooling
def _max_pool(op, n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    k, s, p, d = _geometry(op, input, n, kernel_size, stride, padding, dilation, ceil_mode)
    return P.max_pool(input, k, s, p, d, bool(ceil_mode), bool(return_indices))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (N, C, L). With return_indices also the flat index (within each
    channel's input) of every maximum; ties go to the first in scan order, as in PyTorch."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (N, C, H, W) -> (N, C, H_out, W_out); see :func:`max_pool1d`."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (N, C, D, H, W); see :func:`max_pool1d`."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _avg_pool(op, n, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    k, s, p, _ = _geometry(op, input, n, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError(f"{op}: divisor_override must not be zero")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    return P.avg_pool(input, k, s, p, bool(ceil_mode), bool(count_include_pad),
                      divisor_override)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over windows of (N, C, L). Zero padding counts in the divisor when
    count_include_pad; ceil_mode's extra window is divided by its clipped size."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, H, W); divisor_override replaces every divisor."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, D, H, W); see :func:`avg_pool2d`."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# ---------------------------------------------------------------- power-average pooling
def _lp_pool(op, n, input, norm_type, kernel_size, stride, ceil_mode):
    k = _tuple(op, "kernel_size", kernel_size, n)
    if norm_type == math.inf:
        return _max_pool(op, n, ops.abs(input), k, stride, 0, 1, ceil_mode, False)
    if norm_type == -math.inf:
        return ops.neg(_max_pool(op, n, ops.neg(ops.abs(input)), k, stride, 0, 1, ceil_mode,
                                 False))
    out = _avg_pool(op, n, ops.pow(input, norm_type), k, stride, 0, ceil_mode, True, None)
    # PyTorch's formula, kept as is: sign(out) * relu(|out|) * prod(kernel), to the 1/p
    out = ops.mul(ops.mul(ops.sign(out), ops.relu(ops.abs(out))), math.prod(k))
    return ops.pow(out, 1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """p-norm pooling of (N, C, L): (sum over the window of x^p)^(1/p); p = inf is max
    pooling of |x|. Computed as PyTorch does (average pool of x^p times the window size)."""
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """p-norm pooling of (N, C, H, W); see :func:`lp_pool1d`."""
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """p-norm pooling of (N, C, D, H, W); see :func:`lp_pool1d`."""
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


# ---------------------------------------------------------------- log-sum-exp pooling
def _lse_pool(op, n, input, kernel_size, stride, r):
    if r == 0:
        raise ValueError(f"{op}: r must be non-zero (r -> 0 is average pooling)")
    k, s, _, _ = _geometry(op, input, n, kernel_size, stride, 0, 1, False)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    return P.lse_pool(input, k, s, float(r))


def lse_pool1d(input, kernel_size, stride=None, r=1.0):
    """Log-sum-exp pooling of (N, C, L): (1/r) log(mean(exp(r x))) over each window; see
    :func:`lse_pool2d`."""
    return _lse_pool("lse_pool1d", 1, input, kernel_size, stride, r)


def lse_pool2d(input, kernel_size, stride=None, r=1.0):
    """Log-sum-exp pooling of (N, C, H, W): (1/r) log(mean(exp(r x))) over each window, no
    padding; stride defaults to kernel_size. Between average (r -> 0) and max (r -> inf)
    pooling; computed stably (the window maximum is factored out)."""
    return _lse_pool("lse_pool2d", 2, input, kernel_size, stride, r)


# ---------------------------------------------------------------- adaptive pooling
def _adaptive_size(op, x, n, output_size):
    spatial = _check_rank(op, x, n)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != n:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {n} ints (None "
                             f"keeps that input size), got {output_size}")
        out = tuple(si if o is None else int(o) for si, o in zip(spatial, output_size))
    else:
        out = (int(output_size),) * n
    if min(out) < 0:
        raise ValueError(f"{op}: output_size must be non-negative, got {out}")
    return spatial, out


def _adaptive_avg(op, n, input, output_size):
    spatial, out = _adaptive_size(op, input, n, output_size)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    if 0 in out:  # empty output, still connected to the input (zero gradient)
        index = (Ellipsis,) + tuple(slice(0, 1 if o else 0) for o in out)
        return ops.expand(input[index], *(input.shape[:input.ndim - n] + out))
    if all(o > 0 and si % o == 0 for si, o in zip(spatial, out)):
        if all(o == 1 for o in out):  # global pooling
            return ops.mean(input, dim=tuple(range(-n, 0)), keepdim=True)
        k = tuple(si // o for si, o in zip(spatial, out))
        return P.avg_pool(input, k, k, (0,) * n, False)
    # overlapping or uneven windows: one constant averaging matrix per axis
    x = input
    for i in range(n):
        si, o = spatial[i], out[i]
        if si == o:
            continue
        start, end = P.adaptive_bounds(si, o)
        pos = B.xp.arange(si)[:, None]
        m = ((pos >= start) & (pos < end)) / (end - start)
        m = plain(m.astype(input.dtype))
        if i == n - 1:
            x = ops.matmul(x, m)
        else:  # bring axis i last, pool, move it back
            x = ops.movedim(ops.matmul(ops.movedim(x, i - n, -1), m), -1, i - n)
    return x


def adaptive_avg_pool1d(input, output_size):
    """Average pooling of (N, C, L) to length output_size with PyTorch's windows
    [floor(i L / out), ceil((i + 1) L / out)), which may overlap; output_size 1 is a global
    average."""
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling of (N, C, H, W) to output_size (int or (h, w), None keeps that size);
    see :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """Average pooling of (N, C, D, H, W) to output_size; see :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


def _adaptive_max(op, n, input, output_size, return_indices):
    spatial, out = _adaptive_size(op, input, n, output_size)
    return P.adaptive_max_pool(input, out, bool(return_indices))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max pooling of (N, C, L) to length output_size over PyTorch's adaptive windows (see
    :func:`adaptive_avg_pool1d`); indices as in :func:`max_pool1d`."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling of (N, C, H, W) to output_size; see :func:`adaptive_max_pool1d`."""
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Max pooling of (N, C, D, H, W) to output_size; see :func:`adaptive_max_pool1d`."""
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


# ---------------------------------------------------------------- k-max pooling
def kmax_pool(input, k, dim=-1):
    """k-max pooling (Kalchbrenner et al., 2014): the k largest values along ``dim`` kept in
    their original order. Among equal values the earlier ones are kept. The gradient flows
    to the selected elements."""
    if not isinstance(input, Tensor):
        raise TypeError(f"kmax_pool: expected a Tensor, got {type(input).__name__}")
    if input.ndim == 0:
        raise ValueError("kmax_pool: expected at least a 1-D input, got a 0-d tensor")
    if not -input.ndim <= dim < input.ndim:
        raise ValueError(f"kmax_pool: dim {dim} is out of range for input shape "
                         f"{tuple(input.shape)}")
    n = input.shape[dim]
    k = int(k)
    if not 1 <= k <= n:
        raise ValueError(f"kmax_pool: k must be in [1, {n}] (the size of dim {dim} of input "
                         f"shape {tuple(input.shape)}), got {k}")
    xp = B.xp
    order = xp.argsort(-input.data, axis=dim, kind="stable")
    keep = xp.sort(xp.take(order, xp.arange(k), axis=dim), axis=dim)
    return ops.gather(input, dim, plain(keep))


# ---------------------------------------------------------------- unpooling
def _max_unpool(op, n, input, indices, kernel_size, stride, padding, output_size):
    spatial = _check_rank(op, input, n)
    idx_shape = tuple(indices.shape)
    if idx_shape != tuple(input.shape):
        raise ValueError(f"{op}: indices must have the input's shape {tuple(input.shape)}, "
                         f"got {idx_shape}")
    k = _tuple(op, "kernel_size", kernel_size, n)
    s = k if stride is None else _tuple(op, "stride", stride, n)
    p = _tuple(op, "padding", padding, n)
    default = tuple((si - 1) * st - 2 * pi + ki for si, st, pi, ki in zip(spatial, s, p, k))
    if output_size is None:
        out = default
    else:
        out = tuple(int(o) for o in output_size)
        if len(out) == n + 2 or (len(out) == n + 1 and input.ndim == n + 1):
            out = out[len(out) - n:]
        if len(out) != n:
            raise ValueError(f"{op}: output_size should have {n} or {n + 2} elements, got "
                             f"{tuple(output_size)}")
        for i in range(n):
            lo, hi = default[i] - s[i], default[i] + s[i]
            if not lo < out[i] < hi:
                raise ValueError(f"{op}: invalid output_size {out} for input shape "
                                 f"{tuple(input.shape)} (dim {i} must be between {lo} and "
                                 f"{hi}, exclusive)")
    if min(out) <= 0:
        raise ValueError(f"{op}: output size {out} for input shape {tuple(input.shape)} must "
                         f"be positive")
    try:
        return P.max_unpool(input, indices, out)
    except ValueError as e:
        raise ValueError(f"{op}: {str(e).split(': ', 1)[1]}") from None


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of :func:`max_pool1d`: each value goes back to the position its
    index (from return_indices) names; all other positions are zero."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of :func:`max_pool2d` (the "switches" of a deconvnet)."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of :func:`max_pool3d`."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)


# ---------------------------------------------------------------- interpolation
_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _source_nearest(in_size, out_size, scale, exact, shortcuts):
    """PyTorch's nearest-neighbour source indices (computed in float32 as it does). Its 2-D
    kernel copies when out == in and halves when out == 2 in even if a scale_factor says
    otherwise; ``shortcuts`` reproduces that."""
    xp = B.xp
    dst = xp.arange(out_size)
    if shortcuts and out_size == in_size:
        return dst
    if shortcuts and out_size == 2 * in_size:
        return dst >> 1
    f32 = B.float32
    s = f32.type(1.0 / scale) if scale is not None and scale > 0 else \
        f32.type(in_size) / f32.type(out_size)
    if exact:
        src = ((dst + 0.5) * B.float64.type(s)).astype(f32)
    else:
        src = dst.astype(f32) * s
    return xp.minimum(xp.floor(src).astype(B.int64), in_size - 1)


def _source_linear(in_size, out_size, scale, align_corners, dtype):
    """PyTorch's linear-interpolation source indices and weights (in the input's dtype)."""
    xp = B.xp
    dst = xp.arange(out_size)
    if in_size == out_size:
        return dst, dst, xp.zeros(out_size, dtype=dtype)
    ftype = dtype.type
    if align_corners:
        ratio = ftype(in_size - 1) / ftype(out_size - 1) if out_size > 1 else ftype(0)
        src = ratio * dst.astype(dtype)
    else:
        ratio = ftype(1.0 / scale) if scale is not None and scale > 0 else \
            ftype(in_size) / ftype(out_size)
        src = ratio * (dst.astype(dtype) + ftype(0.5)) - ftype(0.5)
        src = xp.maximum(src, ftype(0))
    i0 = xp.minimum(xp.floor(src).astype(B.int64), in_size - 1)
    w1 = xp.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    i1 = xp.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, w1


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, *spatial) to ``size`` or by ``scale_factor``, as PyTorch does.

    Modes: 'nearest' (PyTorch's legacy floor rule), 'nearest-exact', 'linear' (3-D input),
    'bilinear' (4-D), 'trilinear' (5-D) with align_corners False (default) or True, and
    'area' (adaptive average pooling). Output size is floor(in * scale_factor); the scale
    itself is used for the source coordinates unless recompute_scale_factor.
    """
    op = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported")
    linear = mode in _LINEAR
    if mode not in ("nearest", "nearest-exact", "area") and not linear:
        raise ValueError(f"{op}: mode {mode!r} is not supported (use 'nearest', "
                         f"'nearest-exact', 'linear', 'bilinear', 'trilinear' or 'area')")
    if align_corners is not None and not linear:
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes "
                         f"'linear', 'bilinear' and 'trilinear', got mode {mode!r}")
    align_corners = bool(align_corners)
    n = input.ndim - 2
    if n < 1 or n > 3 or (linear and _LINEAR[mode] != n):
        want = f"a {_LINEAR[mode] + 2}-D" if linear else "a 3-D, 4-D or 5-D"
        raise ValueError(f"{op}: mode {mode!r} expects {want} (N, C, *spatial) input, got "
                         f"shape {tuple(input.shape)}")
    spatial = input.shape[2:]
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor (got "
                         f"size={size}, scale_factor={scale_factor})")
    if size is not None:
        out = _tuple(op, "size", size, n)
        scales = (None,) * n
    else:
        scales = tuple(float(v) for v in (scale_factor if isinstance(scale_factor, (tuple, list))
                                          else (scale_factor,) * n))
        if len(scales) != n:
            raise ValueError(f"{op}: scale_factor must be a number or {n} numbers for input "
                             f"shape {tuple(input.shape)}, got {scale_factor}")
        if min(scales) <= 0:
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor}")
        out = tuple(int(math.floor(si * sc)) for si, sc in zip(spatial, scales))
        if recompute_scale_factor:
            scales = (None,) * n
    if min(out) < 0 or (min(out) == 0 and mode != "area"):
        raise ValueError(f"{op}: output size {out} for input shape {tuple(input.shape)} must "
                         f"be positive")
    if 0 in spatial:
        raise ValueError(f"{op}: input shape {tuple(input.shape)} has an empty spatial "
                         f"dimension")
    if mode == "area":
        return _adaptive_avg(op, n, input, out)
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got {input.dtype}")
    x = input
    # separable: one axis at a time, the axis that shrinks most first (on ties the last
    # axis, whose element gathers cost more than the row gathers of the others)
    for i in sorted(range(n), key=lambda i: (out[i] / spatial[i], -i)):
        si, o, sc = spatial[i], out[i], scales[i]
        if linear:
            if si == o:
                continue
            i0, i1, w1 = _source_linear(si, o, sc, align_corners, input.dtype)
            x = P.resample_axis(x, i - n, i0, i1, w1)
        else:
            exact = mode == "nearest-exact"
            idx = _source_nearest(si, o, sc, exact, not exact and n == 2)
            if si == o and (idx == B.xp.arange(o)).all():
                continue
            x = P.resample_axis(x, i - n, idx)
    return x if x is not input else ops.clone(input)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate` (as in PyTorch)."""
    return interpolate(input, size, scale_factor, mode, align_corners)
