"""wavenet: a stack of dilated causal 1-D convolutions with gated units, trained as a
character-level autoregressive model of the shipped Shakespeare text.

Each layer is a causal convolution with kernel 2 and dilation d (1, 2, 4, ..., 2^(L-1)),
a gated unit z = tanh(W_f * x) * sigmoid(W_g * x), a residual 1×1 convolution added back
to its input and a skip 1×1 convolution; the skips are summed and a ReLU-1×1-ReLU-1×1 head
gives logits over the characters. Output t sees the inputs t - R + 1 .. t with receptive
field R = 1 + blocks * sum_l (k - 1) d_l, i.e. 2^L for one stack of L kernel-2 layers: the
notes' "receptive field expansion with dilation" — it doubles with every layer, where
undilated layers would add one position each.

Training takes random windows of the training text (first 90%); every scored position has
its full receptive field of real context before it (the first R - 1 inputs of a window are
context only). Validation cross-entropy (nats and bits per character) is computed the same
way over the whole validation text (last 10%), beside a unigram baseline (character
frequencies of the training text). The results also hold the receptive field measured
with gradients — how many input positions change the last output — for 1..8 layers,
beside 2^L (``receptive_field.png``), and a sample of generated text.

    lamina train wavenet [--quick] [--set n_layers=8]
    lamina generate runs/wavenet/model.safetensors --prime "ROMEO:"
"""
import math
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.grad_mode import no_grad
from lamina.io import save
from lamina.nn import functional as F
from lamina.train.callbacks import save_figure

from .char_rnn import CharLM, CharLMRecipe, shakespeare_split
from .recipe import save_results

LN2 = math.log(2.0)


class GatedResidualLayer(nn.Module):
    """One WaveNet layer: (N, C, T) -> (x + W_r z (N, C, T), W_s z (N, S, T)) with the gated
    unit z = tanh(W_f * x) * sigmoid(W_g * x), * a causal convolution of kernel
    ``kernel_size`` and ``dilation``. W_f and W_g are the two halves (output channels
    0..C-1 and C..2C-1) of one causal convolution ``dilated``; ``residual`` and ``skip``
    are 1×1 convolutions."""

    def __init__(self, channels, skip_channels, dilation, kernel_size=2):
        super().__init__()
        self.channels, self.dilation = channels, dilation
        self.dilated = nn.CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x):
        f, g = self.dilated(x).chunk(2, dim=1)
        z = f.tanh() * g.sigmoid()
        return x + self.residual(z), self.skip(z)


