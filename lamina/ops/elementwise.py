"""Elementwise operations with NumPy broadcasting: arithmetic, unary math, selection.

Each op computes its forward on arrays and, when a gradient is needed, records a closure
mapping d(out) to one gradient per input. Gradients of broadcast inputs are summed back
to the input's shape by :func:`unbroadcast`.
"""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain, result


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
    return x.item() if isinstance(x, B.xp.generic) else x


def _grad(x):
    return grad_mode.enabled and isinstance(x, Tensor) and x.requires_grad


def _broadcast_error(op, a, b):
    sa, sb = B.xp.shape(a), B.xp.shape(b)
    nd = max(len(sa), len(sb))
    pa, pb = (1,) * (nd - len(sa)) + tuple(sa), (1,) * (nd - len(sb)) + tuple(sb)
    dim = next(i for i in range(nd) if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1)
    return ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast: size "
                      f"{pa[dim]} vs {pb[dim]} at dimension {dim - nd}")


def _binary(op, fwd, a, b):
    ad, bd = _data(a), _data(b)
    try:
        return fwd(ad, bd)
    except ValueError:
        if B.xp.shape(ad) != B.xp.shape(bd):
            raise _broadcast_error(op, ad, bd) from None
        raise


def _operands(a, b):
    """Let scalars and arrays mix with tensors; the tensor's dtype wins for Python scalars."""
    if not isinstance(a, Tensor):
        a = plain(B.xp.asarray(a, dtype=b.dtype if isinstance(a, (int, float)) and
                               b.dtype.kind == "f" else None))
    if not isinstance(b, Tensor):
        b = plain(B.xp.asarray(b, dtype=a.dtype if isinstance(b, (int, float)) and
                               a.dtype.kind == "f" else None))
    return a, b


# ---------------------------------------------------------------- arithmetic
def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    out = _binary("add", B.xp.add, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(_data(a)), B.xp.shape(_data(b))
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(g, sa) if ga else None,
                             unbroadcast(g, sb) if gb else None))


def sub(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    out = _binary("sub", B.xp.subtract, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(_data(a)), B.xp.shape(_data(b))
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(g, sa) if ga else None,
                             unbroadcast(-g, sb) if gb else None))


def rsub(a, b):
    return sub(b, a)


def mul(a, b):
    ad, bd = _data(a), _data(b)
    out = _binary("mul", B.xp.multiply, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(ad), B.xp.shape(bd)
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(g * bd, sa) if ga else None,
                             unbroadcast(g * ad, sb) if gb else None))


def _true_divide(ad, bd):
    out = B.xp.true_divide(ad, bd)
    # int / int gives the default float (PyTorch), not NumPy's float64
    if out.dtype == B.float64 and B.xp.result_type(ad, bd).kind in "iub":
        out = out.astype(B.get_default_dtype())
    return out


def div(a, b, rounding_mode=None):
    if rounding_mode is not None:
        return _div_rounded(a, b, rounding_mode)
    ad, bd = _data(a), _data(b)
    out = _binary("div", _true_divide, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(ad), B.xp.shape(bd)
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(g / bd, sa) if ga else None,
                             unbroadcast(-g * out / bd, sb) if gb else None))


def _div_rounded(a, b, mode):
    ad, bd = _data(a), _data(b)
    if mode == "floor":
        out = B.xp.floor_divide(ad, bd)
    elif mode == "trunc":
        out = B.xp.trunc(B.xp.true_divide(ad, bd))
        kind = B.xp.result_type(ad, bd).kind
        if kind in "iu":
            out = out.astype(B.xp.result_type(ad, bd))
    else:
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {mode!r}")
    return _zero_grad_result(out, a, b)


def _zero_grad_result(out, *inputs):
    """Piecewise-constant ops: gradient zero almost everywhere (PyTorch returns zeros)."""
    tensors = tuple(x for x in inputs if _grad(x))
    if not tensors:
        return plain(out)
    return result(out, tensors, lambda g: tuple(B.xp.zeros(t.shape, t.dtype) for t in tensors))


def rdiv(a, b):
    return div(b, a)


def floor_divide(a, b):
    return _div_rounded(a, b, "floor")


def remainder(a, b):
    """Python-style modulo (sign of the divisor); d/da = 1, d/db = -floor(a/b)."""
    ad, bd = _data(a), _data(b)
    out = _binary("remainder", B.xp.remainder, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(ad), B.xp.shape(bd)
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(g, sa) if ga else None,
                             unbroadcast(-g * B.xp.floor(ad / bd), sb) if gb else None))


def pow(a, b):
    """``a ** b``. d/da = b a^(b-1); d/db = a^b log a (0 where a == 0 and b >= 0)."""
    ad, bd = _data(a), _data(b)
    if isinstance(a, Tensor) and a.dtype.kind in "iu" and isinstance(b, (int, float)) and b < 0:
        raise ValueError("pow: integers to negative integer powers are not allowed")
    out = _binary("pow", B.xp.power, a, b)
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = B.xp.shape(ad), B.xp.shape(bd)

    def backward(g):
        da = db = None
        if ga:
            if isinstance(bd, (int, float)):
                da = g * (bd * ad ** (bd - 1)) if bd != 0 else B.xp.zeros_like(g)
                if bd == 2:
                    da = g * (2 * ad)
            else:
                da = unbroadcast(g * B.xp.where(bd == 0, 0, bd * B.xp.power(ad, bd - 1)), sa)
        if gb:
            with B.xp.errstate(divide="ignore", invalid="ignore"):
                logs = B.xp.log(ad)
            safe = B.xp.where((ad == 0) & (bd >= 0), 0, out * logs)
            db = unbroadcast(g * safe, sb)
        return da, db

    return result(out, (a if ga else None, b if gb else None), backward)


