"""Variable-length sequence helpers (``torch.nn.utils.rnn``): ``pad_sequence``.

The recurrent layers take the per-sequence lengths directly (``lstm(x, lengths=...)``),
so no packed-sequence object is needed.
"""
from ... import backend as B
from ... import grad_mode
from ...tensor import Tensor, plain, result

__all__ = ["pad_sequence"]


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack tensors of shapes (L_i, *) into one (L_max, N, *) tensor ((N, L_max, *) with
    ``batch_first``), filling with ``padding_value`` after (``padding_side='right'``) or
    before ('left') each sequence. Differentiable in every sequence."""
    if isinstance(sequences, Tensor):
        sequences = list(sequences)
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got "
                         f"{padding_side!r}")
    arrays = [s.data if isinstance(s, Tensor) else B.xp.asarray(s) for s in sequences]
    trail = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[1:] != trail:
            raise ValueError(f"pad_sequence: every sequence must have shape (L_i, *) with the "
                             f"same trailing dimensions; sequence 0 has shape "
                             f"{tuple(arrays[0].shape)}, sequence {i} has {tuple(a.shape)}")
    dt = arrays[0].dtype
    for a in arrays[1:]:
        dt = B.xp.result_type(dt, a.dtype)
    T = max(a.shape[0] for a in arrays)
    out = B.xp.full((len(arrays), T) + tuple(trail), padding_value, dtype=dt)
    spans = []
    for i, a in enumerate(arrays):
        n = a.shape[0]
        sl = slice(0, n) if padding_side == "right" else slice(T - n, T)
        out[i, sl] = a
        spans.append(sl)
    if not batch_first:
        out = B.xp.ascontiguousarray(out.swapaxes(0, 1))
    tensors = [s if isinstance(s, Tensor) else None for s in sequences]
    if not (grad_mode.enabled and any(t is not None and t.requires_grad for t in tensors)):
        return plain(out)

    def backward(g):
        gb = g if batch_first else g.swapaxes(0, 1)
        return tuple(gb[i, sl].astype(t.dtype, copy=False)
                     if t is not None and t.requires_grad else None
                     for i, (sl, t) in enumerate(zip(spans, tensors)))
    return result(out, tuple(tensors), backward)
