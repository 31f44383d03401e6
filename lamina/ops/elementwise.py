"""Elementwise operations with NumPy broadcasting: arithmetic, unary math, selection.

Each op computes its forward on arrays and, when a gradient is needed, records a closure
mapping d(out) to one gradient per input. Gradients of broadcast inputs are summed back
to the input's shape by :func:`unbroadcast`.

Result dtypes follow PyTorch, not NumPy: Python scalars and 0-d tensors only decide the
dtype when they are of a higher kind (bool < int < float), an int tensor with a float
tensor takes the float tensor's dtype, and int inputs to float-valued functions (true
division, exp, sqrt, ...) give the default float dtype. Same-dtype operands, the common
case, take NumPy's path unchanged.
"""
from .. import backend as B
from .. import grad_mode
from .. import parallel as P
from ..tensor import Tensor, plain, result

_SCALARS = (bool, int, float)
_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes)
    return g.reshape(shape)


def _data(x):
    """Array of a Tensor, or a constant as it is (NumPy scalars act like Python scalars)."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, B.xp.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return B.xp.asarray(x)
    return x


def _shape(x):
    return getattr(x, "shape", ())  # np.shape() is ~0.3 us; scalars are shape ()


def _grad(x):
    return grad_mode.enabled and isinstance(x, Tensor) and x.requires_grad


# ---------------------------------------------------------------- dtype promotion
def _promote_types(x, y):
    """PyTorch's promote_types: within a kind as NumPy; across kinds the higher kind wins."""
    rx, ry = _RANK[x.kind], _RANK[y.kind]
    if rx == ry:
        return B.xp.promote_types(x, y)
    return x if rx > ry else y


def _combine(higher, lower):
    """A lower-priority dtype only matters when it is of a higher kind."""
    if higher is None:
        return lower
    if lower is None or higher.kind in "fc":
        return higher
    if higher.kind == "b" or lower.kind in "fc":
        return _promote_types(higher, lower)
    return higher


def _scalar_dtype(x):
    if isinstance(x, bool):
        return B.bool_
    if isinstance(x, int):
        return B.int64
    if isinstance(x, float):
        return B.get_default_dtype()
    return B.xp.asarray(x).dtype


def result_type(*operands):
    """The dtype PyTorch gives an elementwise op on ``operands`` (Tensors, arrays or
    scalars): dimensioned tensors first, then 0-d tensors, then Python scalars, each only
    where it raises the kind."""
    dim = zero = wrapped = None
    for x in operands:
        x = _data(x)
        if hasattr(x, "dtype"):
            if x.ndim:
                dim = x.dtype if dim is None else _promote_types(dim, x.dtype)
            else:
                zero = x.dtype if zero is None else _promote_types(zero, x.dtype)
        elif x is not None:
            t = _scalar_dtype(x)
            wrapped = t if wrapped is None else _promote_types(wrapped, t)
    return _combine(dim, _combine(zero, wrapped))


def _astype(x, dtype):
    if hasattr(x, "dtype"):
        return x if x.dtype == dtype else x.astype(dtype)
    return x


def _prepare(a, b):
    """Raw operands of a binary op, cast to PyTorch's result dtype where it differs from
    what NumPy would compute in (mixed dtypes; an int tensor with a Python float)."""
    ad, bd = _data(a), _data(b)
    ta, tb = getattr(ad, "dtype", None), getattr(bd, "dtype", None)
    if ta is not None:
        if tb is not None:
            if ta is not tb and ta != tb:
                dt = result_type(ad, bd)
                ad, bd = _astype(ad, dt), _astype(bd, dt)
        elif ta.kind in "biu" and isinstance(bd, float):
            ad = ad.astype(B.get_default_dtype())
    elif tb is not None and tb.kind in "biu" and isinstance(ad, float):
        bd = bd.astype(B.get_default_dtype())
    return ad, bd


def _broadcast_error(op, arrays, names=None):
    """The ValueError for operands that cannot be broadcast, or None if they can."""
    shapes = [tuple(B.xp.shape(x)) for x in arrays]
    nd = max(len(s) for s in shapes)
    padded = [(1,) * (nd - len(s)) + s for s in shapes]
    for d in range(nd):
        sizes = [p[d] for p in padded if p[d] != 1]
        if any(n != sizes[0] for n in sizes):
            if names is None:
                what = " and ".join(str(s) for s in shapes)
            else:
                what = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
            return ValueError(f"{op}: shapes {what} cannot be broadcast: sizes "
                              f"{' vs '.join(str(n) for n in sizes)} at dimension {d - nd}")
    return None


