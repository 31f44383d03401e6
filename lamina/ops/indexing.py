"""Indexing: ``x[index]``, gather, scatter_add, index_select, masked_fill.

Gradients of reads are scatter-adds, so an element read twice gets both contributions.
"""
from numbers import Integral as _Integral

from .. import backend as B
from .. import grad_mode
from ..autograd.engine import LazyGrad
from ..tensor import Tensor, _raw_index, plain, result
from . import workspace
from .elementwise import _broadcast_error, unbroadcast

_ndarray = B.xp.ndarray


class SliceGrad(LazyGrad):
    """The gradient of views ``x[index]`` (basic indices), kept as (index, g) pieces.

    Pieces of one tensor merge by list concatenation when the engine sums them, so T views
    (split/unbind pieces, ``x[:, t]`` in a loop over time) cost one ``zeros(shape)`` in
    total instead of T full-size zeros and T full-size additions.
    """

    __slots__ = ("shape", "dtype", "parts")

    def __init__(self, shape, dtype, parts):
        self.shape, self.dtype, self.parts = shape, dtype, parts

    def __add__(self, other):
        if isinstance(other, SliceGrad) and other.shape == self.shape:
            return SliceGrad(self.shape, B.xp.result_type(self.dtype, other.dtype),
                             self.parts + other.parts)
        other = other.materialize() if isinstance(other, LazyGrad) else other
        out = B.xp.array(other, dtype=B.xp.result_type(self.dtype, other.dtype))
        self._add_into(out)
        return out

    __radd__ = __add__

    def _add_into(self, out):
        for index, g in self.parts:
            out[index] += g

    def materialize(self):
        z = workspace.zeros(self.shape, self.dtype)
        if len(self.parts) == 1:
            index, g = self.parts[0]
            z[index] = g
        else:
            self._add_into(z)  # views may overlap (x[:2] and x[1:])
        return z

    def write_into(self, out):
        out.fill(0)
        self._add_into(out)


def index_add_zeros(shape, dim, idx, g):
    """zeros(shape) with g's slices added at positions ``idx`` along ``dim`` (repeats sum).

    ``g`` has shape ``shape[:dim] + idx.shape + shape[dim + 1:]``. One 1-D ``add.at`` on flat
    positions: NumPy's fast path, 4-7x faster than ``add.at`` with a row index (and than
    torch's index_add_) on embedding-sized gradients.
    """
    n = shape[dim]
    pre = post = 1
    for k in shape[:dim]:
        pre *= k
    for k in shape[dim + 1:]:
        post *= k
    flat = idx.reshape(-1).astype(B.xp.intp, copy=False) % n
    if post > 1:
        flat = (flat[:, None] * post + B.xp.arange(post)).reshape(-1)
    if pre > 1:
        flat = (B.xp.arange(0, pre * n * post, n * post)[:, None] + flat).reshape(-1)
    z = B.xp.zeros(pre * n * post, dtype=g.dtype)
    B.xp.add.at(z, flat, g.reshape(-1))
    return z.reshape(shape)


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


def _ints_first(index):
    """Split a tuple index that mixes ints with arrays into (basic, advanced) parts.

    PyTorch applies integer indices before the advanced ones, whereas NumPy counts an int
    next to an array as advanced too, which moves the result's dims when a slice separates
    them: for x of shape (4, 3, 5), ``x[1, :, [0, 2]]`` is (3, 2) in PyTorch, (2, 3) in NumPy.
    Returns (None, index) when there is nothing to reorder.
    """
    ints = arrays = False
    for i in index:
        if isinstance(i, _ndarray):
            arrays = True
        elif isinstance(i, _Integral):
            ints = True
    if not (ints and arrays):
        return None, index
    basic, adv = [], []
    for i in index:
        if isinstance(i, _ndarray):
            basic += [slice(None)] * (i.ndim if i.dtype == B.bool_ else 1)
            adv.append(i)
        elif isinstance(i, _Integral):
            basic.append(i)
        else:
            basic.append(i)
            adv.append(Ellipsis if i is Ellipsis else slice(None))
    return tuple(basic), tuple(adv)


