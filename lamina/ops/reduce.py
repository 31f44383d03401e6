"""Reductions over any axes: sum, mean, var, std, prod, max/min, amax/amin, logsumexp, norm.

``dim``/``keepdim`` (PyTorch) and ``axis``/``keepdims`` (NumPy) are both accepted.
"""
import builtins
from collections import namedtuple

from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain, result

values_indices = namedtuple("values_indices", ["values", "indices"])


def _axes(op, x, dim, axis):
    """Normalise dim/axis to a sorted tuple of non-negative axes, or None for all."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    if dim is None:
        return None
    nd = x.ndim
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -builtins.max(nd, 1) <= d < builtins.max(nd, 1):
            raise IndexError(f"{op}: dimension {d} is out of range for a tensor of shape "
                             f"{tuple(x.shape)}")
        out.append(d % builtins.max(nd, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dimension repeated in {dims}")
    return tuple(sorted(out)) if nd else None


def _keep(keepdim, keepdims):
    return bool(keepdims) if keepdims is not None else bool(keepdim)


def expand_back(g, shape, axes, keepdim):
    """Broadcast a reduced gradient back to the input's ``shape``."""
    if axes is None:
        return B.xp.broadcast_to(g.reshape((1,) * len(shape)) if not keepdim else g, shape)
    if not keepdim:
        g = B.xp.expand_dims(g, axes)
    return B.xp.broadcast_to(g, shape)


def _count(shape, axes):
    n = 1
    for i in (range(len(shape)) if axes is None else axes):
        n *= shape[i]
    return n


