"""Seq2Seq: a generic encoder-decoder with teacher forcing and greedy/beam generation."""
from ... import backend as B
from ... import grad_mode
from ... import ops
from ...tensor import Tensor, plain
from .. import decoding
from ..module import Module

__all__ = ["Seq2Seq"]


class Seq2Seq(Module):
    """Encoder-decoder scaffold (Sutskever et al. 2014; with attention when the decoder
    attends to the encoder outputs, Bahdanau et al. 2015).

    ``encoder(src) -> (outputs, state)``: ``outputs`` (the memory the decoder may attend
    to) and the initial decoder state (a Tensor or a tuple/list/dict of Tensors).
    ``bridge(state) -> state`` optionally maps the encoder's final state to the decoder's.
    ``decoder(tokens (B,) int64, state, outputs) -> (logits (B, V), state)`` takes one step.
    ``state_batch_dim`` / ``memory_batch_dim``: the batch dimension of every state Tensor
    and of the encoder outputs (0 by default; 1 for the (num_layers, B, H) state and
    (T, B, H) outputs of a ``batch_first=False`` RNN), used to expand and reorder them for
    beam search.
    """

    def __init__(self, encoder, decoder, bridge=None, state_batch_dim=0, memory_batch_dim=0):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.bridge = bridge
        self.state_batch_dim = state_batch_dim
        self.memory_batch_dim = memory_batch_dim

    def encode(self, src):
        """(encoder outputs, initial decoder state)."""
        out = self.encoder(src)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError("Seq2Seq: the encoder must return (outputs, state), got "
                             f"{type(out).__name__}")
        memory, state = out
        if self.bridge is not None:
            state = self.bridge(state)
        return memory, state

    def forward(self, src, tgt_in, teacher_forcing_ratio=1.0):
        """Decoder logits (B, L, V) for the decoder inputs ``tgt_in`` (B, L) (the target
        shifted right, starting with bos).

        Step t is fed tgt_in[:, t] (teacher forcing). In training mode with
        ``teacher_forcing_ratio`` < 1, each sequence at each step t > 0 is fed, with
        probability 1 - ratio, the decoder's own argmax from step t - 1 instead (drawn from
        lamina's generator); in eval mode the ground truth is always fed.
        """
        tgt = tgt_in.data if isinstance(tgt_in, Tensor) else B.xp.asarray(tgt_in)
        if tgt.ndim != 2 or tgt.dtype.kind not in "iu":
            raise ValueError(f"Seq2Seq: tgt_in must be (B, L) integer token ids, got shape "
                             f"{tuple(tgt.shape)} dtype {tgt.dtype}")
        memory, state = self.encode(src)
        mix = self.training and teacher_forcing_ratio < 1
        n, steps = tgt.shape
        tok = tgt[:, 0]
        logits = []
        for t in range(steps):
            out, state = self.decoder(plain(tok), state, memory)
            logits.append(out)
            if t + 1 < steps:
                tok = tgt[:, t + 1]
                if mix:
                    own = out.data.argmax(-1)
                    truth = B.rng().random(n) < teacher_forcing_ratio
                    tok = B.xp.where(truth, tok, own)
        return ops.stack(logits, 1)

    def _reorder(self, state, index):
        idx = plain(index)
        d = self.state_batch_dim
        return decoding.map_state(state, lambda t: ops.index_select(t, d, idx))

    def generate(self, src, bos, eos, max_len, beam_size=1, length_penalty=1.0):
        """Decode ``src`` without teacher forcing: greedy for beam_size=1, else beam search.

        bos: an int or (B,) start tokens. Returns (tokens (B, L) int64, scores (B,)) as
        :func:`lamina.nn.greedy_decode` / :func:`lamina.nn.beam_search` (L <= max_len).
        """
        with grad_mode.no_grad():
            memory, state = self.encode(src)
            if isinstance(bos, int):
                if isinstance(memory, Tensor):
                    n = memory.shape[self.memory_batch_dim]
                else:
                    first = decoding._first_tensor(state)
                    n = first.shape[self.state_batch_dim]
                bos = B.xp.full(n, bos, dtype=B.int64)
            else:
                bos = bos.data if isinstance(bos, Tensor) else B.xp.asarray(bos)
                n = bos.shape[0]
            if beam_size > 1 and isinstance(memory, Tensor):
                # the beams of one sequence share its memory: expand it once
                idx = plain(B.xp.repeat(B.xp.arange(n), beam_size))
                memory = ops.index_select(memory, self.memory_batch_dim, idx)

            def step(tok, st):
                logits, st = self.decoder(tok, st, memory)
                return ops.log_softmax(logits, -1), st

            if beam_size == 1:
                return decoding.greedy_decode(step, state, bos, eos, max_len)
            return decoding.beam_search(step, state, bos, eos, beam_size, max_len,
                                        length_penalty, reorder_state=self._reorder)