def rpow(a, b):
    return pow(b, a)


def neg(x):
    out = -x.data
    if x.requires_grad and grad_mode.enabled:
        return result(out, (x,), lambda g: (-g,))
    return plain(out)


def pos(x):
    return x


# ---------------------------------------------------------------- unary math
def _unary(name, fwd, deriv):
    """An op y = fwd(x) whose gradient is g * deriv(x, y)."""

    def op(x):
        xd = x.data
        y = fwd(xd)
        if x.requires_grad and grad_mode.enabled:
            return result(y, (x,), lambda g: (g * deriv(xd, y),))
        return plain(y)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}``."
    return op


def _sigmoid(x):
    # split by sign so exp never overflows
    e = B.xp.exp(-B.xp.abs(x))
    return B.xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _rsqrt(x):
    return 1 / B.xp.sqrt(x)


exp = _unary("exp", B.xp.exp, lambda x, y: y)
log = _unary("log", B.xp.log, lambda x, y: 1 / x)
log2 = _unary("log2", B.xp.log2, lambda x, y: 1 / (x * B.xp.log(2).astype(x.dtype)))
log10 = _unary("log10", B.xp.log10, lambda x, y: 1 / (x * B.xp.log(10).astype(x.dtype)))
log1p = _unary("log1p", B.xp.log1p, lambda x, y: 1 / (1 + x))
expm1 = _unary("expm1", B.xp.expm1, lambda x, y: y + 1)
sqrt = _unary("sqrt", B.xp.sqrt, lambda x, y: 0.5 / y)
rsqrt = _unary("rsqrt", _rsqrt, lambda x, y: -0.5 * y * y * y)
sin = _unary("sin", B.xp.sin, lambda x, y: B.xp.cos(x))
cos = _unary("cos", B.xp.cos, lambda x, y: -B.xp.sin(x))
tan = _unary("tan", B.xp.tan, lambda x, y: 1 + y * y)
tanh = _unary("tanh", B.xp.tanh, lambda x, y: 1 - y * y)
sigmoid = _unary("sigmoid", _sigmoid, lambda x, y: y * (1 - y))
abs = _unary("abs", B.xp.abs, lambda x, y: B.xp.sign(x))
square = _unary("square", B.xp.square, lambda x, y: 2 * x)
reciprocal = _unary("reciprocal", B.xp.reciprocal, lambda x, y: -y * y)
arctan = _unary("atan", B.xp.arctan, lambda x, y: 1 / (1 + x * x))
sinh = _unary("sinh", B.xp.sinh, lambda x, y: B.xp.cosh(x))
cosh = _unary("cosh", B.xp.cosh, lambda x, y: B.xp.sinh(x))


def relu(x):
    xd = x.data
    y = B.xp.maximum(xd, 0)
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (g * (xd > 0),))
    return plain(y)


def _piecewise_constant(name, fwd):
    def op(x):
        return _zero_grad_result(fwd(x.data), x)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (gradient zero, as in PyTorch)."
    return op


sign = _piecewise_constant("sign", B.xp.sign)
floor = _piecewise_constant("floor", B.xp.floor)
ceil = _piecewise_constant("ceil", B.xp.ceil)
round = _piecewise_constant("round", B.xp.round)
trunc = _piecewise_constant("trunc", B.xp.trunc)


def clamp(x, min=None, max=None):
    """Clip to [min, max]; the gradient passes where min <= x <= max (bounds inclusive)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    xd = x.data
    y = B.xp.clip(xd, min, max)
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            keep = True
            if min is not None:
                keep = xd >= min
            if max is not None:
                keep = keep & (xd <= max)
            return (g * keep,)
        return result(y, (x,), backward)
    return plain(y)


clip = clamp


def _select_binary(name, fwd, wins):
    """maximum/minimum: the gradient goes to the winner; ties split it evenly (PyTorch)."""

    def op(a, b):
        a, b = _operands(a, b)
        ad, bd = a.data, b.data
        out = _binary(name, fwd, a, b)
        ga, gb = _grad(a), _grad(b)
        if not (ga or gb):
            return plain(out)
        sa, sb = ad.shape, bd.shape

        def backward(g):
            w = wins(ad, bd).astype(g.dtype) + 0.5 * (ad == bd)
            return (unbroadcast(g * w, sa) if ga else None,
                    unbroadcast(g * (1 - w), sb) if gb else None)

        return result(out, (a if ga else None, b if gb else None), backward)

    op.__name__ = op.__qualname__ = name
    return op


maximum = _select_binary("maximum", B.xp.maximum, lambda a, b: a > b)
minimum = _select_binary("minimum", B.xp.minimum, lambda a, b: a < b)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (broadcast together)."""
    cond = _data(condition)
    if cond.dtype != B.bool_:
        cond = cond.astype(bool)
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    try:
        out = B.xp.where(cond, ad, bd)
    except ValueError:
        raise ValueError(f"where: condition {tuple(cond.shape)}, x {tuple(ad.shape)} and y "
                         f"{tuple(bd.shape)} cannot be broadcast together") from None
    ga, gb = _grad(a), _grad(b)
    if not (ga or gb):
        return plain(out)
    sa, sb = ad.shape, bd.shape
    return result(out, (a if ga else None, b if gb else None),
                  lambda g: (unbroadcast(B.xp.where(cond, g, 0), sa) if ga else None,
                             unbroadcast(B.xp.where(cond, 0, g), sb) if gb else None))


def lerp(a, b, weight):
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
