"""word2vec: skip-gram word embeddings with negative sampling (Mikolov et al. 2013) on
the shipped Shakespeare corpus.

The corpus (:func:`lamina.data.load_shakespeare`) is split into lower-cased words
(``Vocab.tokenize_words``, punctuation dropped); words seen fewer than ``min_count``
times are removed. Each epoch, frequent words are subsampled — a token of relative
frequency f is kept with probability min(1, sqrt(t/f) + t/f), t = ``subsample`` — and
every kept token is paired with the kept tokens up to b positions away, b drawn uniformly
from 1..``window`` per token (nearer words are paired more often). For each (centre,
context) pair ``negatives`` noise words are drawn from the unigram distribution raised
to the power 3/4, and :class:`SkipGram` minimises

    -log σ(u_context · v_centre) - Σ_k log σ(-u_noise_k · v_centre),

v from the input table, u from the output table. Afterwards the recipe prints the
nearest neighbours (cosine) of a few words, evaluates a small hand-made set of analogies
a : b :: c : ? (the answer is the word nearest to v_b - v_a + v_c, the three query words
excluded; Shakespeare's 190,000 words are a small corpus, and the accuracy is reported
as it comes out) and draws ``words.png``, a 2-D PCA projection of chosen words.
"""
import os
import time
from collections import Counter

import numpy as np

import lamina
from lamina import nn
from lamina.data.text import Vocab, load_shakespeare
from lamina.nn import functional as F
from lamina.train.callbacks import save_figure

from .inspect_cnn import pca_2d
from .recipe import Recipe, save_results

#: a : b :: c : d relations the corpus supports (gender, number, tense, pronoun case)
ANALOGIES = [
    # gender
    ("king", "queen", "lord", "lady"), ("he", "she", "his", "her"),
    ("he", "she", "him", "her"), ("man", "woman", "men", "women"),
    ("father", "mother", "son", "daughter"), ("brother", "sister", "father", "mother"),
    ("husband", "wife", "king", "queen"), ("lord", "lady", "sir", "madam"),
    ("man", "woman", "king", "queen"), ("thou", "thee", "he", "him"),
    ("lord", "lady", "man", "woman"), ("son", "daughter", "brother", "sister"),
    # number
    ("eye", "eyes", "hand", "hands"), ("day", "days", "night", "nights"),
    ("daughter", "daughters", "son", "sons"), ("lord", "lords", "king", "kings"),
    ("friend", "friends", "enemy", "enemies"), ("word", "words", "thing", "things"),
    ("heart", "hearts", "hour", "hours"), ("eye", "eyes", "friend", "friends"),
    # tense
    ("come", "came", "go", "went"), ("speak", "spoke", "take", "took"),
    ("give", "gave", "know", "knew"), ("see", "saw", "come", "came"),
    ("say", "said", "tell", "told"), ("make", "made", "take", "took"),
    ("give", "gave", "take", "took"), ("know", "knew", "see", "saw"),
    # pronouns and comparatives
    ("i", "me", "he", "him"), ("i", "my", "he", "his"), ("we", "our", "they", "their"),
    ("i", "me", "we", "us"), ("my", "mine", "thy", "thine"), ("i", "my", "thou", "thy"),
    ("good", "better", "great", "greater"),
]

QUERY_WORDS = ("king", "love", "night", "lord", "death", "sweet")
PLOT_WORDS = ("king", "queen", "lord", "lady", "prince", "duke", "man", "woman", "father",
              "mother", "son", "daughter", "he", "she", "his", "her", "day", "night", "sun",
              "moon", "love", "hate", "heaven", "hell", "life", "death", "one", "two",
              "three", "four", "come", "go", "came", "went", "speak", "spoke")


