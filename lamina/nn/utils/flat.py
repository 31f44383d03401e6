"""Flat parameter buffers: every Parameter's data and grad become views of two contiguous
1-D arrays, so an optimizer step, clipping, weight decay or an allreduce is one
vectorized call over all parameters (Torch7's ``getParameters``).
"""
from ... import backend as B
from ...tensor import Parameter, plain


class FlatBuffer:
    """Two contiguous arrays (``data``, ``grad``) that back a list of parameters."""

    __slots__ = ("data", "grad", "params", "offsets", "views")

    def __init__(self, params):
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) > 1:
            raise TypeError(f"flatten_parameters: parameters have several dtypes "
                            f"{sorted(str(d) for d in dtypes)}; flatten each dtype separately")
        dtype = dtypes.pop() if dtypes else B.get_default_dtype()
        total = sum(p.data.size for p in params)
        self.data = B.xp.empty(total, dtype=dtype)
        self.grad = B.xp.zeros(total, dtype=dtype)
        self.params = list(params)
        self.offsets = []
        off = 0
        for p in self.params:
            n = p.data.size
            self.data[off:off + n] = p.data.reshape(-1)
            if p.grad is not None:
                self.grad[off:off + n] = p.grad.data.reshape(-1)
            self.offsets.append(off)
            off += n
        self.views = []
        self.rebind()

    def rebind(self):
        """Point every parameter's ``data`` and ``grad`` at its slice of the buffers."""
        self.views = []
        for p, off in zip(self.params, self.offsets):
            n = p.data.size
            shape = p.data.shape
            p.data = self.data[off:off + n].reshape(shape)
            p.grad = plain(self.grad[off:off + n].reshape(shape))
            p._flat = (self, off)
            self.views.append((p, p.data, p.grad))

    def intact(self):
        """False if any parameter's data or grad was replaced since binding."""
        for p, data, grad in self.views:
            if p.data is not data or p.grad is not grad or grad.data.base is None:
                return False
        return True


def _existing(params):
    """The (buffer, start, stop) these params already occupy consecutively, or None."""
    if not params or params[0]._flat is None:
        return None
    buf, start = params[0]._flat
    off = start
    for p in params:
        if p._flat is None or p._flat[0] is not buf or p._flat[1] != off:
            return None
        off += p.data.size
    if not buf.intact():
        return None
    return buf, start, off


def flatten_parameters(params):
    """Bind ``params`` (a list of Parameters, duplicates dropped) to flat storage.

    Returns ``(data, grad)``: 1-D arrays that the parameters' data and grads are views
    of. Parameters that already sit consecutively in one flat buffer keep it (so a
    module flattened first and an optimizer created later share the same storage).
    """
    seen, unique = set(), []
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"flatten_parameters: expected Parameters, got {type(p).__name__}")
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    found = _existing(unique)
    if found is not None:
        buf, start, stop = found
        return buf.data[start:stop], buf.grad[start:stop]
    buf = FlatBuffer(unique)
    return buf.data, buf.grad


def flat_parameters(module):
    """Torch7's ``getParameters``: ``(params, grads)`` as two contiguous 1-D arrays, with
    every Parameter of ``module`` rebound to views into them."""
    return flatten_parameters(list(module.parameters()))
