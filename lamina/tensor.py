"""Tensor: an n-d array plus what reverse-mode differentiation needs.

A Tensor made by an operation is also the node of the graph: ``_parents`` are the tensors
it was computed from and ``_fn(g)`` maps the gradient of the output to one gradient per
parent (``None`` where there is none). Leaves have ``_fn is None``. After a backward
pass without ``retain_graph`` the engine replaces ``_fn`` by :func:`freed_fn` and drops the
parents, which releases the arrays the closure saved.

The operations themselves live in :mod:`lamina.ops`; :mod:`lamina.tensor_methods`
attaches them as methods and operators.
"""
from . import backend as B
from . import grad_mode

_ndarray = B.xp.ndarray


def freed_fn(g):
    raise RuntimeError(
        "backward: trying to backward through the graph a second time (or directly access "
        "saved values after they have already been freed). Saved intermediate values of the "
        "graph are freed when you call .backward(); specify retain_graph=True if you need to "
        "backward through the graph a second time.")


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``data`` is the backing array (``backend.xp.ndarray``), ``grad`` the accumulated
    gradient (a Tensor or None) and ``requires_grad`` whether operations on it are recorded.
    """

    __slots__ = ("data", "grad", "requires_grad", "_fn", "_parents", "_hooks", "_retain",
                 "__weakref__")
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        arr = B.xp.asarray(data, dtype=B.to_dtype(dtype))
        if dtype is None and arr.dtype == B.float64 and \
                not isinstance(data, (_ndarray, B.xp.generic)):
            arr = arr.astype(B.get_default_dtype())  # Python floats -> float32, as tensor()
        self.data = arr
        self.grad = None
        self._fn = None
        self._parents = ()
        self._hooks = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._fn is None

    @property
    def grad_fn(self):
        """The backward function of a non-leaf (its name tells the op), None for a leaf."""
        return None if self._fn is None else self._fn

    @property
    def device(self):
        return "cpu" if B.name == "numpy" else "cuda"

    # ------------------------------------------------------------ conversion
    def numpy(self):
        """The data as an array (shares memory; ``.detach()`` is not needed)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python "
                             f"scalar, got shape {tuple(self.data.shape)}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)`` shares memory; ``np.array(t)`` (copy=True) copies."""
        data = self.data
        if dtype is not None and data.dtype != dtype:
            if copy is False:
                raise ValueError(f"__array__: converting {data.dtype} to {B.to_dtype(dtype)} "
                                 f"needs a copy, but copy=False was given")
            return data.astype(dtype)
        return data.copy() if copy else data

    def __format__(self, spec):
        """``f"{loss:.4f}"`` formats a 0-d tensor as its number, as in PyTorch."""
        if self.data.ndim == 0:
            return format(self.data.item(), spec)
        return object.__format__(self, spec)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.data.size} elements "
                             f"is ambiguous; use .any() or .all()")
        return bool(self.data.item())

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    __hash__ = object.__hash__

    def __repr__(self):
        data = self.data
        suffixes = []
        if data.size == 0:
            body = "[]"
            if data.ndim != 1:
                suffixes.append(f"size={tuple(data.shape)}")
            if data.dtype != B.get_default_dtype():
                suffixes.append(f"dtype=lamina.{data.dtype}")
        else:
            body = _format_array(data)
            if data.dtype not in (B.get_default_dtype(), B.int64, B.bool_):
                suffixes.append(f"dtype=lamina.{data.dtype}")
        if self._fn is not None:
            suffixes.append(f"grad_fn=<{_fn_name(self._fn)}>")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        out = "tensor(" + body
        line = len(out) - out.rfind("\n")  # a suffix that does not fit goes on its own line
        for sfx in suffixes:
            if line + len(sfx) + 3 > 80:
                out += ",\n       " + sfx
                line = 7 + len(sfx)
            else:
                out += ", " + sfx
                line += len(sfx) + 2
        return out + ")"

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"requires_grad_: only floating point tensors can require "
                               f"gradients, got dtype {self.data.dtype}")
        if not requires_grad and self._fn is not None:
            raise RuntimeError("requires_grad_: cannot turn off requires_grad of a non-leaf "
                               "tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A new leaf that shares this tensor's data and records nothing."""
        return plain(self.data)

    def detach_(self):
        self._fn = None
        self._parents = ()
        self.requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has "
                               "requires_grad=False")
        self._retain = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient. Returns a handle with ``.remove()``."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that "
                               "doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def backward(self, gradient=None, retain_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required unless self has exactly one element; it is the vector in
        the vector-Jacobian product and must have self's shape.
        """
        from .autograd.engine import run_backward
        run_backward(self, gradient, retain_graph, inputs)

    # ------------------------------------------------------------ in-place on data
    def _check_inplace(self, op):
        if self.requires_grad and grad_mode.enabled:
            if self._fn is None:
                raise RuntimeError(
                    f"{op}: a leaf tensor that requires grad (shape {tuple(self.shape)}) is being "
                    f"used in an in-place operation; wrap the update in `with lamina.no_grad():`")
            raise RuntimeError(
                f"{op}: in-place operations on a tensor that is part of a graph are not "
                f"supported (shape {tuple(self.shape)}); use the out-of-place form")

    def __setitem__(self, index, value):
        self._check_inplace("__setitem__")
        self.data[_raw_index(index)] = value.data if isinstance(value, Tensor) else value

    def copy_(self, src):
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else src
        try:
            self.data[...] = src
        except ValueError:
            raise ValueError(f"copy_: cannot copy shape {tuple(B.xp.shape(src))} into a tensor "
                             f"of shape {tuple(self.shape)}") from None
        return self

    def zero_(self):
        self._check_inplace("zero_")
        self.data.fill(0)
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data.fill(value.item() if isinstance(value, Tensor) else value)
        return self

    def _update(self, op, ufunc, other):
        """``self.data = ufunc(self.data, other)`` in place, with errors naming ``op``."""
        self._check_inplace(op)
        other = other.data if isinstance(other, Tensor) else other
        data = self.data
        try:
            ufunc(data, other, out=data, casting="same_kind")
        except TypeError as exc:  # NumPy's UFuncTypeError: the result does not fit the dtype
            if "cast" not in str(exc):
                raise
            raise RuntimeError(f"{op}: result type {B.xp.result_type(data, other)} can't be "
                               f"cast to the tensor's dtype {data.dtype}") from None
        except ValueError:
            from .ops.elementwise import _broadcast_error
            err = _broadcast_error(op, [data, other])
            if err is not None:
                raise err from None
            raise ValueError(f"{op}: the tensor of shape {tuple(data.shape)} cannot be updated "
                             f"in place with other of shape {tuple(B.xp.shape(other))}: the "
                             f"result would have shape "
                             f"{tuple(B.xp.broadcast_shapes(data.shape, B.xp.shape(other)))}"
                             ) from None
        return self

    def add_(self, other, alpha=1):
        if alpha != 1:
            other = (other.data if isinstance(other, Tensor) else other) * alpha
        return self._update("add_", B.xp.add, other)

    def sub_(self, other, alpha=1):
        if alpha != 1:
            other = (other.data if isinstance(other, Tensor) else other) * alpha
        return self._update("sub_", B.xp.subtract, other)

    def mul_(self, other):
        return self._update("mul_", B.xp.multiply, other)

    def div_(self, other):
        return self._update("div_", B.xp.true_divide, other)

    def clamp_(self, min=None, max=None):
        self._check_inplace("clamp_")
        B.xp.clip(self.data, min, max, out=self.data)
        return self

    def uniform_(self, a=0.0, b=1.0):
        self._check_inplace("uniform_")
        self.data[...] = B.rng().uniform(a, b, self.shape)
        return self

    def normal_(self, mean=0.0, std=1.0):
        self._check_inplace("normal_")
        self.data[...] = B.rng().normal(mean, std, self.shape)
        return self

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy calls on tensors: ``arr -= lr * p.grad`` writes into ``arr`` (raw arrays);
        ``arr + t`` and friends return a Tensor through lamina's own ops. A NumPy call
        that lamina cannot differentiate raises TypeError on a tensor that requires grad."""
        out = kwargs.get("out")
        if out is not None:
            for o in out:
                if isinstance(o, Tensor):
                    o._check_inplace(f"numpy.{ufunc.__name__}(out=)")
            kwargs["out"] = tuple(x.data if isinstance(x, Tensor) else x for x in out)
            raw = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
            res = getattr(ufunc, method)(*raw, **kwargs)
            if len(out) == 1:
                return out[0] if isinstance(out[0], Tensor) else res
            return tuple(o if isinstance(o, Tensor) else r for o, r in zip(out, res))
        from .tensor_methods import UFUNC_OPS
        op = UFUNC_OPS.get(ufunc.__name__) if method == "__call__" and not kwargs else None
        if op is None:
            if grad_mode.enabled and any(isinstance(x, Tensor) and x.requires_grad
                                         for x in inputs):
                what = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
                raise TypeError(f"numpy.{what} on a tensor that requires grad would not be "
                                f"differentiated; use the lamina op instead")
            raw = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
            res = getattr(ufunc, method)(*raw, **kwargs)
            if res is None:  # ufunc.at works in place
                return None
            return tuple(plain(r) for r in res) if isinstance(res, tuple) else plain(res)
        # NumPy scalars act like Python scalars (np.float64(2) * t keeps t's float32)
        return op(*[x if isinstance(x, Tensor) else x.item() if isinstance(x, B.xp.generic)
                    else plain(B.xp.asarray(x)) for x in inputs])


