"""``lamina.nn.functional`` (imported as ``F``): layers and losses as functions.

Fused primitives come from :mod:`lamina.ops`; everything else is a composition of ops,
so it needs no backward code of its own.
"""
from .. import ops
from ..ops import (linear, relu, tanh, sigmoid, softmax, log_softmax, cross_entropy,
                   binary_cross_entropy_with_logits)
from ..ops.loss import _check_reduction
from ..tensor import Tensor

__all__ = ["linear", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "cross_entropy",
           "binary_cross_entropy_with_logits", "binary_cross_entropy", "nll_loss", "mse_loss",
           "l1_loss"]


def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _same_shape(op, input, target):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{op}: target shape {tuple(target.shape)} must match input shape "
                         f"{tuple(input.shape)}")


def mse_loss(input, target, reduction="mean"):
    """Mean squared error between input and target (same shape)."""
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target)
    return _reduce(ops.abs(input - target), reduction)


def nll_loss(log_probs, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices given log-probabilities (N, C, ...).

    Since cross_entropy(x) = nll_loss(log_softmax(x)) and log_softmax is idempotent,
    this is cross_entropy applied to log-probabilities.
    """
    return cross_entropy(log_probs, target, weight=weight, ignore_index=ignore_index,
                         reduction=reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """BCE on probabilities in [0, 1]; each log is clamped at -100, as in PyTorch."""
    _check_reduction("binary_cross_entropy", reduction)
    _same_shape("binary_cross_entropy", input, target)
    log_p = ops.clamp(ops.log(input), min=-100.0)
    log_1mp = ops.clamp(ops.log(1 - input), min=-100.0)
    losses = -(target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction)
