"""Attention as functions: ``scaled_dot_product_attention`` and
``multi_head_attention_forward`` with ``torch.nn.functional``'s arguments. The attention
itself is one fused node (:mod:`lamina.ops.attention`); projections are ``linear`` nodes.
"""
from ... import backend as B
from ... import ops
from ...ops import attention as _att
from ...tensor import Tensor, plain

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(Q K^T * scale + mask) V, as ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); batch dims
    broadcast. ``attn_mask`` broadcastable to (..., L, S): bool (True = takes part) or
    float (added to the scores). ``is_causal``: top-left aligned causal mask (exclusive with
    attn_mask). ``scale`` defaults to 1/sqrt(E). Dropout with probability ``dropout_p``
    is applied to the attention probabilities whenever ``dropout_p > 0`` (pass 0 in
    evaluation). A query row whose keys are all masked gives zeros (as PyTorch on CPU).
    """
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported")
    return _att.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
                                             is_causal, scale)


def _shape_error(name, msg, **shapes):
    desc = ", ".join(f"{k} {tuple(v.shape)}" for k, v in shapes.items() if v is not None)
    return ValueError(f"{name}: {msg} (got {desc})")


def _check_shapes(name, query, key, value, key_padding_mask, attn_mask, num_heads):
    """True for batched (3-D) input, False for unbatched (2-D), as PyTorch's
    _mha_shape_check; raises ValueError naming ``name`` and the shapes."""
    shapes = dict(query=query, key=key, value=value, key_padding_mask=key_padding_mask,
                  attn_mask=attn_mask)
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise _shape_error(name, "for batched (3-D) query, key and value must be 3-D",
                               **shapes)
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise _shape_error(name, "for batched (3-D) query, key_padding_mask must be 2-D "
                               "(N, S)", **shapes)
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise _shape_error(name, "attn_mask must be 2-D (L, S) or 3-D (N*num_heads, L, S)",
                               **shapes)
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise _shape_error(name, "for unbatched (2-D) query, key and value must be 2-D",
                               **shapes)
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise _shape_error(name, "for unbatched (2-D) query, key_padding_mask must be 1-D "
                               "(S,)", **shapes)
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise _shape_error(name, "attn_mask must be 2-D (L, S) or 3-D "
                                   "(num_heads, L, S)", **shapes)
            if attn_mask.ndim == 3 and tuple(attn_mask.shape) != (
                    num_heads, query.shape[0], key.shape[0]):
                raise _shape_error(name, f"for unbatched query, a 3-D attn_mask must have "
                                   f"shape {(num_heads, query.shape[0], key.shape[0])}",
                                   **shapes)
        return False
    raise _shape_error(name, "query must be unbatched 2-D or batched 3-D", **shapes)


def _pad_col(m):
    """Append one zero (False / 0.0) column to the last axis of an array."""
    z = B.xp.zeros(m.shape[:-1] + (1,), dtype=m.dtype)
    return B.xp.concatenate([m, z], axis=-1)


def _data(m):
    return None if m is None else (m.data if isinstance(m, Tensor) else B.xp.asarray(m))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None,
                                 average_attn_weights=True, is_causal=False, *,
                                 batch_first=False, name="multi_head_attention_forward"):
    """PyTorch's multi-head attention forward (its argument order; ``static_k/v`` are
    not supported). Layouts: query (L, N, E), key (S, N, kdim), value (S, N, vdim), or
    (N, L, E)... with ``batch_first=True`` (a lamina extension; PyTorch's functional is
    sequence-first), or unbatched (L, E), (S, kdim), (S, vdim).

    key_padding_mask (N, S) / (S,): bool True = ignore that key, or float (added).
    attn_mask (L, S) or (N*num_heads, L, S) [(num_heads, L, S) unbatched]: bool True = not
    allowed, or float (added). ``is_causal`` is a hint that attn_mask is causal (which
    must then be given), as in PyTorch.

    Returns (attn_output like query, weights or None); weights are (N, L, S) averaged over
    heads or (N, num_heads, L, S), after dropout, as PyTorch's. A query whose keys are all
    masked gets zero weights and output; PyTorch gives NaN there when need_weights=True
    (and zeros when need_weights=False).
    """
    batched = _check_shapes(name, query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        batch_first = True
        query, key, value = (ops.unsqueeze(t, 0) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = _data(key_padding_mask)[None]
    if batch_first:
        N, L, E = query.shape
        S = key.shape[1]
        kv_ok = key.shape[:2] == value.shape[:2] and key.shape[0] == N
    else:
        L, N, E = query.shape
        S = key.shape[0]
        kv_ok = key.shape[:2] == value.shape[:2] and key.shape[1] == N
    shapes = dict(query=query, key=key, value=value)
    if E != embed_dim_to_check:
        raise _shape_error(name, f"expected query embedding dimension {embed_dim_to_check}, "
                           f"got {E}", **shapes)
    H = num_heads
    if E % H:
        raise ValueError(f"{name}: embed_dim {E} not divisible by num_heads {H}")
    if not kv_ok:
        raise _shape_error(name, "key and value must have the same sequence and batch "
                           "dimensions as each other and the batch size of query", **shapes)
    dt = query.dtype
    kpm = _data(key_padding_mask)
    am = _data(attn_mask)
    if kpm is not None and tuple(kpm.shape) != (N, S):
        raise ValueError(f"{name}: expected key_padding_mask of shape {(N, S)}, got "
                         f"{tuple(kpm.shape)} (query {tuple(query.shape)}, key "
                         f"{tuple(key.shape)})")
    if am is not None:
        want = (L, S) if am.ndim == 2 else (N * H, L, S)
        if tuple(am.shape) != want:
            raise ValueError(f"{name}: the shape of the {am.ndim}-D attn_mask is "
                             f"{tuple(am.shape)}, but should be {want} (query "
                             f"{tuple(query.shape)}, key {tuple(key.shape)})")
    if is_causal and am is None:
        raise RuntimeError(f"{name}: need attn_mask if specifying the is_causal hint; "
                           f"lamina.nn.causal_mask(L) makes one")
    use_causal = is_causal and kpm is None and not need_weights
    # projections
    simple_kv = bias_k is None and bias_v is None and not add_zero_attn
    if not use_separate_proj_weight and query is key and key is value and simple_kv:
        qkv = ops.linear(query, in_proj_weight, in_proj_bias)
        q = qkv
        k = v = None
        packed = True
    else:
        packed = False
        if use_separate_proj_weight:
            wq, wk, wv = q_proj_weight, k_proj_weight, v_proj_weight
        else:
            wq, wk, wv = in_proj_weight[:E], in_proj_weight[E:2 * E], in_proj_weight[2 * E:]
        if in_proj_bias is None:
            bq = bk = bv = None
        else:
            bq, bk, bv = in_proj_bias[:E], in_proj_bias[E:2 * E], in_proj_bias[2 * E:]
        for w, x, what in ((wk, key, "key"), (wv, value, "value")):
            if x.shape[-1] != w.shape[-1]:
                raise _shape_error(name, f"expected {what} feature size {w.shape[-1]}, got "
                                   f"{x.shape[-1]}", **shapes)
        q = ops.linear(query, wq, bq)
        k = ops.linear(key, wk, bk)
        v = ops.linear(value, wv, bv)
        seq = 1 if batch_first else 0
        extra = []
        if bias_k is not None or bias_v is not None:
            if bias_k is None or bias_v is None:
                raise ValueError(f"{name}: bias_k and bias_v must be given together")
            shape = (N, 1, E) if batch_first else (1, N, E)
            extra.append((ops.expand(ops.reshape(bias_k, 1, 1, E), *shape),
                          ops.expand(ops.reshape(bias_v, 1, 1, E), *shape)))
        if add_zero_attn:
            shape = (N, 1, E) if batch_first else (1, N, E)
            z = plain(B.xp.zeros(shape, dtype=dt))
            extra.append((z, z))
        for ek, ev in extra:
            k = ops.cat([k, ek], seq)
            v = ops.cat([v, ev], seq)
            if am is not None:
                am = _pad_col(am)
            if kpm is not None:
                kpm = _pad_col(kpm)
            S += 1
    mask = None
    if am is not None and not use_causal:
        mask = _att.additive_mask(am, dt, False, name)
        if mask.ndim == 3:
            mask = mask.reshape(N, H, L, S)
    if kpm is not None:
        kp = _att.additive_mask(kpm, dt, False, name, "key_padding_mask").reshape(N, 1, 1, S)
        mask = kp if mask is None else mask + kp
    p = dropout_p if training else 0.0
    res = _att.multi_head_attention(q, k, v, H, mask, p, use_causal, need_weights,
                                    batch_first, packed)
    o, w = res if need_weights else (res, None)
    out = ops.linear(o, out_proj_weight, out_proj_bias)
    if need_weights and average_attn_weights:
        w = ops.mean(w, 1)
    if not batched:
        out = ops.squeeze(out, 0)
        if w is not None:
            w = ops.squeeze(w, 0)
    return out, w
