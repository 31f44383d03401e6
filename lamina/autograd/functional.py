"""Gradients as values: ``autograd.grad`` (PyTorch), ``lamina.grad`` and ``value_and_grad``
(JAX/Theano)."""
import functools

from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain
from .engine import _check_root, execute


def grad(outputs, inputs, grad_outputs=None, retain_graph=False, allow_unused=False,
         create_graph=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    ``outputs``: a Tensor or sequence; ``grad_outputs`` the matching vectors (None for
    scalars). Returns a tuple of Tensors, one per input.
    """
    if create_graph:
        raise NotImplementedError("autograd.grad: create_graph=True (higher-order gradients) "
                                  "is not supported yet")
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"autograd.grad: got {len(grad_outputs)} grad_outputs for "
                         f"{len(outputs)} outputs")
    gs = [_check_root(o, g) for o, g in zip(outputs, grad_outputs)]
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} (shape {tuple(t.shape)}) does not "
                               f"require grad")
    got = execute(outputs, gs, retain_graph, capture=inputs)
    res = []
    for i, (t, g) in enumerate(zip(inputs, got)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"autograd.grad: input {i} (shape {tuple(t.shape)}) was not "
                                   f"used to compute the outputs; pass allow_unused=True")
            res.append(None)
        else:
            res.append(plain(g.astype(t.dtype, copy=False)))
    return tuple(res)


def _prepare(args, argnums):
    """Leaves for the differentiated arguments; other arrays become constant tensors so
    that ``f`` sees Tensors throughout (as JAX's ``grad`` traces every argument)."""
    call_args = [plain(a) if isinstance(a, B.xp.ndarray) else a for a in args]
    leaves = []
    for i in argnums:
        if i >= len(args):
            raise ValueError(f"grad: argnums contains {i} but the function got {len(args)} "
                             f"arguments")
        a = args[i]
        arr = a.data if isinstance(a, Tensor) else B.xp.asarray(a)
        if arr.dtype.kind != "f" or not isinstance(a, (Tensor, B.xp.ndarray, B.xp.generic)):
            # ints, bools and Python numbers/lists differentiate in the default float dtype
            arr = arr.astype(B.get_default_dtype())
        leaf = plain(arr).requires_grad_(True)
        leaves.append(leaf)
        call_args[i] = leaf
    return leaves, call_args


def value_and_grad(f, argnums=0, has_aux=False):
    """``value_and_grad(f)(*args) -> (f(*args), df/dargs[argnums])``, as in JAX.

    ``f`` must return a one-element Tensor (or ``(value, aux)`` with ``has_aux``). Each
    gradient is a Tensor when the argument was a Tensor and an array otherwise.
    """
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        leaves, call_args = _prepare(args, nums)
        with grad_mode.enable_grad():  # works inside no_grad too, as JAX's grad does
            out = f(*call_args, **kwargs)
        value, aux = out if has_aux else (out, None)
        if not isinstance(value, Tensor) or value.data.size != 1:
            raise TypeError("grad: the function must return a one-element Tensor, got "
                            f"{type(value).__name__} {getattr(value, 'shape', '')}")
        if value.requires_grad:
            gs = execute((value,), (_check_root(value, None),), capture=leaves)
        else:  # f does not depend on the arguments: zero gradients, as in JAX
            gs = [None] * len(leaves)
        res = []
        for i, leaf, g in zip(nums, leaves, gs):
            g = B.xp.zeros_like(leaf.data) if g is None else g.astype(leaf.dtype, copy=False)
            res.append(plain(g) if isinstance(args[i], Tensor) else g)
        gout = res[0] if single else tuple(res)
        return ((value, aux), gout) if has_aux else (value, gout)

    return wrapped


def grad_of(f, argnums=0, has_aux=False):
    """``lamina.grad(f)(*args)``: the gradient of a scalar function, as in JAX's ``grad``."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped
