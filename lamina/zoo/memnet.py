"""memnet: an end-to-end memory network (Sukhbaatar, Szlam, Weston & Fergus 2015) answering
questions about generated bAbI-style stories (the notes' "Where is the milk? A: garden").

Each sentence of the story is one memory slot. A hop embeds every sentence twice — as
keys with matrix A and as values with C — scores the keys against the controller state
u (softmax over the slots), and adds the attention-weighted values to u. Three hops, with
adjacent weight tying (A of hop k+1 is C of hop k, the question embedding B is A of hop
1, the answer matrix is C of the last hop), position encoding of the words inside a
sentence (or a plain bag of words) and temporal encoding (a learned vector per slot,
added to keys and values, so "the last time Mary moved" can be found). Supervision is
the answer word only — which sentences support it is never given. As in the paper,
the first ``linear_start`` epochs train without the attention softmax ("linear start",
LS), which keeps the two-fact task out of a poor local minimum.

The recipe trains one network per task (1: single supporting fact, 2: two supporting
facts) on stories from :mod:`lamina.zoo.babi` and reports held-out accuracy (test
stories come from another seed).
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.ops.attention import masked_softmax
from lamina.tensor import Tensor

from . import babi
from .recipe import Recipe, Setup, save_results


def position_encoding(sentence_len, dim):
    """The paper's position-encoding weights l (J, d): l_kj = (1 - j/J) - (k/d)(1 - 2j/J)
    for word j = 1..J and embedding component k = 1..d."""
    j = np.arange(1, sentence_len + 1)[:, None] / sentence_len
    k = np.arange(1, dim + 1)[None, :] / dim
    return ((1 - j) - k * (1 - 2 * j)).astype(np.float32)


class MemN2N(nn.Module):
    """End-to-end memory network with ``hops`` hops and adjacent weight tying.

    forward(story, question): story int64 (N, M, J) word ids — M memory slots (sentences
    in time order, all-zero rows are empty slots) of J words, 0 = padding; question int64
    (N, J). Returns answer logits (N, vocab_size) over the vocabulary.
    ``encoding``: 'position' (position encoding) or 'bow' (bag of words).
    ``temporal``: add a learned vector per slot (counted back from the latest sentence).
    ``linear_start`` (attribute, default False): attention scores are used without the
    softmax (the paper's linear start, LS, for the first epochs of training).
    """

    def __init__(self, vocab_size, dim=32, hops=3, max_memories=20, sentence_len=6,
                 encoding="position", temporal=True):
        super().__init__()
        if encoding not in ("position", "bow"):
            raise ValueError(f"MemN2N: encoding must be 'position' or 'bow', got {encoding!r}")
        if hops < 1:
            raise ValueError(f"MemN2N: hops must be >= 1, got {hops}")
        self.vocab_size, self.dim, self.hops = vocab_size, dim, hops
        self.max_memories, self.sentence_len = max_memories, sentence_len
        self.encoding, self.temporal = encoding, temporal
        self.linear_start = False
        # embeddings[0] = A_1 = B; embeddings[k] = C_k = A_{k+1}; the last is C_K = W^T
        self.embeddings = nn.ModuleList(nn.Embedding(vocab_size, dim, padding_idx=0)
                                        for _ in range(hops + 1))
        for e in self.embeddings:
            nn.init.normal_(e.weight, 0.0, 0.1)
            e.weight.data[0] = 0
        if temporal:
            # T_A of hop 1 and T_C of every hop (tied like the word embeddings)
            self.time = nn.ModuleList(nn.Embedding(max_memories, dim) for _ in range(hops + 1))
            for e in self.time:
                nn.init.normal_(e.weight, 0.0, 0.1)
        pe = position_encoding(sentence_len, dim) if encoding == "position" else \
            np.ones((sentence_len, dim), np.float32)
        self.register_buffer("pe", lamina.from_numpy(pe))

    def _check(self, story, question):
        s = story.data if isinstance(story, Tensor) else np.asarray(story)
        q = question.data if isinstance(question, Tensor) else np.asarray(question)
        J, M = self.sentence_len, self.max_memories
        if s.ndim != 3 or s.dtype.kind not in "iu" or s.shape[1] > M or s.shape[2] != J:
            raise ValueError(f"MemN2N: story must be (N, M <= {M}, {J}) integer word ids, "
                             f"got shape {tuple(s.shape)} dtype {s.dtype}")
        if q.shape != (s.shape[0], J) or q.dtype.kind not in "iu":
            raise ValueError(f"MemN2N: question must be ({s.shape[0]}, {J}) integer word ids "
                             f"for a story of shape {tuple(s.shape)}, got shape "
                             f"{tuple(q.shape)} dtype {q.dtype}")
        for what, a in (("story", s), ("question", q)):
            if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
                raise ValueError(f"MemN2N: {what} word ids must lie in [0, "
                                 f"{self.vocab_size}), got [{a.min()}, {a.max()}]")
        return s, q

    def _embed(self, k, words):
        """(..., J) ids -> (..., d): the position-weighted sum of embedding k."""
        return (self.embeddings[k](words) * self.pe).sum(-2)

    def attention(self, story, question):
        """The per-hop attention over memory slots: a list of ``hops`` (N, M) arrays."""
        return self.forward(story, question, _return_attention=True)[1]

    def forward(self, story, question, _return_attention=False):
        s, q = self._check(story, question)
        M = s.shape[1]
        empty = ~(s != 0).any(-1)                                    # (N, M)
        # temporal index: the latest sentence of each story gets slot-time 0
        n_sent = (~empty).sum(1)
        t_idx = np.clip(n_sent[:, None] - 1 - np.arange(M)[None, :], 0, M - 1)
        st, qt = lamina.from_numpy(s), lamina.from_numpy(q)
        t = lamina.from_numpy(t_idx)
        u = self._embed(0, qt)                                       # (N, d)
        keys = self._embed(0, st)                                    # (N, M, d)
        if self.temporal:
            keys = keys + self.time[0](t)
        attn = []
        for k in range(1, self.hops + 1):
            values = self._embed(k, st)
            if self.temporal:
                values = values + self.time[k](t)
            scores = (keys * u.unsqueeze(1)).sum(-1)                 # (N, M)
            if self.linear_start:      # the paper's "LS": no softmax early in training
                p = scores * lamina.from_numpy((~empty).astype(scores.data.dtype))
            else:
                p = masked_softmax(scores, empty)
            attn.append(p.numpy())
            u = u + (p.unsqueeze(-1) * values).sum(1)
            keys = values                                            # adjacent tying
        logits = u @ self.embeddings[self.hops].weight.t()
        return (logits, attn) if _return_attention else logits


class LinearStart(lamina.train.callbacks.Callback):
    """Train with ``model.linear_start`` on for the first ``epochs`` epochs."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_start(self, trainer, epoch):
        trainer.model.linear_start = epoch <= self.epochs   # epochs count from 1

    def on_fit_end(self, trainer):
        trainer.model.linear_start = False


class MemNetRecipe(Recipe):
    name = "memnet"
    summary = ("end-to-end memory network, 3 hops, on generated bAbI stories: task 1 "
               "(single supporting fact) and task 2 (two supporting facts)")
    defaults = dict(tasks="1,2", epochs=20, lr=5e-3, batch_size=32, seed=0, dim=32, hops=3,
                    encoding="position", temporal=True, n_train=4000, n_test=1000,
                    min_sentences=2, max_sentences=10, clip=40.0, linear_start=5)
    quick = dict(tasks="1", epochs=6, n_train=1200, n_test=400, max_sentences=5, lr=1e-2,
                 linear_start=0)
    target = ("task1_accuracy", 0.95)

    def data(self, cfg, task):
        kw = dict(min_sentences=cfg["min_sentences"], max_sentences=cfg["max_sentences"])
        train, words = babi.babi_task(task, cfg["n_train"], seed=cfg["seed"], **kw)
        test, _ = babi.babi_task(task, cfg["n_test"], seed=cfg["seed"] + 10_000 + task, **kw)
        return train, test, words

    def setup(self, cfg):
        lamina.manual_seed(cfg["seed"])
        train, test, words = self.data(cfg, cfg["_task"])
        model = MemN2N(len(words), cfg["dim"], cfg["hops"], cfg["max_sentences"],
                       train[0].shape[2], cfg["encoding"], cfg["temporal"])
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        steps = cfg["epochs"] * -(-cfg["n_train"] // cfg["batch_size"])
        sched = lamina.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"],
                                                     total_steps=steps, pct_start=0.2)
        loader = lamina.data.DataLoader(lamina.data.TensorDataset(*train),
                                        batch_size=cfg["batch_size"], shuffle=True,
                                        seed=cfg["seed"])
        return Setup(model, F.cross_entropy, opt, loader, None,
                     lamina.data.DataLoader(lamina.data.TensorDataset(*test),
                                            batch_size=500),
                     scheduler=sched, scheduler_interval="step",
                     clip_grad_norm=cfg["clip"],
                     callbacks=[LinearStart(cfg["linear_start"])] if cfg["linear_start"]
                     else [])

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError(f"{self.name}: --resume is not supported (a run trains one "
                             f"network per task)")
        t0 = time.perf_counter()
        results = {"recipe": self.name, "config": cfg}
        self.models = {}
        names = {1: "single supporting fact", 2: "two supporting facts"}
        for task in [int(t) for t in str(cfg["tasks"]).split(",") if t]:
            t1 = time.perf_counter()
            _, test, words = self.data(cfg, task)
            log(f"--- task {task} ({names[task]}): {cfg['n_train']} training stories, e.g.\n"
                f"    {babi.render(test[0][0], test[1][0], test[2][0], words)}")
            sub = None if out_dir is None else os.path.join(out_dir, f"task{task}")
            res = super().run({**cfg, "_task": task}, sub, None, verbose, log, callbacks)
            model = self.trainer.model
            self.models[task] = model
            acc = float(res["test_accuracy"])
            results[f"task{task}_accuracy"] = acc
            results[f"task{task}_seconds"] = time.perf_counter() - t1
            log(f"task {task} ({names[task]}): held-out accuracy {acc * 100:.2f}% on "
                f"{cfg['n_test']} stories ({time.perf_counter() - t1:.0f} s)")
        results["seconds"] = time.perf_counter() - t0
        log(f"memnet: {results['seconds']:.0f} s")
        save_results(out_dir, results)
        return results


RECIPE = MemNetRecipe()
