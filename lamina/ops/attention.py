"""Fused attention primitives: softmax(Q K^T * scale + mask) V as one graph node each.

``scaled_dot_product_attention`` works on (..., L, E) tensors with broadcast batch dims;
``multi_head_attention`` takes the projected (N, L, H*d) tensors (or one packed (N, L,
3*H*d) projection), splits and merges the heads itself and returns (N, L, H*d), so a
multi-head layer is linear -> this node -> linear. Both save the probabilities P and use
the hand-written backward

    dV = P_d^T dO,   dP = (dO V^T) * keep,   dS = P * (dP - rowsum(dO * O)),
    dQ = scale * dS K,   dK = scale * dS^T Q

(P_d = P * keep is P after dropout; rowsum(dO * O) equals rowsum(dP * P)). Rows whose
every key is masked give probabilities 0, output 0 and gradient 0, as PyTorch's
``scaled_dot_product_attention`` does on CPU (its need_weights path in
MultiheadAttention gives NaN there instead).

Masks reach the kernels as one additive float array (0 or -inf for boolean masks);
:func:`additive_mask` converts PyTorch's two boolean conventions.
"""
import math

from .. import backend as B
from .. import grad_mode
from ..parallel import matmul as _mm
from ..tensor import Tensor, plain, result
from .elementwise import unbroadcast

_causal_cache = {}


def causal_additive(L, S, dtype):
    """(L, S) array: 0 where key j <= query i (top-left aligned), -inf above. Cached,
    read-only."""
    key = (L, S, dtype)
    m = _causal_cache.get(key)
    if m is None:
        m = B.xp.triu(B.xp.full((L, S), -B.xp.inf, dtype=dtype), 1)
        m.flags.writeable = False
        if len(_causal_cache) > 64:
            _causal_cache.clear()
        _causal_cache[key] = m
    return m


def additive_mask(mask, dtype, true_means_keep, op, name="attn_mask"):
    """An additive float array from a bool mask (-inf where masked out) or a float one
    (cast to ``dtype``). ``true_means_keep``: True for scaled_dot_product_attention's
    convention, False for MultiheadAttention's (True = ignore)."""
    m = mask.data if isinstance(mask, Tensor) else B.xp.asarray(mask)
    if m.dtype == B.bool_:
        blocked = ~m if true_means_keep else m
        out = B.xp.zeros(m.shape, dtype=dtype)
        out[blocked] = -B.xp.inf
        return out
    if m.dtype.kind != "f":
        raise TypeError(f"{op}: only bool and floating types of {name} are supported, got "
                        f"dtype {m.dtype}")
    return m.astype(dtype, copy=False)


def _keep_mask(shape, p, dtype):
    """1/(1-p) with probability 1-p, else 0 (inverted dropout), in ``dtype``."""
    if p >= 1.0:
        return B.xp.zeros(shape, dtype=dtype)
    u = B.rng().random(shape, dtype=dtype if dtype in (B.float32, B.float64) else B.float32)
    keep = u >= p
    return B.xp.multiply(keep, u.dtype.type(1.0 / (1.0 - p)), out=u).astype(dtype, copy=False)


def _forward(q, k, v, mask, scale, dropout_p):
    """Arrays (..., L, E), (..., S, E), (..., S, Ev) and an additive mask broadcastable
    to (..., L, S) or None -> output O, probabilities P, P after dropout P_d (P itself
    without dropout) and the dropout keep mask (or None)."""
    xp = B.xp
    # scaling q (L*E values) is cheaper than scaling the (L, S) scores
    s = _mm(q * q.dtype.type(scale), k.swapaxes(-1, -2))
    if mask is not None:
        if s.shape != xp.broadcast_shapes(s.shape, mask.shape):
            s = s + mask
        else:
            s += mask
    m = s.max(axis=-1, keepdims=True)
    if mask is not None:
        m[m == -xp.inf] = 0  # fully masked rows: exp(-inf) = 0 everywhere
    s -= m
    xp.exp(s, out=s)
    den = s.sum(axis=-1, keepdims=True)
    if mask is not None:
        den[den == 0] = 1
    xp.reciprocal(den, out=den)
    s *= den
    p = s
    keep = None
    pd = p
    if dropout_p > 0.0:
        keep = _keep_mask(p.shape, dropout_p, p.dtype)
        pd = p * keep
    return _mm(pd, v), p, pd, keep


