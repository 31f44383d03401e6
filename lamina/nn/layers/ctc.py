"""CTCLoss: the Connectionist Temporal Classification loss as a module."""
from .. import functional as F
from ..module import Module

__all__ = ["CTCLoss"]


class CTCLoss(Module):
    """CTC loss, as ``torch.nn.CTCLoss(blank=0, reduction='mean', zero_infinity=False)``.

    forward(log_probs (T, N, C) or (T, C), targets (N, S) / concatenated 1-D / (S,),
    input_lengths (N,), target_lengths (N,)) -> (N,) with reduction='none', else a scalar;
    'mean' divides each loss by its target length before averaging over the batch. See
    :func:`lamina.nn.functional.ctc_loss` (the gradient is the exact derivative w.r.t.
    log_probs; it equals PyTorch's through a ``log_softmax``).
    """

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        super().__init__()
        self.blank, self.reduction, self.zero_infinity = blank, reduction, zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                          self.reduction, self.zero_infinity)

    def extra_repr(self):
        return f"blank={self.blank}, reduction={self.reduction!r}, " \
               f"zero_infinity={self.zero_infinity}"
