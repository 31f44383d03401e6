"""Optimizer base: parameter groups, each backed by one flat buffer.

At construction every group's parameters are bound to contiguous storage
(:func:`lamina.nn.utils.flatten_parameters`), so ``step`` runs a few vectorized
statements per group instead of a Python loop over parameters. Note: with flat buffers,
gradients are zero-filled views after ``zero_grad()`` rather than ``None``, and a
parameter that got no gradient in a step is still updated by momentum and weight decay.
Parameters with ``requires_grad=False`` (frozen) are skipped as in PyTorch: their values
and their slices of the optimizer state are left as they were (a group's step count,
used by bias corrections, still advances: PyTorch counts steps per parameter).

Element-wise updates run through :func:`foreach_chunk`: the flat arrays are walked in
cache-sized chunks (every statement of an update touches a chunk while it is still in
cache), and large groups are split between threads (NumPy releases the GIL inside
ufunc loops), so an update costs a few passes over memory at two cores' speed.
"""
import os
import threading

from .. import backend as B
from .. import parallel
from ..nn.utils.flat import flatten_parameters
from ..tensor import _GRAD_SLOT, Parameter, Tensor


# elements per chunk (measured: 2^17 fastest for Adam on 1.9 M float32, 2 threads)
_CHUNK = 1 << 17
# groups smaller than this are updated by the calling thread alone
_PARALLEL_MIN = 1 << 18
_threads = max(1, min(2, os.cpu_count() or 1))
_local = threading.local()


def set_num_threads(n):
    """Threads that share an optimizer update of a large group (default: min(2, cpus))."""
    global _threads
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {n}")
    _threads = n


def get_num_threads():
    return _threads


