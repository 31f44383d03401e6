"""Shape operations: views and rearrangements whose gradient is the inverse rearrangement."""
import builtins

from .. import backend as B
from .. import grad_mode
from ..tensor import plain, result
from .elementwise import _promote_types, unbroadcast
from .indexing import SliceGrad, index_add_zeros


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _dim(op, d, nd):
    if not -builtins.max(nd, 1) <= d < builtins.max(nd, 1):
        raise IndexError(f"{op}: dimension {d} is out of range for {nd} dimensions")
    return d % builtins.max(nd, 1)


def _record(x, out, backward):
    if x.requires_grad and grad_mode.enabled:
        return result(out, (x,), backward)
    return plain(out)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    xd = x.data
    try:
        out = xd.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: shape {tuple(shape)} is invalid for input of shape "
                         f"{tuple(xd.shape)} ({xd.size} elements)") from None
    in_shape = xd.shape
    return _record(x, out, lambda g: (g.reshape(in_shape),))


def view(x, *shape):
    """reshape that must not copy: as in PyTorch, a shape the input's strides cannot
    express without copying (e.g. flattening a transposed matrix) is an error."""
    out = reshape(x, *shape)
    if out.data.size and not B.xp.may_share_memory(out.data, x.data):
        raise RuntimeError(f"view: shape {tuple(out.shape)} is not compatible with the "
                           f"strides of the input of shape {tuple(x.shape)} (it is not "
                           f"contiguous in that order); use reshape(), which copies")
    return out


def flatten(x, start_dim=0, end_dim=-1):
    nd = x.ndim
    if nd == 0:
        return reshape(x, 1)
    s, e = _dim("flatten", start_dim, nd), _dim("flatten", end_dim, nd)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape
    n = 1
    for k in shape[s:e + 1]:
        n *= k
    return reshape(x, shape[:s] + (n,) + shape[e + 1:])


def unflatten(x, dim, sizes):
    d = _dim("unflatten", dim, x.ndim)
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def permute(x, *dims):
    dims = _shape_arg(dims)
    nd = x.ndim
    if len(dims) != nd or sorted(d % builtins.max(nd, 1) for d in dims) != list(range(nd)):
        raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of the "
                         f"{nd} dimensions of shape {tuple(x.shape)}")
    dims = tuple(d % nd for d in dims)
    inv = tuple(sorted(range(nd), key=lambda i: dims[i]))
    return _record(x, x.data.transpose(dims), lambda g: (g.transpose(inv),))


def transpose(x, dim0=None, dim1=None):
    """Swap two dimensions (PyTorch); with no dims, reverse them all (NumPy's ``.T``)."""
    nd = x.ndim
    if dim0 is None and dim1 is None:
        return _record(x, x.data.T, lambda g: (g.T,))
    d0, d1 = _dim("transpose", dim0, nd), _dim("transpose", dim1, nd)
    return _record(x, x.data.swapaxes(d0, d1), lambda g: (g.swapaxes(d0, d1),))


swapaxes = transpose
swapdims = transpose


def t(x):
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dimensions, got shape {tuple(x.shape)}")
    return transpose(x)


def movedim(x, source, destination):
    try:
        out = B.xp.moveaxis(x.data, source, destination)
    except ValueError as exc:  # AxisError, or source/destination of different lengths
        raise ValueError(f"movedim: cannot move dims {source} to {destination} for shape "
                         f"{tuple(x.shape)}: {exc}") from None
    return _record(x, out, lambda g: (B.xp.moveaxis(g, destination, source),))


def squeeze(x, dim=None):
    xd = x.data
    if dim is None:
        axes = tuple(i for i, n in enumerate(xd.shape) if n == 1)
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        axes = tuple(i for i in (_dim("squeeze", d, xd.ndim) for d in dims)
                     if xd.ndim and xd.shape[i] == 1)
    in_shape = xd.shape
    return _record(x, xd.squeeze(axes) if axes else xd, lambda g: (g.reshape(in_shape),))


def unsqueeze(x, dim):
    nd = x.ndim + 1
    d = _dim("unsqueeze", dim, nd)
    in_shape = x.shape
    return _record(x, B.xp.expand_dims(x.data, d), lambda g: (g.reshape(in_shape),))


def expand(x, *sizes):
    """Broadcast to ``sizes`` without copying; -1 keeps a dimension."""
    return _expand("expand", x, _shape_arg(sizes))


def _expand(op, x, sizes):
    xd = x.data
    lead = len(sizes) - xd.ndim
    if lead < 0:
        raise ValueError(f"{op}: the number of sizes ({len(sizes)}) must be >= the number "
                         f"of dimensions of shape {tuple(xd.shape)}")
    # -1 keeps an existing dimension; on a new leading one it stays -1 and fails below
    target = tuple(xd.shape[i - lead] if s == -1 and i >= lead else s
                   for i, s in enumerate(sizes))
    try:
        out = B.xp.broadcast_to(xd, target)
    except ValueError:
        raise _expand_error(op, xd.shape, sizes, target) from None
    in_shape = xd.shape
    return _record(x, out, lambda g: (unbroadcast(g, in_shape),))