def _backward(go, q, k, v, o, p, pd, keep, scale, need):
    """Gradients (dq, dk, dv, dS) from dO; ``need`` = (q, k, v, mask) flags. dS is the
    gradient of the scores before scaling (the additive mask's gradient)."""
    dq = dk = dv = ds = None
    if need[2]:
        dv = _mm(pd.swapaxes(-1, -2), go)
    if need[0] or need[1] or need[3]:
        ds = _mm(go, v.swapaxes(-1, -2))
        if keep is not None:
            ds *= keep
        ds -= (go * o).sum(axis=-1, keepdims=True)
        ds *= p
        sc = ds.dtype.type(scale)
        if need[0]:
            dq = _mm(ds, k)
            dq *= sc
        if need[1]:
            dk = _mm(ds.swapaxes(-1, -2), q)
            dk *= sc
    return dq, dk, dv, ds


def _weights_backward(gw, q, k, p, keep, scale, need):
    """Gradients (dq, dk, dS) from the gradient of the returned weights P_d."""
    dp = gw if keep is None else gw * keep
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    sc = ds.dtype.type(scale)
    dq = _mm(ds, k) * sc if need[0] else None
    dk = _mm(ds.swapaxes(-1, -2), q) * sc if need[1] else None
    return dq, dk, ds


def _wants(t):
    return t is not None and t.requires_grad and grad_mode.enabled


# ---------------------------------------------------------------- general (..., L, E)
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, need_weights=False):
    """softmax(Q K^T * scale + mask) V, one node.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); batch dims
    broadcast. ``attn_mask`` broadcastable to (..., L, S): bool (True = takes part) or
    float (added to the scores; a float mask that requires grad gets one). ``is_causal``:
    query i sees keys j <= i (top-left aligned). ``scale`` defaults to 1/sqrt(E). Dropout
    with probability ``dropout_p`` acts on the probabilities whenever it is > 0. With
    ``need_weights`` also returns the (dropped-out) probabilities (..., L, S) as a
    differentiable tensor.
    """
    qd, kd, vd = query.data, key.data, value.data
    op = "scaled_dot_product_attention"
    if qd.ndim < 2 or kd.ndim < 2 or vd.ndim < 2 or qd.shape[-1] != kd.shape[-1] or \
            kd.shape[-2] != vd.shape[-2]:
        raise ValueError(f"{op}: expected query (..., L, E), key (..., S, E) and value "
                         f"(..., S, Ev), got shapes {tuple(qd.shape)}, {tuple(kd.shape)} and "
                         f"{tuple(vd.shape)}")
    try:
        batch = B.xp.broadcast_shapes(qd.shape[:-2], kd.shape[:-2], vd.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dimensions of query {tuple(qd.shape)}, key "
                         f"{tuple(kd.shape)} and value {tuple(vd.shape)} do not broadcast") \
            from None
    L, S = qd.shape[-2], kd.shape[-2]
    dt = qd.dtype
    if scale is None:
        scale = 1.0 / math.sqrt(qd.shape[-1]) if qd.shape[-1] else 1.0
    mask_t = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both")
        mask = causal_additive(L, S, dt)
    elif attn_mask is not None:
        mask = additive_mask(attn_mask, dt, True, op)
        try:
            full = B.xp.broadcast_shapes(mask.shape, batch + (L, S))
        except ValueError:
            full = None
        if full != batch + (L, S):
            raise ValueError(f"{op}: attn_mask of shape {tuple(mask.shape)} does not "
                             f"broadcast to the scores' shape {batch + (L, S)} (query "
                             f"{tuple(qd.shape)}, key {tuple(kd.shape)})")
        if isinstance(attn_mask, Tensor) and attn_mask.dtype.kind == "f" and \
                _wants(attn_mask):
            mask_t = attn_mask
    else:
        mask = None
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, got "
                         f"{dropout_p}")
    o, p, pd, keep = _forward(qd, kd, vd, mask, scale, dropout_p)
    need = (_wants(query), _wants(key), _wants(value), mask_t is not None)
    weights = pd if need_weights else None
    if not any(need):
        return (plain(o), plain(weights)) if need_weights else plain(o)
    mshape = None if mask_t is None else mask_t.shape

    def backward(g):
        dq, dk, dv, ds = _backward(g, qd, kd, vd, o, p, pd, keep, scale, need)
        return (None if dq is None else unbroadcast(dq, qd.shape),
                None if dk is None else unbroadcast(dk, kd.shape),
                None if dv is None else unbroadcast(dv, vd.shape),
                None if mshape is None else unbroadcast(ds, mshape))

    parents = (query if need[0] else None, key if need[1] else None,
               value if need[2] else None, mask_t)
    out = result(o, parents, backward)
    if not need_weights:
        return out
    if not (need[0] or need[1] or need[3]):
        return out, plain(weights)

    def weights_backward(gw):
        dq, dk, ds = _weights_backward(gw, qd, kd, p, keep, scale, need)
        return (None if dq is None else unbroadcast(dq, qd.shape),
                None if dk is None else unbroadcast(dk, kd.shape),
                None if mshape is None else unbroadcast(ds, mshape))

    w = result(weights, (parents[0], parents[1], mask_t), weights_backward)
    return out, w