def _apply(op, fwd, ad, bd):
    try:
        return fwd(ad, bd)
    except ValueError:
        err = _broadcast_error(op, (ad, bd))
        if err is None:
            raise
        raise err from None


def _binary(op, fwd, a, b):
    """Forward of a binary op on raw operands, in PyTorch's result dtype."""
    ad, bd = _prepare(a, b)
    return _apply(op, fwd, ad, bd)


def _record(out, a, b, ga, gb, backward):
    """The graph node of a binary op; gradients are cast back to mixed-dtype inputs."""
    dt = out.dtype
    ta = a.data.dtype if ga else dt
    tb = b.data.dtype if gb else dt
    if (ta is not dt and ta != dt) or (tb is not dt and tb != dt):
        inner = backward

        def backward(g):
            da, db = inner(g)
            return (None if da is None else da.astype(ta, copy=False),
                    None if db is None else db.astype(tb, copy=False))
        backward.__qualname__ = inner.__qualname__  # grad_fn names the op, not the cast
    return result(out, (a if ga else None, b if gb else None), backward)


# ---------------------------------------------------------------- arithmetic
def add(a, b, alpha=1):
    """``a + alpha * b`` (broadcast)."""
    if alpha != 1:
        b = mul(b, alpha)
    ad, bd = _prepare(a, b)
    out = _apply("add", B.xp.add, ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(g, sa) if ga else None,
                              unbroadcast(g, sb) if gb else None))


def sub(a, b, alpha=1):
    """``a - alpha * b`` (broadcast)."""
    if alpha != 1:
        b = mul(b, alpha)
    ad, bd = _prepare(a, b)
    out = _apply("sub", B.xp.subtract, ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(g, sa) if ga else None,
                              unbroadcast(-g, sb) if gb else None))


def rsub(a, b):
    """``b - a`` (``2 - x``)."""
    return sub(b, a)


def mul(a, b):
    ad, bd = _prepare(a, b)
    out = _apply("mul", B.xp.multiply, ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(g * bd, sa) if ga else None,
                              unbroadcast(g * ad, sb) if gb else None))


def _integral(x):
    return x.dtype.kind in "biu" if hasattr(x, "dtype") else not isinstance(x, float)


def div(a, b, rounding_mode=None):
    """``a / b``; int / int is true division in the default float dtype, as in PyTorch.
    ``rounding_mode`` 'floor' or 'trunc' rounds the quotient (gradient zero)."""
    if rounding_mode is not None:
        return _div_rounded(a, b, rounding_mode, "div")
    ad, bd = _prepare(a, b)
    out = _apply("div", B.xp.true_divide, ad, bd)
    if out.dtype == B.float64 and _integral(ad) and _integral(bd):
        f = B.get_default_dtype()
        ad, bd = _astype(ad, f), _astype(bd, f)
        out = B.xp.true_divide(ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(g / bd, sa) if ga else None,
                              unbroadcast(-g * out / bd, sb) if gb else None))


def _div_rounded(a, b, mode, op):
    if mode == "floor":
        out = _binary(op, B.xp.floor_divide, a, b)
    elif mode == "trunc":
        ad, bd = _prepare(a, b)
        out = B.xp.trunc(_apply(op, B.xp.true_divide, ad, bd))
        dt = result_type(ad, bd)
        if dt.kind in "biu":
            out = out.astype(dt)
    else:
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {mode!r}")
    return _zero_grad_result(op, out, a, b)


def _zero_grad_result(name, out, *inputs):
    """Piecewise-constant ops: gradient zero almost everywhere (PyTorch returns zeros)."""
    tensors = tuple(x for x in inputs if _grad(x))
    if not tensors:
        return plain(out)

    def backward(g):
        return tuple(B.xp.zeros(t.shape, t.dtype) for t in tensors)
    backward.__qualname__ = f"{name}.<locals>.backward"
    return result(out, tensors, backward)


def rdiv(a, b):
    """``b / a`` (``2 / x``)."""
    return div(b, a)


