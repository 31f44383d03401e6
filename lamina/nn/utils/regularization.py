"""Weight penalties and constraints over a module's parameters: L1 and L2 penalties (to
add to a loss) and the max-norm constraint of Hinton et al.'s dropout paper."""
from ... import backend as B
from ... import ops
from ...tensor import Tensor, tensor
from ..module import Module

__all__ = ["l1_penalty", "l2_penalty", "max_norm_"]


def _params(op, module_or_params, exclude_biases):
    if isinstance(module_or_params, Module):
        params = list(module_or_params.parameters())
    elif isinstance(module_or_params, Tensor):
        params = [module_or_params]
    else:
        params = list(module_or_params)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected a Module, a Tensor or an iterable of Tensors, got "
                            f"an element of type {type(p).__name__}")
    if exclude_biases:
        params = [p for p in params if p.ndim >= 2]
    return params


def _penalty(op, module_or_params, exclude_biases, term):
    params = [p for p in _params(op, module_or_params, exclude_biases) if p.requires_grad]
    if not params:
        return tensor(0.0)
    total = term(params[0])
    for p in params[1:]:
        total = total + term(p)
    return total


def l1_penalty(module_or_params, exclude_biases=False):
    """sum_p sum |p| over the parameters that require grad (a differentiable 0-d tensor;
    multiply by lambda and add to the loss). ``exclude_biases`` skips parameters with fewer
    than 2 dimensions (biases, normalization scales and shifts)."""
    return _penalty("l1_penalty", module_or_params, exclude_biases,
                    lambda p: ops.abs(p).sum())


def l2_penalty(module_or_params, exclude_biases=False):
    """sum_p sum p^2 over the parameters that require grad (no factor 1/2: its gradient is
    2 p, so ``lam * l2_penalty`` equals SGD weight decay 2 * lam). ``exclude_biases`` skips
    parameters with fewer than 2 dimensions."""
    return _penalty("l2_penalty", module_or_params, exclude_biases, lambda p: (p * p).sum())


def max_norm_(module_or_params, max_norm, dim=0, norm_type=2.0):
    """Max-norm constraint, in place: every slice ``w[i]`` along ``dim`` (a Linear row = a
    unit's incoming weights, a Conv filter) whose ``norm_type`` norm exceeds ``max_norm``
    is rescaled to norm max_norm (by max_norm / (norm + 1e-7), as ``torch.renorm``).

    A Module constrains its parameters with at least 2 dimensions (biases are left alone);
    given tensors are all constrained. Call after each optimizer step. Returns the input.
    """
    if max_norm < 0:
        raise ValueError(f"max_norm_: max_norm must be non-negative, got {max_norm}")
    params = _params("max_norm_", module_or_params, isinstance(module_or_params, Module))
    for p in params:
        w = p.data
        if w.ndim == 0:
            raise ValueError("max_norm_: cannot constrain a 0-d tensor")
        d = dim % w.ndim
        axes = tuple(a for a in range(w.ndim) if a != d)
        a = B.xp.abs(w)
        if norm_type == 2:
            norms = B.xp.sqrt((a * a).sum(axis=axes, keepdims=True))
        elif norm_type == float("inf"):
            norms = a.max(axis=axes, keepdims=True) if axes else a
        else:
            norms = (a ** norm_type).sum(axis=axes, keepdims=True) ** (1.0 / norm_type)
        big = norms > max_norm
        if big.any():
            w *= B.xp.where(big, max_norm / (norms + 1e-7), 1).astype(w.dtype, copy=False)
    return module_or_params
