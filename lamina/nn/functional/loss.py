"""Loss functions. The fused ones (cross_entropy, nll_loss, the binary cross-entropies)
are primitives in :mod:`lamina.ops.loss`; the rest are compositions of ops."""
from ... import ops
from ...ops.loss import (_check_reduction, binary_cross_entropy,
                         binary_cross_entropy_with_logits, cross_entropy, nll_loss)

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "binary_cross_entropy",
           "nll_loss", "mse_loss", "l1_loss"]


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
