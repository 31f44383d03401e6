"""Loss modules: thin wrappers of :mod:`lamina.nn.functional`'s losses with
``torch.nn``'s names, arguments (less the deprecated ``size_average``/``reduce``) and
defaults. Class weights (``weight``, ``pos_weight``) are registered as buffers, as in
PyTorch, so they appear in the state dict and follow ``.to(dtype)``."""
from .. import functional as F
from ..module import Module

__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "GaussianNLLLoss", "KLDivLoss",
           "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss", "SoftMarginLoss",
           "MultiLabelSoftMarginLoss", "MultiMarginLoss", "HingeEmbeddingLoss",
           "MarginRankingLoss", "TripletMarginLoss", "CosineEmbeddingLoss", "MultiTaskLoss"]


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """|input - target|, reduced. input and target: the same shape (*)."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """(input - target)^2, reduced. input and target: the same shape (*)."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above (see :func:`F.smooth_l1_loss`)."""

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, delta-scaled linear above (see :func:`F.huber_loss`)."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood; ``forward(input, target, var)``."""

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        super().__init__(reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                   reduction=self.reduction)


class KLDivLoss(_Loss):
    """KL divergence with log-probability input; use reduction='batchmean' for the true
    per-sample divergence."""

    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy on probabilities in [0, 1]; ``weight`` broadcasts to the input."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy on logits, stable for any logit; ``pos_weight``
    (e.g. one per class, broadcast over the last dimension) weights the positives."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)


class CrossEntropyLoss(_WeightedLoss):
    """Log-softmax + negative log-likelihood over dim 1, fused. input (N, C, ...) or (C,);
    target class indices (N, ...) or class probabilities shaped like input."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """-input[target] (input: log-probabilities (N, C, ...) or (C,))."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class SoftMarginLoss(_Loss):
    """log(1 + exp(-y x)) for labels +-1."""

    def forward(self, input, target):
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Per-sample mean over classes of the sigmoid binary cross-entropies (N, C)."""

    def forward(self, input, target):
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight,
                                             reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge (SVM) loss; input (N, C) or (C,), target class indices."""

    def __init__(self, p=1, margin=1.0, weight=None, reduction="mean"):
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 are supported, got {p}")
        super().__init__(weight, reduction)
        self.p, self.margin = p, margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                   weight=self.weight, reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """x for y = 1, max(0, margin - x) for y = -1."""

    def __init__(self, margin=1.0, reduction="mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input, target):
        return F.hinge_embedding_loss(input, target, margin=self.margin,
                                      reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """max(0, -y (x1 - x2) + margin); ``forward(input1, input2, target)``."""

    def __init__(self, margin=0.0, reduction="mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin,
                                     reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """max(0, margin + d(a, p) - d(a, n)); ``forward(anchor, positive, negative)``."""

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
        super().__init__(reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p,
                                     eps=self.eps, swap=self.swap, reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    """1 - cos for y = 1, max(0, cos - margin) for y = -1; ``forward(input1, input2, target)``."""

    def __init__(self, margin=0.0, reduction="mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin,
                                       reduction=self.reduction)


class MultiTaskLoss(Module):
    """Weighted sum of task losses, sum_k lambda_k * loss_k.

    ``weights``: a sequence (call with the losses as positional arguments or one sequence)
    or a dict name -> weight (call with a dict or keyword arguments); None weights every
    task 1. Returns the total; ``self.terms`` then holds each task's unweighted loss as a
    float, keyed by name (or index), for logging.

    >>> crit = MultiTaskLoss({"cls": 1.0, "box": 0.5})
    >>> total = crit(cls=ce, box=l1)      # crit.terms == {"cls": ..., "box": ...}
    """

    def __init__(self, weights=None):
        super().__init__()
        self.weights = dict(weights) if isinstance(weights, dict) else \
            (None if weights is None else list(weights))
        self.terms = {}

    def forward(self, *losses, **named):
        if named:
            if losses:
                raise TypeError("MultiTaskLoss: pass the losses by position or by name, "
                                "not both")
            losses = named
        elif len(losses) == 1 and isinstance(losses[0], (list, tuple, dict)):
            losses = losses[0]
        items = losses.items() if isinstance(losses, dict) else enumerate(losses)
        self.terms = {k: float(v.item()) for k, v in items}
        return F.weighted_sum_losses(losses, self.weights)

    def extra_repr(self):
        return f"weights={self.weights}"
