"""Normalization primitives with fused forward and closed-form backward: batch_norm,
layer_norm, group_norm.

All three normalise x to x_hat = (x - mean) * inv_std over some axes and apply a
per-feature affine map. With gh = g * weight (the gradient reaching x_hat) and M the
number of values behind each statistic, the input gradient is

    dx = inv_std / M * (M * gh - sum(gh) - x_hat * sum(gh * x_hat)),

the sums running over the same values as the statistics. Everything stays in the input's
dtype; reductions go through matrix-vector products (BLAS) where that is faster than
``ndarray.sum`` over non-contiguous axes.
"""
from .. import backend as B
from .. import grad_mode
from .. import parallel as P
from ..tensor import plain, result

__all__ = ["batch_norm", "layer_norm", "group_norm", "symmetric_blur2d"]


def _wants(t):
    return t is not None and t.requires_grad and grad_mode.enabled


def _prod(dims):
    p = 1
    for d in dims:
        p *= d
    return p


def _rowdot(a, b):
    """Dot products along the last axis: (..., K), (..., K) -> (...)."""
    vecdot = getattr(B.xp, "vecdot", None)
    if vecdot is not None and a.shape[-1] >= 32:  # one BLAS dot a row
        return vecdot(a, b)
    return B.xp.einsum("...k,...k->...", a, b)  # short rows: per-row calls would dominate


def _channel_dot(a3, b3):
    """(N, C, L), (N, C, L) -> (C,): sum of products over the batch and the positions."""
    if a3.shape[2] >= 32:  # long rows: one BLAS dot per (n, c)
        return _rowdot(a3, b3).sum(axis=0)
    return B.xp.einsum("ncl,ncl->c", a3, b3)  # short rows: gufunc calls would dominate


def _channel_sum(a3):
    """(N, C, L) -> (C,): sum over the batch and the positions."""
    n, c, l = a3.shape
    if a3.flags.c_contiguous:
        s = P.unthreaded_blas(B.xp.matmul, B.xp.ones(n, dtype=a3.dtype),
                              a3.reshape(n, c * l))
        return s.reshape(c, l).sum(axis=1) if l > 1 else s
    return a3.sum(axis=(0, 2))


def _row_sum(a2):
    """(M, K) -> (M,)."""
    return a2 @ B.xp.ones(a2.shape[1], dtype=a2.dtype)


def _in_order(parts):
    """The sum of per-piece partial results {first row: array}, in row order (the same
    result however the threads finished)."""
    keys = sorted(parts)
    total = parts[keys[0]]
    for k in keys[1:]:
        total = total + parts[k]
    return total


def _per_channel(v, dtype):
    """A (C,) vector as a (C, 1) column in ``dtype``, for broadcasting over (N, C, L)."""
    return v.astype(dtype, copy=False)[:, None]


def _check_vector(op, name, t, c, shape):
    if t is not None and tuple(t.shape) != (c,):
        raise ValueError(f"{op}: {name} should have shape ({c},) for an input of shape "
                         f"{tuple(shape)} with {c} channels, got {tuple(t.shape)}")


