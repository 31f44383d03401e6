"""char-rnn: a character-level recurrent language model on the shipped Shakespeare corpus.

The corpus is split 90/10 (``split``): by default the last 10% of every play is held out
(``split="play"``); ``split="position"`` holds out the last 10% of the whole corpus, which
is mostly one play in an edition with its own layout. Training uses
truncated back-propagation through time: the text is cut into ``batch_size`` contiguous
streams, each batch is the next ``seq_len`` characters of every stream, and the recurrent
state is carried from one batch to the next (detached, so gradients stop at the chunk
boundary). Gradients are clipped. ``cell`` selects a vanilla RNN, a GRU or an LSTM.

    lamina train char-rnn [--set cell=gru]
    lamina generate runs/char-rnn/best.safetensors --prime "ROMEO:" --temperature 0.8

:class:`CharLM` (the generation mixin), :class:`StreamBatches`, :class:`TBPTT`,
:func:`lm_loss` and :func:`shakespeare_split` are shared with ``char_transformer``.
"""
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data.text import Vocab, load_shakespeare, shakespeare_plays
from lamina.grad_mode import no_grad
from lamina.nn import functional as F
from lamina.nn.decoding import map_state, sample
from lamina.tensor import Tensor
from lamina.train.callbacks import Callback

from .recipe import Recipe, Setup, save_results

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

_CORPUS = {}


def shakespeare_split(val_fraction=0.1, by="position"):
    """(vocab, train_ids, val_ids): the character vocabulary of the whole corpus and the
    corpus split 1 - val_fraction / val_fraction.

    by="position": the first part of the corpus for training, the rest (the end of The
    Tempest and all of A Midsummer Night's Dream) for validation. by="play": every play
    split by position, the eight first parts concatenated for training and the eight last
    parts for validation, so validation text comes from the plays (their names and their
    editions' layouts) the model was trained on."""
    if "text" not in _CORPUS:
        text = load_shakespeare()
        vocab = Vocab.chars(text)
        _CORPUS.update(text=text, vocab=vocab, ids=vocab.encode(text),
                       plays=[len(p) for _, p in shakespeare_plays(text)])
    ids = _CORPUS["ids"]
    if by == "position":
        cut = int(round(len(ids) * (1 - val_fraction)))
        return _CORPUS["vocab"], ids[:cut], ids[cut:]
    if by != "play":
        raise ValueError(f"shakespeare_split: by must be 'position' or 'play', got {by!r}")
    tr, va, a = [], [], 0
    for n in _CORPUS["plays"]:
        cut = a + int(round(n * (1 - val_fraction)))
        tr.append(ids[a:cut])
        va.append(ids[cut:a + n])
        a += n
    return _CORPUS["vocab"], np.concatenate(tr), np.concatenate(va)


def shakespeare_vocab():
    """The character vocabulary of the shipped corpus (the same for every split)."""
    return shakespeare_split()[0]


def unigram_entropy(ids, vocab_size):
    """Entropy (nats) of the character frequencies of ``ids``: the loss of a model that
    ignores context."""
    p = np.bincount(np.asarray(ids), minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def lm_loss(logits, target):
    """Mean cross-entropy (nats/token) of logits (B, T, V) against targets (B, T)."""
    v = logits.shape[-1]
    t = target if isinstance(target, Tensor) else lamina.from_numpy(np.asarray(target))
    return F.cross_entropy(logits.reshape(-1, v), t.reshape(-1))


class StreamBatches:
    """Consecutive chunks of ``batch_size`` parallel streams of a token sequence, for
    truncated BPTT. The ids are cut into ``batch_size`` contiguous streams of equal length;
    batch k is ``(x, reset, y)`` with x = the k-th ``seq_len`` tokens of every stream
    (batch_size, seq_len), y = x shifted by one, and ``reset`` True only for the first
    chunk (so a stateful model starts from a zero state). With ``shift`` (training), each
    epoch starts the streams at a different random offset below ``seq_len``."""

    def __init__(self, ids, batch_size, seq_len, shift=False, seed=0):
        self.ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) < batch_size * (seq_len + 1) + seq_len:
            raise ValueError(f"StreamBatches: {len(self.ids)} tokens are too few for "
                             f"batch_size={batch_size} streams of seq_len={seq_len}")
        self.batch_size, self.seq_len, self.shift, self.seed = batch_size, seq_len, shift, seed
        self.epoch = 0

    def __len__(self):
        stream = (len(self.ids) - self.seq_len) // self.batch_size
        return (stream - 1) // self.seq_len

    def __iter__(self):
        off = 0
        if self.shift:
            off = int(np.random.default_rng([self.seed, self.epoch]).integers(self.seq_len))
        self.epoch += 1
        n = (len(self.ids) - off) // self.batch_size
        streams = self.ids[off:off + n * self.batch_size].reshape(self.batch_size, n)
        L = self.seq_len
        for k in range(len(self)):
            x = streams[:, k * L:(k + 1) * L]
            y = streams[:, k * L + 1:(k + 1) * L + 1]
            yield lamina.from_numpy(x.copy()), k == 0, lamina.from_numpy(y.copy())

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = int(state["epoch"])


