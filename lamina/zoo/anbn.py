"""anbn: the stack-augmented RNN of Joulin & Mikolov (2015) against an RNN and an LSTM on
counting languages (the notes' "learning algorithmic sequences" table).

Each model is a next-symbol predictor over {., a, b, c, d} trained on strings of one
language with small n — aⁿbⁿ, aⁿbⁿcⁿ, aⁿbⁿcⁿdⁿ, aⁿb²ⁿ, aⁿbᵐcⁿ⁺ᵐ, each followed by the
end symbol "." — and tested on n = 1..60, far longer than in training. Once the first
b has been read (the first c for aⁿbᵐcⁿ⁺ᵐ) the rest of the string, end symbol included,
is determined; a test string counts as solved when every one of those predictions
(argmax) is right. The table gives the fraction of test lengths solved.

:class:`StackRNN` is the paper's model: a sigmoid RNN whose state also reads the top
elements of ``n_stacks`` continuous stacks; at every step each stack is updated by a
soft choice (softmax) among PUSH (a new value σ(D h) on top), POP and NO-OP — a convex
combination of the shifted-down, shifted-up and unchanged stack, all differentiable.
"+ rounding" evaluates the same trained network with each action replaced by its argmax
(the paper's discretisation at test time).

Budget: the default trains each of the 15 (language, model) pairs for 900 Adam steps of
32 strings with n <= 19 (the paper's n < 20; one-cycle schedule, peak lr 0.03), so the
whole table fits the 10-minute budget on two cores; the stack RNN, one Python step of ~25
small ops per symbol, is most of it. The paper trains far longer (SGD, many epochs) and
selects its models on validation sets, so single short runs here are noisier than its
table.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data.text import check_token_ids
from lamina.nn import functional as F
from lamina.tensor import Tensor

from .recipe import Recipe, Setup, save_results

SYMBOLS = ".abcd"          # 0 = end of string (also the first input), 1..4 = a..d
IGNORE = -100


def _string(lang, n, m):
    if lang == "anbn":
        return "a" * n + "b" * n
    if lang == "anbncn":
        return "a" * n + "b" * n + "c" * n
    if lang == "anbncndn":
        return "a" * n + "b" * n + "c" * n + "d" * n
    if lang == "anb2n":
        return "a" * n + "b" * (2 * n)
    if lang == "anbmcnm":
        return "a" * n + "b" * m + "c" * (n + m)
    raise ValueError(f"anbn: unknown language {lang!r}; choose one of {list(LANGUAGES)}")


#: name -> (notes' column title, first symbol after which the string is determined)
LANGUAGES = {"anbn": ("a^n b^n", "b"), "anbncn": ("a^n b^n c^n", "b"),
             "anbncndn": ("a^n b^n c^n d^n", "b"), "anb2n": ("a^n b^2n", "b"),
             "anbmcnm": ("a^n b^m c^n+m", "c")}


def language_batch(lang, ns, ms=None):
    """Strings of ``lang`` for the given n (and m) values, as next-symbol data:
    inputs int64 (B, T) = "." + string, right-padded with 0; targets (B, T) = string + "."
    padded with -100; det bool (B, T): the positions whose target is determined by the
    past (from the first determining symbol on)."""
    ms = ns if ms is None else ms
    strs = [_string(lang, int(n), int(m)) for n, m in zip(ns, ms)]
    T = max(len(s) for s in strs) + 1
    B_ = len(strs)
    x = np.zeros((B_, T), np.int64)
    y = np.full((B_, T), IGNORE, np.int64)
    det = np.zeros((B_, T), bool)
    first = LANGUAGES[lang][1]
    for r, s in enumerate(strs):
        ids = [SYMBOLS.index(ch) for ch in s]
        x[r, 1:len(s) + 1] = ids
        y[r, :len(s) + 1] = ids + [0]
        det[r, s.index(first) + 1:len(s) + 1] = True
    return x, y, det


def training_set(lang, n_seq, max_n, seed=0):
    """``n_seq`` strings with n (and m) uniform in 1..max_n (see :func:`language_batch`)."""
    rng = np.random.default_rng(seed)
    ns, ms = rng.integers(1, max_n + 1, n_seq), rng.integers(1, max_n + 1, n_seq)
    x, y, _ = language_batch(lang, ns, ms)
    return x, y


class StackRNN(nn.Module):
    """Stack-augmented RNN (Joulin & Mikolov 2015), next-symbol predictor.

    forward(x): x int64 (N, T) symbol ids -> logits (N, T, vocab_size).

    State per step: hidden h (N, hidden) and stacks s (N, n_stacks, depth), depth = T
    (a stack never holds more than T pushes), empty cells = ``empty``. One step
    (:meth:`step`), with the input's projection ``ux`` (N, hidden):

        h' = σ(ux + R h + P top_k(s))                      top_k(s): (N, n_stacks * k)
        [push, pop, noop] = softmax(A h') per stack;   v = σ(D h') per stack
        s'[0]  = push·v      + pop·s[1]   + noop·s[0]
        s'[i]  = push·s[i-1] + pop·s[i+1] + noop·s[i]      (s[depth] = empty)

    and logits = V h'. With ``discrete = True`` the actions are rounded to one-hot
    (argmax) — the paper's "+ rounding", meant for evaluation (no gradient flows through
    the rounded actions).
    """

    def __init__(self, vocab_size=len(SYMBOLS), hidden=40, n_stacks=10, k=2, empty=-1.0):
        super().__init__()
        self.vocab_size, self.hidden, self.n_stacks, self.k = vocab_size, hidden, n_stacks, k
        self.empty = float(empty)
        self.discrete = False
        self.inp = nn.Embedding(vocab_size, hidden)           # U x_t (+ bias folded in)
        self.rec = nn.Linear(hidden + n_stacks * k, hidden)   # [R P] [h; top_k(s)]
        self.ctl = nn.Linear(hidden, n_stacks * 4)            # A (3 per stack), D (1)
        self.out = nn.Linear(hidden, vocab_size)               # V

    def init_state(self, batch, depth, dtype=None):
        """Zero hidden state and empty stacks: ((N, hidden), (N, n_stacks, depth))."""
        w = self.rec.weight
        h = lamina.zeros(batch, self.hidden, dtype=w.dtype)
        s = lamina.full((batch, self.n_stacks, depth), self.empty, dtype=w.dtype)
        return h, s

    def step(self, ux, h, s):
        """One step: ux (N, hidden), h (N, hidden), s (N, n_stacks, depth) ->
        (h', s', actions (N, n_stacks, 3))."""
        N, S, depth = s.shape
        if depth < self.k:
            raise ValueError(f"StackRNN: stack depth {depth} < k={self.k}")
        top = s[:, :, :self.k].reshape(N, S * self.k)
        h = lamina.sigmoid(ux + self.rec(lamina.cat([h, top], 1)))
        c = self.ctl(h).reshape(N, S, 4)
        if self.discrete:
            idx = c.data[:, :, :3].argmax(-1)
            a = lamina.from_numpy(np.eye(3, dtype=c.data.dtype)[idx])
        else:
            a = lamina.softmax(c[:, :, :3], -1)
        v = lamina.sigmoid(c[:, :, 3:4])
        pad = lamina.full((N, S, 1), self.empty, dtype=s.dtype)
        down = lamina.cat([v, s[:, :, :depth - 1]], 2)
        up = lamina.cat([s[:, :, 1:], pad], 2)
        s = a[:, :, 0:1] * down + a[:, :, 1:2] * up + a[:, :, 2:3] * s
        return h, s, a

    def forward(self, x):
        a = check_token_ids("StackRNN", x, "x", self.vocab_size)
        N, T = a.shape
        ux = self.inp(lamina.from_numpy(a))                    # (N, T, hidden)
        h, s = self.init_state(N, T)
        hs = []
        for t in range(T):
            h, s, _ = self.step(ux[:, t], h, s)
            hs.append(h)
        return self.out(lamina.stack(hs, 1))


class NextSymbolRNN(nn.Module):
    """Baseline next-symbol predictor: embedding -> ``cell`` ('rnn' tanh or 'lstm') with
    ``hidden`` units -> Linear. forward(x): x int64 (N, T) -> logits (N, T, vocab_size)."""

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM}

    def __init__(self, vocab_size=len(SYMBOLS), hidden=40, cell="lstm"):
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"NextSymbolRNN: unknown cell {cell!r}; choose one of "
                             f"{sorted(self.CELLS)}")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, hidden)
        self.rnn = self.CELLS[cell](hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        a = check_token_ids("NextSymbolRNN", x, "x", self.vocab_size)
        out, _ = self.rnn(self.embed(lamina.from_numpy(a)))
        return self.out(out)


def next_symbol_loss(logits, target):
    """Mean cross-entropy over the non-padding positions of (N, T, V) logits."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), target.reshape(-1), ignore_index=IGNORE)


