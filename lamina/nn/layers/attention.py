"""Attention layers: MultiheadAttention (PyTorch's layout), additive (Bahdanau) and
multiplicative (Luong) attention returning (context, weights), and positional encodings
(sinusoidal and learned)."""
import math

from ... import backend as B
from ... import ops
from ...ops import attention as _att
from ...tensor import Parameter, plain
from .. import functional as F
from .. import init
from ..module import Module
from .linear import Linear

__all__ = ["MultiheadAttention", "AdditiveAttention", "MultiplicativeAttention",
           "SinusoidalPositionalEncoding", "LearnedPositionalEncoding"]


def _dtype(dtype):
    return B.get_default_dtype() if dtype is None else B.to_dtype(dtype)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017), with ``torch.nn.MultiheadAttention``'s
    arguments, parameters and state_dict keys.

    Parameters: ``in_proj_weight`` (3E, E) [q | k | v] when kdim = vdim = E, else
    ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim);
    ``in_proj_bias`` (3E,) (if bias); ``out_proj`` a Linear(E, E) (``out_proj.weight``,
    ``out_proj.bias``); ``bias_k``, ``bias_v`` (1, 1, E) with add_bias_kv. Initialised as
    in PyTorch: projection weights xavier_uniform, biases 0, out_proj.weight
    U(-1/sqrt(E), 1/sqrt(E)), bias_k/bias_v xavier_normal.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights or None):
    query (L, N, E) [(N, L, E) with batch_first, (L, E) unbatched], key (S, N, kdim),
    value (S, N, vdim); output like query; weights (N, L, S) averaged over heads or
    (N, num_heads, L, S). key_padding_mask (N, S): True / float added; attn_mask (L, S) or
    (N*num_heads, L, S): True = not allowed / float added. Dropout acts on the weights in
    training. Fully masked query rows give zeros (PyTorch: NaN when need_weights=True).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater "
                             f"than 0, got embed_dim={embed_dim} and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible "
                             f"by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        dt = _dtype(dtype)
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(B.xp.empty((3 * E, E), dtype=dt))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(B.xp.empty((E, E), dtype=dt))
            self.k_proj_weight = Parameter(B.xp.empty((E, self.kdim), dtype=dt))
            self.v_proj_weight = Parameter(B.xp.empty((E, self.vdim), dtype=dt))
        if bias:
            self.in_proj_bias = Parameter(B.xp.empty(3 * E, dtype=dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dt)
        if add_bias_kv:
            self.bias_k = Parameter(B.xp.empty((1, 1, E), dtype=dt))
            self.bias_v = Parameter(B.xp.empty((1, 1, E), dtype=dt))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        name = f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        return F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
            self.in_proj_bias, self.bias_k, self.bias_v, self.add_zero_attn, self.dropout,
            self.out_proj.weight, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal, batch_first=self.batch_first, name=name)

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")


def _attention_inputs(layer, query, keys, values, key_padding_mask, qsize, ksize):
    """Validate shapes; returns (query as (N, L, Dq), squeeze flag, values, mask)."""
    name = type(layer).__name__
    if values is None:
        values = keys
    q_ok = query.ndim in (2, 3) and query.shape[-1] == qsize
    k_ok = keys.ndim == 3 and keys.shape[-1] == ksize and keys.shape[0] == query.shape[0]
    v_ok = values.ndim == 3 and values.shape[:2] == keys.shape[:2]
    if not (q_ok and k_ok and v_ok):
        raise ValueError(f"{name}: expected query (N, {qsize}) or (N, L, {qsize}), keys "
                         f"(N, S, {ksize}) and values (N, S, Dv), got shapes "
                         f"{tuple(query.shape)}, {tuple(keys.shape)} and "
                         f"{tuple(values.shape)}")
    mask = None
    if key_padding_mask is not None:
        m = key_padding_mask.data if hasattr(key_padding_mask, "data") else \
            B.xp.asarray(key_padding_mask)
        if m.dtype != B.bool_ or tuple(m.shape) != tuple(keys.shape[:2]):
            raise ValueError(f"{name}: expected a bool key_padding_mask of shape "
                             f"{tuple(keys.shape[:2])} (N, S), got {m.dtype} of shape "
                             f"{tuple(m.shape)}")
        mask = m[:, None, :]
    squeeze = query.ndim == 2
    if squeeze:
        query = ops.unsqueeze(query, 1)
    return query, squeeze, values, mask


