"""Fused loss primitives: softmax cross-entropy and sigmoid binary cross-entropy on logits.

Fusing saves the intermediate softmax/sigmoid node and gives the short, stable gradients
(softmax - onehot) and (sigmoid - target). Other losses are compositions in
:mod:`lamina.nn.functional`.
"""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain, result
from .elementwise import unbroadcast

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy, as ``torch.nn.functional.cross_entropy``.

    logits: (N, C) or (N, C, d1, ...) (or (C,)); target: class indices (N, d1, ...) or
    class probabilities shaped like logits. ``weight`` (C,) rescales classes; with
    reduction='mean' over indices the sum is divided by the total weight of the targets.
    """
    _check_reduction("cross_entropy", reduction)
    xd = logits.data
    td = target.data if isinstance(target, Tensor) else B.xp.asarray(target)
    if xd.ndim == 1:
        xd = xd[None]
        td = td[None] if td.ndim == 0 or td.dtype.kind == "f" else td[None]
    n_class = xd.shape[1]
    wd = None if weight is None else (weight.data if isinstance(weight, Tensor) else
                                      B.xp.asarray(weight))
    # move the class axis last: (N, d1, ..., C)
    x = B.xp.moveaxis(xd, 1, -1) if xd.ndim > 2 else xd
    m = x.max(axis=-1, keepdims=True)
    shifted = x - m
    e = B.xp.exp(shifted)
    s = e.sum(axis=-1, keepdims=True)
    logp = shifted - B.xp.log(s)
    probs_target = td.dtype.kind == "f"
    if probs_target:
        if td.shape != xd.shape:
            raise ValueError(f"cross_entropy: probability targets must have the logits' shape "
                             f"{tuple(xd.shape)}, got {tuple(td.shape)}")
        q = B.xp.moveaxis(td, 1, -1) if td.ndim > 2 else td
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / n_class
        wq = q if wd is None else q * wd
        losses = -(wq * logp).sum(axis=-1)
        denom = losses.size
        valid = None
    else:
        if td.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: target must hold class indices (integer dtype) or "
                            f"probabilities (float), got dtype {td.dtype}")
        if td.shape != x.shape[:-1]:
            raise ValueError(f"cross_entropy: target shape {tuple(td.shape)} does not match "
                             f"logits shape {tuple(xd.shape)} (expected target "
                             f"{tuple(x.shape[:-1])})")
        valid = td != ignore_index
        tsafe = B.xp.where(valid, td, 0)
        if tsafe.size and (tsafe.min() < 0 or tsafe.max() >= n_class):
            raise IndexError(f"cross_entropy: target class out of range [0, {n_class}) "
                             f"(got min {int(tsafe.min())}, max {int(tsafe.max())})")
        picked = B.xp.take_along_axis(logp, tsafe[..., None], axis=-1)[..., 0]
        w_t = valid.astype(x.dtype) if wd is None else wd[tsafe] * valid
        if label_smoothing:
            smooth = -logp.mean(axis=-1) if wd is None else -(logp * wd).sum(-1) / n_class
            losses = (1 - label_smoothing) * (-picked * w_t) + \
                label_smoothing * smooth * (valid if wd is None else valid)
        else:
            losses = -picked * w_t
        denom = w_t.sum()
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses.sum() / denom
    out = B.xp.asarray(out, dtype=xd.dtype)
    if logits.ndim == 1 and reduction == "none":
        out = out.reshape(())
    if not (logits.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = logits.shape

    def backward(g):
        if reduction == "none":
            gl = B.xp.asarray(g).reshape(losses.shape)
        elif reduction == "sum":
            gl = B.xp.broadcast_to(g, losses.shape)
        else:
            gl = B.xp.broadcast_to(g / denom, losses.shape)
        p = e / s
        if probs_target:
            # d/dlogits of -sum_c wq_c logp_c = p * sum_c wq_c - wq
            grad = p * wq.sum(-1, keepdims=True) - wq
        else:
            onehot = B.xp.zeros_like(p)
            B.xp.put_along_axis(onehot, tsafe[..., None], 1, axis=-1)
            grad = (p - onehot) * w_t[..., None]
            if label_smoothing:
                if wd is None:
                    sm = (p - 1.0 / n_class) * valid[..., None]
                else:
                    sm = (p * wd.sum() - wd) / n_class * valid[..., None]
                grad = (1 - label_smoothing) * grad + label_smoothing * sm
        grad = grad * gl[..., None]
        if xd.ndim > 2:
            grad = B.xp.moveaxis(grad, -1, 1)
        return (grad.reshape(shape).astype(xd.dtype, copy=False),)
    return result(out, (logits,), backward)


def binary_cross_entropy_with_logits(logits, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """-[p t log s(x) + (1 - t) log(1 - s(x))], stable for any logit; p = pos_weight."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    xd = logits.data
    td = target.data if isinstance(target, Tensor) else B.xp.asarray(target, dtype=xd.dtype)
    if td.shape != xd.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target size {tuple(td.shape)} must "
                         f"be the same as input size {tuple(xd.shape)}")
    wd = None if weight is None else (weight.data if isinstance(weight, Tensor) else weight)
    pw = None if pos_weight is None else (pos_weight.data if isinstance(pos_weight, Tensor)
                                          else pos_weight)
    # log(1 + exp(-|x|)) keeps both branches finite
    soft = B.xp.log1p(B.xp.exp(-B.xp.abs(xd)))
    log_sig = B.xp.minimum(xd, 0) - soft        # log s(x)
    log_1m_sig = -B.xp.maximum(xd, 0) - soft    # log (1 - s(x))
    pos = td * log_sig if pw is None else pw * td * log_sig
    losses = -(pos + (1 - td) * log_1m_sig)
    if wd is not None:
        losses = losses * wd
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses.mean()
    out = B.xp.asarray(out, dtype=xd.dtype)
    gx = logits.requires_grad and grad_mode.enabled
    gt = isinstance(target, Tensor) and target.requires_grad and grad_mode.enabled
    if not (gx or gt):
        return plain(out)
    n = losses.size
    shape = xd.shape

    def backward(g):
        gl = g if reduction == "none" else (g if reduction == "sum" else g / n)
        sig = B.xp.exp(log_sig)
        gxv = gtv = None
        if gx:
            if pw is None:
                d = sig - td
            else:
                d = (1 - td) * sig - pw * td * (1 - sig)
            if wd is not None:
                d = d * wd
            gxv = B.xp.broadcast_to(gl * d, shape).astype(xd.dtype, copy=False)
        if gt:
            d = -(log_sig - log_1m_sig) if pw is None else -(pw * log_sig - log_1m_sig)
            if wd is not None:
                d = d * wd
            gtv = unbroadcast(B.xp.broadcast_to(gl * d, shape), td.shape)
        return gxv, gtv
    return result(out, (logits if gx else None, target if gt else None), backward)
