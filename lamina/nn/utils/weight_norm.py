"""Weight normalization (Salimans & Kingma 2016): w = g * v / ||v||.

As PyTorch's (legacy) ``torch.nn.utils.weight_norm``: the parameter ``name`` is replaced
by ``name + '_g'`` (the magnitude) and ``name + '_v'`` (the direction), and ``module.name``
becomes a plain tensor recomputed from them before every call ``module(x)`` (a forward
pre-hook; an explicit Torch7-style ``module.forward(x)`` uses the last computed weight).
"""
from ... import backend as B
from ... import ops
from ...tensor import Parameter

__all__ = ["weight_norm", "remove_weight_norm"]


def _norm_axes(ndim, dim):
    """Axes the norm runs over: all but ``dim`` (all of them for dim = -1/None)."""
    if dim == -1:
        return tuple(range(ndim))
    return tuple(a for a in range(ndim) if a != dim)


def _norm_except_dim(v, dim):
    """||v|| over all axes but ``dim`` (keepdims); a 0-d array for dim = -1."""
    axes = _norm_axes(v.ndim, dim)
    keep = dim != -1
    return B.xp.sqrt((v * v).sum(axis=axes, keepdims=keep))


class _WeightNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_g, <name>_v``."""

    def __init__(self, name, dim):
        self.name, self.dim = name, dim

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        axes = _norm_axes(v.ndim, self.dim)
        norm = ops.sqrt(ops.sum(v * v, dim=axes, keepdim=self.dim != -1))
        return v * (g / norm)

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name="weight", dim=0):
    """Reparametrise ``module.<name>`` as g * v / ||v||, the norm taken over all dims but
    ``dim`` (over the whole tensor for ``dim=None`` or -1, as in PyTorch's legacy API).
    Creates Parameters ``<name>_g`` (size 1 except along ``dim``; 0-d for the whole-tensor
    norm) initialised to ||w|| and ``<name>_v`` initialised to w. Returns the module."""
    hooks = module.__dict__.get("_forward_pre_hooks") or ()
    for h in hooks:
        if isinstance(h, _WeightNorm) and h.name == name:
            raise RuntimeError(f"weight_norm: cannot register two weight_norm hooks on the "
                               f"same parameter {name}")
    weight = getattr(module, name, None)
    if not isinstance(weight, Parameter):
        raise ValueError(f"weight_norm: {type(module).__name__} has no parameter {name!r}")
    if dim is None:
        dim = -1
    if dim != -1:
        if not -weight.ndim <= dim < weight.ndim:
            raise IndexError(f"weight_norm: dim {dim} is out of range for {name} of shape "
                             f"{tuple(weight.shape)}")
        dim %= weight.ndim
    fn = _WeightNorm(name, dim)
    w = weight.data
    delattr(module, name)
    module.register_parameter(name + "_g", Parameter(_norm_except_dim(w, dim).astype(w.dtype)))
    module.register_parameter(name + "_v", Parameter(w.copy()))
    setattr(module, name, fn.compute_weight(module))
    module.register_forward_pre_hook(fn)
    return module


def remove_weight_norm(module, name="weight"):
    """Undo :func:`weight_norm`: ``module.<name>`` becomes a Parameter again holding the
    current g * v / ||v||; ``<name>_g`` and ``<name>_v`` are removed. Returns the module."""
    hooks = module.__dict__.get("_forward_pre_hooks") or []
    for h in hooks:
        if isinstance(h, _WeightNorm) and h.name == name:
            w = h.compute_weight(module).data
            hooks.remove(h)
            delattr(module, name + "_g")
            delattr(module, name + "_v")
            if name in module.__dict__:
                delattr(module, name)
            setattr(module, name, Parameter(w))
            return module
    raise ValueError(f"weight_norm of {name!r} not found in {module!r}")