# ---------------------------------------------------------------- batch norm
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over (N, C, *): per-channel statistics over the batch and all
    positions. ``training``: normalise with the batch statistics and, where given, update
    ``running_mean``/``running_var`` in place (``r = (1 - momentum) r + momentum s``, with
    the unbiased batch variance); otherwise normalise with the running statistics."""
    xd = input.data
    shape = xd.shape
    if xd.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *) with at least 2 "
                         f"dimensions, got shape {tuple(shape)}")
    n, c = shape[0], shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_vector("batch_norm", name, t, c, shape)
    l = _prod(shape[2:])
    m = n * l
    dt = xd.dtype
    x3 = xd.reshape(n, c, l)
    wd = None if weight is None else weight.data
    if training:
        if m == 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when "
                             f"training, got input of shape {tuple(shape)}")
        if m == 0:
            return plain(xd.copy()) if not _wants(input) else _identity_like(input)
        mean = _channel_sum(x3) / dt.type(m)
        xc = B.xp.empty((n, c, l), dt)
        mcol, sq = mean[:, None], {}

        def centre(lo, hi):  # xc = x - mean, and its sum of squares per channel
            B.xp.subtract(x3[lo:hi], mcol, out=xc[lo:hi])
            sq[lo] = _channel_dot(xc[lo:hi], xc[lo:hi])
        P.pieces(centre, n, xc.size)
        var = _in_order(sq) / dt.type(m)
        inv_std = 1.0 / B.xp.sqrt(var + dt.type(eps))
        if running_mean is not None or running_var is not None:
            _update_running(running_mean, running_var, mean, var, m, momentum)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be defined in "
                               "evaluation mode (or pass training=True)")
        mean = running_mean.data.astype(dt, copy=False)
        inv_std = 1.0 / B.xp.sqrt(running_var.data.astype(dt, copy=False) + dt.type(eps))
        xc = None
    scale = inv_std if wd is None else inv_std * wd.astype(dt, copy=False)
    if xc is not None:  # y = xc * scale + bias
        src, shift = xc, None if bias is None else _per_channel(bias.data, dt)
    else:  # eval: one affine map x * scale + shift
        shift = -mean * scale
        if bias is not None:
            shift = shift + bias.data.astype(dt, copy=False)
        src, shift = x3, shift[:, None]
    y3 = B.xp.empty((n, c, l), dt)
    scol = scale[:, None]

    def affine(lo, hi):
        B.xp.multiply(src[lo:hi], scol, out=y3[lo:hi])
        if shift is not None:
            y3[lo:hi] += shift
    P.pieces(affine, n, y3.size)
    y = y3.reshape(shape)

    gx, gw, gb = _wants(input), _wants(weight), _wants(bias)
    if not (gx or gw or gb):
        return plain(y)

    def backward(g):
        g3 = g.reshape(n, c, l)
        want_sum = gb or (gx and xc is not None)
        xcen = xc if xc is not None else (x3 - mean[:, None] if gw else None)
        want_dot = gw or (gx and xc is not None)
        sums, dots = {}, {}

        def reduce(lo, hi):  # per-channel sums of g and of g * (x - mean)
            if want_sum:
                sums[lo] = _channel_sum(g3[lo:hi])
            if want_dot:
                dots[lo] = _channel_dot(g3[lo:hi], xcen[lo:hi])
        if want_sum or want_dot:
            P.pieces(reduce, n, g3.size)
        sum_g = _in_order(sums) if want_sum else None
        sum_gxc = _in_order(dots) if want_dot else None
        dw = sum_gxc * inv_std if gw else None
        db = sum_g if gb else None
        dx = None
        if gx:
            t = B.xp.empty((n, c, l), dt)
            if xc is None:  # running statistics are constants
                P.pieces(lambda lo, hi: B.xp.multiply(g3[lo:hi], scol, out=t[lo:hi]),
                         n, t.size)
            else:  # dx = scale * (g - sum_g / m - xc * inv_std^2 * sum_gxc / m)
                inv_m = dt.type(1.0 / m)
                k1 = (inv_std * inv_std * sum_gxc * inv_m)[:, None]
                k2 = (sum_g * inv_m)[:, None]

                def dx_piece(lo, hi):
                    tp = t[lo:hi]
                    B.xp.multiply(xc[lo:hi], k1, out=tp)
                    tp += k2
                    B.xp.subtract(g3[lo:hi], tp, out=tp)
                    tp *= scol
                P.pieces(dx_piece, n, t.size)
            dx = t.reshape(shape)
        return dx, dw, db

    return result(y, (input if gx else None, weight if gw else None, bias if gb else None),
                  backward)


def _identity_like(x):
    return result(x.data.copy(), (x,), lambda g: (g,))


def _update_running(running_mean, running_var, mean, var, m, momentum):
    """In place, as PyTorch: r <- (1 - momentum) r + momentum * batch statistic."""
    mom = float(momentum)
    if running_mean is not None:
        rm = running_mean.data
        rm *= 1.0 - mom
        rm += (mom * mean).astype(rm.dtype, copy=False)
    if running_var is not None:
        rv = running_var.data
        rv *= 1.0 - mom
        rv += (var * (mom * m / (m - 1))).astype(rv.dtype, copy=False)


# ---------------------------------------------------------------- row normalization
def _normalize_rows(x2, eps):
    """(M, K) -> x_hat (M, K), inv_std (M,) with biased variance over each row."""
    dt = x2.dtype
    k = x2.shape[1]
    mean = _row_sum(x2) / dt.type(k)
    xh = x2 - mean[:, None]
    var = _rowdot(xh, xh) / dt.type(k)
    inv_std = 1.0 / B.xp.sqrt(var + dt.type(eps))
    xh *= inv_std[:, None]
    return xh, inv_std


def _rows_backward(gh, xh, inv_std):
    """dx for x_hat = normalize_rows(x), given gh = dL/dx_hat (both (M, K))."""
    dt = xh.dtype
    inv_k = dt.type(1.0 / xh.shape[1])
    t = xh * (_rowdot(gh, xh) * inv_k)[:, None]
    t += (_row_sum(gh) * inv_k)[:, None]
    B.xp.subtract(gh, t, out=t)
    t *= inv_std[:, None]
    return t


# ---------------------------------------------------------------- layer norm
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` dims (biased variance), then
    ``* weight + bias`` (both of shape normalized_shape). x: (*, *normalized_shape)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    ns = tuple(int(s) for s in normalized_shape)
    xd = input.data
    shape = xd.shape
    k = len(ns)
    if k == 0 or xd.ndim < k or tuple(shape[xd.ndim - k:]) != ns:
        raise ValueError(f"layer_norm: given normalized_shape={list(ns)}, expected an input of "
                         f"shape (*, {', '.join(map(str, ns))}), got shape {tuple(shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise ValueError(f"layer_norm: {name} should have shape {ns} "
                             f"(normalized_shape), got {tuple(t.shape)}")
    dt = xd.dtype
    kk = _prod(ns)
    rows = _prod(shape[:xd.ndim - k])
    x2 = xd.reshape(rows, kk)
    xh, inv_std = _normalize_rows(x2, eps)
    wd = None if weight is None else weight.data.astype(dt, copy=False).reshape(kk)
    if wd is not None:
        y = xh * wd
        if bias is not None:
            y += bias.data.astype(dt, copy=False).reshape(kk)
    elif bias is not None:
        y = xh + bias.data.astype(dt, copy=False).reshape(kk)
    else:
        y = xh
    y = y.reshape(shape)
    gx, gw, gb = _wants(input), _wants(weight), _wants(bias)
    if not (gx or gw or gb):
        return plain(y)

    def backward(g):
        g2 = g.reshape(rows, kk)
        ones = B.xp.ones(rows, dtype=dt)
        dw = (ones @ (g2 * xh)).reshape(ns) if gw else None
        db = (ones @ g2).reshape(ns) if gb else None
        dx = None
        if gx:
            gh = g2 * wd if wd is not None else g2
            dx = _rows_backward(gh, xh, inv_std).reshape(shape)
        return dx, dw, db

    return result(y, (input if gx else None, weight if gw else None, bias if gb else None),
                  backward)


# ---------------------------------------------------------------- group norm
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Split the C channels of x (N, C, *) into ``num_groups`` groups and normalise each
    sample's group over its channels and positions; then a per-channel affine map."""
    xd = input.data
    shape = xd.shape
    if xd.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got shape "
                         f"{tuple(shape)}")
    n, c = shape[0], shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: the number of channels ({c}) of the input of shape "
                         f"{tuple(shape)} must be divisible by num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        _check_vector("group_norm", name, t, c, shape)
    dt = xd.dtype
    l = _prod(shape[2:])
    k = (c // num_groups) * l
    xh, inv_std = _normalize_rows(xd.reshape(n * num_groups, k), eps)
    xh3 = xh.reshape(n, c, l)
    if weight is not None:
        y = xh3 * _per_channel(weight.data, dt)
        if bias is not None:
            y += _per_channel(bias.data, dt)
    elif bias is not None:
        y = xh3 + _per_channel(bias.data, dt)
    else:
        y = xh3
    y = y.reshape(shape)
    gx, gw, gb = _wants(input), _wants(weight), _wants(bias)
    if not (gx or gw or gb):
        return plain(y)

    def backward(g):
        g3 = g.reshape(n, c, l)
        dw = _channel_dot(g3, xh3) if gw else None
        db = _channel_sum(g3) if gb else None
        dx = None
        if gx:
            gh = g3 * _per_channel(weight.data, dt) if weight is not None else g3
            dx = _rows_backward(gh.reshape(n * num_groups, k), xh, inv_std).reshape(shape)
        return dx, dw, db

    return result(y, (input if gx else None, weight if gw else None, bias if gb else None),
                  backward)


# ---------------------------------------------------------------- blur (for contrast norm)
def _blur_axis(a, taps, axis):
    """Correlate ``a`` along ``axis`` with the odd-length ``taps``, zero padding."""
    k = len(taps)
    r = k // 2
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = B.xp.pad(a, pad)
    sl = [slice(None)] * a.ndim
    out = None
    for i, w in enumerate(taps):
        sl[axis] = slice(i, i + n)
        term = p[tuple(sl)] * a.dtype.type(w)
        if out is None:
            out = term
        else:
            out += term
    return out


def symmetric_blur2d(x, taps):
    """Separable 2-d correlation of the last two dims of x (..., H, W) with
    ``outer(taps, taps)``, zero padding, same size out. ``taps`` must be symmetric (odd
    length): the operator is then self-adjoint, so its backward is the same blur."""
    def blur(a):
        return _blur_axis(_blur_axis(a, taps, a.ndim - 1), taps, a.ndim - 2)

    y = blur(x.data)
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (blur(g),))
    return plain(y)
