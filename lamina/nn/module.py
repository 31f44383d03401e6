"""Module: the unit networks are assembled from.

Parameters, buffers and submodules are registered by attribute assignment and stored as
ordinary attributes (so reading ``self.weight`` costs nothing extra); their names are kept
in ``_param_names``, ``_buffer_names`` and ``_module_names`` in registration order.

Two ways to run a module:
- PyTorch's: ``out = net(x)`` then ``loss.backward()``;
- Torch7's: ``out = net.forward(x)`` then ``grad_x = net.backward(x, grad_out)``, which
  accumulates parameter gradients and returns the gradient with respect to the input.
"""
from collections import OrderedDict

from .. import backend as B
from ..tensor import Parameter, Tensor, plain

# depth of module calls in progress; an explicit top-level ``net.forward(x)`` (depth 0)
# records what ``net.backward(x, grad_out)`` needs
_call_depth = 0


def _torch7_forward(raw_forward):
    def forward(self, *args, **kwargs):
        global _call_depth
        if _call_depth:
            return raw_forward(self, *args, **kwargs)
        leaves = []
        call_args = []
        for a in args:
            if isinstance(a, (Tensor, B.xp.ndarray)):
                arr = a.data if isinstance(a, Tensor) else a
                leaf = plain(arr)
                if arr.dtype.kind == "f":
                    leaf.requires_grad_(True)
                leaves.append(leaf)
                call_args.append(leaf)
            else:
                call_args.append(a)
        _call_depth += 1
        try:
            out = raw_forward(self, *call_args, **kwargs)
        finally:
            _call_depth -= 1
        object.__setattr__(self, "_torch7", (args, leaves, out))
        return out
    forward.__wrapped__ = raw_forward
    forward.__doc__ = raw_forward.__doc__
    forward.__name__ = "forward"
    return forward