class WaveNet(CharLM):
    """WaveNet over tokens: ids (B, T) int64 -> logits (B, T, V); logit t depends only on
    the ids at t - receptive_field + 1 .. t.

    Embedding (V -> ``channels``), ``n_blocks`` stacks of ``n_layers`` gated residual
    layers with dilations 1, 2, ..., 2^(n_layers - 1), the skip outputs summed, then
    relu -> 1×1 (``skip_channels``) -> relu -> 1×1 (-> V). ``forward_embedded(h)`` runs
    the network on embedded inputs h (B, channels, T) (used to measure the receptive
    field with gradients). ``generate`` (from CharLM) samples text."""

    def __init__(self, vocab_size, channels=64, skip_channels=128, n_layers=7, n_blocks=1,
                 kernel_size=2):
        super().__init__()
        if n_layers < 1 or n_blocks < 1 or kernel_size < 1:
            raise ValueError(f"WaveNet: n_layers, n_blocks and kernel_size must be >= 1, got "
                             f"{n_layers}, {n_blocks}, {kernel_size}")
        self.vocab_size, self.channels = vocab_size, channels
        self.kernel_size = kernel_size
        self.embed = nn.Embedding(vocab_size, channels)
        self.layers = nn.ModuleList([GatedResidualLayer(channels, skip_channels, 2 ** i,
                                                        kernel_size)
                                     for _ in range(n_blocks) for i in range(n_layers)])
        self.head1 = nn.Conv1d(skip_channels, skip_channels, 1)
        self.head2 = nn.Conv1d(skip_channels, vocab_size, 1)

    @property
    def dilations(self):
        return [layer.dilation for layer in self.layers]

    @property
    def receptive_field(self):
        """1 + sum over layers of (kernel_size - 1) * dilation: 2^L for one stack of L
        kernel-2 layers."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def forward_embedded(self, h):
        if h.ndim != 3 or h.shape[1] != self.channels:
            raise ValueError(f"WaveNet: embedded input must be (B, {self.channels}, T), got "
                             f"shape {tuple(h.shape)}")
        skips = None
        for layer in self.layers:
            h, s = layer(h)
            skips = s if skips is None else skips + s
        out = self.head2(self.head1(skips.relu()).relu())      # (B, V, T)
        return out.transpose(1, 2)

    def forward(self, ids):
        ids = lamina.from_numpy(self._check_ids(ids))
        return self.forward_embedded(self.embed(ids).transpose(1, 2))

    def step(self, ids, state):
        """(logits of the new ids (B, T, V), context): ``state`` is the last
        receptive_field - 1 ids seen (None at the start), all the model needs."""
        new = self._check_ids(ids)
        ctx = new if state is None else np.concatenate([state, new], axis=1)
        logits = self(ctx)[:, -new.shape[1]:]
        return logits, ctx[:, -(self.receptive_field - 1):] if self.receptive_field > 1 \
            else ctx[:, :0]


def input_gradient(model, T, t=None, seed=0):
    """|d logits(t) / d h| summed over channels: (T,) for a random embedded input h
    (1, channels, T); ``t`` defaults to the last position. Eval mode."""
    rng = np.random.default_rng(seed)
    h = lamina.tensor(rng.standard_normal((1, model.channels, T)).astype(np.float32),
                      requires_grad=True)
    t = T - 1 if t is None else t
    was_training = model.training
    model.eval()
    try:
        logits = model.forward_embedded(h)
        w = lamina.from_numpy(rng.standard_normal(model.vocab_size).astype(np.float32))
        (logits[0, t] * w).sum().backward()
    finally:
        model.train(was_training)
    return np.abs(h.grad.numpy()[0]).sum(0)


def empirical_receptive_field(model, T=None):
    """How many input positions have a nonzero gradient on the last output (a sequence of
    T = receptive_field + 16 positions by default, so the edge is visible)."""
    T = T or model.receptive_field + 16
    return int(np.count_nonzero(input_gradient(model, T)))


def scored_nll(model, seq, first, seq_len=256, batch_size=16):
    """Mean cross-entropy (nats/token) of predicting seq[p] for every p >= ``first``, each
    from the receptive_field ids before it (``first`` >= receptive_field, so no
    prediction sees padding). Blocks of ``seq_len`` targets, eval mode, no gradients."""
    R = model.receptive_field
    seq = np.asarray(seq, np.int64)
    if first < R:
        raise ValueError(f"scored_nll: first ({first}) must be >= the receptive field ({R})")
    starts = list(range(first, len(seq), seq_len))
    total, count = 0.0, 0
    model.eval()
    with no_grad():
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            full = [a for a in group if a + seq_len <= len(seq)]
            parts = [full] + [[a] for a in group if a + seq_len > len(seq)]
            for part in parts:
                if not part:
                    continue
                n = min(seq_len, len(seq) - part[0])
                x = np.stack([seq[a - R:a + n - 1] for a in part])
                y = np.stack([seq[a:a + n] for a in part])
                logits = model(x)[:, R - 1:]
                V = logits.shape[-1]
                loss = F.cross_entropy(logits.reshape(-1, V),
                                       lamina.from_numpy(y.reshape(-1)), reduction="sum")
                total += float(loss.item())
                count += y.size
    model.train()
    return total / count


def unigram_cross_entropy(train_ids, val_ids, vocab_size):
    """Nats/char of ``val_ids`` under the add-one-smoothed character frequencies of
    ``train_ids`` (a model that ignores context)."""
    p = (np.bincount(train_ids, minlength=vocab_size) + 1.0) / (len(train_ids) + vocab_size)
    return float(-np.log(p[np.asarray(val_ids)]).mean())


def plot_receptive_fields(rows, path):
    """One row per depth L: which of the input positions reach the last output."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9, 0.45 * len(rows) + 1.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    img = np.stack([r["mask"] for r in rows]).astype(float)
    T = img.shape[1]
    ax.imshow(img, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1,
              extent=(-T + 0.5, 0.5, len(rows) - 0.5, -0.5))
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"L={r['layers']}: {r['measured']} (2^L={r['expected']})"
                        for r in rows], fontsize=7)
    ax.set_xlabel("input position relative to the output (0 = same step)")
    ax.set_title("inputs with a nonzero gradient on the last output (black), dilations "
                 "1, 2, ..., 2^(L-1), kernel 2", fontsize=8)
    save_figure(fig, path)


def receptive_field_table(max_layers, channels=16, skip_channels=16, seed=0):
    """For L = 1..max_layers: a fresh random kernel-2 WaveNet's measured receptive field
    (nonzero input-gradient positions of the last output) beside 2^L."""
    T = 2 ** max_layers + 8
    rows = []
    for L in range(1, max_layers + 1):
        lamina.manual_seed(seed + L)
        m = WaveNet(10, channels, skip_channels, n_layers=L)
        g = input_gradient(m, T, seed=seed + L)
        rows.append({"layers": L, "measured": int(np.count_nonzero(g)),
                     "expected": 2 ** L, "formula": m.receptive_field, "mask": g > 0})
    return rows