def _expand_error(op, shape, sizes, target):
    lead = len(target) - len(shape)
    for i, n in enumerate(target):
        if i < lead:
            if n < 0:
                return ValueError(f"{op}: shape {tuple(shape)} cannot be expanded to "
                                  f"{tuple(sizes)}: size {n} is not allowed for the new "
                                  f"leading dimension {i}")
        elif shape[i - lead] != 1 and shape[i - lead] != n:
            return ValueError(f"{op}: shape {tuple(shape)} cannot be expanded to "
                              f"{tuple(sizes)}: sizes {shape[i - lead]} vs {n} at dimension {i}")
    return ValueError(f"{op}: shape {tuple(shape)} cannot be expanded to {tuple(sizes)}")


def broadcast_to(x, shape):
    return _expand("broadcast_to", x, tuple(shape))


def expand_as(x, other):
    return expand(x, other.shape)


def repeat(x, *repeats):
    """Tile the tensor ``repeats[i]`` times along each dimension (``torch.Tensor.repeat``)."""
    reps = _shape_arg(repeats)
    xd = x.data
    if len(reps) < xd.ndim:
        raise ValueError(f"repeat: the number of repeats ({len(reps)}) can not be smaller than "
                         f"the number of dimensions of shape {tuple(xd.shape)}")
    return _tile(x, reps)


def tile(x, *reps):
    reps = _shape_arg(reps)
    reps = (1,) * (x.ndim - len(reps)) + tuple(reps)
    return _tile(x, reps)


def _tile(x, reps):
    xd = x.data
    shape = (1,) * (len(reps) - xd.ndim) + xd.shape
    out = B.xp.tile(xd.reshape(shape), reps)
    in_shape = xd.shape

    def backward(g):
        split = []
        for r, n in zip(reps, shape):
            split += [r, n]
        g = g.reshape(split).sum(axis=tuple(range(0, 2 * len(reps), 2)))
        return (g.reshape(in_shape),)
    return _record(x, out, backward)


def cat(tensors, dim=0):
    """Concatenate along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    arrays = [t.data for t in tensors]
    d = _dim("cat", dim, arrays[0].ndim)
    try:
        out = B.xp.concatenate(arrays, axis=d, dtype=_join_dtype(arrays))
    except ValueError:
        raise _join_error("cat", arrays, dim) from None
    if not grad_mode.enabled:
        return plain(out)
    for t in tensors:
        if t.requires_grad:
            break
    else:
        return plain(out)
    bounds, n = [], 0
    for a in arrays[:-1]:
        n += a.shape[d]
        bounds.append(n)

    def backward(g):
        parts = B.xp.split(g, bounds, axis=d)
        return tuple(p.astype(t.dtype, copy=False) if t.requires_grad else None
                     for p, t in zip(parts, tensors))
    return result(out, tuple(tensors), backward)


def _join_dtype(arrays):
    """PyTorch's result dtype for joining mixed dtypes (int with float32 gives float32)."""
    first = arrays[0].dtype
    for a in arrays:
        if a.dtype != first:
            break
    else:
        return None
    dt = first
    for a in arrays[1:]:
        dt = _promote_types(dt, a.dtype)
    return dt


def _join_error(op, arrays, dim):
    """The error for tensors that ``op`` (cat or stack) cannot join (off the hot path)."""
    first = arrays[0].shape
    if op == "stack":
        bad = next(i for i, a in enumerate(arrays) if a.shape != first)
        return ValueError(f"stack: expects each tensor to be equal size, but got "
                          f"{tuple(first)} at entry 0 and {tuple(arrays[bad].shape)} at "
                          f"entry {bad}{_first_mismatch(first, arrays[bad].shape, None)}")
    if not first:
        return ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    d = dim % len(first)
    for i, a in enumerate(arrays):
        if a.ndim != len(first) or a.shape[:d] + a.shape[d + 1:] != first[:d] + first[d + 1:]:
            return ValueError(f"cat: sizes of tensors must match except in dimension {dim}: "
                              f"tensor 0 has shape {tuple(first)}, tensor {i} has "
                              f"{tuple(a.shape)}{_first_mismatch(first, a.shape, d)}")
    return ValueError(f"cat: cannot concatenate shapes {[tuple(a.shape) for a in arrays]}")


def _first_mismatch(a, b, skip):
    """': sizes m vs n at dimension d' for the first dimension (other than ``skip``) where
    shapes ``a`` and ``b`` differ, or the differing numbers of dimensions."""
    if len(a) != len(b):
        return f": {len(a)} vs {len(b)} dimensions"
    for d, (m, n) in enumerate(zip(a, b)):
        if d != skip and m != n:
            return f": sizes {m} vs {n} at dimension {d}"
    return ""


concatenate = cat
concat = cat


