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
from .. import grad_mode
from ..autograd.engine import execute
from ..tensor import Parameter, Tensor, plain, result

# depth of module calls in progress; an explicit top-level ``net.forward(x)`` (depth 0)
# records what ``net.backward(x, grad_out)`` needs
_call_depth = 0


def _identity_backward(g):
    return (g,)


def _torch7_forward(raw_forward):
    """Wrap a subclass's ``forward`` so that an explicit top-level ``net.forward(x)`` records
    what ``net.backward(x, grad_out)`` needs: every float array/Tensor argument is replaced by
    a node whose ``.grad`` will hold d loss / d input. A Tensor that is already part of a
    graph stays connected to it (through an identity node), so ``loss.backward()`` after an
    explicit ``forward`` still reaches everything upstream. ``net(x)`` does none of this."""
    def forward(self, *args, **kwargs):
        global _call_depth
        if _call_depth:
            return raw_forward(self, *args, **kwargs)
        nodes = []
        call_args = []
        for a in args:
            node = None
            if isinstance(a, (Tensor, B.xp.ndarray)):
                arr = a.data if isinstance(a, Tensor) else a
                if arr.dtype.kind == "f":
                    if isinstance(a, Tensor) and a.requires_grad and grad_mode.enabled:
                        node = result(arr, (a,), _identity_backward)
                        node._retain = True
                    else:
                        node = plain(arr)
                        node.requires_grad = True
                else:
                    node = a if isinstance(a, Tensor) else plain(arr)
                call_args.append(node)
            else:
                call_args.append(a)
            nodes.append(node)
        _call_depth += 1
        try:
            out = raw_forward(self, *call_args, **kwargs)
        finally:
            _call_depth -= 1
        object.__setattr__(self, "_torch7", (args, nodes, out))
        return out
    forward.__wrapped__ = raw_forward
    forward.__doc__ = raw_forward.__doc__
    forward.__name__ = "forward"
    forward.__qualname__ = raw_forward.__qualname__
    return forward