class WaveNetRecipe(CharLMRecipe):
    name = "wavenet"
    summary = ("WaveNet (dilated causal convolutions, gated units, residual/skip) as a "
               "character-level model of Shakespeare; receptive field 2^layers measured")
    defaults = dict(steps=1800, lr=2e-3, batch_size=16, seq_len=128, seed=0, channels=64,
                    skip_channels=128, n_layers=7, n_blocks=1, val_fraction=0.1,
                    corpus_chars=0, eval_every=300, rf_layers=8, sample_chars=300)
    quick = dict(steps=150, channels=32, skip_channels=64, n_layers=5, corpus_chars=120000,
                 eval_every=75, rf_layers=5, sample_chars=60, lr=4e-3, seq_len=64)
    target = ("val_loss", 1.90)

    def build_model(self, cfg):
        return WaveNet(len(self.vocab(cfg)), cfg["channels"], cfg["skip_channels"],
                       cfg["n_layers"], cfg["n_blocks"])

    def corpus(self, cfg):
        """(vocab, train ids, val ids): the 90/10 split by position, of the first
        ``corpus_chars`` characters when that is > 0 (quick runs)."""
        vocab, tr, va = shakespeare_split(cfg["val_fraction"])
        n = cfg["corpus_chars"]
        if n:
            ids = np.concatenate([tr, va])[:n]
            cut = int(round(n * (1 - cfg["val_fraction"])))
            tr, va = ids[:cut], ids[cut:]
        return vocab, tr, va

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError("wavenet: --resume is not supported")
        t0 = time.perf_counter()
        lamina.manual_seed(cfg["seed"])
        rng = np.random.default_rng(cfg["seed"])
        vocab, tr, va = self.corpus(cfg)
        model = self.build_model(cfg)
        R, T, bs = model.receptive_field, cfg["seq_len"], cfg["batch_size"]
        # validation: every validation character, each predicted from the R characters
        # before it (the first ones from the end of the training text)
        val_seq, val_first = np.concatenate([tr[-R:], va]), R
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        unigram = unigram_cross_entropy(tr, va, len(vocab))
        start = scored_nll(model, val_seq, val_first)
        log(f"wavenet: {len(tr)} train / {len(va)} val characters, vocabulary {len(vocab)}; "
            f"{len(model.layers)} layers, dilations {model.dilations}, receptive field {R}; "
            f"untrained val loss {start:.4f} nats/char, unigram {unigram:.4f}")
        history, curve, run_loss, run_n = [], [], 0.0, 0
        steps = cfg["steps"]
        for step in range(1, steps + 1):
            for g in opt.param_groups:     # cosine decay to lr / 20
                g["lr"] = cfg["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - 1)
                                                                         / steps)))
            s = rng.integers(0, len(tr) - (R + T) + 1, size=bs)
            idx = s[:, None] + np.arange(R + T)
            w = tr[idx]                      # inputs w[:, :-1], targets w[:, R:]
            logits = model(w[:, :-1])[:, R - 1:]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   lamina.from_numpy(w[:, R:].reshape(-1).copy()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            run_loss += float(loss.item())
            run_n += 1
            if step % 50 == 0 or step == steps:
                curve.append([step, run_loss / run_n])
                if verbose:
                    log(f"  step {step}/{steps}: train {run_loss / run_n:.4f} nats/char")
                run_loss, run_n = 0.0, 0
            if step % cfg["eval_every"] == 0 or step == steps:
                v = scored_nll(model, val_seq, val_first)
                history.append({"step": step, "val_loss": v})
                log(f"step {step}: val {v:.4f} nats/char = {v / LN2:.4f} bits/char "
                    f"({time.perf_counter() - t0:.0f} s)")
        val = history[-1]["val_loss"]
        rows = receptive_field_table(cfg["rf_layers"], seed=cfg["seed"])
        for r in rows:
            log(f"  L={r['layers']}: {r['measured']} input positions reach the last output "
                f"(2^L = {r['expected']})")
        trained_rf = empirical_receptive_field(model)
        log(f"trained model: {trained_rf} input positions reach the last output "
            f"(receptive field {R})")
        prime = "ROMEO:"
        sample_ids = model.generate(vocab.encode(prime), cfg["sample_chars"], 0.8, cfg["seed"])
        sample = prime + vocab.decode(sample_ids)
        if verbose:
            log("sample (temperature 0.8):\n" + sample)
        results = {"recipe": self.name, "steps": steps, "receptive_field": R,
                   "dilations": model.dilations,
                   "n_train_chars": len(tr), "n_val_chars": len(va),
                   "val_loss": val, "val_bits_per_char": val / LN2,
                   "best_val_loss": min(h["val_loss"] for h in history),
                   "untrained_val_loss": start, "unigram_val_loss": unigram,
                   "unigram_val_bits_per_char": unigram / LN2,
                   "history": history, "train_curve": curve,
                   "receptive_field_by_layers": [{k: r[k] for k in ("layers", "measured",
                                                                     "expected", "formula")}
                                                 for r in rows],
                   "trained_model_measured_receptive_field": trained_rf,
                   "sample": sample}
        if out_dir is not None:
            plot_receptive_fields(rows, os.path.join(out_dir, "receptive_field.png"))
            save({"model": model.state_dict(), "config": {"recipe": self.name, **cfg}},
                 os.path.join(out_dir, "model.safetensors"))
            results["figures"] = ["receptive_field.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        self.model = model
        log(f"{results['seconds']:.0f} s")
        return results


RECIPE = WaveNetRecipe()
