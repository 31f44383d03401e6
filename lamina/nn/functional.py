"""``lamina.nn.functional`` (imported as ``F``): layers and losses as functions.

Fused primitives come from :mod:`lamina.ops`; everything else is a composition of ops,
so it needs no backward code of its own.
"""
from .. import ops
from ..ops import (linear, relu, tanh, sigmoid, softmax, log_softmax, cross_entropy,
                   binary_cross_entropy_with_logits)
from ..ops.loss import _check_reduction, nll_loss, binary_cross_entropy

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
    """Squared error (input - target)**2 between same-shaped tensors, reduced."""
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    """Absolute error |input - target| between same-shaped tensors, reduced."""
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target)
    return _reduce(ops.abs(input - target), reduction)