def _scratch(k, dtype):
    """This thread's ``k`` scratch rows of ``_CHUNK`` elements (contents undefined)."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(dtype)
    if buf is None or buf.shape[0] < k or buf.shape[1] < _CHUNK:
        buf = bufs[dtype] = B.xp.empty((k, _CHUNK), dtype)
    return buf


def _run_chunks(kernel, lo, hi, k, dtype):
    rows = _scratch(k, dtype)
    for a in range(lo, hi, _CHUNK):
        b = min(a + _CHUNK, hi)
        kernel(a, b, [rows[i, :b - a] for i in range(k)])


def foreach_chunk(kernel, n, dtype, nscratch=2):
    """Call ``kernel(lo, hi, scratch)`` over ``[0, n)`` in chunks of at most ``_CHUNK``
    elements; ``scratch`` is a list of ``nscratch`` arrays of length ``hi - lo``.

    For ``n >= _PARALLEL_MIN`` the range is cut into one contiguous part per thread and
    the parts run concurrently, so the kernel must only write inside ``[lo, hi)``.
    """
    parts = _threads if n >= _PARALLEL_MIN and B.name == "numpy" else 1
    if parts == 1:
        _run_chunks(kernel, 0, n, nscratch, dtype)
        return
    per = -(-n // parts // _CHUNK) * _CHUNK  # chunk-aligned share of each part
    cuts = [min(i * per, n) for i in range(parts + 1)]
    cuts[-1] = n
    parallel.run(lambda i: _run_chunks(kernel, cuts[i], cuts[i + 1], nscratch, dtype), parts)


class Optimizer:
    """Base class. Subclasses implement ``_update(group, data, grad, state)`` on the
    group's flat arrays, and optionally ``_check_group(group)`` (validate
    hyper-parameters, raising ValueError) and ``_prepare(group, data, state)`` (create
    or adjust flat state before an update; runs before frozen slices are saved)."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters "
                            f"or dicts, got a single {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self._flat = []      # per group: (data, grad) flat views
        self._bound = []     # per group: [(param, data view, grad tensor)]
        self._spans = []     # per group: [(param, start, stop)] in the flat arrays
        self.state = {}      # per group index: dict of flat state arrays
        seen = set()
        for g in groups:
            self.add_param_group(g, seen)

    def add_param_group(self, group, _seen=None):
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: can only optimize Parameters, got "
                                f"{type(p).__name__}")
        seen = _seen if _seen is not None else {id(p) for g in self.param_groups
                                                for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             f"parameter group")
        seen.update(id(p) for p in ps)
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)
        self._flat.append(None)
        self._bound.append(None)
        self._spans.append(None)
        self._bind(len(self.param_groups) - 1)

    def _bind(self, i):
        ps = self.param_groups[i]["params"]
        self._flat[i] = flatten_parameters(ps)
        self._bound[i] = [(p, p.data, p.grad) for p in ps]
        spans, seen, off = [], set(), 0
        for p in ps:
            if id(p) not in seen:
                seen.add(id(p))
                spans.append((p, off, off + p.data.size))
                off += p.data.size
        self._spans[i] = spans

    def _group_buffers(self, i):
        """(data, grad) of group i, rebinding first if someone replaced a param's arrays."""
        for p, d, g in self._bound[i]:
            if p.data is not d or _GRAD_SLOT.__get__(p) is not g:
                self._bind(i)
                break
        return self._flat[i]

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient (views of the flat gradient).

        ``set_to_none=True`` (the default, as in PyTorch) resets lazily: each parameter
        is only marked zero, and the next backward writes its gradient straight into the
        storage instead of adding it to a filled zero. ``p.grad`` still reads as zeros,
        but the raw flat gradient array holds stale values until the next backward (as
        PyTorch's grads are None). ``set_to_none=False`` fills the storage with zeros.
        """
        for i in range(len(self.param_groups)):
            _, grad = self._group_buffers(i)
            if set_to_none:
                for p, _, _ in self._bound[i]:
                    p._gzero = True
            else:
                grad.fill(0)
                for p, _, _ in self._bound[i]:
                    p._gzero = False

    def step(self, closure=None):
        loss = None
        if closure is not None:
            from ..grad_mode import enable_grad
            with enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            data, grad = self._group_buffers(i)
            state = self.state.setdefault(i, {})
            frozen = []
            for p, a, b in self._spans[i]:
                if p._gzero:  # no gradient arrived since zero_grad: it is zero
                    grad[a:b] = 0
                    p._gzero = False
                if not p.requires_grad:
                    frozen.append((a, b))
            self._prepare(group, data, state)
            if frozen:
                self._update_skipping(group, data, grad, state, frozen)
            else:
                self._update(group, data, grad, state)
        return loss

    def _update_skipping(self, group, data, grad, state, frozen):
        """``_update``, then put back the frozen spans of the parameters and of every flat
        state array (state created by this update starts at zero there)."""
        def flat_state():
            return {k: v for k, v in state.items()
                    if isinstance(v, B.xp.ndarray) and v.shape == data.shape}
        saved = {k: [v[a:b].copy() for a, b in frozen] for k, v in flat_state().items()}
        saved_data = [data[a:b].copy() for a, b in frozen]
        self._update(group, data, grad, state)
        for (a, b), d in zip(frozen, saved_data):
            data[a:b] = d
        for k, v in flat_state().items():
            for j, (a, b) in enumerate(frozen):
                v[a:b] = saved[k][j] if k in saved else 0

    def _check_group(self, group):
        pass

    def _prepare(self, group, data, state):
        pass

    def _update(self, group, data, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """{"state": {group index: {name: flat array copy}}, "param_groups": [...]}; the
        state is per group (flat), not per parameter as in PyTorch."""
        groups = []
        index = 0
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = list(range(index, index + len(g["params"])))
            index += len(g["params"])
            groups.append(entry)
        state = {i: {k: (v.copy() if isinstance(v, B.xp.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: {len(groups)} parameter "
                             f"groups in the state, {len(self.param_groups)} in the optimizer")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has "
                                 f"{len(theirs['params'])} parameters in the state, "
                                 f"{len(mine['params'])} in the optimizer")
        state = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self.param_groups):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for group {i}, "
                                 f"but the optimizer has {len(self.param_groups)} groups")
            data, _ = self._group_buffers(i)
            entry = {}
            for k, v in s.items():
                if isinstance(v, B.xp.ndarray) and v.ndim == 0 or isinstance(v, B.xp.generic):
                    v = v.item()  # a scalar (step count, scale) saved as an array
                elif isinstance(v, B.xp.ndarray):
                    v = B.xp.array(v, dtype=data.dtype)
                    if v.size != data.size:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state "
                                         f"'{k}' of group {i} has {v.size} elements, the "
                                         f"group's parameters have {data.size}")
                entry[k] = v
            state[i] = entry
        for mine, theirs in zip(self.param_groups, groups):
            mine.update({k: v for k, v in theirs.items() if k != "params"})
        self.state = state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k, v in sorted(g.items()):
                if k != "params":
                    lines.append(f"    {k}: {v}")
        return "\n".join(lines) + "\n)"