def floor_divide(a, b):
    """``a // b`` rounded toward -inf. PyTorch has no derivative here; lamina gives zero,
    like ``div(..., rounding_mode='floor')``."""
    return _div_rounded(a, b, "floor", "floor_divide")


def remainder(a, b):
    """Python-style modulo (sign of the divisor); d/da = 1, d/db = -floor(a/b)."""
    ad, bd = _prepare(a, b)
    out = _apply("remainder", B.xp.remainder, ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(g, sa) if ga else None,
                              unbroadcast(-g * B.xp.floor_divide(ad, bd), sb) if gb else None))


def pow(a, b):
    """``a ** b``. d/da = b a^(b-1) (0 where b == 0); d/db = a^b log a (0 where a == 0 and
    b >= 0), as in PyTorch."""
    if isinstance(a, Tensor) and a.dtype.kind in "iu" and isinstance(b, int) and b < 0:
        raise ValueError("pow: integers to negative integer powers are not allowed")
    ad, bd = _prepare(a, b)
    out = _apply("pow", B.xp.power, ad, bd)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)

    def backward(g):
        da = db = None
        if ga:
            if bd.__class__ is int or bd.__class__ is float:
                if bd == 0:
                    da = B.xp.zeros_like(g)
                elif bd == 2:
                    da = g * (2 * ad)
                else:
                    da = g * (bd * ad ** (bd - 1))
            else:
                with B.xp.errstate(divide="ignore", invalid="ignore"):  # 0^-1 is masked out
                    d = bd * B.xp.power(ad, bd - 1)
                da = unbroadcast(g * B.xp.where(bd == 0, 0, d), sa)
        if gb:
            base = B.xp.asarray(ad, dtype=out.dtype)
            with B.xp.errstate(divide="ignore", invalid="ignore"):  # log 0 is masked out
                d = out * B.xp.log(base)
            db = unbroadcast(g * B.xp.where((base == 0) & (bd >= 0), 0, d), sb)
        return da, db

    return _record(out, a, b, ga, gb, backward)


def rpow(a, b):
    """``b ** a`` (``2 ** x``)."""
    return pow(b, a)


def neg(x):
    out = -x.data
    if x.requires_grad and grad_mode.enabled:
        return result(out, (x,), lambda g: (-g,))
    return plain(out)


def pos(x):
    return x


# ---------------------------------------------------------------- unary math
def _unary(name, fwd, bwd, floats=True):
    """An op y = fwd(x) whose input gradient is bwd(g, x, y). With ``floats``, int/bool
    inputs are computed in the default float dtype (PyTorch's exp(int) is float)."""

    qualname = f"{name}.<locals>.backward"  # grad_fn shows e.g. ExpBackward

    def op(x):
        xd = x.data
        if floats and xd.dtype.kind in "biu":
            xd = xd.astype(B.get_default_dtype())
        y = fwd(xd)
        if x.requires_grad and grad_mode.enabled:
            def backward(g):
                return (bwd(g, xd, y),)
            backward.__qualname__ = qualname
            return result(y, (x,), backward)
        return plain(y)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}``."
    return op


def _sigmoid(x):
    # 1 / (1 + e^-x) is accurate for every x; e^-x overflowing to inf gives the right limit 0.
    # (out= keeps 0-d inputs arrays, so the in-place steps work for them too)
    e = B.xp.negative(x, out=B.xp.empty_like(x))
    with B.xp.errstate(over="ignore"):
        B.xp.exp(e, out=e)
    e += 1
    return B.xp.reciprocal(e, out=e)


def _rsqrt(x):
    return 1 / B.xp.sqrt(x)


_LN2, _LN10 = 0.6931471805599453, 2.302585092994046