class SkipGram(nn.Module):
    """Skip-gram with negative sampling: an input table ``in_embed`` (V, D) for centre
    words and an output table ``out_embed`` (V, D) for context words.

    forward(center (N,) int, context (N,) int, negatives (N, K) int) -> the mean over the
    N pairs of -log σ(u_ctx·v_c) - Σ_k log σ(-u_neg_k·v_c) (a scalar). ``scores`` gives
    the raw dot products. Initialised as in word2vec: the input table uniform in
    ±0.5/D, the output table zero.
    """

    def __init__(self, vocab_size, dim=100):
        super().__init__()
        self.vocab_size, self.dim = vocab_size, dim
        self.in_embed = nn.Embedding(vocab_size, dim)
        self.out_embed = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def _ids(self, name, x, ndim):
        a = x.numpy() if isinstance(x, lamina.Tensor) else np.asarray(x)
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"SkipGram: {name} must be a {ndim}-D integer array, got shape "
                             f"{a.shape} dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise ValueError(f"SkipGram: {name} has ids outside [0, {self.vocab_size})")
        return lamina.from_numpy(a.astype(np.int64))

    def scores(self, center, context, negatives):
        """(positive scores (N,), negative scores (N, K)): u·v dot products."""
        c = self._ids("center", center, 1)
        o = self._ids("context", context, 1)
        ng = self._ids("negatives", negatives, 2)
        if not (c.shape[0] == o.shape[0] == ng.shape[0]):
            raise ValueError(f"SkipGram: center {tuple(c.shape)}, context {tuple(o.shape)} "
                             f"and negatives {tuple(ng.shape)} need the same batch size")
        v = self.in_embed(c)                                   # (N, D)
        pos = (v * self.out_embed(o)).sum(-1)                  # (N,)
        neg = (self.out_embed(ng) * v.unsqueeze(1)).sum(-1)    # (N, K)
        return pos, neg

    def forward(self, center, context, negatives):
        pos, neg = self.scores(center, context, negatives)
        # -log σ(s) = softplus(-s); -log σ(-s) = softplus(s)
        return (F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()

    def vectors(self):
        """The word vectors: the input table as a (V, D) NumPy array."""
        return self.in_embed.weight.numpy().copy()


# ---------------------------------------------------------------- corpus and sampling
def corpus_ids(min_count=5, text=None):
    """(ids (n,) int64, vocab, counts (V,)): the corpus's words (punctuation dropped,
    lower-cased) with words rarer than ``min_count`` removed, ids by frequency."""
    words = [w for w in Vocab.tokenize_words(load_shakespeare() if text is None else text)
             if w[0].isalpha()]
    counts = Counter(words)
    kept = sorted((w for w, c in counts.items() if c >= min_count),
                  key=lambda w: (-counts[w], w))
    vocab = Vocab(kept, joiner=" ")
    ids = np.array([vocab.stoi[w] for w in words if w in vocab.stoi], np.int64)
    return ids, vocab, np.array([counts[w] for w in kept], np.int64)


def noise_distribution(counts, power=0.75):
    """The negative-sampling distribution: counts ** power, normalised."""
    p = np.asarray(counts, np.float64) ** power
    return p / p.sum()


def subsample(ids, counts, t, rng):
    """Drop frequent tokens: a word of relative frequency f is kept with probability
    min(1, sqrt(t/f) + t/f). Returns the kept ids (order preserved)."""
    if not t:
        return ids
    f = counts / counts.sum()
    keep = np.minimum(1.0, np.sqrt(t / f) + t / f)
    return ids[rng.random(len(ids)) < keep[ids]]


def skipgram_pairs(ids, window, rng):
    """(centre, context) id arrays: each position paired with the ones up to b away,
    b uniform in 1..window per position (the dynamic window of word2vec)."""
    n = len(ids)
    b = rng.integers(1, window + 1, n)
    centers, contexts = [], []
    for off in range(1, window + 1):
        pos = np.flatnonzero(b >= off)
        for side in (-1, 1):
            q = pos + side * off
            ok = (q >= 0) & (q < n)
            centers.append(ids[pos[ok]])
            contexts.append(ids[q[ok]])
    return np.concatenate(centers), np.concatenate(contexts)


def train_skipgram(model, ids, counts, cfg, log=print):
    """Adam on the negative-sampling loss: each epoch a fresh subsample, fresh dynamic
    windows and fresh noise words. Returns the per-epoch mean losses; the first entry is
    the loss of the untrained model on the first epoch's first batches."""
    rng = np.random.default_rng(cfg["seed"])
    noise = noise_distribution(counts, cfg["noise_power"])
    opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
    bs, k = cfg["batch_size"], cfg["negatives"]
    history = []
    for epoch in range(cfg["epochs"]):
        t0 = time.perf_counter()
        c, o = skipgram_pairs(subsample(ids, counts, cfg["subsample"], rng), cfg["window"], rng)
        order = rng.permutation(len(c))
        if cfg["max_pairs"]:
            order = order[:cfg["max_pairs"]]
        c, o = c[order], o[order]
        neg = rng.choice(len(counts), size=(len(c), k), p=noise)
        if epoch == 0:
            with lamina.no_grad():
                first = float(model(c[:bs * 4], o[:bs * 4], neg[:bs * 4]).item())
            history.append(first)
            log(f"untrained loss {first:.4f}")
        lr0 = cfg["lr"]
        total, steps = 0.0, 0
        n_steps = (len(c) + bs - 1) // bs
        for s in range(0, len(c), bs):
            # linear decay of the learning rate over the whole run, as word2vec does
            done = (epoch * n_steps + s // bs) / (cfg["epochs"] * n_steps)
            for g in opt.param_groups:
                g["lr"] = lr0 * max(1.0 - done, 0.05)
            opt.zero_grad()
            loss = model(c[s:s + bs], o[s:s + bs], neg[s:s + bs])
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        history.append(total / max(steps, 1))
        log(f"epoch {epoch + 1}/{cfg['epochs']}  pairs {len(c)}  loss {history[-1]:.4f}  "
            f"time {time.perf_counter() - t0:.1f}s")
    return history


# ---------------------------------------------------------------- evaluation
def normalized(vectors):
    v = np.asarray(vectors, np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def nearest(vectors, vocab, word, k=8):
    """The ``k`` words of highest cosine similarity to ``word`` (itself excluded), as
    (word, similarity) pairs."""
    u = normalized(vectors)
    sims = u @ u[vocab.stoi[word]]
    sims[vocab.stoi[word]] = -np.inf
    top = np.argsort(-sims)[:k]
    return [(vocab.itos[i], float(sims[i])) for i in top]


def analogy(vectors, vocab, a, b, c, k=1):
    """a : b :: c : ? — the ``k`` words nearest (cosine) to v_b - v_a + v_c of the
    normalised vectors, a, b and c excluded (3CosAdd)."""
    u = normalized(vectors)
    i = [vocab.stoi[w] for w in (a, b, c)]
    q = u[i[1]] - u[i[0]] + u[i[2]]
    sims = u @ q
    sims[i] = -np.inf
    return [vocab.itos[j] for j in np.argsort(-sims)[:k]]


def evaluate_analogies(vectors, vocab, items=ANALOGIES, k=5):
    """Accuracy (top-1 and top-``k``) on the items whose four words are in the vocabulary.
    Returns (top1, topk, rows); rows are (a, b, c, d, predictions)."""
    rows = []
    for a, b, c, d in items:
        if all(w in vocab.stoi for w in (a, b, c, d)):
            rows.append((a, b, c, d, analogy(vectors, vocab, a, b, c, k)))
    if not rows:
        return 0.0, 0.0, rows
    top1 = float(np.mean([r[4][0] == r[3] for r in rows]))
    topk = float(np.mean([r[3] in r[4] for r in rows]))
    return top1, topk, rows


def plot_words(vectors, vocab, words, path):
    """Scatter the chosen words' vectors on their first two principal components."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    words = [w for w in words if w in vocab.stoi]
    xy, ratio = pca_2d(normalized(vectors)[[vocab.stoi[w] for w in words]])
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.scatter(xy[:, 0], xy[:, 1], s=12)
    for (x, y), w in zip(xy, words):
        ax.annotate(w, (x, y), fontsize=9, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel(f"PC 1 ({ratio[0] * 100:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({ratio[1] * 100:.0f}% of variance)")
    ax.set_title("skip-gram word vectors (Shakespeare), PCA")
    save_figure(fig, path)
    plt.close(fig)


class Word2VecRecipe(Recipe):
    name = "word2vec"
    summary = "skip-gram with negative sampling on Shakespeare: neighbours, analogies, PCA plot"
    defaults = dict(epochs=10, lr=0.005, batch_size=1024, seed=0, dim=100, window=5,
                    negatives=5, min_count=5, subsample=1e-3, noise_power=0.75, max_pairs=0)
    quick = dict(epochs=1, max_pairs=60000, dim=32, batch_size=512, lr=0.01)
    target = None

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        lamina.manual_seed(cfg["seed"])
        ids, vocab, counts = corpus_ids(cfg["min_count"])
        log(f"corpus: {len(ids)} word tokens, vocabulary {len(vocab)} "
            f"(min_count {cfg['min_count']})")
        model = SkipGram(len(vocab), cfg["dim"])
        history = train_skipgram(model, ids, counts, cfg, log=log)
        vec = model.vectors()
        neighbours = {}
        for w in QUERY_WORDS:
            if w in vocab.stoi:
                neighbours[w] = nearest(vec, vocab, w)
                log(f"nearest to {w!r}: " + ", ".join(f"{x} ({s:.2f})"
                                                      for x, s in neighbours[w]))
        top1, top5, rows = evaluate_analogies(vec, vocab)
        for a, b, c, d, pred in rows:
            mark = "ok " if pred[0] == d else ("top5" if d in pred else "   ")
            log(f"  [{mark}] {a}:{b} :: {c}:{d}  -> {', '.join(pred)}")
        log(f"analogies: top-1 {top1 * 100:.1f}%, top-5 {top5 * 100:.1f}% "
            f"of {len(rows)} items (of {len(ANALOGIES)}; the rest have out-of-vocabulary words)")
        results = {"recipe": self.name, "loss_history": history, "untrained_loss": history[0],
                   "final_loss": history[-1], "analogy_top1": top1, "analogy_top5": top5,
                   "analogy_items": len(rows), "neighbours": neighbours,
                   "vocab_size": len(vocab), "tokens": int(len(ids))}
        if out_dir is not None:
            plot_words(vec, vocab, PLOT_WORDS, os.path.join(out_dir, "words.png"))
            log(f"wrote {os.path.join(out_dir, 'words.png')}")
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        self.model, self.vocab = model, vocab
        return results


RECIPE = Word2VecRecipe()