_GRAD_SLOT = Tensor.__dict__["grad"]


class Parameter(Tensor):
    """A leaf tensor that a Module registers as one of its parameters.

    When bound to a flat buffer, an optimizer's ``zero_grad`` only marks the gradient as
    zero (``_gzero``) instead of filling it; the autograd engine then writes the first
    gradient straight into the storage, and reading ``.grad`` fills the zeros on demand.
    """

    __slots__ = ("_flat", "_gzero")

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = B.xp.empty(0, dtype=B.get_default_dtype())
        self._gzero = False
        super().__init__(data)
        self._flat = None
        self.requires_grad = bool(requires_grad)
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"Parameter: only floating point tensors can require gradients, "
                               f"got dtype {self.data.dtype}")

    @property
    def grad(self):
        g = _GRAD_SLOT.__get__(self)
        if self._gzero:
            g.data.fill(0)
            self._gzero = False
        return g

    @grad.setter
    def grad(self, value):
        _GRAD_SLOT.__set__(self, value)
        self._gzero = False

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _HookHandle:
    __slots__ = ("hooks", "hook")

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _fn_name(fn):
    """``mul.<locals>.<lambda>`` -> ``MulBackward``; a Function's ``CubeBackward`` stays."""
    name = getattr(fn, "__qualname__", type(fn).__name__)
    if name.endswith("Backward"):
        return name
    outer = name.split(".")[0].strip("_<>")
    return "".join(w.capitalize() for w in outer.split("_")) + "Backward"


