"""seq2seq-attention: an encoder–decoder GRU with Bahdanau (additive) attention, against
the same model without attention, on a synthetic translation task (the notes'
neural machine translation with attention, Bahdanau et al. 2015).

The task (:mod:`lamina.zoo.seq2seq_tasks`): reverse a sentence of 5–30 symbols over a
vocabulary of 20 symbols (+ PAD, BOS, EOS). The encoder is a bidirectional GRU over the
embedded source; the decoder a GRU fed, at each step, the previous target token and a
context vector. With attention the context is the attention-weighted sum of the encoder
outputs, the weights scored from the previous decoder state against every source
position (padding excluded); without it the context is the encoder's final states,
the same vector at every step (Cho et al. 2014). Training uses teacher forcing.

The recipe trains both models with the same settings and reports, on held-out
sentences, exact-match accuracy (greedy and beam search) by source length, and writes an
attention heat-map (``attention.png``) for one test sentence.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data.text import check_token_ids
from lamina.nn import decoding
from lamina.ops.attention import masked_softmax

from . import seq2seq_tasks as tasks
from .recipe import Recipe, Setup, save_results

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _as_tensor(a):
    return lamina.from_numpy(np.ascontiguousarray(a))


class AttentionSeq2Seq(nn.Module):
    """Bidirectional-GRU (or LSTM) encoder, GRU (or LSTM) decoder, with Bahdanau
    attention (``attention=True``) or a fixed context (``attention=False``).

    src (B, S) int64 right-padded with ``pad``; tgt_in (B, T) int64, the target shifted
    right starting with ``bos`` (teacher forcing).

    - Encoder: Embedding(V, emb) -> ``cell``(emb, hidden, bidirectional, lengths from
      the padding) -> memory (B, S, 2*hidden); final states of both directions
      (B, 2*hidden) -> ``bridge`` (Linear + tanh) -> initial decoder state (B, hidden).
    - Decoder step t: context c_t (B, 2*hidden): with attention, the
      :class:`lamina.nn.AdditiveAttention` of the previous decoder state over memory,
      padding masked out; without, the encoder's final states. Input [emb(y_{t-1}); c_t]
      -> ``cell``(emb + 2*hidden, hidden) -> s_t; logits = Linear([s_t; c_t]) (B, V).

    forward(src, tgt_in) -> logits (B, T, V). ``decode(src, method, ...)`` generates
    without teacher forcing. ``attention_weights(src, tgt_in)`` -> (B, T, S).
    """

    def __init__(self, vocab_size, emb_size=32, hidden_size=64, attn_size=64,
                 attention=True, cell="gru", pad=tasks.PAD, bos=tasks.BOS, eos=tasks.EOS):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"AttentionSeq2Seq: cell must be one of {sorted(CELLS)}, got "
                             f"{cell!r}")
        self.vocab_size, self.hidden_size, self.attention = vocab_size, hidden_size, attention
        self.cell, self.pad, self.bos, self.eos = cell, pad, bos, eos
        H = hidden_size
        self.src_embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad)
        self.tgt_embed = nn.Embedding(vocab_size, emb_size, padding_idx=pad)
        self.encoder = CELLS[cell](emb_size, H, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * H, H)
        if cell == "lstm":
            self.bridge_c = nn.Linear(2 * H, H)
        self.decoder = CELLS[cell](emb_size + 2 * H, H, batch_first=True)
        self.attn = nn.AdditiveAttention(H, 2 * H, attn_size) if attention else None
        self.out = nn.Linear(3 * H, vocab_size)

    def _name(self):
        return (f"AttentionSeq2Seq(vocab_size={self.vocab_size}, hidden_size="
                f"{self.hidden_size}, attention={self.attention})")

    # ---------------------------------------------------------------- encoder
    def encode(self, src):
        """src (B, S) -> dict: memory (B, S, 2H), mask (B, S) bool (True = padding),
        keys (B, S, A) (the attention's key projection, computed once), summary (B, 2H)
        (final encoder states) and the initial decoder state (B, H) or (h, c)."""
        s = check_token_ids(self._name(), src, "src", self.vocab_size)
        lens = (s != self.pad).sum(1)
        if (lens == 0).any():
            raise ValueError(f"{self._name()}: every source needs at least one non-pad "
                             f"token; rows {np.flatnonzero(lens == 0).tolist()} of src "
                             f"(shape {tuple(s.shape)}) are all padding")
        mask = s == self.pad
        if (mask[:, :-1] & ~mask[:, 1:]).any():
            raise ValueError(f"{self._name()}: src must be right-padded (pad={self.pad} "
                             f"only after the last token), shape {tuple(s.shape)}")
        x = self.src_embed(_as_tensor(s))
        memory, hn = self.encoder(x, lengths=lens)
        h = hn[0] if self.cell == "lstm" else hn
        summary = lamina.cat([h[0], h[1]], -1)
        state = lamina.tanh(self.bridge(summary))
        if self.cell == "lstm":
            c = hn[1]
            state = (state, self.bridge_c(lamina.cat([c[0], c[1]], -1)))
        enc = {"memory": memory, "mask": mask, "summary": summary, "state": state}
        if self.attention:
            enc["keys"] = self.attn.key_proj(memory)
        return enc

    # ---------------------------------------------------------------- decoder
    def _attend(self, query, enc):
        """Bahdanau attention of query (B, H) over the memory: (context (B, 2H), weights
        (B, S)). Same scores as ``self.attn(query, memory, key_padding_mask=mask)``, with
        the key projection taken from ``enc`` instead of recomputed every step."""
        a = self.attn
        scores = lamina.matmul(lamina.tanh(a.query_proj(query).unsqueeze(1) + enc["keys"]),
                               a.v)                                         # (B, S)
        w = masked_softmax(scores, enc["mask"], -1)
        ctx = lamina.matmul(w.unsqueeze(1), enc["memory"]).squeeze(1)       # (B, 2H)
        return ctx, w

    def _hidden(self, state):
        return state[0] if self.cell == "lstm" else state

    def _cell_step(self, x, state):
        """One decoder step: x (B, I), state (B, H) or (h, c) -> (output (B, H), state)."""
        if self.cell == "lstm":
            hx = (state[0].unsqueeze(0), state[1].unsqueeze(0))
            out, (h, c) = self.decoder(x.unsqueeze(1), hx)
            return out.squeeze(1), (h.squeeze(0), c.squeeze(0))
        out, h = self.decoder(x.unsqueeze(1), state.unsqueeze(0))
        return out.squeeze(1), h.squeeze(0)

    def step(self, tokens, state, enc):
        """tokens (B,) int64, decoder state -> (logits (B, V), new state, weights (B, S)
        or None)."""
        e = self.tgt_embed(tokens)
        if self.attention:
            ctx, w = self._attend(self._hidden(state), enc)
        else:
            ctx, w = enc["summary"], None
        out, state = self._cell_step(lamina.cat([e, ctx], -1), state)
        return self.out(lamina.cat([out, ctx], -1)), state, w

    def _check_pair(self, src, tgt_in):
        t = check_token_ids(self._name(), tgt_in, "tgt_in", self.vocab_size)
        n = src.shape[0]
        if t.shape[0] != n:
            raise ValueError(f"{self._name()}: src and tgt_in must have the same batch size, "
                             f"got shapes {tuple(src.shape)} and {tuple(t.shape)}")
        return t

    def forward(self, src, tgt_in):
        """Teacher-forced logits (B, T, V)."""
        t = self._check_pair(src, tgt_in)
        enc = self.encode(src)
        if not self.attention:  # the context is constant: run the decoder in one go
            e = self.tgt_embed(_as_tensor(t))                               # (B, T, E)
            ctx = enc["summary"].unsqueeze(1).expand(-1, t.shape[1], -1)
            st = enc["state"]
            hx = (st[0].unsqueeze(0), st[1].unsqueeze(0)) if self.cell == "lstm" else \
                st.unsqueeze(0)
            out, _ = self.decoder(lamina.cat([e, ctx], -1), hx)
            return self.out(lamina.cat([out, ctx], -1))
        state, logits = enc["state"], []
        for i in range(t.shape[1]):
            lg, state, _ = self.step(_as_tensor(t[:, i]), state, enc)
            logits.append(lg)
        return lamina.stack(logits, 1)

    def attention_weights(self, src, tgt_in):
        """Teacher-forced attention weights (B, T, S) (attention=True only)."""
        if not self.attention:
            raise ValueError(f"{self._name()}: a model without attention has no attention "
                             f"weights")
        t = self._check_pair(src, tgt_in)
        with lamina.no_grad():
            enc = self.encode(src)
            state, ws = enc["state"], []
            for i in range(t.shape[1]):
                _, state, w = self.step(_as_tensor(t[:, i]), state, enc)
                ws.append(w.numpy())
        return np.stack(ws, 1)

    # ---------------------------------------------------------------- generation
    def decode(self, src, method="greedy", beam_size=4, max_len=None, length_penalty=1.0,
               return_scores=False):
        """Translate src (B, S) without teacher forcing: ``method='greedy'`` or
        ``'beam'`` (``beam_size`` hypotheses, ranked by log-prob / length **
        length_penalty). Returns tokens (B, L) int64 (EOS included, repeated after the
        end; L <= max_len, default 2 * S + 2), and with ``return_scores`` also the
        (B,) scores."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"{self._name()}: method must be 'greedy' or 'beam', got "
                             f"{method!r}")
        with lamina.no_grad():
            enc = self.encode(src)
            n, S = enc["mask"].shape
            max_len = 2 * S + 2 if max_len is None else max_len
            k = beam_size if method == "beam" else 1
            if k > 1:  # the beams of one sentence share its encoding
                idx = np.repeat(np.arange(n), k)
                enc = {key: (v[idx] if isinstance(v, np.ndarray) else
                             (v if key == "state" else v.index_select(0, _as_tensor(idx))))
                       for key, v in enc.items()}
            enc_state = enc.pop("state")

            def step_fn(tok, state):
                logits, state, _ = self.step(tok, state, enc)
                return lamina.nn.functional.log_softmax(logits, -1), state

            if k == 1:
                tokens, scores = decoding.greedy_decode(step_fn, enc_state, self.bos,
                                                        self.eos, max_len)
            else:
                tokens, scores = decoding.beam_search(step_fn, enc_state, self.bos,
                                                      self.eos, k, max_len, length_penalty,
                                                      batch_size=n)
        return (tokens, scores) if return_scores else tokens