class CharLM(nn.Module):
    """Mixin for character language models: ``generate`` feeds back sampled tokens.

    Subclasses define ``vocab_size`` and ``step(ids (B, T) int64, state) -> (logits
    (B, T, V), state)``; ``state`` is whatever the model carries (None at the start)."""

    def _check_ids(self, ids, what="input"):
        name = type(self).__name__
        a = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if a.ndim != 2 or a.dtype.kind not in "iu":
            raise ValueError(f"{name}: {what} must be (batch, time) integer token ids, got "
                             f"shape {tuple(a.shape)} dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise ValueError(f"{name}: {what} token ids must be in [0, {self.vocab_size}), got "
                             f"values in [{a.min()}, {a.max()}] (shape {tuple(a.shape)})")
        return a.astype(np.int64, copy=False)

    def generate(self, prime_ids, length, temperature=1.0, generator=None):
        """Sample ``length`` tokens after the prime.

        prime_ids: a non-empty sequence of token ids (T,) or a batch (B, T). The model reads
        the prime, then repeatedly samples from softmax(logits / temperature) and feeds the
        sample back; temperature 0 is argmax (greedy) decoding. ``generator``: a
        ``numpy.random.Generator`` (or an int seed) for reproducible samples. Returns the
        generated ids only, (length,) or (B, length) int64; eval mode, no gradients."""
        name = type(self).__name__
        p = np.asarray(prime_ids.data if isinstance(prime_ids, Tensor) else prime_ids)
        single = p.ndim == 1
        p = p.reshape(1, -1) if single else p
        if p.ndim != 2 or p.shape[1] == 0:
            raise ValueError(f"{name}.generate: prime_ids must be a non-empty (T,) or (B, T) "
                             f"sequence of token ids, got shape {tuple(np.shape(prime_ids))}")
        p = self._check_ids(p, "prime_ids")
        if not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"{name}.generate: length must be a non-negative integer, got "
                             f"{length!r}")
        if temperature < 0:
            raise ValueError(f"{name}.generate: temperature must be >= 0, got {temperature}")
        if generator is None or isinstance(generator, (int, np.integer)):
            generator = np.random.default_rng(generator)
        out = np.zeros((p.shape[0], length), dtype=np.int64)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                logits, state = self.step(lamina.from_numpy(p.copy()), None)
                for i in range(length):
                    last = logits.numpy()[:, -1, :]
                    tok = np.asarray(sample(last, temperature, generator=generator).numpy(),
                                     dtype=np.int64).reshape(-1)
                    out[:, i] = tok
                    if i + 1 < length:
                        logits, state = self.step(lamina.from_numpy(tok[:, None].copy()),
                                                  state)
        finally:
            self.train(was_training)
        return out[0] if single else out


class CharRNN(CharLM):
    """Character-level recurrent language model: Embedding -> RNN/GRU/LSTM (``num_layers``,
    dropout between layers) -> dropout -> Linear to vocabulary logits.

    forward(x (B, T) int64, state=None) -> (logits (B, T, V), state); ``state`` is h
    (num_layers, B, H), or (h, c) for the LSTM."""

    def __init__(self, vocab_size, hidden_size=256, embed_dim=64, num_layers=1, cell="lstm",
                 dropout=0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"CharRNN: cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size, self.hidden_size, self.cell = vocab_size, hidden_size, cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x, state=None):
        x = lamina.from_numpy(self._check_ids(x))
        h, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(h)), state

    step = forward


