"""Pooling and resampling primitives over the trailing ``n`` spatial axes of an array shaped
``(*lead, *spatial)`` (``lead`` is ``(N, C)`` or ``(C,)``).

Forward passes read the (padded) input through one strided slice per kernel position and
combine the slices with a few whole-array ufunc calls; backward passes write (or add) the
gradient into the same slices, except where windows overlap in max pooling (one flat
``add.at``) and in resampling (one GEMM with the interpolation matrix). Loops run over
kernel positions only, never over the batch or the output pixels. Argument parsing and
error messages for users live in :mod:`lamina.nn.functional.pooling`; these functions
take normalised tuples.
"""
import itertools
import math

from .. import backend as B
from .. import grad_mode
from .. import parallel as P
from ..tensor import Tensor, plain, result


# ---------------------------------------------------------------- geometry
def out_len(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output length (a window must start inside the input or the left
    padding when ceil_mode adds one)."""
    o = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


def _window_slices(out, kernel, stride, dilation):
    """One index tuple per kernel position (row-major scan order) selecting that position
    of every window from the padded input."""
    axes = [[slice(j * d, j * d + (o - 1) * s + 1, s) for j in range(k)]
            for o, k, s, d in zip(out, kernel, stride, dilation)]
    return [(Ellipsis,) + pos for pos in itertools.product(*axes)]


def _pad(a, out, kernel, stride, padding, dilation, fill):
    """``a`` padded with ``fill``: ``padding`` on the left, on the right as much as the last
    window reaches (ceil_mode may reach past ``padding``). Returns (padded, interior)."""
    n = len(kernel)
    spatial = a.shape[a.ndim - n:]
    right = [max(0, (o - 1) * s + (k - 1) * d + 1 - p - size)
             for size, o, k, s, p, d in zip(spatial, out, kernel, stride, padding, dilation)]
    if not any(padding) and not any(right):
        return a, None
    shape = a.shape[:a.ndim - n] + tuple(p + size + r for p, size, r
                                         in zip(padding, spatial, right))
    interior = (Ellipsis,) + tuple(slice(p, p + size) for p, size in zip(padding, spatial))
    padded = B.xp.full(shape, fill, dtype=a.dtype)
    padded[interior] = a
    return padded, interior


def _lowest(dtype):
    return -B.xp.inf if dtype.kind == "f" else B.xp.iinfo(dtype).min


def _arg_dtype(k):
    return B.uint8 if k < 256 else B.int16 if k < 32768 else B.int32


# ---------------------------------------------------------------- max pooling
def _max_scan(a, slices, want_arg, n):
    """``_max_scan_rows`` over the batch of ``a`` (its leading axis, when it has one besides
    the ``n`` pooled axes), in ranges on two threads when large (``parallel.pieces``)."""
    xp = B.xp
    shape = a[slices[0]].shape
    work = math.prod(shape) * len(slices)
    if a.ndim == n or P.pieces_parts(a.shape[0], work) < 2:
        return _max_scan_rows(a, slices, want_arg)
    out = xp.empty(shape, a.dtype)
    arg = xp.empty(shape, _arg_dtype(len(slices))) if want_arg else None

    def rows(lo, hi):
        o, g = _max_scan_rows(a[lo:hi], slices, want_arg)
        out[lo:hi] = o
        if want_arg:
            arg[lo:hi] = g
    P.pieces(rows, shape[0], work)
    return out, arg


def _max_scan_rows(a, slices, want_arg):
    """Maximum over the windows; with ``want_arg`` also the kernel position of the first
    maximum in scan order (PyTorch's tie rule)."""
    xp = B.xp
    out = xp.array(a[slices[0]])
    if not want_arg:
        for sl in slices[1:]:
            xp.maximum(out, a[sl], out=out)
        return out, None
    adt = _arg_dtype(len(slices))
    arg = xp.zeros(out.shape, dtype=adt)
    buf = xp.empty_like(out)
    mask = xp.empty(out.shape, dtype=B.bool_)
    step = xp.empty(out.shape, dtype=adt)
    for k, sl in enumerate(slices[1:], 1):
        xp.maximum(out, a[sl], out=buf)
        xp.greater(buf, out, out=mask)
        # k exceeds every position recorded so far, so max() acts as "set k where mask"
        xp.multiply(mask, adt.type(k), out=step)
        xp.maximum(arg, step, out=arg)
        out, buf = buf, out
    return out, arg


def _fix_arg(a, slices, out, arg, geometry):
    """Rare windows the fast scan gets wrong: with NaN, PyTorch keeps the last NaN; a window
    whose values are all -inf points at its first non-padding element."""
    xp = B.xp
    if out.size == 0 or out.dtype.kind != "f":
        return
    low = out.min()
    if low == low and not (low == -xp.inf and geometry is not None):
        return
    if low != low:
        for k, sl in enumerate(slices):
            arg[xp.isnan(a[sl])] = k
    if geometry is not None and xp.isneginf(out).any():
        spatial, out_sz, kernel, stride, padding, dilation = geometry
        n = len(kernel)
        ninf = xp.isneginf(out)
        positions = list(itertools.product(*[range(k) for k in kernel]))
        for k in reversed(range(len(positions))):
            valid = ninf
            for i, j in enumerate(positions[k]):
                c = xp.arange(out_sz[i]) * stride[i] - padding[i] + j * dilation[i]
                shape = [1] * n
                shape[i] = out_sz[i]
                valid = valid & ((c >= 0) & (c < spatial[i])).reshape(shape)
            arg[valid] = k


def _flat_indices(arg, spatial, out_sz, kernel, stride, padding, dilation):
    """Kernel positions -> PyTorch's indices (flat over each channel's input plane)."""
    xp = B.xp
    n = len(kernel)
    plane = [1] * n
    for i in range(n - 2, -1, -1):
        plane[i] = plane[i + 1] * spatial[i + 1]
    table = xp.zeros(1, dtype=B.int64)
    base = xp.zeros((1,) * n, dtype=B.int64)
    for i in range(n):
        table = (table[:, None] + xp.arange(kernel[i]) * (dilation[i] * plane[i])).reshape(-1)
        shape = [1] * n
        shape[i] = out_sz[i]
        base = base + ((xp.arange(out_sz[i]) * stride[i] - padding[i]) * plane[i]).reshape(shape)
    return table[arg] + base


def _scatter_flat(g, arg, padded_shape, kernel, stride, dilation):
    """Max pooling's backward for overlapping windows: every output's gradient is summed
    into its argmax by flat index. NumPy 2's ``add.at`` with one flat integer index is a
    fast path: 2x faster than ``bincount`` (float64 weights plus a cast) and 4x faster
    than adding into strided slices kernel position by kernel position."""
    xp = B.xp
    n = len(kernel)
    length = padded_shape[len(padded_shape) - n:]
    lead = g.shape[:g.ndim - n]
    flat = _flat_indices(arg, length, g.shape[g.ndim - n:], kernel, stride, (0,) * n, dilation)
    nplane = math.prod(length)
    nlead = math.prod(lead)
    flat += (xp.arange(nlead) * nplane).reshape(lead + (1,) * n)
    gx = xp.zeros(padded_shape, dtype=g.dtype)
    xp.add.at(gx.reshape(-1), flat.reshape(-1), g.reshape(-1))
    return gx


def max_pool(x, kernel, stride, padding, dilation, ceil_mode, return_indices=False):
    """Max over windows of the trailing ``len(kernel)`` axes (PyTorch's max_poolNd).
    Returns the output Tensor, or (output, int64 indices) with ``return_indices``."""
    xd = x.data
    n = len(kernel)
    spatial = xd.shape[xd.ndim - n:]
    out_sz = tuple(out_len(*a, ceil_mode) for a in zip(spatial, kernel, stride, padding,
                                                        dilation))
    need_grad = x.requires_grad and grad_mode.enabled
    a, interior = _pad(xd, out_sz, kernel, stride, padding, dilation, _lowest(xd.dtype))
    slices = _window_slices(out_sz, kernel, stride, dilation)
    out, arg = _max_scan(a, slices, need_grad or return_indices, n)
    if arg is not None:
        _fix_arg(a, slices, out, arg, None if interior is None else
                 (spatial, out_sz, kernel, stride, padding, dilation))
    idx = None
    if return_indices:
        idx = plain(_flat_indices(arg, spatial, out_sz, kernel, stride, padding, dilation))
    if not need_grad:
        return (plain(out), idx) if return_indices else plain(out)
    padded_shape = a.shape
    disjoint = all(k == 1 or (d == 1 and s >= k) for k, s, d in zip(kernel, stride, dilation))
    covered = disjoint and all(k == s and o * s == size for o, k, s, size
                               in zip(out_sz, kernel, stride, padded_shape[-n:]))

    def backward(g):
        if not disjoint:
            gx = _scatter_flat(g, arg, padded_shape, kernel, stride, dilation)
            return (gx if interior is None else gx[interior],)
        xp = B.xp
        gx = (xp.empty if covered else xp.zeros)(padded_shape, dtype=g.dtype)

        def rows(lo, hi):  # each window's gradient to its argmax, one position at a time
            mask = xp.empty(arg[lo:hi].shape, dtype=B.bool_)
            for k, sl in enumerate(slices):
                xp.equal(arg[lo:hi], k, out=mask)
                xp.multiply(g[lo:hi], mask, out=gx[lo:hi][sl])
        if g.ndim == n or P.pieces_parts(g.shape[0], gx.size) < 2:
            rows(0, None)
        else:
            P.pieces(rows, g.shape[0], gx.size)
        return (gx if interior is None else gx[interior],)

    out_t = result(out, (x,), backward)
    return (out_t, idx) if return_indices else out_t


# ---------------------------------------------------------------- average pooling
def _axis_index(ndim, axis, sl):
    return (slice(None),) * (axis % ndim) + (sl,)


def _window_sum(a, axis, k, s, o):
    """Sums of ``k`` consecutive elements along ``axis`` at stride ``s`` (``o`` windows)."""
    nd = a.ndim
    if k == 1:
        return a[_axis_index(nd, axis, slice(0, (o - 1) * s + 1, s))]
    acc = a[_axis_index(nd, axis, slice(0, (o - 1) * s + 1, s))] + \
        a[_axis_index(nd, axis, slice(1, 1 + (o - 1) * s + 1, s))]
    for j in range(2, k):
        acc += a[_axis_index(nd, axis, slice(j, j + (o - 1) * s + 1, s))]
    return acc


def _window_scatter(g, axis, k, s, o, length):
    """The transpose of :func:`_window_sum`: each window's value added to its elements."""
    xp = B.xp
    nd = g.ndim
    shape = list(g.shape)
    shape[axis % nd] = length
    if s >= k:
        full = s == k and o * k == length
        res = (xp.empty if full else xp.zeros)(shape, dtype=g.dtype)
        for j in range(k):
            res[_axis_index(nd, axis, slice(j, j + (o - 1) * s + 1, s))] = g
    else:
        res = xp.zeros(shape, dtype=g.dtype)
        for j in range(k):
            res[_axis_index(nd, axis, slice(j, j + (o - 1) * s + 1, s))] += g
    return res


def _divisor(spatial, out_sz, kernel, stride, padding, count_include_pad, dtype):
    """Per-window divisor as PyTorch computes it: the window clipped to the padded input
    (count_include_pad) or to the input itself; a scalar where all windows agree."""
    xp = B.xp
    n = len(kernel)
    div = None
    uniform = True
    for i in range(n):
        start = xp.arange(out_sz[i]) * stride[i] - padding[i]
        end = xp.minimum(start + kernel[i], spatial[i] + padding[i])
        if not count_include_pad:
            start = xp.maximum(start, 0)
            end = xp.minimum(end, spatial[i])
        cnt = end - start
        uniform = uniform and bool((cnt == kernel[i]).all())
        shape = [1] * n
        shape[i] = out_sz[i]
        cnt = cnt.reshape(shape)
        div = cnt if div is None else div * cnt
    if uniform:
        p = 1
        for k in kernel:
            p *= k
        return p
    return div.astype(dtype)


def avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad=True,
             divisor_override=None):
    """Mean over windows of the trailing ``len(kernel)`` axes (PyTorch's avg_poolNd).
    Window sums are separable, so they run one axis at a time."""
    xd = x.data
    n = len(kernel)
    spatial = xd.shape[xd.ndim - n:]
    ones = (1,) * n
    out_sz = tuple(out_len(*a, 1, ceil_mode) for a in zip(spatial, kernel, stride, padding))
    a, interior = _pad(xd, out_sz, kernel, stride, padding, ones, 0)
    padded_shape = a.shape
    out = a
    for i in range(n - 1, -1, -1):
        out = _window_sum(out, i - n, kernel[i], stride[i], out_sz[i])
    div = divisor_override if divisor_override else \
        _divisor(spatial, out_sz, kernel, stride, padding, count_include_pad, xd.dtype)
    out = out / div
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)

    def backward(g):
        g = g / div
        for i in range(n):
            g = _window_scatter(g, i - n, kernel[i], stride[i], out_sz[i],
                                padded_shape[i - n])
        return (g if interior is None else g[interior],)
    return result(out, (x,), backward)


