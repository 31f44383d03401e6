"""Comparisons and logical ops: not differentiable, they return bool tensors."""
from .. import backend as B
from ..tensor import Tensor, plain
from .elementwise import _binary, _data


def _compare(name, fwd):
    def op(a, b):
        return plain(_binary(name, fwd, a, b))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` of two broadcast operands, as a bool tensor."
    return op


def _equality(name, fwd):
    def op(a, b):
        if b is None:  # `t == None` is False and `None in [t]` works, as in PyTorch
            return NotImplemented
        return plain(_binary(name, fwd, a, b))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` of two broadcast operands, as a bool tensor."
    return op


eq = _equality("eq", B.xp.equal)
ne = _equality("ne", B.xp.not_equal)
lt = _compare("lt", B.xp.less)
le = _compare("le", B.xp.less_equal)
gt = _compare("gt", B.xp.greater)
ge = _compare("ge", B.xp.greater_equal)
logical_and = _compare("logical_and", B.xp.logical_and)
logical_or = _compare("logical_or", B.xp.logical_or)


def logical_not(x):
    return plain(B.xp.logical_not(x.data))


def isnan(x):
    return plain(B.xp.isnan(x.data))


def isinf(x):
    return plain(B.xp.isinf(x.data))


def isfinite(x):
    return plain(B.xp.isfinite(x.data))


def equal(a, b):
    """True if both have the same shape and elements."""
    return a.shape == b.shape and bool(B.xp.array_equal(_data(a), _data(b)))


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    return bool(B.xp.allclose(_data(a), _data(b), rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    return plain(B.xp.isclose(_data(a), _data(b), rtol=rtol, atol=atol, equal_nan=equal_nan))
