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
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if not dims:  # dim=() reduces over everything, as in PyTorch
        return None
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


def _check_nonempty(op, shape, axes):
    """Reductions without an identity (max, min, ...) need every reduced dim non-empty
    (PyTorch's rule: an empty tensor reduced over its non-empty dims is fine)."""
    if axes is None:
        if 0 in shape:
            raise RuntimeError(f"{op}: expected a non-empty tensor, got shape {tuple(shape)} "
                               f"(reduce over its non-empty dims with dim=)")
        return
    for a in axes:
        if shape[a] == 0:
            raise RuntimeError(f"{op}: cannot reduce over the empty dimension {a} of shape "
                               f"{tuple(shape)}")


def _count(shape, axes):
    n = 1
    for i in (range(len(shape)) if axes is None else axes):
        n *= shape[i]
    return n


def sum(x, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    axes = _axes("sum", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if dtype is None and xd.dtype.kind in "biu":  # integer sums accumulate in int64
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
    # n - correction <= 0 gives inf/nan, as in PyTorch
    dof = builtins.max(_count(xd.shape, axes) - correction, 0)
    centered = xd - xd.mean(axis=axes, keepdims=True)
    with B.xp.errstate(divide="ignore", invalid="ignore"):
        v = (centered * centered).sum(axis=axes, keepdims=keep) / B.xp.asarray(dof, xd.dtype)
        out = B.xp.sqrt(v) if root else v
    out = B.xp.asarray(out, dtype=xd.dtype)
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            with B.xp.errstate(divide="ignore", invalid="ignore"):
                if root:  # d std = d var / (2 std); zero where std == 0, as PyTorch
                    scale = B.xp.where(out == 0, 0, g / (out * dof))
                else:
                    scale = g * (2 / B.xp.asarray(dof, xd.dtype))
                return (expand_back(scale, shape, axes, keep) * centered,)
        return result(out, (x,), backward)
    return plain(out)


def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def prod(x, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None):
    """Product; the gradient is exact with zeros present (product of the others)."""
    dim = _dim_alias("prod", dim, axis)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"prod: dim must be a single int (as in PyTorch), got {dim!r}")
    axes = _axes("prod", x, dim, None)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if dtype is None and xd.dtype.kind in "biu":
        dtype = B.int64
    out = xd.prod(axis=axes, keepdims=keep, dtype=B.to_dtype(dtype))
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            zero = xd == 0
            nz = B.xp.where(zero, 1, xd)
            p_nz = nz.prod(axis=axes, keepdims=True)
            nzero = zero.sum(axis=axes, keepdims=True)
            ge = expand_back(g, shape, axes, keep)
            # no zero: p / x_i; one zero: the product of the others at the zero, 0 elsewhere;
            # two or more zeros: 0 everywhere
            others = B.xp.where(nzero == 0, p_nz / nz, B.xp.where(zero & (nzero == 1), p_nz, 0))
            return (ge * others,)
        return result(out, (x,), backward)
    return plain(out)


def _extreme(op, fwd, x, dim, keepdim, axis, keepdims):
    """amax/amin: the gradient is shared evenly by all elements equal to the extreme."""
    axes = _axes(op, x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    _check_nonempty(op, xd.shape, axes)
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
    """Largest value over ``dim`` (all by default); ties share the gradient evenly."""
    return _extreme("amax", B.xp.amax, x, dim, keepdim, axis, keepdims)


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Smallest value over ``dim`` (all by default); ties share the gradient evenly."""
    return _extreme("amin", B.xp.amin, x, dim, keepdim, axis, keepdims)


def _one_axis(op, x, dim):
    """A single dim as a non-negative axis (0 for a 0-d tensor)."""
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: dim must be a single int, got {dim!r}")
    axes = _axes(op, x, dim, None)
    return 0 if axes is None else axes[0]


def _extreme_with_index(op, argfn, x, dim, keepdim):
    """max(x, dim) / min(x, dim): (values, indices); the gradient goes to the index, which
    is the first extreme along ``dim`` (as PyTorch on CPU)."""
    ax = _one_axis(op, x, dim)
    xd = x.data
    shape = xd.shape
    if xd.ndim == 0:
        xd = xd.reshape(1)
    if xd.shape[ax] == 0:
        raise RuntimeError(f"{op}: cannot reduce over an empty dimension {dim} of shape "
                           f"{tuple(shape)}")
    idx = B.xp.expand_dims(argfn(xd, axis=ax), ax)
    vals = B.xp.take_along_axis(xd, idx, axis=ax)
    if not keepdim or not shape:
        vals, idx_out = vals.squeeze(ax), idx.squeeze(ax)
    else:
        idx_out = idx
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            z = B.xp.zeros(xd.shape, dtype=g.dtype)
            B.xp.put_along_axis(z, idx, g.reshape(idx.shape), axis=ax)
            return (z.reshape(shape),)
        values = result(vals, (x,), backward)
    else:
        values = plain(vals)
    return values_indices(values, plain(idx_out.astype(B.int64)))


def _dim_alias(op, dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        return axis
    return dim


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``max(x)`` -> the largest element (ties share the gradient evenly);
    ``max(x, dim)`` -> (values, indices), the gradient going to each index;
    ``max(x, other_tensor)`` -> elementwise maximum."""
    if isinstance(dim, Tensor):
        from .elementwise import maximum
        return maximum(x, dim)
    dim = _dim_alias("max", dim, axis)
    if dim is None:
        return amax(x)
    return _extreme_with_index("max", B.xp.argmax, x, dim, _keep(keepdim, keepdims))


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """As :func:`max`, for the smallest element."""
    if isinstance(dim, Tensor):
        from .elementwise import minimum
        return minimum(x, dim)
    dim = _dim_alias("min", dim, axis)
    if dim is None:
        return amin(x)
    return _extreme_with_index("min", B.xp.argmin, x, dim, _keep(keepdim, keepdims))


def _arg(op, fn, x, dim, keepdim, axis, keepdims):
    dim = _dim_alias(op, dim, axis)
    xd = x.data
    ax = None if dim is None or xd.ndim == 0 else _one_axis(op, x, dim)
    _check_nonempty(op, xd.shape, None if ax is None else (ax,))
    keep = _keep(keepdim, keepdims)
    if xd.size == 0:  # over a non-empty dim of an empty tensor: an empty result
        shape = list(xd.shape)
        if keep:
            shape[ax] = 1
        else:
            del shape[ax]
        return plain(B.xp.zeros(tuple(shape), dtype=B.int64))
    return plain(B.xp.asarray(fn(xd, axis=ax, keepdims=keep), dtype=B.int64))


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """int64 index of the (first) largest element along ``dim``; over the flattened
    tensor when dim is None. Not differentiable."""
    return _arg("argmax", B.xp.argmax, x, dim, keepdim, axis, keepdims)


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _arg("argmin", B.xp.argmin, x, dim, keepdim, axis, keepdims)


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) computed stably; d/dx = softmax(x)."""
    axes = _axes("logsumexp", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if xd.size:  # the shift by the max is only for stability
        m = xd.max(axis=axes, keepdims=True)
        m = B.xp.where(B.xp.isfinite(m), m, 0)
    else:  # an empty sum is 0 and its log -inf, as in PyTorch
        m = 0
    with B.xp.errstate(divide="ignore"):
        out = B.xp.log(B.xp.exp(xd - m).sum(axis=axes, keepdims=True)) + m
    out_keep = out
    if not keep:
        out = out.reshape(()) if axes is None else out.squeeze(axes)
    if x.requires_grad and grad_mode.enabled:
        shape = xd.shape

        def backward(g):
            with B.xp.errstate(invalid="ignore"):  # all -inf: nan, as PyTorch
                return (expand_back(g, shape, axes, keep) * B.xp.exp(xd - out_keep),)
        return result(out, (x,), backward)
    return plain(out)


_INF = float("inf")


def norm(x, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Vector p-norm over ``dim`` (all elements by default), as ``torch.norm`` with a
    numeric p: 'fro' (= 2), any p > 0, inf (max |x|), -inf (min |x|), 0 (nonzero count).
    The gradient is 0 where the norm is 0; at ties of the inf-norms it is shared evenly."""
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro' or a number "
                             f"(matrix norms such as 'nuc' are not implemented)")
        p = 2
    axes = _axes("norm", x, dim, axis)
    keep = _keep(keepdim, keepdims)
    xd = x.data
    if xd.dtype.kind != "f":
        raise TypeError(f"norm: expected a floating point tensor, got dtype {xd.dtype}")
    a = B.xp.abs(xd)
    if p in (_INF, -_INF):
        _check_nonempty("norm", xd.shape, axes)  # the inf-norms have no identity
    if p == 2:
        out = B.xp.sqrt((xd * xd).sum(axis=axes, keepdims=keep))
    elif p == 1:
        out = a.sum(axis=axes, keepdims=keep)
    elif p == _INF:
        out = a.max(axis=axes, keepdims=keep)
    elif p == -_INF:
        out = a.min(axis=axes, keepdims=keep)
    elif p == 0:
        out = (xd != 0).sum(axis=axes, keepdims=keep).astype(xd.dtype)
    else:
        out = (a ** p).sum(axis=axes, keepdims=keep) ** (1.0 / p)
    out = B.xp.asarray(out, dtype=xd.dtype)
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape

    def backward(g):
        ge = expand_back(g, shape, axes, keep)
        if p == 0:
            return (B.xp.zeros(shape, dtype=xd.dtype),)
        if p == 1:
            return (ge * B.xp.sign(xd),)
        n = expand_back(out, shape, axes, keep)
        with B.xp.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                r = B.xp.where(n == 0, 0, xd / n)
            elif p == _INF or p == -_INF:
                hit = a == n
                r = B.xp.sign(xd) * hit / hit.sum(axis=axes, keepdims=True)
            else:  # sign(x) |x|^(p-1) / norm^(p-1)
                r = B.xp.sign(xd) * B.xp.where(xd == 0, 0, a ** (p - 1)) * \
                    B.xp.where(n == 0, 0, n ** (1 - p))
        return (ge * r,)
    return result(out, (x,), backward)