# -------------------------------------------------------------------- shared recipe
def attention_heatmap(weights, src_tokens, out_tokens, names, path, title=""):
    """Save the (T, S) attention matrix as a PNG heat-map: rows the emitted tokens,
    columns the source tokens (atomic write via :func:`lamina.train.callbacks.save_figure`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lamina.train.callbacks import save_figure
    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(0.28 * S + 2, 0.28 * T + 1.6))
    im = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(S))
    ax.set_xticklabels([names[t] for t in src_tokens], fontsize=7)
    ax.set_yticks(range(T))
    ax.set_yticklabels([names[t] for t in out_tokens], fontsize=7)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    save_figure(fig, path)
    plt.close(fig)


class Seq2SeqRecipe(Recipe):
    """Shared by the seq2seq recipes: ``setup`` builds the task data and
    ``self.build_model(cfg)``; ``evaluate_decoding`` decodes the test set (greedy and
    beam) and reports exact match overall and by source length."""

    def data(self, cfg):
        key = tuple(cfg[k] for k in ("task", "min_len", "max_len", "n_symbols", "seed",
                                     "n_train", "n_test", "n_val"))
        if getattr(self, "_data_key", None) != key:
            self._splits = tasks.task_splits(
                cfg["n_train"], cfg["n_test"], cfg["task"], cfg["min_len"], cfg["max_len"],
                cfg["n_symbols"], cfg["seed"], cfg["n_val"])
            self._data_key = key
        return self._splits

    def build_model(self, cfg):
        raise NotImplementedError

    def make_optimizer(self, model, cfg):
        return lamina.optim.Adam(model.parameters(), lr=cfg["lr"])

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        d = self.data(cfg)
        model = self.build_model(cfg)
        opt = self.make_optimizer(model, cfg)
        ls = cfg.get("label_smoothing", 0.0)
        loss = (lambda out, y: tasks.sequence_loss(out, y, ls))
        steps = cfg["epochs"] * -(-cfg["n_train"] // cfg["batch_size"])
        sched = lamina.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg["lr"], total_steps=steps, pct_start=cfg.get("warmup", 0.1)) \
            if cfg.get("schedule", "onecycle") == "onecycle" else None
        val = tasks.eval_loader(d["val"], 500) if d["val"] is not None else None
        return Setup(model, loss, opt,
                     tasks.train_loader(d["train"], cfg["batch_size"], cfg["seed"]),
                     val, tasks.eval_loader(d["test"], 500),
                     metrics=(tasks.token_accuracy, tasks.forced_sequence_accuracy),
                     scheduler=sched, scheduler_interval="step",
                     clip_grad_norm=cfg.get("clip", None))

    def evaluate_decoding(self, model, cfg, log=print, beam=True, prefix=""):
        """{greedy_exact_match, greedy_by_length, [beam_exact_match, beam_by_length]}
        on the test split."""
        test = self.data(cfg)["test"]
        out = {}
        methods = [("greedy", {})]
        if beam and cfg.get("beam_size", 0) > 1:
            methods.append(("beam", {"beam_size": cfg["beam_size"]}))
        for method, kw in methods:
            t0 = time.perf_counter()
            if method == "beam" and cfg.get("n_beam_test"):  # beam search costs more:
                test = tuple(a[:cfg["n_beam_test"]] for a in test)  # the first n only
            acc, _, by_len = tasks.decode_split(model, test, method, **kw)
            out[f"{method}_exact_match"] = acc
            out[f"{method}_by_length"] = by_len
            log(f"{prefix}{method} decoding: exact match {acc * 100:.2f}% on "
                f"{len(test[0])} held-out sentences ({time.perf_counter() - t0:.1f} s)")
        return out


class AttentionRecipe(Seq2SeqRecipe):
    name = "seq2seq-attention"
    summary = ("encoder-decoder GRU with Bahdanau attention vs without, reversing "
               "sentences of 5-30 symbols; exact match by length, beam vs greedy")
    defaults = dict(epochs=8, lr=3e-3, batch_size=64, seed=0, task="reverse", min_len=5,
                    max_len=30, n_symbols=20, n_train=32000, n_val=500, n_test=2000,
                    n_beam_test=2000, emb=32, hidden=64, attn=64, cell="gru", clip=1.0,
                    beam_size=4, compare=True, baseline_epochs=8)
    quick = dict(epochs=3, n_train=3200, n_test=200, n_val=0, max_len=10, hidden=48,
                 batch_size=32, lr=5e-3, baseline_epochs=1, beam_size=3)
    search_space = {"lr": ("loguniform", 1e-3, 1e-2), "hidden": ("choice", [48, 64, 96])}
    target = ("greedy_exact_match", 0.99)

    def build_model(self, cfg):
        return AttentionSeq2Seq(tasks.vocab_size(cfg["n_symbols"]), cfg["emb"],
                                cfg["hidden"], cfg["attn"], attention=cfg.get(
                                    "_attention", True), cell=cfg["cell"])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError(f"{self.name}: --resume is not supported (a run trains two "
                             f"models)")
        t0 = time.perf_counter()
        sub = (lambda name: os.path.join(out_dir, name)) if out_dir is not None else (
            lambda name: None)
        results = {"recipe": self.name, "config": cfg}
        log(f"--- with attention ({cfg['task']}, lengths {cfg['min_len']}-{cfg['max_len']}, "
            f"{cfg['n_symbols']} symbols, {cfg['n_train']} training sentences)")
        res = super().run(cfg, sub("attention"), None, verbose, log, callbacks)
        model = self.trainer.model
        results["attention"] = {k: v for k, v in res.items() if k != "config"}
        results["attention"].update(self.evaluate_decoding(model, cfg, log))
        results["greedy_exact_match"] = results["attention"]["greedy_exact_match"]
        if "beam_exact_match" in results["attention"]:
            results["beam_exact_match"] = results["attention"]["beam_exact_match"]
        self.model = model
        rows = {"attention": results["attention"]["greedy_by_length"]}
        if out_dir is not None:
            self.save_heatmap(model, cfg, os.path.join(out_dir, "attention.png"), log)
        if cfg["compare"]:
            log("--- the same model without attention")
            res = super().run({**cfg, "_attention": False, "epochs": cfg["baseline_epochs"]},
                              sub("no_attention"), None, verbose, log, callbacks)
            self.baseline = self.trainer.model
            results["no_attention"] = {k: v for k, v in res.items() if k != "config"}
            results["no_attention"].update(self.evaluate_decoding(self.baseline, cfg, log,
                                                                  beam=False,
                                                                  prefix="no attention: "))
            results["no_attention_exact_match"] = \
                results["no_attention"]["greedy_exact_match"]
            rows["no attention"] = results["no_attention"]["greedy_by_length"]
        if "beam_by_length" in results["attention"]:
            rows[f"attn, beam {cfg['beam_size']}"] = results["attention"]["beam_by_length"]
        log(tasks.format_length_table(rows, "greedy exact match by source length"))
        results["seconds"] = time.perf_counter() - t0
        save_results(out_dir, results)
        return results

    def save_heatmap(self, model, cfg, path, log=print):
        """The attention of the trained model on the first test sentence of length >= 15
        (greedy output), as a heat-map PNG."""
        src, lens, tgt = self.data(cfg)["test"]
        i = int(np.argmax(lens >= min(15, lens.max())))
        x = _as_tensor(src[i:i + 1, :lens[i]])
        model.eval()
        pred = model.decode(x).numpy()[0]
        out = tasks.strip(pred[None])[0] + [tasks.EOS]
        tin = np.array([[tasks.BOS] + out[:-1]])
        w = model.attention_weights(x, tin)[0]
        names = tasks.symbol_names(cfg["n_symbols"])
        ok = tasks.exact_match(pred[None], tgt[i:i + 1])[0]
        attention_heatmap(w, src[i, :lens[i]], out, names, path,
                          f"{cfg['task']}: attention weights ({'correct' if ok else 'wrong'})")
        log(f"attention heat-map: {path}")


RECIPE = AttentionRecipe()
