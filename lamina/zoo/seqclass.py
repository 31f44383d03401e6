"""seqclass: many-to-one sequence classification, LSTM against a vanilla RNN (the notes'
sentence-classification shape and their vanishing-gradient story).

A recurrent net reads a whole token sequence and one linear layer classifies its final
state. The synthetic tasks (lengths ``min_len``..``max_len``, up to 100):

* ``first`` — the class (one of 4) is the first token; the rest are random distractor
  tokens. The evidence is ``L - 1`` steps back from the decision, so the gradient that
  reaches it passes through ``L - 1`` recurrent Jacobians: a tanh RNN learns the short
  sequences and is at chance on long ones, an LSTM's additive cell keeps it.
* ``parens`` — is the string of ``(`` and ``)`` balanced? Negatives are near-misses:
  one bracket flipped, or the right counts in a wrong order. The net must keep a depth
  counter over the whole sequence.
* ``parity`` — parity of the number of 1s in a random bit string (the hardest: every
  token matters to the end).

Both cells get the same size, optimiser, data and number of steps; the recipe prints
held-out accuracy by length bucket for each task and cell.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.tensor import Tensor

from .recipe import Recipe, Setup, save_results

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
PAD = 0
TASKS = {
    # name: (vocab size incl. PAD, number of classes)
    "first": (13, 4),    # classes are tokens 1..4, distractors 5..12
    "parens": (3, 2),    # 1 = "(", 2 = ")"
    "parity": (3, 2),    # 1 = bit 0, 2 = bit 1
}


# ---------------------------------------------------------------------------- data
def _balanced(rng, L):
    """A random balanced bracket string of even length L (list of 1/2)."""
    s, d = [], 0
    for i in range(L):
        r = L - i
        if d == 0 or (d < r and rng.uniform() < 0.5):
            s.append(1)
            d += 1
        else:
            s.append(2)
            d -= 1
    return s


def _is_balanced(s):
    d = 0
    for t in s:
        d += 1 if t == 1 else -1
        if d < 0:
            return False
    return d == 0


def classification_task(task, n, min_len=5, max_len=100, seed=0):
    """``n`` examples of ``task`` ('first', 'parens', 'parity') with lengths uniform in
    [min_len, max_len] (even lengths for 'parens'). Returns x int64 (n, max_len)
    right-padded with 0, lengths int64 (n,), y int64 (n,)."""
    if task not in TASKS:
        raise ValueError(f"seqclass: unknown task {task!r}; choose one of {sorted(TASKS)}")
    if not 2 <= min_len <= max_len:
        raise ValueError(f"seqclass: need 2 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    x = np.full((n, max_len), PAD, np.int64)
    lengths = rng.integers(min_len, max_len + 1, n)
    y = np.zeros(n, np.int64)
    for r in range(n):  # data generation, not a hot path
        L = int(lengths[r])
        if task == "first":
            y[r] = rng.integers(4)
            s = [1 + y[r]] + list(rng.integers(5, 13, L - 1))
        elif task == "parity":
            s = list(rng.integers(1, 3, L))
            y[r] = sum(t == 2 for t in s) % 2
        else:
            L = max(2, L - L % 2)
            lengths[r] = L
            s = _balanced(rng, L)
            y[r] = int(rng.uniform() < 0.5)
            if not y[r]:
                if rng.uniform() < 0.5 or L == 2:       # flip one bracket
                    i = int(rng.integers(L))
                    s[i] = 3 - s[i]
                else:                                    # right counts, wrong order
                    while _is_balanced(s):
                        s = list(rng.permutation(s))
            assert _is_balanced(s) == bool(y[r])
        x[r, :L] = s
    return x, lengths.astype(np.int64), y


# ---------------------------------------------------------------------------- model
class SeqClassifier(nn.Module):
    """Many-to-one recurrent classifier.

    forward(x, lengths=None): x int64 token ids (N, L), right-padded; lengths (N,) the
    valid lengths (all L when None). Returns logits (N, n_classes) computed from the
    recurrent state after each sequence's last valid token (embedding -> ``cell``
    ('rnn' tanh, 'lstm', 'gru') with ``hidden`` units -> Linear).
    """

    def __init__(self, vocab_size, n_classes, embed=16, hidden=64, cell="lstm"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"SeqClassifier: unknown cell {cell!r}; choose one of "
                             f"{sorted(CELLS)}")
        self.cell, self.vocab_size = cell, vocab_size
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.rnn = CELLS[cell](embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x, lengths=None):
        a = x.data if isinstance(x, Tensor) else np.asarray(x)
        if a.ndim != 2 or a.dtype.kind not in "iu" or a.shape[1] == 0:
            raise ValueError(f"SeqClassifier: x must be (N, L) integer token ids, got shape "
                             f"{tuple(a.shape)} dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise ValueError(f"SeqClassifier: token ids must lie in [0, {self.vocab_size}), "
                             f"got [{a.min()}, {a.max()}] in x of shape {tuple(a.shape)}")
        if lengths is None:
            lens = np.full(a.shape[0], a.shape[1], np.int64)
        else:
            lens = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
            if lens.shape != (a.shape[0],):
                raise ValueError(f"SeqClassifier: lengths of shape {tuple(lens.shape)} do "
                                 f"not match x of shape {tuple(a.shape)}")
        T = int(lens.max()) if lens.size else a.shape[1]
        tok = lamina.from_numpy(np.ascontiguousarray(a[:, :T]))   # trim the batch's padding
        _, h = self.rnn(self.embed(tok), lengths=lens)
        h = h[0] if isinstance(h, tuple) else h
        return self.head(h[-1])


# ---------------------------------------------------------------------------- eval
def accuracy_by_length(pred, y, lengths, edges):
    """{'lo-hi': accuracy} over the buckets [edges[i], edges[i+1])."""
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (lengths >= lo) & (lengths < hi)
        if m.any():
            out[f"{lo}-{hi - 1}"] = float((pred[m] == y[m]).mean())
    return out


def predict(model, x, lengths, batch_size=500):
    model.eval()
    out = []
    with lamina.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i:i + batch_size], lengths[i:i + batch_size]).numpy()
                       .argmax(1))
    model.train()
    return np.concatenate(out)


def format_table(rows, edges, title):
    """rows: {label: {bucket: acc}} -> an aligned text table (one row per label)."""
    buckets = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])]
    w = max(len(r) for r in rows) + 2
    lines = [title, "".ljust(w) + "".join(b.rjust(8) for b in buckets)]
    for label, accs in rows.items():
        lines.append(label.ljust(w) + "".join(
            (f"{accs[b] * 100:7.1f}%" if b in accs else "       -") for b in buckets))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- recipe
class SeqClassRecipe(Recipe):
    name = "seqclass"
    summary = ("many-to-one classification (first token after distractors, balanced "
               "parentheses), LSTM vs vanilla RNN, accuracy by length up to 100")
    defaults = dict(tasks="first,parens", cells="rnn,lstm", min_len=5, max_len=100,
                    n_train=8000, n_test=2000, epochs=10, lr=3e-3, batch_size=64, embed=16,
                    hidden=64, clip=1.0, seed=0, edges="5,20,40,60,80,101")
    quick = dict(tasks="first", max_len=40, n_train=2400, n_test=600, epochs=6, hidden=32,
                 lr=1e-2, edges="5,20,41")
    target = ("lstm_first_long_accuracy", 0.95)

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        task, cell = cfg["_task"], cfg["_cell"]
        vocab, n_classes = TASKS[task]
        x, lens, y = classification_task(task, cfg["n_train"], cfg["min_len"],
                                         cfg["max_len"], seed=cfg["seed"])
        model = SeqClassifier(vocab, n_classes, cfg["embed"], cfg["hidden"], cell)
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        loader = lamina.data.DataLoader(lamina.data.TensorDataset(x, lens, y),
                                        batch_size=cfg["batch_size"], shuffle=True,
                                        seed=cfg["seed"])
        return Setup(model, F.cross_entropy, opt, loader, clip_grad_norm=cfg["clip"])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError(f"{self.name}: --resume is not supported (a run trains several "
                             f"models)")
        t0 = time.perf_counter()
        edges = [int(e) for e in str(cfg["edges"]).split(",")]
        tasks = [t for t in str(cfg["tasks"]).split(",") if t]
        cells = [c for c in str(cfg["cells"]).split(",") if c]
        results = {"recipe": self.name, "config": cfg, "by_length": {}}
        self.models = {}
        for task in tasks:
            # the test split: other seed, same length distribution
            xt, lt, yt = classification_task(task, cfg["n_test"], cfg["min_len"],
                                             cfg["max_len"], seed=cfg["seed"] + 1000)
            rows = {}
            for cell in cells:
                t1 = time.perf_counter()
                log(f"--- {task}: {cell.upper()} ({cfg['hidden']} units, {cfg['epochs']} "
                    f"epochs of {cfg['n_train']} sequences)")
                sub = None if out_dir is None else os.path.join(out_dir, f"{task}_{cell}")
                super().run({**cfg, "_task": task, "_cell": cell}, sub, None, verbose, log,
                            callbacks)
                model = self.trainer.model
                pred = predict(model, xt, lt)
                acc = float((pred == yt).mean())
                rows[cell.upper()] = accuracy_by_length(pred, yt, lt, edges)
                key = f"{cell}_{task}"
                results[f"{key}_accuracy"] = acc
                results[f"{key}_long_accuracy"] = rows[cell.upper()][
                    f"{edges[-2]}-{edges[-1] - 1}"]
                results[f"{key}_seconds"] = time.perf_counter() - t1
                self.models[key] = model
                log(f"{task} {cell.upper()}: test accuracy {acc * 100:.2f}% "
                    f"({time.perf_counter() - t1:.0f} s)")
            results["by_length"][task] = rows
            chance = 1.0 / TASKS[task][1]
            log(format_table(rows, edges, f"{task}: held-out accuracy by sequence length "
                                          f"(chance {chance * 100:.0f}%)"))
        results["seconds"] = time.perf_counter() - t0
        log(f"seqclass: {results['seconds']:.0f} s")
        save_results(out_dir, results)
        return results


RECIPE = SeqClassRecipe()