def solved_lengths(model, lang, max_n=60, seed=0, batch_size=60):
    """Bool (max_n,): for n = 1..max_n (m uniform in 1..n for aⁿbᵐcⁿ⁺ᵐ), is every
    determined symbol of the string predicted correctly (argmax)?"""
    rng = np.random.default_rng(seed)
    ns = np.arange(1, max_n + 1)
    ms = np.array([rng.integers(1, n + 1) for n in ns])
    ok = []
    model.eval()
    with lamina.no_grad():
        for i in range(0, max_n, batch_size):
            x, y, det = language_batch(lang, ns[i:i + batch_size], ms[i:i + batch_size])
            pred = model(x).numpy().argmax(-1)
            ok.append(((pred == y) | ~det).all(1))
    model.train()
    return np.concatenate(ok)


def _trim_collate(batch):
    """Drop the all-padding tail of a batch of (x, y)."""
    x, y = batch
    x, y = (v.numpy() if isinstance(v, Tensor) else np.asarray(v) for v in (x, y))
    T = int((y != IGNORE).sum(1).max())
    return lamina.from_numpy(np.ascontiguousarray(x[:, :T])), \
        lamina.from_numpy(np.ascontiguousarray(y[:, :T]))


class _Trimmed:
    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return (_trim_collate(b) for b in self.loader)