# ---------------------------------------------------------------- log-sum-exp pooling
def lse_pool(x, kernel, stride, r):
    """(1/r) log(mean(exp(r x))) over each window (no padding): a smooth maximum that tends
    to max pooling as r -> inf and to average pooling as r -> 0."""
    xp = B.xp
    xd = x.data
    n = len(kernel)
    spatial = xd.shape[xd.ndim - n:]
    ones = (1,) * n
    out_sz = tuple(out_len(size, k, s, 0, 1, False) for size, k, s
                   in zip(spatial, kernel, stride))
    slices = _window_slices(out_sz, kernel, stride, ones)
    count = len(slices)
    z = xd * r
    m, _ = _max_scan_rows(z, slices, False)
    acc = xp.zeros_like(m)
    tmp = xp.empty_like(m)
    for sl in slices:
        xp.subtract(z[sl], m, out=tmp)
        xp.exp(tmp, out=tmp)
        acc += tmp
    xp.log(acc, out=acc)
    rout = m + (acc - math.log(count))  # r * out
    out = rout / r
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)

    def backward(g):
        # d out / d x_j = exp(r x_j - r out) / count for each window containing x_j
        gx = xp.zeros(xd.shape, dtype=g.dtype)
        gs = g / count
        w = xp.empty_like(rout)
        for sl in slices:
            xp.subtract(z[sl], rout, out=w)
            xp.exp(w, out=w)
            w *= gs
            gx[sl] += w
        return (gx,)
    return result(out, (x,), backward)


