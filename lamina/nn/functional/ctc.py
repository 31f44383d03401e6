"""CTC as functions: ``ctc_loss`` (torch.nn.functional's; a primitive in
:mod:`lamina.ops.ctc`) and ``ctc_greedy_decode``, best-path decoding."""
from ... import backend as B
from ...ops.ctc import _lengths, _time_batch_classes, ctc_loss
from ...tensor import Tensor

__all__ = ["ctc_loss", "ctc_greedy_decode"]


def ctc_greedy_decode(log_probs, input_lengths=None, blank=0):
    """Best-path CTC decoding: the most likely class at each step, repeats collapsed, then
    blanks dropped (so "a a _ a" -> [a, a]).

    log_probs (T, N, C) -> a list of N label lists; unbatched (T, C) -> one label list.
    Any scores whose argmax is the most likely class work (log-probabilities, probabilities
    or logits). ``input_lengths`` (N,) limits each sequence to its first steps (default: all
    T). No gradient is recorded.
    """
    name = "ctc_greedy_decode"
    lp = log_probs.data if isinstance(log_probs, Tensor) else B.xp.asarray(log_probs)
    lp, batched = _time_batch_classes(name, lp, blank)
    T, n, C = lp.shape
    best = lp.argmax(-1).T  # (N, T)
    keep = best != blank
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    if input_lengths is not None:
        il = _lengths(name, "input_lengths", input_lengths, n, T, "the input length T =",
                      tuple(log_probs.shape))
        keep &= B.xp.arange(T)[None, :] < il[:, None]
    counts = keep.sum(1)
    flat = best[keep].tolist()
    out, start = [], 0
    for c in counts.tolist():
        out.append(flat[start:start + c])
        start += c
    return out if batched else out[0]