MODELS = ("rnn", "lstm", "stack")
ROW_NAMES = {"rnn": "RNN", "lstm": "LSTM", "stack": "Stack RNN {h}+{s}",
             "stack_rounded": "Stack RNN {h}+{s} + rounding"}


def format_table(results, langs, models, hidden, n_stacks):
    """The notes' layout: one row per model, one column per language, % of test
    lengths solved."""
    titles = [LANGUAGES[l][0] for l in langs]
    rows = []
    for m in models:
        rows.append(m)
        if m == "stack":
            rows.append("stack_rounded")
    names = {r: ROW_NAMES[r].format(h=hidden, s=n_stacks) for r in rows}
    w = max(len(n) for n in names.values()) + 2
    cw = max(len(t) for t in titles) + 2
    lines = ["method".ljust(w) + "".join(t.rjust(cw) for t in titles)]
    for r in rows:
        lines.append(names[r].ljust(w) + "".join(
            f"{results[f'{r}_{l}'] * 100:.1f}%".rjust(cw) for l in langs))
    return "\n".join(lines)


class AnbnRecipe(Recipe):
    name = "anbn"
    summary = ("Joulin & Mikolov's table: RNN, LSTM and stack RNN (40 hidden + 10 stacks) "
               "on aⁿbⁿ, aⁿbⁿcⁿ, aⁿbⁿcⁿdⁿ, aⁿb²ⁿ, aⁿbᵐcⁿ⁺ᵐ; fraction of n = 1..60 solved")
    defaults = dict(languages="anbn,anbncn,anbncndn,anb2n,anbmcnm", models="rnn,lstm,stack",
                    hidden=40, n_stacks=10, k=2, train_max_n=19, test_max_n=60,
                    n_train=4800, epochs=6, batch_size=32, lr=3e-2, clip=5.0, seed=0)
    quick = dict(languages="anbn", models="stack", train_max_n=5, test_max_n=5, n_train=1920,
                 epochs=2)
    target = ("stack_anbn", 1.0)

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        kind, lang = cfg["_model"], cfg["_language"]
        if kind == "stack":
            model = StackRNN(len(SYMBOLS), cfg["hidden"], cfg["n_stacks"], cfg["k"])
        else:
            model = NextSymbolRNN(len(SYMBOLS), cfg["hidden"], kind)
        x, y = training_set(lang, cfg["n_train"], cfg["train_max_n"], seed=cfg["seed"])
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        loader = lamina.data.DataLoader(lamina.data.TensorDataset(x, y),
                                        batch_size=cfg["batch_size"], shuffle=True,
                                        seed=cfg["seed"])
        steps = cfg["epochs"] * len(loader)
        sched = lamina.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"],
                                                     total_steps=steps, pct_start=0.1)
        return Setup(model, next_symbol_loss, opt, _Trimmed(loader), metrics=(),
                     scheduler=sched, scheduler_interval="step", clip_grad_norm=cfg["clip"])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError(f"{self.name}: --resume is not supported (a run trains one "
                             f"model per language and method)")
        t0 = time.perf_counter()
        langs = [l for l in str(cfg["languages"]).split(",") if l]
        models = [m for m in str(cfg["models"]).split(",") if m]
        for l in langs:
            if l not in LANGUAGES:
                raise ValueError(f"anbn: unknown language {l!r}; choose from "
                                 f"{list(LANGUAGES)}")
        for m in models:
            if m not in MODELS:
                raise ValueError(f"anbn: unknown model {m!r}; choose from {list(MODELS)}")
        results = {"recipe": self.name, "config": cfg}
        self.models = {}
        for lang in langs:
            for kind in models:
                t1 = time.perf_counter()
                sub = None if out_dir is None else os.path.join(out_dir, f"{lang}_{kind}")
                super().run({**cfg, "_model": kind, "_language": lang}, sub, None, verbose,
                            log, callbacks)
                model = self.trainer.model
                self.models[f"{kind}_{lang}"] = model
                ok = solved_lengths(model, lang, cfg["test_max_n"], cfg["seed"])
                results[f"{kind}_{lang}"] = float(ok.mean())
                results[f"{kind}_{lang}_solved"] = [int(n) for n in np.flatnonzero(ok) + 1]
                msg = f"{kind} on {lang}: {ok.mean() * 100:.1f}% of n=1..{cfg['test_max_n']}"
                if kind == "stack":
                    model.discrete = True
                    okr = solved_lengths(model, lang, cfg["test_max_n"], cfg["seed"])
                    model.discrete = False
                    results[f"stack_rounded_{lang}"] = float(okr.mean())
                    msg += f" (rounded actions: {okr.mean() * 100:.1f}%)"
                results[f"{kind}_{lang}_seconds"] = time.perf_counter() - t1
                log(f"{msg}  [{time.perf_counter() - t1:.0f} s]")
        table = format_table(results, langs, models, cfg["hidden"], cfg["n_stacks"])
        log(f"fraction of test lengths n = 1..{cfg['test_max_n']} whose determined part is "
            f"predicted correctly (trained on n <= {cfg['train_max_n']}):\n{table}")
        results["table"] = table
        results["seconds"] = time.perf_counter() - t0
        log(f"anbn: {results['seconds']:.0f} s")
        save_results(out_dir, results)
        return results


RECIPE = AnbnRecipe()
