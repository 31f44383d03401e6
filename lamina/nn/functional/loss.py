"""Loss functions, with ``torch.nn.functional``'s names, argument order (less the deprecated
``size_average``/``reduce``) and defaults; ``reduction`` is 'mean' | 'sum' | 'none'.

The fused ones (cross_entropy, nll_loss, the binary cross-entropies, kl_div,
multi_margin_loss) are primitives in :mod:`lamina.ops.loss`; the rest are compositions of
ops (no backward code). Where PyTorch silently broadcasts an input against a target of
another shape, lamina raises a ValueError naming the loss and both shapes: that broadcast
is almost always a bug.
"""
import math

from ... import backend as B
from ... import ops
from ...tensor import Tensor, plain
from ...ops import norm as _norm
from ...ops.loss import (_check_reduction, binary_cross_entropy,
                         binary_cross_entropy_with_logits, clamp_min_pass_through,
                         cross_entropy, kl_div, multi_margin_loss, nll_loss)

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "binary_cross_entropy",
           "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "soft_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss",
           "hinge_embedding_loss", "margin_ranking_loss", "pairwise_distance",
           "triplet_margin_loss", "cosine_embedding_loss", "kl_div", "gaussian_nll_loss",
           "weighted_sum_losses"]


# ---------------------------------------------------------------- helpers
def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _tensor(x, like):
    """``x`` as a Tensor; arrays and numbers become constants in ``like``'s dtype."""
    if isinstance(x, Tensor):
        return x
    return plain(B.xp.asarray(x, dtype=like.dtype))


def _check_float(op, name, t):
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {t.dtype}")


def _pair(op, input, target, reduction, float_target=True):
    """Validate an elementwise loss's arguments; returns the target as a Tensor."""
    _check_reduction(op, reduction)
    target = _tensor(target, input)
    _check_float(op, "input", input)
    if float_target:
        _check_float(op, "target", target)
    if input.shape != target.shape:
        raise ValueError(f"{op}: target shape {tuple(target.shape)} must match input shape "
                         f"{tuple(input.shape)}")
    return target


def _same_ndim(op, names, tensors):
    """Inputs with one number of dimensions whose shapes broadcast together."""
    shapes = [tuple(t.shape) for t in tensors]
    desc = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
    if len({len(s) for s in shapes}) != 1:
        raise ValueError(f"{op}: inputs must have the same number of dimensions, got {desc}")
    try:
        B.xp.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: input shapes do not broadcast: {desc}") from None


def _weighted(op, losses, weight, input, reduction, mean_by_weight):
    """Elementwise losses times ``weight`` (shaped like the input), reduced as PyTorch
    2.13 does: mse/l1 divide a weighted 'mean' by sum(weight), huber by the count."""
    weight = _tensor(weight, input)
    if weight.shape != input.shape:
        raise ValueError(f"{op}: weight shape {tuple(weight.shape)} must match input shape "
                         f"{tuple(input.shape)}")
    losses = losses * weight
    if reduction == "mean" and mean_by_weight:
        return losses.sum() / weight.sum()
    return _reduce(losses, reduction)


# ---------------------------------------------------------------- regression
def mse_loss(input, target, reduction="mean", weight=None):
    """Squared error (input - target)**2 between same-shaped tensors, reduced; with
    ``weight`` (input's shape) 'mean' is sum(w * l) / sum(w)."""
    target = _pair("mse_loss", input, target, reduction)
    d = input - target
    losses = d * d
    if weight is not None:
        return _weighted("mse_loss", losses, weight, input, reduction, True)
    return _reduce(losses, reduction)