# ---------------------------------------------------------------- multi-head
def _heads(x, n_heads, batch_first, part=None, parts=1):
    """(N, L, parts*H*d) [or (L, N, ...)] -> (N, H, L, d) strided view of one part."""
    if batch_first:
        N, L, E = x.shape
        x5 = x.reshape(N, L, parts, n_heads, E // (parts * n_heads))
        return x5[:, :, part or 0].transpose(0, 2, 1, 3)
    L, N, E = x.shape
    x5 = x.reshape(L, N, parts, n_heads, E // (parts * n_heads))
    return x5[:, :, part or 0].transpose(1, 2, 0, 3)


def _merge_into(dst, h, batch_first):
    """Write (N, H, L, d) into dst (N, L, H, d) [or (L, N, H, d)] (a view)."""
    dst[...] = h.transpose(0, 2, 1, 3) if batch_first else h.transpose(2, 0, 1, 3)


def _merged(h, batch_first):
    N, H, L, d = h.shape
    if batch_first:
        out = B.xp.empty((N, L, H, d), dtype=h.dtype)
    else:
        out = B.xp.empty((L, N, H, d), dtype=h.dtype)
    _merge_into(out, h, batch_first)
    return out.reshape(out.shape[:2] + (H * d,))


def multi_head_attention(query, key, value, num_heads, mask=None, dropout_p=0.0,
                         is_causal=False, need_weights=False, batch_first=True,
                         packed=False):
    """Attention of H heads over projected inputs, one node.

    batch_first: query (N, L, H*d), key (N, S, H*d), value (N, S, H*dv) -> (N, L, H*dv);
    otherwise (L, N, .) layouts in and out. With ``packed`` the query is the (., ., 3*H*d)
    projection [q | k | v] and key/value are ignored (self-attention). ``mask``: an
    additive float array broadcastable to (N, H, L, S) (see :func:`additive_mask`) or
    None; ``is_causal`` adds the causal mask. Scale 1/sqrt(d). With ``need_weights`` also
    returns the per-head (dropped-out) probabilities (N, H, L, S).
    """
    xd = query.data
    H = num_heads
    if packed:
        qh = _heads(xd, H, batch_first, 0, 3)
        kh = _heads(xd, H, batch_first, 1, 3)
        vh = _heads(xd, H, batch_first, 2, 3)
    else:
        qh = _heads(xd, H, batch_first)
        kh = _heads(key.data, H, batch_first)
        vh = _heads(value.data, H, batch_first)
    L, S = qh.shape[2], kh.shape[2]
    dt = xd.dtype
    scale = 1.0 / math.sqrt(qh.shape[-1])
    if is_causal:
        c = causal_additive(L, S, dt)
        mask = c if mask is None else mask + c
    oh, p, pd, keep = _forward(qh, kh, vh, mask, scale, dropout_p)
    o = _merged(oh, batch_first)
    weights = pd if need_weights else None
    if packed:
        need = (_wants(query),) * 3 + (False,)
    else:
        need = (_wants(query), _wants(key), _wants(value), False)
    if not any(need):
        return (plain(o), plain(weights)) if need_weights else plain(o)

    if packed:
        xshape = xd.shape

        def backward(g):
            gh = _heads(g, H, batch_first)
            dq, dk, dv, _ = _backward(gh, qh, kh, vh, oh, p, pd, keep, scale, need)
            d = B.xp.empty(xshape[:2] + (3, H, xshape[2] // (3 * H)), dtype=g.dtype)
            _merge_into(d[:, :, 0], dq, batch_first)
            _merge_into(d[:, :, 1], dk, batch_first)
            _merge_into(d[:, :, 2], dv, batch_first)
            return (d.reshape(xshape),)

        out = result(o, (query,), backward)
        if not need_weights:
            return out

        def weights_backward(gw):
            dq, dk, _ = _weights_backward(gw, qh, kh, p, keep, scale, need)
            d = B.xp.zeros(xshape[:2] + (3, H, xshape[2] // (3 * H)), dtype=gw.dtype)
            _merge_into(d[:, :, 0], dq, batch_first)
            _merge_into(d[:, :, 1], dk, batch_first)
            return (d.reshape(xshape),)

        return out, result(weights, (query,), weights_backward)

    def backward(g):
        gh = _heads(g, H, batch_first)
        dq, dk, dv, _ = _backward(gh, qh, kh, vh, oh, p, pd, keep, scale, need)
        return (None if dq is None else _merged(dq, batch_first),
                None if dk is None else _merged(dk, batch_first),
                None if dv is None else _merged(dv, batch_first))

    parents = (query if need[0] else None, key if need[1] else None,
               value if need[2] else None)
    out = result(o, parents, backward)
    if not need_weights:
        return out
    if not (need[0] or need[1]):
        return out, plain(weights)

    def weights_backward(gw):
        dq, dk, _ = _weights_backward(gw, qh, kh, p, keep, scale, need)
        return (None if dq is None else _merged(dq, batch_first),
                None if dk is None else _merged(dk, batch_first))

    return out, result(weights, parents[:2], weights_backward)


# ---------------------------------------------------------------- masked softmax
def masked_softmax(scores, mask=None, dim=-1):
    """softmax of ``scores`` along ``dim`` with positions where the bool ``mask`` is True
    (broadcast to scores) excluded; an all-excluded slice gives zeros (and zero gradient).
    One node; d/dx = y * (g - sum(g y))."""
    xp = B.xp
    sd = scores.data
    if mask is not None:
        m = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
        s = xp.where(m, -xp.inf, sd).astype(sd.dtype, copy=False)
        if s.shape != sd.shape:
            raise ValueError(f"masked_softmax: mask of shape {tuple(m.shape)} does not "
                             f"broadcast to the scores' shape {tuple(sd.shape)}")
    else:
        s = sd.copy()
    mx = s.max(axis=dim, keepdims=True)
    mx[~xp.isfinite(mx)] = 0
    s -= mx
    xp.exp(s, out=s)
    den = s.sum(axis=dim, keepdims=True)
    den[den == 0] = 1
    s /= den
    y = s
    if not _wants(scores):
        return plain(y)

    def backward(g):
        gy = g * y
        gy -= y * gy.sum(axis=dim, keepdims=True)
        return (gy,)
    return result(y, (scores,), backward)