class Module:
    """Base class of layers and networks. Subclasses define ``forward``."""

    _torch7 = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raw = cls.__dict__["forward"]
            cls._raw_forward = raw
            cls.forward = _torch7_forward(raw)

    def __init__(self):
        d = self.__dict__
        d["_param_names"] = {}
        d["_buffer_names"] = {}
        d["_module_names"] = {}
        d["_non_persistent"] = set()
        d["training"] = True
        d["_forward_hooks"] = None

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_param_names" not in d:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes (while setting {name!r})")
        if isinstance(value, Parameter):
            self._forget(name)
            d["_param_names"][name] = None
        elif isinstance(value, Module):
            self._forget(name)
            d["_module_names"][name] = None
        elif name in d["_param_names"]:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as parameter {name!r} (a Parameter or None is required)")
        elif name in d["_buffer_names"]:
            if value is not None and not isinstance(value, Tensor):
                value = plain(B.xp.asarray(value))
        elif name in d["_module_names"]:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} "
                                f"as child module {name!r} (a Module or None is required)")
        object.__setattr__(self, name, value)

    def _forget(self, name):
        d = self.__dict__
        for key in ("_param_names", "_buffer_names", "_module_names"):
            d[key].pop(name, None)

    def __delattr__(self, name):
        self._forget(name)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name)
        self.__dict__["_param_names"][name] = None
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (e.g. running means); saved in the
        state dict unless ``persistent=False``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = plain(B.xp.asarray(tensor))
        self._forget(name)
        self.__dict__["_buffer_names"][name] = None
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._forget(name)
        self.__dict__["_module_names"][name] = None
        object.__setattr__(self, name, module)

    register_module = add_module

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        global _call_depth
        _call_depth += 1
        try:
            out = self._raw_forward(*args, **kwargs)
            if self._forward_hooks:
                for hook in list(self._forward_hooks):
                    r = hook(self, args, out)
                    if r is not None:
                        out = r
            return out
        finally:
            _call_depth -= 1

    _raw_forward = forward

    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` after every call; a returned value replaces output."""
        if self._forward_hooks is None:
            self.__dict__["_forward_hooks"] = []
        self._forward_hooks.append(hook)
        hooks = self._forward_hooks

        class Handle:
            def remove(self_):
                if hook in hooks:
                    hooks.remove(hook)
        return Handle()

    def backward(self, input, grad_output):
        """Torch7's ``backward``: after ``out = self.forward(input)``, accumulate parameter
        gradients for ``grad_output`` (d loss / d out) and return d loss / d input."""
        rec = self._torch7
        if rec is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward(input) first (an "
                               f"explicit .forward, not module(input))")
        args, leaves, out = rec
        inputs = input if isinstance(input, tuple) else (input,)
        if len(inputs) != len([a for a in args if isinstance(a, (Tensor, B.xp.ndarray))]) or \
                any(i is not a for i, a in zip(inputs, args)):
            raise RuntimeError(f"{type(self).__name__}.backward: input is not the one given to "
                               f"the last forward()")
        object.__setattr__(self, "_torch7", None)
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise RuntimeError(f"{type(self).__name__}.backward: the output does not depend on "
                               f"anything that requires grad")
        out.backward(grad_output)
        grads = []
        for a, leaf in zip(args, leaves):
            g = leaf.grad if leaf.grad is not None else plain(B.xp.zeros_like(leaf.data))
            grads.append(g if isinstance(a, Tensor) else g.data)
        return grads[0] if len(grads) == 1 else tuple(grads)

    # ------------------------------------------------------------ traversal
    def named_children(self):
        for name in self._module_names:
            m = self.__dict__[name]
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in memo:
                continue
            memo.add(id(m))
            yield name, m
            kids = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def _named_members(self, kind, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for n in m.__dict__[kind]:
                v = m.__dict__[n]
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mname}.{n}" if mname else n), v

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a shared parameter appears once."""
        return self._named_members("_param_names", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffer_names", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes and dtypes
    def train(self, mode=True):
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear parameter gradients. Gradients bound to a flat buffer are zeroed in place
        (they stay views of it) whatever ``set_to_none`` says."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if p._flat is not None or not set_to_none:
                p.grad.data.fill(0)
            else:
                p.grad = None

    def to(self, *args, dtype=None, **kwargs):
        """Convert floating-point parameters and buffers to ``dtype`` (device strings are
        accepted and ignored). Create optimizers after converting."""
        for a in args:
            if not (isinstance(a, str) and a in ("cpu", "cuda")):
                dtype = a
        if dtype is None:
            return self
        dtype = B.to_dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if t.data.dtype.kind == "f" and t.data.dtype != dtype:
                t.data = t.data.astype(dtype)
                if isinstance(t, Parameter):
                    t._flat = None
                if t.grad is not None:
                    t.grad = plain(t.grad.data.astype(dtype))
        return self

    def float(self):
        return self.to(B.float32)

    def double(self):
        return self.to(B.float64)

    def half(self):
        return self.to(B.float16)

    # ------------------------------------------------------------ state
    def state_dict(self, prefix="", keep_vars=False):
        """Ordered {dotted name: Tensor} of parameters and persistent buffers."""
        out = OrderedDict()
        for mname, m in self.named_modules(prefix=prefix.rstrip(".")):
            for kind in ("_param_names", "_buffer_names"):
                for n in m.__dict__[kind]:
                    if kind == "_buffer_names" and n in m._non_persistent:
                        continue
                    v = m.__dict__[n]
                    if v is None:
                        continue
                    key = f"{mname}.{n}" if mname else n
                    out[key] = v if keep_vars else plain(v.data)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values (Tensors or arrays) into the parameters and buffers, in place.

        Everything is checked first; on any mismatch a KeyError/ValueError lists the
        missing keys, unexpected keys and shape differences, and nothing changes.
        Returns ``(missing_keys, unexpected_keys)`` when ``strict=False``.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        wrong = []
        values = {}
        for k, v in state_dict.items():
            if k not in own:
                continue
            arr = v.data if isinstance(v, Tensor) else B.xp.asarray(v)
            if tuple(arr.shape) != tuple(own[k].shape):
                wrong.append(f"{k}: checkpoint shape {tuple(arr.shape)}, model shape "
                             f"{tuple(own[k].shape)}")
            values[k] = arr
        if wrong or (strict and (missing or unexpected)):
            lines = [f"Error(s) in loading state_dict for {type(self).__name__}:"]
            if missing and strict:
                lines.append("  missing keys: " + ", ".join(missing))
            if unexpected and strict:
                lines.append("  unexpected keys: " + ", ".join(unexpected))
            if wrong:
                lines.append("  size mismatch: " + "; ".join(wrong))
            raise RuntimeError("\n".join(lines))
        for k, arr in values.items():
            target = own[k]
            target.data[...] = arr.astype(target.data.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ display
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self.named_children():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()))


class _IncompatibleKeys(tuple):
    def __new__(cls, missing, unexpected):
        return super().__new__(cls, (missing, unexpected))

    @property
    def missing_keys(self):
        return self[0]

    @property
    def unexpected_keys(self):
        return self[1]
