"""transformer-seq2seq: an encoder–decoder Transformer (Vaswani et al. 2017) on the
synthetic translation task of seq2seq-attention (reverse sentences of 5–30 symbols over
20 symbols; :mod:`lamina.zoo.seq2seq_tasks`).

The model is :class:`lamina.nn.Transformer` (pre-norm, batch_first) between token
embeddings with sinusoidal positions and a linear read-out. The decoder's
self-attention is causal (the target shifted right, teacher forcing); padding is masked
out of the encoder's self-attention, the decoder's self-attention and the decoder's
attention over the encoder memory. Exact-match accuracy on held-out sentences is
reported for greedy decoding and beam search, by source length.
"""
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import decoding

from . import seq2seq_tasks as tasks
from .recipe import save_results
from ..data.text import check_token_ids
from .seq2seq_attention import Seq2SeqRecipe, _as_tensor


class TransformerSeq2Seq(nn.Module):
    """Token embeddings + sinusoidal positional encodings ->
    ``lamina.nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
    dim_feedforward, dropout, batch_first=True, norm_first=True)`` -> Linear(d_model, V).

    src (B, S) int64 right-padded with ``pad``; tgt_in (B, T) int64, the target shifted
    right starting with ``bos``. forward(src, tgt_in) -> logits (B, T, V), with a causal
    target mask and key padding masks for the source (encoder self-attention and
    decoder cross-attention) and the target. ``decode(src, method='greedy'|'beam')``
    generates token by token (the decoder re-reads its whole prefix each step; the
    source is encoded once). S, T <= ``max_len``.
    """

    def __init__(self, vocab_size, d_model=64, nhead=4, num_encoder_layers=2,
                 num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=128,
                 src_positions="start", pad=tasks.PAD, bos=tasks.BOS, eos=tasks.EOS):
        super().__init__()
        if src_positions not in ("start", "end"):
            raise ValueError(f"TransformerSeq2Seq: src_positions must be 'start' or 'end', "
                             f"got {src_positions!r}")
        self.src_positions = src_positions
        self.vocab_size, self.d_model, self.max_len = vocab_size, d_model, max_len
        self.pad, self.bos, self.eos = pad, bos, eos
        self.src_embed = nn.Embedding(vocab_size, d_model, padding_idx=pad)
        self.tgt_embed = nn.Embedding(vocab_size, d_model, padding_idx=pad)
        self.pos = nn.SinusoidalPositionalEncoding(d_model, max_len, dropout, batch_first=True)
        self.transformer = nn.Transformer(d_model, nhead, num_encoder_layers,
                                          num_decoder_layers, dim_feedforward, dropout,
                                          batch_first=True, norm_first=True)
        self.out = nn.Linear(d_model, vocab_size)
        # Embedding rows start N(0, 1), as large as the positional encodings: no sqrt(d_model)
        # scaling (which would drown the positions that this task is all about)
        self.scale = 1.0

    def _name(self):
        return f"TransformerSeq2Seq(vocab_size={self.vocab_size}, d_model={self.d_model})"

    def _tokens(self, x, what):
        a = check_token_ids(self._name(), x, what, self.vocab_size)
        if a.shape[1] > self.max_len:
            raise ValueError(f"{self._name()}: {what} of shape {tuple(a.shape)} is longer "
                             f"than max_len={self.max_len}")
        return a

    def _embed(self, emb, a):
        return self.pos(emb(_as_tensor(a)) * self.scale)

    def _embed_src(self, s, mask):
        if self.src_positions == "start":
            return self._embed(self.src_embed, s)
        # position of token j of a sentence of length n: n - 1 - j (padding: 0, masked)
        lens = (~mask).sum(1, keepdims=True)
        idx = np.maximum(lens - 1 - np.arange(s.shape[1])[None, :], 0)
        pe = lamina.from_numpy(self.pos.pe.numpy()[idx])
        return self.pos.drop(self.src_embed(_as_tensor(s)) * self.scale + pe)

    def encode(self, src):
        """src (B, S) -> (memory (B, S, d_model), src padding mask (B, S) bool)."""
        s = self._tokens(src, "src")
        mask = s == self.pad
        if mask.all(1).any():
            raise ValueError(f"{self._name()}: every source needs at least one non-pad "
                             f"token; rows {np.flatnonzero(mask.all(1)).tolist()} of src "
                             f"(shape {tuple(s.shape)}) are all padding")
        memory = self.transformer.encoder(self._embed_src(s, mask),
                                          src_key_padding_mask=_as_tensor(mask))
        return memory, mask

    def decode_prefix(self, tgt_in, memory, src_mask):
        """Decoder logits (B, T, V) for the prefix tgt_in (B, T) over an encoded source."""
        t = tgt_in if isinstance(tgt_in, np.ndarray) else self._tokens(tgt_in, "tgt_in")
        T = t.shape[1]
        tgt_pad = t == self.pad
        tgt_pad[:, 0] = False  # the first position (BOS) is never padding
        h = self.transformer.decoder(
            self._embed(self.tgt_embed, t), memory,
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(T),
            tgt_key_padding_mask=_as_tensor(tgt_pad),
            memory_key_padding_mask=_as_tensor(src_mask), tgt_is_causal=True)
        return self.out(h)

    def forward(self, src, tgt_in):
        """Teacher-forced logits (B, T, V)."""
        t = self._tokens(tgt_in, "tgt_in")
        if t.shape[0] != src.shape[0]:
            raise ValueError(f"{self._name()}: src and tgt_in must have the same batch size, "
                             f"got shapes {tuple(src.shape)} and {tuple(t.shape)}")
        memory, mask = self.encode(src)
        return self.decode_prefix(t, memory, mask)

    def decode(self, src, method="greedy", beam_size=4, max_len=None, length_penalty=1.0,
               return_scores=False):
        """Translate src (B, S) without teacher forcing (``'greedy'`` or ``'beam'``);
        returns tokens (B, L) int64 (EOS included and repeated after the end; L <=
        max_len, default min(2 * S + 2, self.max_len - 1)) [, scores (B,)]."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"{self._name()}: method must be 'greedy' or 'beam', got "
                             f"{method!r}")
        with lamina.no_grad():
            memory, mask = self.encode(src)
            n, S = mask.shape
            max_len = min(2 * S + 2, self.max_len - 1) if max_len is None else max_len
            k = beam_size if method == "beam" else 1
            if k > 1:  # the beams of one sentence share its encoding
                idx = np.repeat(np.arange(n), k)
                memory, mask = memory.index_select(0, _as_tensor(idx)), mask[idx]

            def step_fn(tok, prefix):
                # prefix: (rows, t) tokens so far (BOS first); returns the next log-probs
                prefix = lamina.cat([prefix, tok.reshape(-1, 1)], 1)
                logits = self.decode_prefix(prefix.numpy(), memory, mask)[:, -1]
                return lamina.nn.functional.log_softmax(logits, -1), prefix

            start = lamina.from_numpy(np.zeros((n, 0), np.int64))
            if k == 1:
                tokens, scores = decoding.greedy_decode(step_fn, start, self.bos,
                                                        self.eos, max_len, batch_size=n)
            else:
                tokens, scores = decoding.beam_search(step_fn, start, self.bos, self.eos, k,
                                                      max_len, length_penalty, batch_size=n)
        return (tokens, scores) if return_scores else tokens


class TransformerRecipe(Seq2SeqRecipe):
    name = "transformer-seq2seq"
    summary = ("encoder-decoder Transformer reversing sentences of 5-30 symbols "
               "(seq2seq-attention's task); exact match, beam vs greedy")
    defaults = dict(epochs=6, lr=2e-3, batch_size=64, seed=0, task="reverse", min_len=5,
                    max_len=30, n_symbols=20, n_train=24000, n_val=500, n_test=2000,
                    n_beam_test=500, d_model=64, nhead=4, layers=2, ff=128, dropout=0.0,
                    clip=1.0, beam_size=4, warmup=0.1, src_positions="end")
    quick = dict(epochs=3, n_train=3200, n_test=200, n_val=0, max_len=10, batch_size=32,
                 lr=3e-3, beam_size=3)
    search_space = {"lr": ("loguniform", 3e-4, 3e-3), "d_model": ("choice", [32, 64, 96])}
    target = ("greedy_exact_match", 0.99)

    def build_model(self, cfg):
        return TransformerSeq2Seq(tasks.vocab_size(cfg["n_symbols"]), cfg["d_model"],
                                  cfg["nhead"], cfg["layers"], cfg["layers"], cfg["ff"],
                                  cfg["dropout"], max_len=max(64, 2 * cfg["max_len"] + 4),
                                  src_positions=cfg["src_positions"])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        res = super().run(cfg, out_dir, resume, verbose, log, callbacks)
        self.model = self.trainer.model
        res.update(self.evaluate_decoding(self.model, cfg, log))
        rows = {"greedy": res["greedy_by_length"]}
        if "beam_by_length" in res:
            rows[f"beam {cfg['beam_size']}"] = res["beam_by_length"]
        log(tasks.format_length_table(rows, "exact match by source length"))
        res["seconds"] = time.perf_counter() - t0
        save_results(out_dir, res)
        return res


RECIPE = TransformerRecipe()
