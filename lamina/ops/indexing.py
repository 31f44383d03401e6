"""Indexing: ``x[index]``, gather, scatter_add, index_select, masked_fill.

Gradients of reads are scatter-adds, so an element read twice gets both contributions.
"""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, _raw_index, plain, result
from .elementwise import unbroadcast


def _is_basic(index):
    """True when an index selects a view (ints, slices, None, Ellipsis): no repeats."""
    if isinstance(index, tuple):
        return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in index)
    return isinstance(index, (int, slice)) or index is None or index is Ellipsis


def _has_bool_only(index):
    """Boolean masks with basic parts select each element at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis or
               (hasattr(i, "dtype") and i.dtype == B.bool_) for i in parts)


def getitem(x, index):
    index = _raw_index(index)
    xd = x.data
    try:
        out = xd[index]
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {tuple(xd.shape)})") from None
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape
    unique = _is_basic(index) or _has_bool_only(index)

    def backward(g):
        z = B.xp.zeros(shape, dtype=g.dtype)
        if unique:
            z[index] = g
        else:
            B.xp.add.at(z, index, g)
        return (z,)
    return result(out, (x,), backward)


def _index_array(op, index):
    idx = index.data if isinstance(index, Tensor) else B.xp.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {idx.dtype}")
    return idx


def _along(op, shape, dim, idx):
    """The full advanced index addressing x[..., idx[...], ...] along ``dim``."""
    nd = len(shape)
    if idx.ndim != nd:
        raise ValueError(f"{op}: index has {idx.ndim} dimensions but the input has {nd}")
    for d in range(nd):
        if d != dim and idx.shape[d] > shape[d]:
            raise ValueError(f"{op}: index size {idx.shape[d]} exceeds input size {shape[d]} "
                             f"at dimension {d} (shapes {tuple(idx.shape)} and {tuple(shape)})")
    if idx.size and (idx.min() < -shape[dim] or idx.max() >= shape[dim]):
        raise IndexError(f"{op}: index out of range for dimension {dim} of size {shape[dim]}")
    grid = list(B.xp.ix_(*[B.xp.arange(n) for n in idx.shape]))
    grid[dim] = idx
    return tuple(grid)


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] for dim=1 (any rank, any dim)."""
    d = dim % x.ndim
    idx = _index_array("gather", index)
    full = _along("gather", x.shape, d, idx)
    out = x.data[full]
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = x.shape

    def backward(g):
        z = B.xp.zeros(shape, dtype=g.dtype)
        B.xp.add.at(z, full, g)
        return (z,)
    return result(out, (x,), backward)


def scatter_add(x, dim, index, src):
    """A copy of x with src[i][j] added at x[i][index[i][j]] for dim=1."""
    d = dim % x.ndim
    idx = _index_array("scatter_add", index)
    full = _along("scatter_add", x.shape, d, idx)
    sd = src.data if isinstance(src, Tensor) else B.xp.asarray(src)
    for k in range(idx.ndim):
        if idx.shape[k] > sd.shape[k]:
            raise ValueError(f"scatter_add: index shape {tuple(idx.shape)} exceeds src shape "
                             f"{tuple(sd.shape)} at dimension {k}")
    part = tuple(slice(0, n) for n in idx.shape)
    out = x.data.copy()
    B.xp.add.at(out, full, sd[part])
    gx = x.requires_grad and grad_mode.enabled
    gs = isinstance(src, Tensor) and src.requires_grad and grad_mode.enabled
    if not (gx or gs):
        return plain(out)
    src_shape = sd.shape

    def backward(g):
        gsrc = None
        if gs:
            gsrc = B.xp.zeros(src_shape, dtype=g.dtype)
            gsrc[part] = g[full]
        return (g if gx else None, gsrc)
    return result(out, (x if gx else None, src if gs else None), backward)


def index_select(x, dim, index):
    d = dim % x.ndim
    idx = _index_array("index_select", index)
    if idx.ndim > 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {tuple(idx.shape)}")
    n = x.shape[d]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index_select: index out of range for dimension {dim} of size {n}")
    out = B.xp.take(x.data, idx, axis=d)
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = x.shape
    where = (slice(None),) * d + (idx,)

    def backward(g):
        z = B.xp.zeros(shape, dtype=g.dtype)
        B.xp.add.at(z, where, g)
        return (z,)
    return result(out, (x,), backward)


def masked_fill(x, mask, value):
    """x with ``value`` where ``mask`` (broadcast to x) is True."""
    m = mask.data if isinstance(mask, Tensor) else B.xp.asarray(mask)
    if m.dtype != B.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    v = value.data if isinstance(value, Tensor) else value
    xd = x.data
    try:
        out = B.xp.where(m, B.xp.asarray(v, dtype=xd.dtype), xd)
    except ValueError:
        raise ValueError(f"masked_fill: mask of shape {tuple(m.shape)} cannot be broadcast to "
                         f"shape {tuple(xd.shape)}") from None
    if out.shape != xd.shape:
        raise ValueError(f"masked_fill: mask of shape {tuple(m.shape)} would broadcast the "
                         f"input of shape {tuple(xd.shape)} to {tuple(out.shape)}")
    gv = isinstance(value, Tensor) and value.requires_grad and grad_mode.enabled
    gx = x.requires_grad and grad_mode.enabled
    if not (gx or gv):
        return plain(out)
    return result(out, (x if gx else None, value if gv else None), lambda g: (
        B.xp.where(m, 0, g) if gx else None,
        unbroadcast(B.xp.where(m, g, 0), ()) if gv else None))


def take(x, index):
    """Elements of the flattened x at ``index`` (any shape)."""
    idx = _index_array("take", index)
    flat = x.data.reshape(-1)
    out = flat[idx]
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = x.shape

    def backward(g):
        z = B.xp.zeros(flat.size, dtype=g.dtype)
        B.xp.add.at(z, idx, g)
        return (z.reshape(shape),)
    return result(out, (x,), backward)