class TBPTT(nn.Module):
    """Wraps a model ``forward(x, state) -> (out, state)`` for truncated BPTT with the
    Trainer: ``forward(x, reset)`` continues from the state left by the previous call
    (detached: no gradient flows into earlier chunks), or from None when ``reset``.
    Parameters and state_dict are the inner model's, under ``model.``."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._state = None

    def forward(self, x, reset=True):
        out, state = self.model(x, None if reset else self._state)
        self._state = map_state(state, lambda t: t.detach())
        return out

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)


class TimeBudget(Callback):
    """Stops training after the epoch at which another epoch would exceed ``seconds``
    (0: no limit). Time is the CPU time of this process since the start of fit, so other
    jobs on a shared machine do not eat the budget; with several BLAS threads it runs
    faster than the wall clock, so the budget is conservative."""

    def __init__(self, seconds, log=print):
        self.seconds, self.log = seconds, log

    def on_fit_start(self, trainer):
        self.t0 = time.process_time()
        self.epochs_run = 0

    def on_epoch_end(self, trainer, epoch, logs):
        self.epochs_run += 1
        if not self.seconds:
            return
        used = time.process_time() - self.t0
        if used + used / self.epochs_run > self.seconds:
            trainer.stop_training = True
            if epoch < trainer.epochs:
                trainer.log(f"time budget of {self.seconds:.0f} s reached after epoch "
                            f"{epoch} ({used:.0f} s CPU)")


class CharLMRecipe(Recipe):
    """Shared parts of the character-LM recipes: ``build_model(cfg)`` and ``vocab(cfg)``
    (used by ``lamina generate``), a unigram baseline in the results."""

    def vocab(self, cfg):
        return shakespeare_vocab()

    def text_model(self, cfg):
        """(model, vocab) for ``lamina generate``: a freshly built model (load the
        checkpoint's state_dict into it) and the vocabulary it was trained with."""
        return self.build_model(cfg), self.vocab(cfg)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        cpu0 = time.process_time()
        results = super().run(cfg, out_dir=out_dir, resume=resume, verbose=verbose, log=log,
                              callbacks=callbacks)
        results["cpu_seconds"] = time.process_time() - cpu0
        vocab, train_ids, _ = _corpus(cfg)
        hist = self.history
        best = min(h["val_loss"] for h in hist)
        results.update(val_loss=hist[-1]["val_loss"], best_val_loss=best,
                       unigram_entropy=unigram_entropy(train_ids, len(vocab)))
        log(f"validation loss {hist[-1]['val_loss']:.4f} nats/char (best {best:.4f}; "
            f"unigram entropy {results['unigram_entropy']:.4f}); "
            f"{results['seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU")
        model = self.trainer.model
        sample_ids = model.generate(vocab.encode("ROMEO:"), 200, 0.8, cfg["seed"])
        results["sample"] = "ROMEO:" + vocab.decode(sample_ids)
        if verbose:
            log("sample (temperature 0.8):\n" + results["sample"])
        save_results(out_dir, results)
        return results


class CharRNNRecipe(CharLMRecipe):
    name = "char-rnn"
    summary = ("character-level LSTM/GRU/RNN language model on Shakespeare, truncated BPTT "
               "(--set cell=rnn|gru|lstm)")
    defaults = dict(epochs=6, lr=3e-3, batch_size=32, seq_len=64, seed=0, cell="lstm",
                    hidden_size=256, embed_dim=64, num_layers=1, dropout=0.0, clip=5.0,
                    val_fraction=0.1, split="play", time_budget=1140.0, corpus_chars=0)
    quick = dict(epochs=2, hidden_size=128, seq_len=50, batch_size=32, corpus_chars=100000,
                 lr=1e-2, time_budget=0.0)
    search_space = {"lr": ("loguniform", 1e-3, 1e-2), "hidden_size": ("choice", [256, 384])}
    target = ("val_loss", 1.60)

    def build_model(self, cfg):
        return TBPTT(CharRNN(len(self.vocab(cfg)), cfg["hidden_size"], cfg["embed_dim"],
                             cfg["num_layers"], cfg["cell"], cfg["dropout"]))

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        vocab, train_ids, val_ids = _corpus(cfg)
        model = self.build_model(cfg)
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        train = StreamBatches(train_ids, cfg["batch_size"], cfg["seq_len"], shift=True,
                              seed=cfg["seed"])
        val = StreamBatches(val_ids, cfg["batch_size"], cfg["seq_len"])
        sched = lamina.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"],
                                                            eta_min=cfg["lr"] / 20)
        return Setup(model, lm_loss, opt, train, val, metrics=(), scheduler=sched,
                     clip_grad_norm=cfg["clip"],
                     callbacks=[TimeBudget(cfg["time_budget"])])


def _corpus(cfg):
    """The split ``cfg["split"]`` ('play' or 'position', see :func:`shakespeare_split`);
    with ``corpus_chars`` > 0 only that many characters from the start of the corpus,
    split by position (for quick runs)."""
    n = cfg.get("corpus_chars") or 0
    vocab, tr, va = shakespeare_split(cfg["val_fraction"],
                                      "position" if n else cfg.get("split", "position"))
    if n:
        ids = np.concatenate([tr, va])[:n]
        cut = int(round(n * (1 - cfg["val_fraction"])))
        tr, va = ids[:cut], ids[cut:]
    return vocab, tr, va


RECIPE = CharRNNRecipe()
