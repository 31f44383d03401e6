"""Generation helpers for sequence models: greedy decoding, beam search and sampling.

The decoders drive a step function

    step_fn(tokens (B,) int64 Tensor, state) -> (log_probs (B, V) Tensor, new_state)

where ``state`` is a Tensor, a tuple/list or dict of Tensors (nested is fine; None and
non-Tensor leaves are passed through), with the batch in dimension 0 of every Tensor unless a
``reorder_state`` function says otherwise. Beam search runs all B * beam_size hypotheses as
one batch and reorders the state after each step with one ``index_select`` per Tensor.
Everything runs under ``no_grad``.
"""
from .. import backend as B
from .. import grad_mode
from ..ops import index_select
from ..tensor import Tensor, plain

__all__ = ["greedy_decode", "beam_search", "sample"]


def map_state(state, fn):
    """Apply ``fn`` to every Tensor in a (nested) tuple/list/dict state."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    return state


def reorder_state(state, index):
    """Select (and repeat) batch rows ``index`` (int64 array) of every Tensor, dim 0."""
    idx = plain(index)
    return map_state(state, lambda t: index_select(t, 0, idx))


def _first_tensor(state):
    found = []
    map_state(state, lambda t: found.append(t) or t)
    return found[0] if found else None


def _start(name, bos, state, batch_size):
    """The first tokens (B,) as an int64 array."""
    if isinstance(bos, Tensor) or not isinstance(bos, int):
        tok = (bos.data if isinstance(bos, Tensor) else B.xp.asarray(bos)).astype(B.int64)
        if tok.ndim != 1:
            raise ValueError(f"{name}: bos must be an int or a (B,) tensor of token ids, got "
                             f"shape {tuple(tok.shape)}")
        return tok
    if batch_size is None:
        first = _first_tensor(state)
        if first is None or first.ndim == 0:
            raise ValueError(f"{name}: cannot infer the batch size from the state; pass "
                             f"batch_size= or bos as a (B,) tensor")
        batch_size = first.shape[0]
    return B.xp.full(batch_size, bos, dtype=B.int64)


def _log_probs(name, out, rows):
    lp = out.data if isinstance(out, Tensor) else B.xp.asarray(out)
    if lp.ndim != 2 or lp.shape[0] != rows:
        raise ValueError(f"{name}: step_fn must return log-probabilities of shape ({rows}, V), "
                         f"got {tuple(lp.shape)}")
    return lp


def greedy_decode(step_fn, start_state, bos, eos, max_len, batch_size=None):
    """Feed back the most likely token until every sequence has produced ``eos`` or
    ``max_len`` tokens were generated.

    bos: an int (then B comes from ``batch_size`` or dim 0 of the first state Tensor) or
    (B,) start tokens. Returns (tokens (B, L) int64, scores (B,)): the generated tokens
    (without bos; ``eos`` included, and repeated after a sequence has ended), L <= max_len,
    and each sequence's summed log-probability up to and including its eos.
    """
    name = "greedy_decode"
    with grad_mode.no_grad():
        tok = _start(name, bos, start_state, batch_size)
        n = tok.shape[0]
        state = start_state
        done = B.xp.zeros(n, dtype=B.bool_)
        score = None
        out = []
        rows = B.xp.arange(n)
        for _ in range(max_len):
            lp, state = step_fn(plain(tok), state)
            lp = _log_probs(name, lp, n)
            if score is None:
                score = B.xp.zeros(n, dtype=lp.dtype)
            nxt = lp.argmax(-1)
            score += B.xp.where(done, 0, lp[rows, nxt])
            tok = B.xp.where(done, eos, nxt)
            out.append(tok)
            done |= tok == eos
            if done.all():
                break
        tokens = B.xp.stack(out, 1) if out else B.xp.zeros((n, 0), dtype=B.int64)
        if score is None:
            score = B.xp.zeros(n, dtype=B.get_default_dtype())
        return plain(tokens), plain(score)


def beam_search(step_fn, start_state, bos, eos, beam_size, max_len, length_penalty=1.0,
                batch_size=None, reorder_state=reorder_state, return_all=False):
    """Beam search: keep the ``beam_size`` best hypotheses of each batch element.

    Hypotheses are ranked by sum(log p) / length ** length_penalty (length counts the
    generated tokens including eos; length_penalty=0 ranks by the plain sum). A hypothesis
    that has produced eos stays in the beam with its final score until better ones push it
    out; the search stops when all beams have ended or after ``max_len`` tokens. With
    beam_size=1 it is greedy decoding; with a beam as large as the number of hypotheses it
    is exhaustive.

    bos, batch_size: as in :func:`greedy_decode`. ``reorder_state(state, index)`` selects
    batch rows ``index`` (an int64 array) of the state; the default index_selects dim 0 of
    every Tensor. Returns (tokens (B, L) int64, scores (B,)) for the best hypothesis, or
    with ``return_all`` (tokens (B, beam_size, L), scores (B, beam_size)) best first; after
    eos the tokens repeat eos.
    """
    name = "beam_search"
    if beam_size < 1:
        raise ValueError(f"{name}: beam_size must be >= 1, got {beam_size}")
    xp = B.xp
    with grad_mode.no_grad():
        tok0 = _start(name, bos, start_state, batch_size)
        n, k = tok0.shape[0], beam_size
        state = reorder_state(start_state, xp.repeat(xp.arange(n), k))
        tok = xp.repeat(tok0, k)
        score = None  # (n, k) summed log-probabilities
        done = xp.zeros((n, k), dtype=B.bool_)
        length = xp.zeros((n, k), dtype=B.int64)
        hist = xp.zeros((n, k, 0), dtype=B.int64)
        norm = None
        for t in range(max_len):
            lp, state = step_fn(plain(tok), state)
            lp = _log_probs(name, lp, n * k)
            v = lp.shape[1]
            if score is None:  # only beam 0 is live at the start
                score = xp.full((n, k), -xp.inf, dtype=lp.dtype)
                score[:, 0] = 0
            lp = lp.reshape(n, k, v)
            if done.any():  # an ended hypothesis only continues with eos, at no cost
                ended = xp.full(v, -xp.inf, dtype=lp.dtype)
                ended[eos] = 0
                lp = xp.where(done[:, :, None], ended, lp)
            cand = score[:, :, None] + lp  # (n, k, v)
            clen = xp.where(done, length, t + 1)[:, :, None]
            cnorm = cand if length_penalty == 0 else \
                cand / (clen.astype(lp.dtype) ** lp.dtype.type(length_penalty))
            flat = cnorm.reshape(n, k * v)
            if k < k * v:
                top = xp.argpartition(-flat, k - 1, axis=1)[:, :k]
            else:
                top = xp.broadcast_to(xp.arange(k * v), (n, k * v))
            order = xp.argsort(-xp.take_along_axis(flat, top, 1), axis=1, kind="stable")
            top = xp.take_along_axis(top, order, 1)
            beam, tok2 = top // v, top % v  # (n, k)
            norm = xp.take_along_axis(flat, top, 1)
            score = xp.take_along_axis(cand.reshape(n, k * v), top, 1)
            prev_done = xp.take_along_axis(done, beam, 1)
            length = xp.where(prev_done, xp.take_along_axis(length, beam, 1), t + 1)
            done = prev_done | (tok2 == eos) | (score == -xp.inf)  # dead beams end too
            hist = xp.concatenate([xp.take_along_axis(hist, beam[:, :, None], 1),
                                   tok2[:, :, None]], 2)
            tok = tok2.reshape(-1)
            if done.all() or t == max_len - 1:
                break
            src = (xp.arange(n)[:, None] * k + beam).reshape(-1)
            state = reorder_state(state, src)
        if norm is None:
            norm = xp.zeros((n, k), dtype=B.get_default_dtype())
        if return_all:
            return plain(hist), plain(norm)
        return plain(hist[:, 0]), plain(norm[:, 0])


def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Draw one token per row from softmax(logits / temperature).

    logits (B, V) -> (B,) int64; (V,) -> a 0-d int64 tensor. temperature 0 returns the
    argmax. ``top_k`` keeps the k largest logits (ties with the k-th are kept too);
    ``top_p`` (nucleus) keeps the smallest set of most likely tokens whose probability
    reaches top_p. ``generator``: a ``numpy.random.Generator`` (default: lamina's, seeded
    by ``lamina.manual_seed``). No gradient is recorded.
    """
    name = "sample"
    xp = B.xp
    z = logits.data if isinstance(logits, Tensor) else xp.asarray(logits)
    if z.ndim not in (1, 2) or z.shape[-1] == 0:
        raise ValueError(f"{name}: logits must be (B, V) or (V,) with V > 0, got shape "
                         f"{tuple(z.shape)}")
    single = z.ndim == 1
    z = z.reshape(-1, z.shape[-1])
    if z.dtype.kind != "f":
        z = z.astype(B.get_default_dtype())
    v = z.shape[1]
    if temperature < 0:
        raise ValueError(f"{name}: temperature must be >= 0, got {temperature}")
    if temperature == 0:
        out = z.argmax(-1)
    else:
        z = z / z.dtype.type(temperature)
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"{name}: top_k must be >= 1, got {top_k}")
            if top_k < v:
                kth = xp.partition(z, v - top_k, axis=1)[:, v - top_k:v - top_k + 1]
                z = xp.where(z < kth, -xp.inf, z)
        p = xp.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        if top_p is not None:
            if not 0 < top_p <= 1:
                raise ValueError(f"{name}: top_p must be in (0, 1], got {top_p}")
            order = xp.argsort(-p, axis=1, kind="stable")
            ps = xp.take_along_axis(p, order, 1)
            drop_sorted = xp.cumsum(ps, 1) - ps >= top_p  # mass before it already enough
            drop = xp.empty_like(drop_sorted)
            xp.put_along_axis(drop, order, drop_sorted, 1)
            p = xp.where(drop, 0, p)
        cdf = xp.cumsum(p, 1)
        rng = B.rng() if generator is None else generator
        u = xp.asarray(rng.random((z.shape[0], 1))) * cdf[:, -1:]
        out = (cdf <= u).sum(1)
        last = v - 1 - (p[:, ::-1] > 0).argmax(1)  # rounding must not pick a zero tail
        out = xp.minimum(out, last)
    out = out.astype(B.int64)
    return plain(out[0] if single else out)
