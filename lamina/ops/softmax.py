"""softmax and log_softmax along a dimension, numerically stable (max subtracted)."""
from .. import backend as B
from .. import grad_mode
from ..tensor import plain, result


def _shifted(op, xd, dim):
    try:
        # an empty reduced dim has no max: -inf (then shifted by 0) gives an empty result
        m = xd.max(axis=dim, keepdims=True, initial=-B.xp.inf) if xd.size == 0 else \
            xd.max(axis=dim, keepdims=True)
    except (IndexError, TypeError):  # numpy's AxisError is an IndexError
        raise IndexError(f"{op}: dim {dim!r} is out of range for a tensor of shape "
                         f"{tuple(xd.shape)}") from None
    return xd - B.xp.where(B.xp.isfinite(m), m, 0)


def softmax(x, dim=-1, dtype=None):
    """exp(x_i) / sum_j exp(x_j) along ``dim`` (same shape as x); d/dx = y * (g - sum(g y))."""
    xd = x.data if dtype is None else x.data.astype(B.to_dtype(dtype))
    e = B.xp.exp(_shifted("softmax", xd, dim))
    y = e / e.sum(axis=dim, keepdims=True)
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            gy = g * y
            return (gy - y * gy.sum(axis=dim, keepdims=True),)
        return result(y, (x,), backward)
    return plain(y)


def log_softmax(x, dim=-1, dtype=None):
    """x_i - logsumexp(x) along ``dim`` (same shape as x); d/dx = g - softmax * sum(g)."""
    xd = x.data if dtype is None else x.data.astype(B.to_dtype(dtype))
    s = _shifted("log_softmax", xd, dim)
    with B.xp.errstate(divide="ignore"):
        y = s - B.xp.log(B.xp.exp(s).sum(axis=dim, keepdims=True))
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (g - B.xp.exp(y) * g.sum(axis=dim, keepdims=True),))
    return plain(y)
