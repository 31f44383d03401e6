"""Attach the ops of :mod:`lamina.ops` to :class:`~lamina.tensor.Tensor` as methods and
Python operators (``a + b``, ``a @ b``, ``x[idx]``, ``x.sum(dim=1)``, ...)."""
from . import backend as B
from . import grad_mode
from . import ops
from .tensor import Tensor


def _swap(fn):
    def reflected(self, other):
        return fn(other, self)
    reflected.__name__ = fn.__name__
    return reflected


def _inplace(fn, name):
    """``x += y``: in place on the data when nothing is recorded; out of place (a new
    node, the name rebound) on tensors inside a graph; an error on grad-requiring leaves."""
    def op(self, other):
        if self.requires_grad and grad_mode.enabled:
            if self._fn is None:
                self._check_inplace(name)
            return fn(self, other)
        if isinstance(other, Tensor):
            if other.requires_grad and grad_mode.enabled:
                return fn(self, other)
            other = other.data
        out = fn(self, other).data
        if out.dtype != self.data.dtype and not B.xp.can_cast(out.dtype, self.data.dtype,
                                                             "same_kind"):
            raise RuntimeError(f"{name}: result type {out.dtype} can't be cast to the "
                               f"tensor's dtype {self.data.dtype}")
        if out.shape != self.data.shape:
            raise ValueError(f"{name}: result of shape {tuple(out.shape)} cannot be stored in a "
                             f"tensor of shape {tuple(self.data.shape)}")
        self.data[...] = out
        return self
    op.__name__ = name
    return op


def _to(self, *args, dtype=None, **kwargs):
    """``x.to(dtype)``; device strings ('cpu') are accepted and ignored."""
    for a in args:
        if isinstance(a, str) and a in ("cpu", "cuda"):
            continue
        if isinstance(a, Tensor):
            dtype = a.dtype
        else:
            dtype = a
    return self if dtype is None else ops.cast(self, dtype)


def _caster(dtype):
    def method(self):
        return ops.cast(self, dtype)
    return method


def _view(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list)):
        return ops.cast(self, shape[0])
    return ops.view(self, *shape)


def _type(self, dtype=None):
    if dtype is None:
        return str(self.dtype)
    return ops.cast(self, dtype)


def _permute(self, *dims):
    return ops.permute(self, *dims)


def _max(self, dim=None, keepdim=False, **kw):
    return ops.max(self, dim, keepdim, **kw)


def _min(self, dim=None, keepdim=False, **kw):
    return ops.min(self, dim, keepdim, **kw)