# backward formulas as PyTorch writes them (the same rounding, the same inf at poles)
exp = _unary("exp", B.xp.exp, lambda g, x, y: g * y)
log = _unary("log", B.xp.log, lambda g, x, y: g / x)
log2 = _unary("log2", B.xp.log2, lambda g, x, y: g / (x * _LN2))
log10 = _unary("log10", B.xp.log10, lambda g, x, y: g / (x * _LN10))
log1p = _unary("log1p", B.xp.log1p, lambda g, x, y: g / (x + 1))
expm1 = _unary("expm1", B.xp.expm1, lambda g, x, y: g * (y + 1))
sqrt = _unary("sqrt", B.xp.sqrt, lambda g, x, y: g / (2 * y))
rsqrt = _unary("rsqrt", _rsqrt, lambda g, x, y: -0.5 * g * (y * y * y))
sin = _unary("sin", B.xp.sin, lambda g, x, y: g * B.xp.cos(x))
cos = _unary("cos", B.xp.cos, lambda g, x, y: g * -B.xp.sin(x))
tan = _unary("tan", B.xp.tan, lambda g, x, y: g * (1 + y * y))
tanh = _unary("tanh", B.xp.tanh, lambda g, x, y: g * (1 - y * y))
sigmoid = _unary("sigmoid", _sigmoid, lambda g, x, y: g * (1 - y) * y)
reciprocal = _unary("reciprocal", B.xp.reciprocal, lambda g, x, y: -g * (y * y))
arctan = _unary("atan", B.xp.arctan, lambda g, x, y: g / (x * x + 1))
atan = arctan
sinh = _unary("sinh", B.xp.sinh, lambda g, x, y: g * B.xp.cosh(x))
cosh = _unary("cosh", B.xp.cosh, lambda g, x, y: g * B.xp.sinh(x))
# these keep int dtypes
abs = _unary("abs", B.xp.abs, lambda g, x, y: g * B.xp.sign(x), floats=False)
square = _unary("square", B.xp.square, lambda g, x, y: g * (2 * x), floats=False)


def _flat_pieces(fn, out, *arrays):
    """``fn(out, *arrays)`` for same-shaped arrays, on flat ranges split between threads
    when all are C-contiguous and large (``parallel.pieces``); else in one call."""
    if not all(a.flags.c_contiguous and a.shape == out.shape for a in arrays) \
            or not out.flags.c_contiguous:
        fn(out, *arrays)
        return out
    flat = [a.reshape(-1) for a in (out,) + arrays]
    P.pieces(lambda lo, hi: fn(*(a[lo:hi] for a in flat)), out.size, out.size)
    return out


def _relu_grad(g, xd):
    out = B.xp.empty(g.shape, g.dtype)
    return _flat_pieces(lambda o, g, x: B.xp.multiply(g, x > 0, out=o), out, g, xd)


def relu(x):
    """max(x, 0); the gradient at exactly 0 is 0 (PyTorch's convention)."""
    xd = x.data
    y = _flat_pieces(lambda o, x: B.xp.maximum(x, 0, out=o), B.xp.empty_like(xd), xd)
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (_relu_grad(g, xd),))
    return plain(y)


def _piecewise_constant(name, fwd):
    def op(x):
        return _zero_grad_result(name, fwd(x.data), x)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (gradient zero, as in PyTorch)."
    return op


sign = _piecewise_constant("sign", B.xp.sign)
floor = _piecewise_constant("floor", B.xp.floor)
ceil = _piecewise_constant("ceil", B.xp.ceil)
trunc = _piecewise_constant("trunc", B.xp.trunc)


def round(x, decimals=0):
    """Round half to even (to ``decimals`` places); gradient zero, as in PyTorch."""
    return _zero_grad_result("round", B.xp.round(x.data, decimals), x)