def _format_array(data):
    """The body of a tensor's repr, laid out as PyTorch does: floats with 4 decimals, or
    scientific notation when magnitudes span more than 1000x or leave [1e-4, 1e8]; more
    than 1000 elements are summarized to 3 at each edge."""
    np = B.numpy
    arr = data.get() if hasattr(data, "get") else np.asarray(data)
    summarize = arr.size > 1000
    # the format is decided on what is shown
    shown = arr[np.ix_(*[np.r_[0:n] if n <= 6 else np.r_[0:3, n - 3:n] for n in arr.shape])] \
        if summarize else arr
    if arr.dtype.kind != "f":
        width = max(len(str(v)) for v in shown.reshape(-1).tolist())
        fmt = str
    else:
        vals = shown[np.isfinite(shown) & (shown != 0)].astype(np.float64)
        int_mode = bool(np.all(vals == np.ceil(vals)))
        fmt = _whole_number if int_mode else "{:.4f}".format
        width = 1
        if vals.size:
            lo, hi = np.abs(vals).min(), np.abs(vals).max()
            if hi / lo > 1000.0 or hi > 1e8 or (not int_mode and lo < 1e-4):
                fmt = "{:.4e}".format
            width = max(len(fmt(v)) for v in vals.tolist())

    def one(v):
        s = fmt(v)
        return " " * (width - len(s)) + s

    return _nested_str(arr, len("tensor("), summarize, one, width)