METHODS = {
    "__add__": ops.add, "__radd__": _swap(ops.add), "__sub__": ops.sub, "__rsub__": ops.rsub,
    "__mul__": ops.mul, "__rmul__": _swap(ops.mul), "__truediv__": ops.div,
    "__rtruediv__": ops.rdiv, "__floordiv__": ops.floor_divide,
    "__rfloordiv__": _swap(ops.floor_divide), "__mod__": ops.remainder,
    "__rmod__": _swap(ops.remainder), "__pow__": ops.pow, "__rpow__": ops.rpow,
    "__matmul__": ops.matmul, "__rmatmul__": _swap(ops.matmul), "__neg__": ops.neg,
    "__pos__": lambda self: self, "__abs__": ops.abs, "__getitem__": ops.getitem,
    "__eq__": ops.eq, "__ne__": ops.ne, "__lt__": ops.lt, "__le__": ops.le, "__gt__": ops.gt,
    "__ge__": ops.ge, "__invert__": ops.logical_not, "__and__": ops.logical_and,
    "__or__": ops.logical_or,
    "__iadd__": _inplace(ops.add, "__iadd__"), "__isub__": _inplace(ops.sub, "__isub__"),
    "__imul__": _inplace(ops.mul, "__imul__"), "__itruediv__": _inplace(ops.div, "__itruediv__"),
    "add": ops.add, "sub": ops.sub, "subtract": ops.sub, "mul": ops.mul, "multiply": ops.mul,
    "div": ops.div, "divide": ops.div, "pow": ops.pow, "matmul": ops.matmul, "mm": ops.mm,
    "bmm": ops.bmm, "dot": ops.dot, "neg": ops.neg, "abs": ops.abs, "sign": ops.sign,
    "exp": ops.exp, "log": ops.log, "log2": ops.log2, "log10": ops.log10, "log1p": ops.log1p,
    "expm1": ops.expm1, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "sin": ops.sin, "cos": ops.cos,
    "tan": ops.tan, "arctan": ops.arctan, "atan": ops.arctan, "sinh": ops.sinh,
    "cosh": ops.cosh, "lerp": ops.lerp, "floor_divide": ops.floor_divide,
    "where": lambda self, condition, other: ops.where(condition, self, other),
    "tanh": ops.tanh, "sigmoid": ops.sigmoid, "relu": ops.relu,
    "square": ops.square, "reciprocal": ops.reciprocal, "floor": ops.floor, "ceil": ops.ceil,
    "round": ops.round, "trunc": ops.trunc, "remainder": ops.remainder,
    "clamp": ops.clamp, "clip": ops.clamp, "maximum": ops.maximum, "minimum": ops.minimum,
    "sum": ops.sum, "mean": ops.mean, "var": ops.var, "std": ops.std, "prod": ops.prod,
    "max": _max, "min": _min, "amax": ops.amax, "amin": ops.amin, "argmax": ops.argmax,
    "argmin": ops.argmin, "logsumexp": ops.logsumexp, "norm": ops.norm, "cumsum": ops.cumsum,
    "all": ops.all, "any": ops.any,
    "reshape": ops.reshape, "view": _view, "flatten": ops.flatten, "unflatten": ops.unflatten,
    "transpose": ops.transpose, "swapaxes": ops.swapaxes, "swapdims": ops.swapdims,
    "permute": _permute, "t": ops.t, "movedim": ops.movedim, "squeeze": ops.squeeze,
    "unsqueeze": ops.unsqueeze, "expand": ops.expand, "expand_as": ops.expand_as,
    "broadcast_to": ops.broadcast_to, "repeat": ops.repeat, "tile": ops.tile,
    "split": ops.split, "chunk": ops.chunk, "unbind": ops.unbind, "flip": ops.flip,
    "roll": ops.roll, "gather": ops.gather, "scatter_add": ops.scatter_add,
    "index_select": ops.index_select, "masked_fill": ops.masked_fill, "take": ops.take,
    "softmax": ops.softmax, "log_softmax": ops.log_softmax,
    "eq": ops.eq, "ne": ops.ne, "lt": ops.lt, "le": ops.le, "gt": ops.gt, "ge": ops.ge,
    "isnan": ops.isnan, "isinf": ops.isinf, "isfinite": ops.isfinite, "equal": ops.equal,
    "allclose": ops.allclose, "logical_not": ops.logical_not,
    "to": _to, "type": _type, "astype": ops.cast, "clone": ops.clone,
    "contiguous": ops.contiguous, "float": _caster(B.float32), "double": _caster(B.float64),
    "half": _caster(B.float16), "long": _caster(B.int64), "int": _caster(B.int32),
    "bool": _caster(B.bool_),
}

for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.T = property(lambda self: ops.transpose(self))
Tensor.mT = property(lambda self: ops.transpose(self, -2, -1))

# NumPy ufuncs that map onto lamina ops (used by Tensor.__array_ufunc__)
UFUNC_OPS = {
    "add": ops.add, "subtract": ops.sub, "multiply": ops.mul, "true_divide": ops.div,
    "divide": ops.div, "power": ops.pow, "matmul": ops.matmul, "negative": ops.neg,
    "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt, "tanh": ops.tanh, "sin": ops.sin,
    "cos": ops.cos, "absolute": ops.abs, "maximum": ops.maximum, "minimum": ops.minimum,
    "equal": ops.eq, "not_equal": ops.ne, "less": ops.lt, "less_equal": ops.le,
    "greater": ops.gt, "greater_equal": ops.ge,
    "square": ops.square, "reciprocal": ops.reciprocal, "log1p": ops.log1p,
    "expm1": ops.expm1, "log2": ops.log2, "log10": ops.log10, "tan": ops.tan,
    "arctan": ops.arctan, "sinh": ops.sinh, "cosh": ops.cosh, "sign": ops.sign,
    "floor": ops.floor, "ceil": ops.ceil, "trunc": ops.trunc,
}