def clamp(x, min=None, max=None):
    """Clip to [min, max] (scalars or broadcastable tensors; max wins where min > max).
    The gradient goes to x where min <= x <= max (bounds inclusive), else to the bound
    that was taken, as in PyTorch."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return _clamp_tensor(x, min, max)
    min, max = _data(min), _data(max)
    xd = x.data
    if xd.dtype.kind in "biu" and (isinstance(min, float) or isinstance(max, float)):
        xd = xd.astype(B.get_default_dtype())
    y = B.xp.clip(xd, min, max)
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            if min is None:
                keep = xd <= max
            elif max is None:
                keep = xd >= min
            else:
                keep = (xd >= min) & (xd <= max)
            return (B.xp.where(keep, g, 0),)
        return result(y, (x,), backward)
    return plain(y)


def _clamp_tensor(x, lo, hi):
    bounds = [v for v in (lo, hi) if v is not None]
    dt = result_type(x, *bounds)
    xd, lod, hid = (_astype(_data(v), dt) for v in (x, lo, hi))
    try:
        y = xd
        if lo is not None:
            y = B.xp.maximum(y, lod)
        if hi is not None:
            y = B.xp.minimum(y, hid)
    except ValueError:
        names = ["input"] + (["min"] if lo is not None else []) + (["max"] if hi is not None
                                                                    else [])
        err = _broadcast_error("clamp", [xd] + [_data(v) for v in bounds], names)
        if err is None:
            raise
        raise err from None
    gx, gl, gh = _grad(x), _grad(lo), _grad(hi)
    if not (gx or gl or gh):
        return plain(y)

    def backward(g):
        dx = dl = dh = None
        if lo is not None and hi is not None:
            if gx:
                dx = B.xp.where((xd >= lod) & (xd <= hid), g, 0)
            if gl:
                dl = B.xp.where((xd < lod) & (lod < hid), g, 0)
            if gh:
                dh = B.xp.where((xd > hid) | (hid < lod), g, 0)
        elif lo is not None:
            dx = B.xp.where(xd >= lod, g, 0) if gx else None
            dl = B.xp.where(xd < lod, g, 0) if gl else None
        else:
            dx = B.xp.where(xd <= hid, g, 0) if gx else None
            dh = B.xp.where(xd > hid, g, 0) if gh else None
        return tuple(None if d is None else unbroadcast(d, t.shape).astype(t.dtype, copy=False)
                     for d, t in ((dx, x), (dl, lo), (dh, hi)))

    return result(y, (x if gx else None, lo if gl else None, hi if gh else None), backward)


clip = clamp


def _select_binary(name, fwd, a_loses, b_loses):
    """maximum/minimum: the gradient goes to the winner, ties split it evenly and NaNs
    pass it to both (PyTorch's formulas)."""

    qualname = f"{name}.<locals>.backward"

    def op(a, b):
        ad, bd = _prepare(a, b)
        out = _apply(name, fwd, ad, bd)
        ga, gb = _grad(a), _grad(b)
        if not (ga or gb):
            return plain(out)
        sa, sb = _shape(ad), _shape(bd)

        def backward(g):
            half = B.xp.where(ad == bd, g * 0.5, g)
            return (unbroadcast(B.xp.where(a_loses(ad, bd), 0, half), sa) if ga else None,
                    unbroadcast(B.xp.where(b_loses(ad, bd), 0, half), sb) if gb else None)

        backward.__qualname__ = qualname
        return _record(out, a, b, ga, gb, backward)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` of two broadcast operands."
    return op


maximum = _select_binary("maximum", B.xp.maximum, B.xp.less, B.xp.greater)
minimum = _select_binary("minimum", B.xp.minimum, B.xp.greater, B.xp.less)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (all three broadcast together)."""
    cond = _data(condition)
    if not hasattr(cond, "dtype"):
        cond = B.xp.asarray(cond)
    if cond.dtype != B.bool_:
        cond = cond.astype(B.bool_)
    ad, bd = _prepare(a, b)
    try:
        out = B.xp.where(cond, ad, bd)
    except ValueError:
        err = _broadcast_error("where", (cond, ad, bd), ("condition", "input", "other"))
        if err is None:
            raise
        raise err from None
    if not (hasattr(ad, "dtype") or hasattr(bd, "dtype")):  # two Python scalars
        out = out.astype(result_type(ad, bd), copy=False)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = _shape(ad), _shape(bd)
    return _record(out, a, b, ga, gb,
                   lambda g: (unbroadcast(B.xp.where(cond, g, 0), sa) if ga else None,
                              unbroadcast(B.xp.where(cond, 0, g), sb) if gb else None))


def lerp(a, b, weight):
    """``a + weight * (b - a)``; ``weight`` a scalar or a tensor (differentiable)."""
    return add(a, mul(sub(b, a), weight))


def cast(x, dtype):
    """``x.to(dtype)``: a copy in another dtype; the gradient is cast back."""
    dtype = B.to_dtype(dtype)
    if x.dtype == dtype:
        return x
    y = x.data.astype(dtype)
    if x.requires_grad and grad_mode.enabled and dtype.kind == "f":
        src = x.dtype
        return result(y, (x,), lambda g: (g.astype(src),))
    return plain(y)


def clone(x):
    y = x.data.copy()
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (g,))
    return plain(y)


def contiguous(x):
    if x.data.flags.c_contiguous:
        return x
    y = B.xp.ascontiguousarray(x.data)
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (g,))
    return plain(y)
