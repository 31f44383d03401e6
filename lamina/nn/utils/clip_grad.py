"""Gradient clipping, as ``torch.nn.utils``: by global norm and by value (in place)."""
import math

from ... import backend as B
from ...tensor import Parameter, Tensor, plain

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _grads(parameters):
    """The gradient arrays of ``parameters`` (a Tensor or an iterable of them), skipping
    None gradients and lazily-zeroed ones (they contribute nothing and need no scaling)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    out = []
    for p in parameters:
        if isinstance(p, Parameter) and p._gzero:
            continue
        g = p.grad
        if g is not None:
            out.append(g.data)
    return out


def _norm(a, p):
    xp = B.xp
    if p == 2.0:
        v = a.reshape(-1)
        return xp.sqrt(xp.dot(v, v))
    if math.isinf(p):
        return xp.abs(a).max() if p > 0 else xp.abs(a).min()
    if p == 1.0:
        return xp.abs(a).sum()
    if p == 0:
        return xp.asarray((a != 0).sum(), dtype=a.dtype)
    return (xp.abs(a) ** p).sum() ** (1.0 / p)


def _total(arrays, norm_type):
    norm_type = float(norm_type)
    if not arrays:
        return B.xp.asarray(0.0, dtype=B.get_default_dtype())
    dt = arrays[0].dtype
    norms = B.xp.stack([B.xp.asarray(_norm(a, norm_type), dtype=dt) for a in arrays])
    return B.xp.asarray(_norm(norms, norm_type), dtype=dt)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the norms of ``tensors`` (a Tensor or an iterable of Tensors): the
    norm of all their elements concatenated. Returns a 0-d Tensor."""
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    arrays = [t.data for t in tensors if t is not None]
    total = _total(arrays, norm_type)
    if error_if_nonfinite and not B.xp.isfinite(total):
        raise RuntimeError(f"get_total_norm: the total norm of order {float(norm_type)} is "
                           f"non-finite ({float(total)}); set error_if_nonfinite=False to "
                           f"skip this check")
    return plain(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients in place by min(1, max_norm / (total_norm + 1e-6))."""
    arrays = _grads(parameters)
    if not arrays:
        return
    tn = total_norm.data if isinstance(total_norm, Tensor) else B.xp.asarray(total_norm)
    dt = arrays[0].dtype
    coef = B.xp.minimum(B.xp.asarray(max_norm, dtype=dt) / (tn.astype(dt) + dt.type(1e-6)),
                        dt.type(1.0))
    with B.xp.errstate(invalid="ignore"):  # inf * 0 -> nan, as in torch
        for g in arrays:
            B.xp.multiply(g, coef.astype(g.dtype), out=g)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Rescale the gradients of ``parameters`` in place so their global norm (of order
    ``norm_type``, ``inf`` for max-abs) is at most ``max_norm``: every gradient is multiplied
    by min(1, max_norm / (total_norm + 1e-6)). Parameters without a gradient are skipped.
    Returns the total norm before clipping as a 0-d Tensor. With ``error_if_nonfinite`` a
    nan/inf total norm raises RuntimeError instead of clipping."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        parameters = list(parameters)
    arrays = _grads(parameters)
    if not arrays:
        return plain(B.xp.asarray(0.0, dtype=B.get_default_dtype()))
    total = _total(arrays, norm_type)
    if error_if_nonfinite and not B.xp.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {float(norm_type)} for "
                           f"gradients from `parameters` is non-finite ({float(total)}), so it "
                           f"cannot be clipped; set error_if_nonfinite=False to skip this check")
    clip_grads_with_norm_(parameters, max_norm, total)
    return plain(total)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` in place to [-clip_value, clip_value]."""
    v = float(clip_value)
    for g in _grads(parameters):
        B.xp.clip(g, -v, v, out=g)