def l1_loss(input, target, reduction="mean", weight=None):
    """Absolute error |input - target| between same-shaped tensors, reduced; with
    ``weight`` (input's shape) 'mean' is sum(w * l) / sum(w)."""
    target = _pair("l1_loss", input, target, reduction)
    losses = ops.abs(input - target)
    if weight is not None:
        return _weighted("l1_loss", losses, weight, input, reduction, True)
    return _reduce(losses, reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta=0
    is the L1 loss. The slope is continuous, so it is robust to outliers like L1 and
    smooth at 0 like L2 (Fast R-CNN's box regression loss)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    target = _pair("smooth_l1_loss", input, target, reduction)
    if beta == 0:
        return _reduce(ops.abs(input - target), reduction)
    d = input - target
    ad = ops.abs(d)
    losses = ops.where(ad.data < beta, d * d * (0.5 / beta), ad - 0.5 * beta)
    return _reduce(losses, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1_loss times
    delta. ``weight`` (input's shape) multiplies the terms; 'mean' divides by the count."""
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    target = _pair("huber_loss", input, target, reduction)
    d = input - target
    ad = ops.abs(d)
    losses = ops.where(ad.data < delta, d * d * 0.5, (ad - 0.5 * delta) * delta)
    if weight is not None:
        return _weighted("huber_loss", losses, weight, input, reduction, False)
    return _reduce(losses, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log-likelihood of ``target`` under N(input, var):
    0.5 (log v + (input - target)^2 / v) [+ 0.5 log 2 pi with ``full``], v = max(var, eps).

    ``var``: input's shape (heteroscedastic), input's shape less the last dimension or
    with one dimension of size 1 (homoscedastic along it), or a positive number. As in
    PyTorch, the clamp at eps does not block var's gradient.
    """
    op = "gaussian_nll_loss"
    target = _pair(op, input, target, reduction)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError(f"{op}: var must be non-negative, got {var}")
        var = plain(B.xp.full(input.shape, var, dtype=input.dtype))
    else:
        var = _tensor(var, input)
        _check_float(op, "var", var)
        if var.data.size and var.data.min() < 0:
            raise ValueError(f"{op}: var has negative entries")
    ishape, vshape = tuple(input.shape), tuple(var.shape)
    if vshape != ishape:
        if ishape[:-1] == vshape:
            var = ops.unsqueeze(var, -1)
        elif not (len(vshape) == len(ishape) and
                  sum(v for i, v in zip(ishape, vshape) if i != v) == 1):
            raise ValueError(f"{op}: var shape {vshape} does not fit input shape {ishape} "
                             f"(expected {ishape}, {ishape[:-1]}, or {ishape} with one "
                             f"dimension set to 1)")
    v = clamp_min_pass_through(var, eps)
    d = input - target
    losses = (ops.log(v) + d * d / v) * 0.5
    if full:
        losses = losses + 0.5 * math.log(2 * math.pi)
    return _reduce(losses, reduction)


# ---------------------------------------------------------------- classification margins
def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-y x)) for labels y = +-1 (a smooth two-class hinge), computed without
    overflow for any y x."""
    target = _pair("soft_margin_loss", input, target, reduction, float_target=False)
    z = input * target
    return binary_cross_entropy_with_logits(z, plain(B.xp.ones(z.shape, dtype=z.dtype)),
                                            reduction=reduction)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    """Multi-label one-vs-all loss on logits (N, C) with 0/1 targets (N, C): the mean over
    classes of the binary cross-entropies, one value per sample, then reduced."""
    op = "multilabel_soft_margin_loss"
    target = _pair(op, input, target, reduction, float_target=False)
    if target.dtype != input.dtype:
        target = ops.cast(target, input.dtype)
    losses = binary_cross_entropy_with_logits(input, target, reduction="none")
    if weight is not None:
        losses = losses * _tensor(weight, input)
    return _reduce(losses.mean(-1), reduction)


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """x where y = 1 and max(0, margin - x) where y = -1 (x: e.g. a distance between a
    pair, y: similar +1 / dissimilar -1). As in PyTorch, labels other than +-1 get both
    terms."""
    op = "hinge_embedding_loss"
    target = _pair(op, input, target, reduction, float_target=False)
    td = target.data
    hinge = ops.clamp(margin - input, min=0)
    losses = ops.where(td != 1, hinge, 0) + ops.where(td != -1, input, 0)
    return _reduce(losses, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """max(0, -y (x1 - x2) + margin): y = 1 asks x1 to rank above x2 by ``margin``,
    y = -1 the reverse. The three tensors have one number of dimensions and broadcast."""
    op = "margin_ranking_loss"
    _check_reduction(op, reduction)
    target = _tensor(target, input1)
    _same_ndim(op, ("input1", "input2", "target"), (input1, input2, target))
    return _reduce(ops.clamp((input2 - input1) * target + margin, min=0), reduction)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dimension, as ``torch.nn.functional.pairwise_distance``."""
    dim = max(x1.ndim, x2.ndim) - 1
    return _norm(x1 - x2 + eps, p, dim=dim, keepdim=keepdim)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)) with d the pairwise p-distance over the last
    dimension (inputs (N, D) or (D,)). ``swap`` uses min(d(a, n), d(p, n)) as the negative
    distance (Balntas et al., 2016)."""
    op = "triplet_margin_loss"
    _check_reduction(op, reduction)
    _same_ndim(op, ("anchor", "positive", "negative"), (anchor, positive, negative))
    if not p > 0:
        raise ValueError(f"{op}: p must be > 0, got {p}")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ops.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ops.clamp(d_pos - d_neg + margin, min=0), reduction)


_COS_EPS = 1e-12  # added to each squared norm, as in PyTorch


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1 (other
    labels give 0). input1, input2: (N, D) with target (N,), or (D,) with a 0-d target."""
    op = "cosine_embedding_loss"
    _check_reduction(op, reduction)
    td = target.data if isinstance(target, Tensor) else B.xp.asarray(target)
    s1, s2 = tuple(input1.shape), tuple(input2.shape)
    if td.ndim not in (0, 1) or len(s1) != td.ndim + 1 or s1 != s2 or \
            s1[:-1] != td.shape:
        raise ValueError(f"{op}: expected input1 and input2 of shape (N, D) with target "
                         f"(N,), or (D,) with a 0-d target; got input1 {s1}, input2 {s2}, "
                         f"target {tuple(td.shape)}")
    dim = td.ndim
    dot = (input1 * input2).sum(dim)
    sq1 = (input1 * input1).sum(dim) + _COS_EPS
    sq2 = (input2 * input2).sum(dim) + _COS_EPS
    cos = dot / ops.sqrt(sq1 * sq2)
    losses = ops.where(td == 1, 1 - cos, 0) + \
        ops.where(td == -1, ops.clamp(cos - margin, min=0), 0)
    return _reduce(losses, reduction)


# ---------------------------------------------------------------- multi-task
def weighted_sum_losses(losses, weights=None):
    """sum_k weights[k] * losses[k] for multi-task learning.

    ``losses``: a sequence of scalar tensors, or a dict name -> scalar tensor; ``weights``:
    None (all 1), a sequence of the same length, or a dict with the same keys. Weights may
    be numbers or tensors (learnable weights then get gradients too).
    """
    if isinstance(losses, dict):
        keys = list(losses)
        if weights is not None:
            if not isinstance(weights, dict) or set(weights) != set(keys):
                got = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
                raise ValueError(f"weighted_sum_losses: weights must be a dict with the loss "
                                 f"names {sorted(keys)}, got {got}")
            weights = [weights[k] for k in keys]
        terms = [losses[k] for k in keys]
    else:
        terms = list(losses)
        if weights is not None:
            if isinstance(weights, dict):
                raise ValueError("weighted_sum_losses: dict weights need a dict of losses "
                                 "with the same names")
            weights = list(weights)
            if len(weights) != len(terms):
                raise ValueError(f"weighted_sum_losses: {len(terms)} losses but "
                                 f"{len(weights)} weights")
    if not terms:
        raise ValueError("weighted_sum_losses: no losses given")
    total = None
    for k, term in enumerate(terms):
        w = 1 if weights is None else weights[k]
        term = term if (not isinstance(w, Tensor) and w == 1) else term * w
        total = term if total is None else total + term
    return total