def stack(tensors, dim=0):
    """Join along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    arrays = [t.data for t in tensors]
    d = _dim("stack", dim, arrays[0].ndim + 1)
    try:
        out = B.xp.stack(arrays, axis=d, dtype=_join_dtype(arrays))
    except ValueError:
        raise _join_error("stack", arrays, dim) from None
    if not grad_mode.enabled:
        return plain(out)
    for t in tensors:
        if t.requires_grad:
            break
    else:
        return plain(out)
    pre = (slice(None),) * d

    def backward(g):
        return tuple(g[pre + (i,)].astype(t.dtype, copy=False) if t.requires_grad else None
                     for i, t in enumerate(tensors))
    return result(out, tuple(tensors), backward)


def split(x, split_size_or_sections, dim=0):
    """Split into pieces of ``split_size`` (the last may be smaller) or of listed sizes."""
    d = _dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not sum to the size {n} of "
                             f"dimension {dim}")
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * d + (slice(start, start + s),)
        out.append(_slice(x, index))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    d = _dim("chunk", dim, x.ndim)
    if chunks <= 0:
        raise ValueError(f"chunk: number of chunks must be positive, got {chunks}")
    n = x.shape[d]
    if n == 0:  # as in PyTorch: `chunks` empty pieces
        return split(x, [0] * chunks, d)
    return split(x, -(-n // chunks), d)


def unbind(x, dim=0):
    d = _dim("unbind", dim, x.ndim)
    pre = (slice(None),) * d
    return tuple(_slice(x, pre + (i,)) for i in range(x.shape[d]))


def _slice(x, index):
    """Basic (view) indexing for split/unbind; pieces' gradients merge lazily (SliceGrad)."""
    shape = x.shape
    return _record(x, x.data[index], lambda g: (SliceGrad(shape, g.dtype, [(index, g)]),))


def flip(x, *dims, **kw):
    """Reverse the order along ``dims``: ``flip(x, (0, 2))``, ``x.flip(0, 2)`` or
    ``flip(x, dims=0)``."""
    if "dims" in kw:
        if dims:
            raise TypeError("flip: dims given both positionally and as a keyword")
        dims = (kw.pop("dims"),)
    if kw:
        raise TypeError(f"flip: unexpected keyword arguments {sorted(kw)}")
    dims = _shape_arg(dims)
    axes = tuple(_dim("flip", d, x.ndim) for d in dims)
    return _record(x, B.xp.flip(x.data, axes), lambda g: (B.xp.flip(g, axes),))


def roll(x, shifts, dims=None):
    if dims is None:
        shape = x.shape
        flat = B.xp.roll(x.data.reshape(-1), shifts).reshape(shape)
        return _record(x, flat, lambda g: (B.xp.roll(g.reshape(-1), -shifts).reshape(shape),))
    shifts_t = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims_t = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts_t) != len(dims_t):
        raise ValueError(f"roll: shifts {shifts_t} and dims {dims_t} must have the same length")
    neg = tuple(-s for s in shifts_t)
    return _record(x, B.xp.roll(x.data, shifts_t, dims_t),
                   lambda g: (B.xp.roll(g, neg, dims_t),))


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(x, pad, mode="constant", value=0.0):
    """Pad the last ``len(pad) // 2`` dimensions; ``pad = (left_last, right_last, left_prev,
    right_prev, ...)`` as in ``torch.nn.functional.pad``. Modes: constant (negative
    amounts crop), reflect, replicate, circular."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding length {len(pad)} must be even and at most twice the "
                         f"number of dimensions of shape {tuple(x.shape)}")
    nd = x.ndim
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        widths[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        return _pad_constant(x, widths, value)
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: unknown mode {mode!r} (constant, reflect, replicate, circular)")
    out = x
    for axis, (lo, hi) in enumerate(widths):
        if lo or hi:
            n = x.shape[axis]
            if lo < 0 or hi < 0:
                raise ValueError(f"pad: negative padding is only supported in constant mode")
            if mode == "reflect" and (lo >= n or hi >= n):
                raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the "
                                 f"size {n} of dimension {axis}")
            idx = B.xp.pad(B.xp.arange(n), (lo, hi), mode=_PAD_MODES[mode])
            out = take_along_dim_index(out, idx, axis)
    return out


def _pad_constant(x, widths, value):
    xd = x.data
    crop = tuple(slice(builtins.max(-lo, 0), n - builtins.max(-hi, 0))
                 for (lo, hi), n in zip(widths, xd.shape))
    pos = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in widths]
    cropped = xd[crop]
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(cropped.shape, pos))
    out = B.xp.full(out_shape, value, dtype=xd.dtype)
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(cropped.shape, pos))
    out[inner] = cropped
    shape = xd.shape

    def backward(g):
        z = B.xp.zeros(shape, dtype=g.dtype)
        z[crop] = g[inner]
        return (z,)
    return _record(x, out, backward)


def take_along_dim_index(x, idx, axis):
    """x.take(idx, axis) for a 1-D integer ``idx``; the gradient scatter-adds (repeats sum)."""
    xd = x.data
    out = B.xp.take(xd, idx, axis=axis)
    shape = xd.shape
    return _record(x, out, lambda g: (index_add_zeros(shape, axis, idx, g),))