def sum(x, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    axes = _axes("sum", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if dtype is None and xd.dtype.kind in "bu" or xd.dtype.kind == "i" and dtype is None:
        dtype = B.int64
    out = xd.sum(axis=axes, keepdims=keep, dtype=B.to_dtype(dtype))
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape
        return result(out, (x,), lambda g: (expand_back(g, shape, axes, keep),))
    return plain(out)


def mean(x, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    axes = _axes("mean", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if xd.dtype.kind != "f" and dtype is None:
        raise TypeError(f"mean: could not infer output dtype; input dtype must be floating "
                        f"point, got {xd.dtype} (use .float() or dtype=)")
    out = xd.mean(axis=axes, keepdims=keep, dtype=B.to_dtype(dtype))
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape
        n = _count(shape, axes)
        return result(out, (x,), lambda g: (expand_back(g / n, shape, axes, keep),))
    return plain(out)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Variance with Bessel's ``correction`` (1 by default, as in PyTorch)."""
    return _moment("var", x, dim, unbiased, keepdim, correction, axis, keepdims, False)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    return _moment("std", x, dim, unbiased, keepdim, correction, axis, keepdims, True)


def _moment(op, x, dim, unbiased, keepdim, correction, axis, keepdims, root):
    if isinstance(dim, bool):  # torch.var(x, False) is var(x, unbiased=False)
        dim, unbiased = None, dim
    axes = _axes(op, x, dim, axis)
    keep = _keep(keepdim, keepdims)
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    xd = x.data
    n = _count(xd.shape, axes)
    centered = xd - xd.mean(axis=axes, keepdims=True)
    with B.xp.errstate(divide="ignore", invalid="ignore"):
        v = (centered * centered).sum(axis=axes, keepdims=keep) / builtins.max(n - correction, 0)
        out = B.xp.sqrt(v) if root else v
    out = B.xp.asarray(out, dtype=xd.dtype)
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            with B.xp.errstate(divide="ignore", invalid="ignore"):
                scale = g / builtins.max(n - correction, 0) * 2
                if root:
                    scale = scale / (2 * out)
            return (expand_back(scale, shape, axes, keep) * centered,)
        return result(out, (x,), backward)
    return plain(out)


def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def prod(x, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    """Product; the gradient is exact with zeros present (product of the others)."""
    if dim is not None and not isinstance(dim, int):
        raise TypeError("prod: dim must be a single int (as in PyTorch)")
    axes = _axes("prod", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    out = xd.prod(axis=axes, keepdims=keep, dtype=B.to_dtype(dtype))
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            zero = xd == 0
            nz = B.xp.where(zero, 1, xd)
            p_nz = nz.prod(axis=axes, keepdims=True)
            nzero = zero.sum(axis=axes, keepdims=True)
            ge = expand_back(g, shape, axes, keep)
            others = B.xp.where(nzero == 0, p_nz / nz, B.xp.where(zero & (nzero == 1), p_nz, 0))
            return (ge * others,)
        return result(out, (x,), backward)
    return plain(out)


def _extreme(op, fwd, x, dim, keepdim, axis, keepdims):
    """amax/amin: the gradient is shared evenly by all elements equal to the extreme."""
    axes = _axes(op, x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if xd.size == 0:
        raise RuntimeError(f"{op}: expected a non-empty tensor, got shape {tuple(xd.shape)}")
    out = fwd(xd, axis=axes, keepdims=keep)
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            hit = xd == expand_back(out, shape, axes, keep)
            n = hit.sum(axis=axes, keepdims=True)
            return (expand_back(g, shape, axes, keep) * hit / n,)
        return result(out, (x,), backward)
    return plain(out)


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme("amax", B.xp.amax, x, dim, keepdim, axis, keepdims)


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme("amin", B.xp.amin, x, dim, keepdim, axis, keepdims)


def _extreme_with_index(op, argfn, x, dim, keepdim):
    """max(x, dim) / min(x, dim): (values, indices); the gradient goes to the index."""
    (ax,) = _axes(op, x, dim, None) or (0,)
    xd = x.data
    if xd.shape[ax] == 0:
        raise RuntimeError(f"{op}: cannot reduce over an empty dimension {dim} of shape "
                           f"{tuple(xd.shape)}")
    idx = B.xp.expand_dims(argfn(xd, axis=ax), ax)
    vals = B.xp.take_along_axis(xd, idx, axis=ax)
    if not keepdim:
        vals, idx_out = vals.squeeze(ax), idx.squeeze(ax)
    else:
        idx_out = idx
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            z = B.xp.zeros(shape, dtype=g.dtype)
            B.xp.put_along_axis(z, idx, g if keepdim else B.xp.expand_dims(g, ax), axis=ax)
            return (z,)
        values = result(vals, (x,), backward)
    else:
        values = plain(vals)
    return values_indices(values, plain(idx_out.astype(B.int64)))


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``max(x)`` -> the largest element; ``max(x, dim)`` -> (values, indices);
    ``max(x, other_tensor)`` -> elementwise maximum."""
    if isinstance(dim, Tensor):
        from .elementwise import maximum
        return maximum(x, dim)
    if axis is not None:
        dim = axis
    if dim is None:
        return amax(x)
    return _extreme_with_index("max", B.xp.argmax, x, dim, _keep(keepdim, keepdims))


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    if isinstance(dim, Tensor):
        from .elementwise import minimum
        return minimum(x, dim)
    if axis is not None:
        dim = axis
    if dim is None:
        return amin(x)
    return _extreme_with_index("min", B.xp.argmin, x, dim, _keep(keepdim, keepdims))


def argmax(x, dim=None, keepdim=False):
    """Index of the largest element (flat index when dim is None); not differentiable."""
    if dim is None:
        return plain(B.xp.asarray(B.xp.argmax(x.data), dtype=B.int64))
    return plain(B.xp.argmax(x.data, axis=dim, keepdims=keepdim).astype(B.int64))


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return plain(B.xp.asarray(B.xp.argmin(x.data), dtype=B.int64))
    return plain(B.xp.argmin(x.data, axis=dim, keepdims=keepdim).astype(B.int64))


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) computed stably; d/dx = softmax(x)."""
    axes = _axes("logsumexp", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    m = xd.max(axis=axes, keepdims=True)
    m = B.xp.where(B.xp.isfinite(m), m, 0)
    with B.xp.errstate(divide="ignore"):
        out = B.xp.log(B.xp.exp(xd - m).sum(axis=axes, keepdims=True)) + m
    out_keep = out
    if not keep:
        out = out.reshape(()) if axes is None else out.squeeze(axes)
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape
        return result(out, (x,), lambda g: (
            expand_back(g, shape, axes, keep) * B.xp.exp(xd - out_keep),))
    return plain(out)


def norm(x, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Vector p-norm over ``dim`` (all elements by default): p = 'fro'/2, 1, inf, -inf, 0, any."""
    axes = _axes("norm", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    from . import elementwise as E
    if p == "fro" or p == 2:
        xd = x.data
        out = B.xp.sqrt((xd * xd).sum(axis=axes, keepdims=keep))
        if x.requires_grad and grad_mode.enabled:
            shape = xd.shape

            def backward(g):
                n = expand_back(out, shape, axes, keep)
                with B.xp.errstate(divide="ignore", invalid="ignore"):
                    r = B.xp.where(n == 0, 0, xd / n)
                return (expand_back(g, shape, axes, keep) * r,)
            return result(out, (x,), backward)
        return plain(out)
    if p == float("inf"):
        return amax(E.abs(x), axes, keep)
    if p == float("-inf"):
        return amin(E.abs(x), axes, keep)
    if p == 0:
        return plain((x.data != 0).sum(axis=axes, keepdims=keep).astype(x.dtype))
    if p == 1:
        return sum(E.abs(x), axes, keep)
    s = sum(E.pow(E.abs(x), p), axes, keep)
    return E.pow(s, 1.0 / p)


def cumsum(x, dim, dtype=None):
    ax = dim % x.ndim if x.ndim else 0
    out = B.xp.cumsum(x.data, axis=ax, dtype=B.to_dtype(dtype))
    if x.requires_grad and grad_mode.enabled:
        return result(out, (x,), lambda g: (
            B.xp.flip(B.xp.cumsum(B.xp.flip(g, ax), axis=ax), ax),))
    return plain(out)


def all(x, dim=None, keepdim=False):
    return plain(B.xp.all(x.data, axis=dim, keepdims=keepdim))


def any(x, dim=None, keepdim=False):
    return plain(B.xp.any(x.data, axis=dim, keepdims=keepdim))


def count_nonzero(x, dim=None):
    return plain(B.xp.asarray(B.xp.count_nonzero(x.data, axis=dim), dtype=B.int64))