def _attend(scores, values, mask, squeeze):
    w = _att.masked_softmax(scores, mask, -1)
    ctx = ops.matmul(w, values)
    if squeeze:
        return ops.squeeze(ctx, 1), ops.squeeze(w, 1)
    return ctx, w


class AdditiveAttention(Module):
    """Additive attention (Bahdanau et al., 2015): score(s, h_j) = v^T tanh(W s + U h_j),
    weights = softmax over j, context = sum_j weights_j * value_j.

    forward(query, keys, values=None, key_padding_mask=None) -> (context, weights):
    query s (N, query_size) or (N, L, query_size), keys h (N, S, key_size), values
    (N, S, Dv) (default: keys); key_padding_mask (N, S) bool, True = padding (ignored).
    context (N, Dv) / (N, L, Dv), weights (N, S) / (N, L, S). A query whose keys are all
    padding gets zero weights and a zero context.

    Parameters: ``query_proj`` Linear(query_size, hidden_size, bias=False) (W),
    ``key_proj`` Linear(key_size, hidden_size, bias=bias) (U), ``v`` (hidden_size,);
    Linear's default initialisation, v ~ U(-1/sqrt(hidden), 1/sqrt(hidden)).
    """

    def __init__(self, query_size, key_size, hidden_size, bias=True, dtype=None):
        super().__init__()
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        dt = _dtype(dtype)
        self.query_proj = Linear(query_size, hidden_size, bias=False, dtype=dt)
        self.key_proj = Linear(key_size, hidden_size, bias=bias, dtype=dt)
        self.v = Parameter(B.xp.empty(hidden_size, dtype=dt))
        bound = 1.0 / math.sqrt(hidden_size)
        init.uniform_(self.v, -bound, bound)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        query, squeeze, values, mask = _attention_inputs(
            self, query, keys, values, key_padding_mask, self.query_size, self.key_size)
        wq = ops.unsqueeze(self.query_proj(query), 2)       # (N, L, 1, H)
        uk = ops.unsqueeze(self.key_proj(keys), 1)          # (N, 1, S, H)
        scores = ops.matmul(ops.tanh(wq + uk), self.v)      # (N, L, S)
        return _attend(scores, values, mask, squeeze)

    def extra_repr(self):
        return (f"query_size={self.query_size}, key_size={self.key_size}, "
                f"hidden_size={self.hidden_size}")


class MultiplicativeAttention(Module):
    """Multiplicative attention (Luong et al., 2015): score(s, h_j) = s^T W h_j
    ('general') or s^T h_j ('dot', query_size == key_size), optionally divided by
    sqrt(key_size) (``scaled=True``); weights = softmax over j, context = weights @ values.

    forward(query, keys, values=None, key_padding_mask=None) -> (context, weights) with
    the shapes of :class:`AdditiveAttention`. Parameter (general): ``weight``
    (query_size, key_size) ~ U(-1/sqrt(key_size), 1/sqrt(key_size)).
    """

    def __init__(self, query_size, key_size=None, score="general", scaled=False, dtype=None):
        super().__init__()
        key_size = query_size if key_size is None else key_size
        if score not in ("general", "dot"):
            raise ValueError(f"MultiplicativeAttention: score must be 'general' or 'dot', got "
                             f"{score!r}")
        if score == "dot" and key_size != query_size:
            raise ValueError(f"MultiplicativeAttention: score='dot' needs query_size == "
                             f"key_size, got {query_size} and {key_size}")
        self.query_size, self.key_size, self.score, self.scaled = \
            query_size, key_size, score, scaled
        if score == "general":
            self.weight = Parameter(B.xp.empty((query_size, key_size), dtype=_dtype(dtype)))
            bound = 1.0 / math.sqrt(key_size)
            init.uniform_(self.weight, -bound, bound)
        else:
            self.register_parameter("weight", None)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        query, squeeze, values, mask = _attention_inputs(
            self, query, keys, values, key_padding_mask, self.query_size, self.key_size)
        q = query if self.weight is None else ops.matmul(query, self.weight)  # (N, L, Dk)
        scores = ops.matmul(q, ops.transpose(keys, 1, 2))                      # (N, L, S)
        if self.scaled:
            scores = scores * (1.0 / math.sqrt(self.key_size))
        return _attend(scores, values, mask, squeeze)

    def extra_repr(self):
        return (f"query_size={self.query_size}, key_size={self.key_size}, "
                f"score={self.score!r}, scaled={self.scaled}")