def getitem(x, index):
    """``x[index]`` with PyTorch's semantics (ints, slices, None, Ellipsis, integer and
    boolean arrays/tensors); the gradient of repeated elements is summed."""
    index = _raw_index(index)
    xd = x.data
    basic = _is_basic(index)
    pre = None
    if not basic and index.__class__ is tuple:
        pre, index = _ints_first(index)
    try:
        out = xd[index] if pre is None else xd[pre][index]
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {tuple(xd.shape)})") from None
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape
    if basic:
        return result(out, (x,), lambda g: (SliceGrad(shape, g.dtype, [(index, g)]),))
    if index.__class__ is _ndarray and index.dtype != B.bool_:  # x[idx], e.g. embeddings
        return result(out, (x,), lambda g: (index_add_zeros(shape, 0, index, g),))
    unique = _has_bool_only(index)

    def backward(g):
        z = B.xp.zeros(shape, dtype=g.dtype)
        zv = z if pre is None else z[pre]
        if unique:
            zv[index] = g
        else:
            B.xp.add.at(zv, index, g)
        return (z,)
    return result(out, (x,), backward)


def _axis(op, dim, x):
    """``dim`` as a non-negative axis of x, or an IndexError naming ``op``."""
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor of shape "
                         f"{tuple(x.shape)}")
    return dim % nd


def _index_array(op, index):
    idx = index.data if isinstance(index, Tensor) else B.xp.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {idx.dtype}")
    return idx


def _along(op, shape, dim, idx):
    """The full advanced index addressing x[..., idx[...], ...] along ``dim``."""
    nd = len(shape)
    if idx.ndim != nd:
        raise ValueError(f"{op}: index of shape {tuple(idx.shape)} must have as many "
                         f"dimensions as the input of shape {tuple(shape)}")
    for d in range(nd):
        if d != dim and idx.shape[d] > shape[d]:
            raise ValueError(f"{op}: index size {idx.shape[d]} exceeds input size {shape[d]} "
                             f"at dimension {d} (shapes {tuple(idx.shape)} and {tuple(shape)})")
    if idx.size:  # as in PyTorch, negative indices are out of range here
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= shape[dim]:
            bad = lo if lo < 0 else hi
            raise IndexError(f"{op}: index {bad} is out of range for dimension {dim} of size "
                             f"{shape[dim]} (input shape {tuple(shape)})")
    grid = list(B.xp.ix_(*[B.xp.arange(n) for n in idx.shape]))
    grid[dim] = idx
    return tuple(grid)


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] for dim=1 (any rank, any dim)."""
    d = _axis("gather", dim, x)
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
    d = _axis("scatter_add", dim, x)
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
    d = _axis("index_select", dim, x)
    idx = _index_array("index_select", index)
    if idx.ndim != 1:
        if idx.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {tuple(idx.shape)}")
        idx = idx.reshape(1)  # a 0-d index keeps the dimension, as in PyTorch
    n = x.shape[d]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index_select: index out of range for dimension {dim} of size {n}")
    out = B.xp.take(x.data, idx, axis=d)
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = x.shape
    return result(out, (x,), lambda g: (index_add_zeros(shape, d, idx, g),))


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
        err = _broadcast_error("masked_fill", [m, xd])
        where = "" if err is None else err.args[0][err.args[0].index(": sizes"):]
        raise ValueError(f"masked_fill: mask of shape {tuple(m.shape)} cannot be broadcast to "
                         f"shape {tuple(xd.shape)}{where}") from None
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
    try:
        out = flat[idx]
    except IndexError:
        raise IndexError(f"take: index out of range for a tensor of shape {tuple(x.shape)} "
                         f"({flat.size} elements)") from None
    if not (x.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = x.shape

    def backward(g):
        z = B.xp.zeros(flat.size, dtype=g.dtype)
        B.xp.add.at(z, idx, g)
        return (z.reshape(shape),)
    return result(out, (x,), backward)