class Module:
    """Base class of layers and networks. Subclasses define ``forward``."""

    _torch7 = None
    _forward_pre_hooks = None  # set per instance by register_forward_pre_hook

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
            if isinstance(value, (Tensor, Module)):
                raise AttributeError(f"{type(self).__name__}: cannot assign {name!r} before "
                                     f"Module.__init__() call (call super().__init__() first)")
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Parameter):
            self._enter("_param_names", name)
        elif isinstance(value, Module):
            self._enter("_module_names", name)
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

    def _enter(self, kind, name):
        """Register ``name`` under ``kind``; a name re-registered keeps its place, as in torch."""
        if name not in self.__dict__[kind]:
            self._forget(name)
            self.__dict__[kind][name] = None

    def _forget(self, name):
        d = self.__dict__
        for key in ("_param_names", "_buffer_names", "_module_names"):
            d[key].pop(name, None)
        d["_non_persistent"].discard(name)

    def __getattr__(self, name):
        # only reached when normal lookup fails
        if name in ("_param_names", "_buffer_names", "_module_names", "_non_persistent",
                    "_forward_hooks", "training"):
            raise AttributeError(f"{type(self).__name__}: Module.__init__() was not called "
                                 f"(call super().__init__() at the start of __init__)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        self._forget(name)
        object.__delattr__(self, name)

    def _check_name(self, what, name):
        if "_param_names" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: cannot {what} before "
                                 f"Module.__init__() call (call super().__init__() first)")
        if not isinstance(name, str):
            raise TypeError(f"{what}: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{what}: name {name!r} must be non-empty and contain no '.'")

    def register_parameter(self, name, param):
        self._check_name("register_parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._enter("_param_names", name)
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not a parameter (e.g. running means); saved in the
        state dict unless ``persistent=False``."""
        self._check_name("register_buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = plain(B.xp.asarray(tensor))
        self._enter("_buffer_names", name)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        self._check_name("add_module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._enter("_module_names", name)
        object.__setattr__(self, name, module)

    register_module = add_module

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        global _call_depth
        _call_depth += 1
        try:
            if self._forward_pre_hooks:
                for hook in list(self._forward_pre_hooks):
                    r = hook(self, args)
                    if r is not None:
                        args = r if isinstance(r, tuple) else (r,)
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

    def register_forward_pre_hook(self, hook):
        """``hook(module, inputs)`` before every call; a returned value replaces the inputs
        (a tuple, or a single input). Returns a handle with ``.remove()``."""
        if self._forward_pre_hooks is None:
            self.__dict__["_forward_pre_hooks"] = []
        hooks = self._forward_pre_hooks
        hooks.append(hook)

        class Handle:
            def remove(self_):
                if hook in hooks:
                    hooks.remove(hook)
        return Handle()

    def backward(self, input, grad_output):
        """Torch7's ``backward``: after ``out = self.forward(input)``, accumulate parameter
        gradients for ``grad_output`` (d loss / d out, same structure as ``out``) and return
        d loss / d input: an array for an array input, a Tensor for a Tensor input (a tuple
        when forward took several; None for non-float inputs). Stops at the input: nothing
        upstream of a graph-connected input receives gradient."""
        name = type(self).__name__
        rec = self._torch7
        if rec is None:
            raise RuntimeError(f"{name}.backward: call forward(input) first (an explicit "
                               f".forward(input), not module(input)); each forward allows "
                               f"one backward")
        args, nodes, out = rec
        inputs = input if isinstance(input, tuple) else (input,)
        given = [a for a, n in zip(args, nodes) if n is not None]
        if len(inputs) != len(given) or any(i is not a for i, a in zip(inputs, given)):
            raise RuntimeError(f"{name}.backward: input is not the one given to the last "
                               f"forward() (backward must get the very same input object)")
        outs = out if isinstance(out, (tuple, list)) else (out,)
        gouts = grad_output if isinstance(grad_output, (tuple, list)) else (grad_output,)
        if len(outs) != len(gouts):
            raise RuntimeError(f"{name}.backward: forward returned {len(outs)} outputs but "
                               f"{len(gouts)} output gradients were given")
        roots, root_grads = [], []
        for o, g in zip(outs, gouts):
            if not isinstance(o, Tensor) or not o.requires_grad:
                continue
            g = g.data if isinstance(g, Tensor) else B.xp.asarray(g, dtype=o.dtype)
            if g.shape != o.shape:
                raise RuntimeError(f"{name}.backward: grad_output of shape {tuple(g.shape)} "
                                   f"does not match the output shape {tuple(o.shape)}")
            roots.append(o)
            root_grads.append(g)
        if not roots:
            raise RuntimeError(f"{name}.backward: the output does not depend on anything "
                               f"that requires grad")
        object.__setattr__(self, "_torch7", None)
        for n in nodes:
            if n is not None and n._fn is _identity_backward:
                n._fn, n._parents = None, ()      # stop at the input (Torch7's gradInput)
        execute(roots, root_grads)
        grads = []
        for a, n in zip(args, nodes):
            if n is None:
                continue
            if not n.requires_grad:
                grads.append(None)
                continue
            g = n.grad if n.grad is not None else plain(B.xp.zeros_like(n.data))
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

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) pairs, self first, depth-first in registration order; a
        module reachable along several paths appears once unless ``remove_duplicate=False``."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
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
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else [(prefix, self)])
        for mname, m in mods:
            for n in getattr(m, kind):
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

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffer_names", prefix, recurse, remove_duplicate)

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
        """Set ``training`` on self and (through their own ``train``) all submodules."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {type(mode).__name__}")
        self.__dict__["training"] = mode
        for m in self.children():
            m.train(mode)
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
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.to: only floating-point dtypes are "
                            f"accepted, got {dtype}")
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
        """Ordered {dotted name: Tensor} of parameters and persistent buffers, sharing memory
        with them. As in PyTorch, a tensor shared by several modules appears under each of
        its names (so keys match the equivalent torch model)."""
        out = OrderedDict()
        for mname, m in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
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
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): " + repr(m).replace("\n", "\n  ")
                    for name, m in self.named_children()]
        head = f"{type(self).__name__}("
        if len(lines) == 1 and not children:
            return head + lines[0] + ")"
        lines += children
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

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