def _add_positions(layer, x, table):
    """x + table[:L] with L the sequence axis (1 if batch_first else 0)."""
    ax = 1 if layer.batch_first else 0
    if x.ndim not in (2, 3) or x.shape[-1] != layer.d_model:
        raise ValueError(f"{type(layer).__name__}(d_model={layer.d_model}): expected input "
                         f"(L, N, {layer.d_model}) (or (N, L, {layer.d_model}) with "
                         f"batch_first, or (L, {layer.d_model})), got shape {tuple(x.shape)}")
    if x.ndim == 2:
        ax = 0
    L = x.shape[ax]
    if L > layer.max_len:
        raise ValueError(f"{type(layer).__name__}: sequence length {L} exceeds max_len "
                         f"{layer.max_len} (input shape {tuple(x.shape)})")
    pe = table[:L]
    if x.ndim == 3 and ax == 0:
        pe = ops.unsqueeze(pe, 1)
    return layer.drop(x + pe)


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed encodings of Vaswani et al. (2017): PE[pos, 2i] = sin(pos /
    10000^(2i/d_model)), PE[pos, 2i+1] = cos(same), then dropout.

    x: (L, N, d_model), (N, L, d_model) with batch_first, or (L, d_model) -> same shape.
    The table ``pe`` (max_len, d_model) is a non-persistent buffer (not in state_dict).
    Scale embeddings by sqrt(d_model) before, as the paper does, if wanted.
    """

    def __init__(self, d_model, max_len=5000, dropout=0.1, batch_first=False, dtype=None):
        super().__init__()
        from .regularization import Dropout
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        pos = B.xp.arange(max_len, dtype=B.float64)[:, None]
        div = B.xp.exp(B.xp.arange(0, d_model, 2, dtype=B.float64) *
                       (-math.log(10000.0) / d_model))
        pe = B.xp.zeros((max_len, d_model), dtype=B.float64)
        pe[:, 0::2] = B.xp.sin(pos * div)
        pe[:, 1::2] = B.xp.cos(pos * div[:d_model // 2])
        self.register_buffer("pe", plain(pe.astype(_dtype(dtype))), persistent=False)
        self.drop = Dropout(dropout)

    def forward(self, x):
        return _add_positions(self, x, self.pe)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEncoding(Module):
    """Adds a learned embedding of each position (as in BERT/GPT), then dropout.

    x: (L, N, d_model), (N, L, d_model) with batch_first, or (L, d_model) -> same shape.
    Parameter ``weight`` (max_len, d_model) ~ N(0, 0.02^2).
    """

    def __init__(self, d_model, max_len=512, dropout=0.1, batch_first=False, dtype=None):
        super().__init__()
        from .regularization import Dropout
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.weight = Parameter(B.xp.empty((max_len, d_model), dtype=_dtype(dtype)))
        init.normal_(self.weight, 0.0, 0.02)
        self.drop = Dropout(dropout)

    def forward(self, x):
        return _add_positions(self, x, self.weight)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"
