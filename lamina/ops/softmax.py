"""softmax and log_softmax along a dimension, numerically stable (max subtracted)."""
from .. import backend as B
from .. import grad_mode
from ..tensor import plain, result


def _shifted(xd, axis):
    m = xd.max(axis=axis, keepdims=True)
    return xd - B.xp.where(B.xp.isfinite(m), m, 0)


def softmax(x, dim=-1):
    """exp(x_i) / sum_j exp(x_j) along ``dim``; d/dx = y * (g - sum(g * y))."""
    axis = dim
    e = B.xp.exp(_shifted(x.data, axis))
    y = e / e.sum(axis=axis, keepdims=True)
    if x.requires_grad and grad_mode.enabled:
        def backward(g):
            gy = g * y
            return (gy - y * gy.sum(axis=axis, keepdims=True),)
        return result(y, (x,), backward)
    return plain(y)


def log_softmax(x, dim=-1):
    """x_i - logsumexp(x) along ``dim``; d/dx = g - softmax * sum(g)."""
    axis = dim
    s = _shifted(x.data, axis)
    with B.xp.errstate(divide="ignore"):
        y = s - B.xp.log(B.xp.exp(s).sum(axis=axis, keepdims=True))
    if x.requires_grad and grad_mode.enabled:
        return result(y, (x,), lambda g: (g - B.xp.exp(y) * g.sum(axis=axis, keepdims=True),))
    return plain(y)