def cumsum(x, dim=None, dtype=None, *, axis=None):
    """Running sum along ``dim``; integer and bool inputs accumulate in int64."""
    dim = _dim_alias("cumsum", dim, axis)
    if dim is None:
        raise TypeError("cumsum: the dim argument is required")
    ax = _one_axis("cumsum", x, dim)
    xd = x.data
    if dtype is None and xd.dtype.kind in "biu":
        dtype = B.int64
    shape = xd.shape
    out = B.xp.cumsum(xd.reshape(shape or (1,)), axis=ax, dtype=B.to_dtype(dtype)).reshape(shape)
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            g = g.reshape(shape or (1,))
            return (B.xp.flip(B.xp.cumsum(B.xp.flip(g, ax), axis=ax), ax).reshape(shape),)
        return result(out, (x,), backward)
    return plain(out)


def all(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where every element over ``dim`` is nonzero (bool); not differentiable."""
    axes = _axes("all", x, dim, axis)
    return plain(B.xp.all(x.data, axis=axes, keepdims=_keep(keepdim, keepdims)))


def any(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where some element over ``dim`` is nonzero (bool); not differentiable."""
    axes = _axes("any", x, dim, axis)
    return plain(B.xp.any(x.data, axis=axes, keepdims=_keep(keepdim, keepdims)))


def count_nonzero(x, dim=None):
    axes = _axes("count_nonzero", x, dim, None)
    return plain(B.xp.asarray(B.xp.count_nonzero(x.data, axis=axes), dtype=B.int64))