# ---------------------------------------------------------------- adaptive max pooling
def adaptive_bounds(size, out):
    """Window [start, end) of each output position along one axis (PyTorch's rule)."""
    o = B.xp.arange(out)
    return (o * size) // out, -((-(o + 1) * size) // out)


def adaptive_max_pool(x, out_sz, return_indices=False):
    """Max over PyTorch's adaptive windows of the trailing ``len(out_sz)`` axes."""
    xp = B.xp
    xd = x.data
    n = len(out_sz)
    spatial = xd.shape[xd.ndim - n:]
    if all(o > 0 and size % o == 0 for size, o in zip(spatial, out_sz)):
        kernel = tuple(size // o for size, o in zip(spatial, out_sz))
        return max_pool(x, kernel, kernel, (0,) * n, (1,) * n, False, return_indices)
    lead = xd.shape[:xd.ndim - n]
    plane = [1] * n
    for i in range(n - 2, -1, -1):
        plane[i] = plane[i + 1] * spatial[i + 1]
    idx_axes = []  # per axis: (out, kmax) input positions, the window's last one repeated
    for size, o in zip(spatial, out_sz):
        start, end = adaptive_bounds(size, o)
        kmax = int((end - start).max()) if o else 1
        idx_axes.append(xp.minimum(start[:, None] + xp.arange(kmax), end[:, None] - 1))

    def positions():
        """(window values, their flat indices) for each position inside the windows."""
        for pos in itertools.product(*[range(ix.shape[1]) for ix in idx_axes]):
            v = xd
            f = 0
            for i, j in enumerate(pos):
                col = idx_axes[i][:, j]
                v = xp.take(v, col, axis=i - n)
                shape = [1] * n
                shape[i] = out_sz[i]
                f = f + (col * plane[i]).reshape(shape)
            yield v, f

    scan = positions()
    out, f = next(scan)
    flat = xp.array(xp.broadcast_to(f, out.shape), dtype=B.int64)
    buf = xp.empty_like(out)
    mask = xp.empty(out.shape, dtype=B.bool_)
    for v, f in scan:
        xp.maximum(out, v, out=buf)
        xp.greater(buf, out, out=mask)
        xp.copyto(flat, f, where=mask)
        out, buf = buf, out
    if out.dtype.kind == "f" and out.size and out.min() != out.min():
        for v, f in positions():  # PyTorch keeps the last NaN
            xp.copyto(flat, f, where=xp.isnan(v))
    idx = plain(flat) if return_indices else None
    if not (x.requires_grad and grad_mode.enabled):
        return (plain(out), idx) if return_indices else plain(out)
    nplane = plane[0] * spatial[0]
    nlead = 1
    for d in lead:
        nlead *= d
    shape = xd.shape

    def backward(g):
        # windows may overlap, so an input can be the maximum of several: sum by index
        where = (xp.arange(nlead) * nplane)[:, None] + flat.reshape(nlead, math.prod(out_sz))
        gx = xp.zeros(shape, dtype=g.dtype)
        xp.add.at(gx.reshape(-1), where.reshape(-1), g.reshape(-1))
        return (gx,)

    out_t = result(out, (x,), backward)
    return (out_t, idx) if return_indices else out_t


# ---------------------------------------------------------------- unpooling
def max_unpool(x, indices, out_sz):
    """Place each value of ``x`` at its index in a zero plane of size ``out_sz`` (the
    inverse of max pooling's "switches"). Indices are flat per channel plane."""
    xp = B.xp
    xd = x.data
    idx = indices.data if isinstance(indices, Tensor) else xp.asarray(indices)
    n = len(out_sz)
    lead = xd.shape[:xd.ndim - n]
    nplane = 1
    for o in out_sz:
        nplane *= o
    nlead = 1
    for d in lead:
        nlead *= d
    flat = idx.reshape(nlead, math.prod(xd.shape[xd.ndim - n:])).astype(B.int64, copy=False)
    if flat.size and (flat.min() < 0 or flat.max() >= nplane):
        bad = flat[(flat < 0) | (flat >= nplane)][0]
        raise ValueError(f"max_unpool: index {int(bad)} is out of range for an output plane "
                         f"of size {tuple(out_sz)} ({nplane} elements)")
    flat = (flat + (xp.arange(nlead) * nplane)[:, None]).reshape(-1)
    out = xp.zeros(lead + tuple(out_sz), dtype=xd.dtype)
    out.reshape(-1)[flat] = xd.reshape(-1)
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape
    return result(out, (x,), lambda g: (g.reshape(-1)[flat].reshape(shape),))


# ---------------------------------------------------------------- resampling
def _regular_sum(g, idx, axis, length):
    """Backward of a gather whose indices are ``i // f`` (integer-factor nearest
    upsampling): the sum of ``f`` strided slices; None for any other pattern."""
    out = g.shape[axis]
    if length == 0 or out % length:
        return None
    f = out // length
    if not bool((idx == B.xp.arange(out) // f).all()):
        return None
    nd = g.ndim
    res = B.xp.array(g[_axis_index(nd, axis, slice(0, None, f))])
    for r in range(1, f):
        res += g[_axis_index(nd, axis, slice(r, None, f))]
    return res


def _apply_matrix(g, m, axis):
    """Contract axis ``axis`` of ``g`` (length m.shape[1]) with ``m``: (..., out, ...) ->
    (..., in, ...), as one GEMM (last axis) or a batch of them."""
    xp = B.xp
    shape = g.shape
    n_out, n_in = m.shape[1], m.shape[0]
    pre = 1
    for d in shape[:axis]:
        pre *= d
    post = 1
    for d in shape[axis + 1:]:
        post *= d
    if post == 1:
        res = g.reshape(-1, n_out) @ m.T
    else:
        res = xp.matmul(m, g.reshape(pre, n_out, post))
    return res.reshape(shape[:axis] + (n_in,) + shape[axis + 1:])


def resample_axis(x, axis, i0, i1=None, w1=None):
    """``x`` resampled along ``axis``: out[j] = x[i0[j]] (nearest) or
    x[i0[j]] + w1[j] (x[i1[j]] - x[i0[j]]) (linear). Forward gathers the neighbours only;
    backward multiplies by the transposed (in, out) interpolation matrix (one GEMM), or
    adds strided slices for integer-factor nearest upsampling."""
    xp = B.xp
    xd = x.data
    nd = xd.ndim
    ax = axis % nd
    length = xd.shape[ax]
    n_out = len(i0)
    if w1 is None:
        out = xp.take(xd, i0, axis=ax)
    else:
        w1 = w1.astype(xd.dtype).reshape((-1,) + (1,) * (nd - ax - 1))
        out = xp.take(xd, i0, axis=ax)
        hi = xp.take(xd, i1, axis=ax)
        hi -= out
        hi *= w1
        out += hi
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)

    def backward(g):
        if w1 is None:
            res = _regular_sum(g, i0, ax, length)
            if res is not None:
                return (res,)
        m = xp.zeros((length, n_out), dtype=g.dtype)
        cols = xp.arange(n_out)
        if w1 is None:
            m[i0, cols] = 1
        else:
            w = w1.reshape(-1)
            m[i0, cols] = 1 - w
            m[i1, cols] += w  # i1 == i0 at the border: the weights add up to 1
        return (_apply_matrix(g, m, ax),)
    return result(out, (x,), backward)
