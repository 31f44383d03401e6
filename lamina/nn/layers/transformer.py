"""Transformer (Vaswani et al., 2017) with ``torch.nn``'s classes, arguments, defaults and
submodule names, so a PyTorch state_dict loads: TransformerEncoderLayer,
TransformerDecoderLayer, TransformerEncoder, TransformerDecoder, Transformer, and the
``causal_mask`` helper.

Layouts: (S, N, E) source and (T, N, E) target, or (N, S, E) / (N, T, E) with
``batch_first=True``, or unbatched (S, E). Masks follow MultiheadAttention: attn masks
(T, S) or (N*nhead, T, S) with bool True = not allowed or float added; key padding masks
(N, S) with True = padding. Post-norm by default (x = norm(x + sublayer(x))), pre-norm
with ``norm_first=True`` (x = x + sublayer(norm(x))).
"""
import copy

from ... import backend as B
from ...tensor import Tensor, plain
from .. import functional as F
from ..containers import ModuleList
from ..module import Module
from .attention import MultiheadAttention
from .linear import Linear
from .normalization import LayerNorm
from .regularization import Dropout

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer", "causal_mask"]


def causal_mask(sz, dtype=None):
    """The (sz, sz) float mask that lets position i attend only to j <= i: 0 on and below
    the diagonal, -inf above (PyTorch's ``Transformer.generate_square_subsequent_mask``).
    Pass it as ``attn_mask``/``src_mask``/``tgt_mask`` (add ``is_causal=True`` as a hint)."""
    dt = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
    return plain(B.xp.triu(B.xp.full((sz, sz), -B.xp.inf, dtype=dt), 1))


def _activation(act, who):
    if isinstance(act, str):
        if act == "relu":
            return F.relu
        if act == "gelu":
            return F.gelu
        raise ValueError(f"{who}: activation should be relu/gelu, not {act}")
    return act


def _is_causal_mask(mask, size=None):
    """True when ``mask`` equals causal_mask of its size (PyTorch's _detect_is_causal_mask
    with is_causal=None)."""
    if mask is None:
        return False
    m = mask.data if isinstance(mask, Tensor) else B.xp.asarray(mask)
    sz = size if size is not None else m.shape[-2]
    if m.shape != (sz, sz):
        return False
    ref = causal_mask(sz, m.dtype if m.dtype.kind == "f" else None).data
    if m.dtype == B.bool_:
        return bool((m == ~B.xp.isfinite(ref)).all())
    return bool((m == ref).all())


class _Layer(Module):
    def _common(self, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                batch_first, norm_first, bias, dtype, n_norms):
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        for i in range(1, n_norms + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias,
                                                dtype=dtype))
        for i in range(1, n_norms + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(activation, type(self).__name__)
        self.d_model, self.batch_first = d_model, batch_first

    def _attention(self, which, q, kv, attn_mask, key_padding_mask, is_causal):
        """``getattr(self, which)(q, kv, kv, ...)[0]``; a bad mask or shape raises a
        ValueError naming this layer, the sublayer and the shapes."""
        try:
            return getattr(self, which)(q, kv, kv, attn_mask=attn_mask,
                                        key_padding_mask=key_padding_mask,
                                        need_weights=False, is_causal=is_causal)[0]
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}(d_model={self.d_model}), {which}: "
                             f"{e}") from None

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self._attention("self_attn", x, x, attn_mask, key_padding_mask, is_causal)
        return self.dropout1(x)

    def _ff_block(self, x, drop):
        return drop(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _check(self, x, what):
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(f"{type(self).__name__}(d_model={self.d_model}): expected {what} "
                             f"of shape (L, N, {self.d_model}), (N, L, {self.d_model}) with "
                             f"batch_first, or (L, {self.d_model}), got {tuple(x.shape)}")


class TransformerEncoderLayer(_Layer):
    """Self-attention then a feed-forward block (linear1 -> activation -> dropout ->
    linear2), each with dropout, a residual connection and LayerNorm.

    Submodules: self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2
    (initialised as those modules are in PyTorch). ``activation``: 'relu', 'gelu' or a
    callable. forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False):
    src (S, N, E) [(N, S, E) batch_first] -> same shape.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self._common(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                     batch_first, norm_first, bias, dtype, 2)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        self._check(src, "src")
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        return x


class TransformerDecoderLayer(_Layer):
    """Masked self-attention, attention over the encoder's memory, then the feed-forward
    block; each with dropout, a residual connection and LayerNorm.

    Submodules: self_attn, multihead_attn, linear1, dropout, linear2, norm1..norm3,
    dropout1..dropout3. forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
    memory_is_causal=False): tgt (T, N, E), memory (S, N, E) [batch_first: (N, T, E),
    (N, S, E)] -> (T, N, E).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype)
        self._common(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                     batch_first, norm_first, bias, dtype, 3)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self._attention("multihead_attn", x, mem, attn_mask, key_padding_mask, is_causal)
        return self.dropout2(x)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        self._check(tgt, "tgt")
        self._check(memory, "memory")
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask,
                                               memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        return x


def _clones(layer, n):
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0`` ...), then the
    optional ``norm``. forward(src, mask=None, src_key_padding_mask=None, is_causal=None);
    is_causal=None detects whether ``mask`` is the causal mask, as PyTorch does.
    ``enable_nested_tensor`` and ``mask_check`` are accepted and ignored."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        if is_causal is None:
            is_causal = _is_causal_mask(mask)
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` (``layers.0`` ...), then the
    optional ``norm``. forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
    memory_is_causal=False)."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        if tgt_is_causal is None:
            tgt_is_causal = _is_causal_mask(tgt_mask)
        out = tgt
        for mod in self.layers:
            out = mod(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """Encoder-decoder Transformer with ``torch.nn.Transformer``'s arguments and
    submodules (encoder.layers.N, encoder.norm, decoder.layers.N, decoder.norm).
    Parameters with more than one dimension are re-initialised xavier_uniform, as in
    PyTorch.

    forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
    src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    src_is_causal=None, tgt_is_causal=None, memory_is_causal=False): src (S, N, E), tgt
    (T, N, E) [batch_first: (N, S, E), (N, T, E)] -> (T, N, E).
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False,
                 norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps,
                                                        bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps,
                                                        bias=bias, dtype=dtype))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self):
        from .. import init
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) float mask, -inf above the diagonal and 0 elsewhere (see causal_mask)."""
        return causal_mask(sz, dtype)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batched = src.ndim == 3
        if batched and src.shape[0 if self.batch_first else 1] != \
                tgt.shape[0 if self.batch_first else 1]:
            raise ValueError(f"Transformer: the batch number of src and tgt must be equal, "
                             f"got shapes {tuple(src.shape)} and {tuple(tgt.shape)}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: the feature number of src and tgt must be equal "
                             f"to d_model={self.d_model}, got shapes {tuple(src.shape)} and "
                             f"{tuple(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