def _whole_number(v):
    s = f"{v:.0f}"
    return s if s in ("nan", "inf", "-inf") else s + "."


def _nested_str(a, indent, summarize, one, width):
    if a.ndim == 0:
        return one(a.item())
    n = a.shape[0]
    cut = summarize and n > 6
    if a.ndim == 1:
        items = [one(v) for v in a[:3].tolist()] + [" ..."] + [one(v) for v in a[-3:].tolist()] \
            if cut else [one(v) for v in a.tolist()]
        per_line = max(1, (80 - indent) // (width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = [0, 1, 2, None, n - 3, n - 2, n - 1] if cut else range(n)
    parts = ["..." if i is None else _nested_str(a[i], indent + 1, summarize, one, width)
             for i in rows]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


# ---------------------------------------------------------------- fast constructors
def result(data, parents, fn):
    """A non-leaf tensor recorded in the graph (the op has decided it needs grad)."""
    t = Tensor.__new__(Tensor)
    if data.__class__ is not _ndarray:
        data = B.xp.asarray(data)
    t.data = data
    t.grad = None
    t.requires_grad = True
    t._fn = fn
    t._parents = parents
    t._hooks = None
    t._retain = False
    return t


def plain(data):
    """A tensor that records nothing (no grad needed, or grad mode off)."""
    t = Tensor.__new__(Tensor)
    if data.__class__ is not _ndarray:
        data = B.xp.asarray(data)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._fn = None
    t._parents = ()
    t._hooks = None
    t._retain = False
    return t


def needs_grad(*tensors):
    """True when grad mode is on and any of ``tensors`` requires grad."""
    if not grad_mode.enabled:
        return False
    for t in tensors:
        if t.__class__ is not float and t.__class__ is not int and isinstance(t, Tensor) \
                and t.requires_grad:
            return True
    return False


def _raw_index(index):
    """Unwrap Tensors inside an index (they become arrays) and check index dtypes."""
    if isinstance(index, Tensor):
        return _check_index_array(index.data)
    if isinstance(index, tuple):
        return tuple(_raw_index(i) if isinstance(i, (Tensor, list, tuple)) else
                     (_check_index_array(i) if isinstance(i, _ndarray) else i) for i in index)
    if isinstance(index, list):
        arr = B.xp.asarray(index)
        if arr.size == 0:  # x[[]] selects nothing (an empty list has no dtype to check)
            arr = arr.astype(B.int64)
        return _check_index_array(arr)
    if isinstance(index, _ndarray):
        return _check_index_array(index)
    return index


def _check_index_array(arr):
    if arr.dtype.kind not in "iub":
        raise IndexError(f"index: tensors used as indices must be long, int or bool tensors, "
                         f"got dtype {arr.dtype}")
    return arr


# ---------------------------------------------------------------- creation
def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(int(s) for s in size)


def _finish(arr, requires_grad):
    t = plain(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data``.

    Python floats become the default float dtype (float32), Python ints int64, and
    arrays keep their dtype, as in ``torch.tensor``.
    """
    dtype = B.to_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data.data.astype(dtype) if dtype is not None else data.data.copy()
    elif isinstance(data, (B.xp.ndarray, B.xp.generic)):
        arr = B.xp.array(data, dtype=dtype)
    else:
        arr = B.xp.array(data, dtype=dtype)
        if dtype is None and arr.dtype == B.float64:
            arr = arr.astype(B.get_default_dtype())
    return _finish(arr, requires_grad)


def as_tensor(data, dtype=None):
    """Like :func:`tensor` but without a copy when ``data`` already fits."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == B.to_dtype(dtype)):
        return data
    if isinstance(data, B.xp.ndarray):
        return plain(data if dtype is None else data.astype(B.to_dtype(dtype), copy=False))
    return tensor(data, dtype)


def from_numpy(array):
    """A tensor sharing memory with ``array``."""
    if not isinstance(array, B.xp.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    return plain(array)


def _float_dtype(dtype):
    return B.get_default_dtype() if dtype is None else B.to_dtype(dtype)


def zeros(*size, dtype=None, requires_grad=False):
    return _finish(B.xp.zeros(_size(size), dtype=_float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _finish(B.xp.ones(_size(size), dtype=_float_dtype(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return _finish(B.xp.empty(_size(size), dtype=_float_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    if dtype is None:
        dtype = (B.bool_ if isinstance(fill_value, bool) else
                 B.int64 if isinstance(fill_value, int) else B.get_default_dtype())
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(B.xp.full(size, fill_value, dtype=B.to_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from ``start`` up to ``end`` (excluded) by ``step``: int64 when all three are
    integers, else the default float dtype, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, B.xp.integer)) for v in (start, end, step))
        dtype = B.int64 if is_int else B.get_default_dtype()
    dtype = B.to_dtype(dtype)
    if dtype.kind == "f":
        # start + i * step in float64, then rounded once (a float32 arange drifts)
        arr = B.xp.arange(start, end, step, dtype=B.float64).astype(dtype)
    else:
        arr = B.xp.arange(start, end, step, dtype=dtype)
    return _finish(arr, requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _finish(B.xp.linspace(start, end, steps, dtype=_float_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _finish(B.xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    dtype = _float_dtype(dtype)
    arr = B.rng().random(_size(size), dtype=dtype if dtype != B.float16 else B.float32)
    return _finish(arr.astype(dtype, copy=False), requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    dtype = _float_dtype(dtype)
    arr = B.rng().standard_normal(_size(size), dtype=dtype if dtype != B.float16 else B.float32)
    return _finish(arr.astype(dtype, copy=False), requires_grad)


def randint(low, high=None, size=(), dtype=None):
    """Integers in [low, high); ``randint(high, size)`` as in PyTorch. int64 by default."""
    if isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    size = (size,) if isinstance(size, int) else size
    dtype = B.int64 if dtype is None else B.to_dtype(dtype)
    return plain(B.rng().integers(low, high, size=tuple(size), dtype=dtype))


def randperm(n, dtype=None):
    return plain(B.rng().permutation(n).astype(B.int64 if dtype is None else B.to_dtype(dtype)))


def _like(fn):
    def like(t, dtype=None, requires_grad=False):
        dtype = t.dtype if dtype is None else dtype
        return fn(*t.shape, dtype=dtype, requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape (and, by default, dtype) of ``t``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                requires_grad=requires_grad)


def randint_like(t, low, high=None, dtype=None):
    """Integers in [low, high) with t's shape, in t's dtype (a float tensor gives whole
    floats, as in PyTorch)."""
    dtype = t.dtype if dtype is None else B.to_dtype(dtype)
    ints = randint(low, high, t.shape, dtype=dtype if dtype.kind in "iu" else None)
    return plain(ints.data.astype(dtype, copy=False))
