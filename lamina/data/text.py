"""Text corpora and vocabularies: the Shakespeare corpus shipped with lamina (see
SHAKESPEARE.md), character and word vocabularies, and next-token training windows."""
import gzip
import os
import re
from collections import Counter

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset

_SHAKESPEARE = os.path.join(os.path.dirname(__file__), "shakespeare.txt.gz")


def load_shakespeare():
    """Eight Shakespeare plays as one string (1,036,496 characters, 76 distinct)."""
    with gzip.open(_SHAKESPEARE, "rb") as f:
        return f.read().decode("ascii")


# the first line of each play, in the order they are concatenated (see SHAKESPEARE.md)
SHAKESPEARE_TITLES = ("HAMLET, PRINCE OF DENMARK", "THE TRAGEDY OF KING LEAR", "MACBETH",
                      "OTHELLO, THE MOOR OF VENICE", "ROMEO AND JULIET", "JULIUS CAESAR",
                      "THE TEMPEST", "A MIDSUMMER NIGHT'S DREAM")


def shakespeare_plays(text=None):
    """The shipped corpus cut into its eight plays: a list of (title, text) in corpus
    order. Each play runs from its title line to the next play's (the blank lines between
    plays stay with the play before), so the texts concatenate back to the corpus."""
    text = load_shakespeare() if text is None else text
    starts = []
    for title in SHAKESPEARE_TITLES:
        m = re.search("^" + re.escape(title) + "\n\nby William Shakespeare", text, re.M)
        if m is None:
            raise ValueError(f"shakespeare_plays: no title line {title!r} in the corpus")
        starts.append(m.start())
    if starts != sorted(starts) or starts[0] != 0:
        raise ValueError("shakespeare_plays: the plays are not in the documented order")
    ends = starts[1:] + [len(text)]
    return [(t, text[a:b]) for t, a, b in zip(SHAKESPEARE_TITLES, starts, ends)]


def check_token_ids(name, x, what, vocab):
    """The int64 array of a (B, L) batch of token ids (Tensor or array); a ValueError
    naming ``name`` (the model) and ``what`` (the argument) otherwise."""
    a = x.data if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim != 2 or a.dtype.kind not in "iu" or a.shape[1] == 0:
        raise ValueError(f"{name}: {what} must be (B, L) integer token ids with L >= 1, got "
                         f"shape {tuple(a.shape)} dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= vocab):
        raise ValueError(f"{name}: {what} token ids must lie in [0, {vocab}), got min "
                         f"{int(a.min())} max {int(a.max())} (shape {tuple(a.shape)})")
    return a.astype(np.int64, copy=False)


class Vocab:
    """A token <-> id map. ``Vocab.chars(text)`` (every character), ``Vocab.words(text,
    min_count)`` (lower-cased words and punctuation, rare ones mapped to ``<unk>``).
    ``encode`` gives an int64 array, ``decode`` a string."""

    def __init__(self, tokens, unk=None, joiner=""):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocab: tokens must be distinct")
        self.unk = unk
        self.joiner = joiner

    @classmethod
    def chars(cls, text):
        return cls(sorted(set(text)))

    @staticmethod
    def tokenize_words(text):
        return re.findall(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]", text.lower())

    @classmethod
    def words(cls, text, min_count=1, unk="<unk>"):
        counts = Counter(cls.tokenize_words(text))
        kept = sorted((w for w, c in counts.items() if c >= min_count),
                      key=lambda w: (-counts[w], w))
        return cls([unk] + kept, unk=unk, joiner=" ")

    def __len__(self):
        return len(self.itos)

    def tokens(self, text):
        return list(text) if self.joiner == "" else self.tokenize_words(text)

    def encode(self, text):
        toks = self.tokens(text)
        if self.unk is None:
            missing = sorted({t for t in toks if t not in self.stoi})
            if missing:
                raise ValueError(f"Vocab.encode: tokens not in the vocabulary: {missing[:10]}")
            return np.fromiter((self.stoi[t] for t in toks), dtype=np.int64, count=len(toks))
        u = self.stoi[self.unk]
        return np.fromiter((self.stoi.get(t, u) for t in toks), dtype=np.int64, count=len(toks))

    def decode(self, ids):
        return self.joiner.join(self.itos[int(i)] for i in np.asarray(ids).reshape(-1))

    def state_dict(self):
        return {"itos": self.itos, "unk": self.unk, "joiner": self.joiner}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["itos"], state["unk"], state["joiner"])


class NextTokenWindows(Dataset):
    """Windows of a token-id sequence for language modelling: sample i is
    ``(ids[s:s+L], ids[s+1:s+L+1])`` with ``s = i * stride`` (stride defaults to L,
    non-overlapping windows)."""

    def __init__(self, ids, seq_len, stride=None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.seq_len = seq_len
        self.stride = stride or seq_len
        if len(self.ids) < seq_len + 1:
            raise ValueError(f"NextTokenWindows: need at least seq_len + 1 = {seq_len + 1} "
                             f"tokens, got {len(self.ids)}")

    def __len__(self):
        return (len(self.ids) - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"NextTokenWindows: index {i} out of range for length {len(self)}")
        x, y = self.__getitems__([i % len(self)])
        return x[0], y[0]

    def __getitems__(self, indices):
        starts = np.asarray(indices, dtype=np.int64) * self.stride
        idx = starts[:, None] + np.arange(self.seq_len + 1)
        w = self.ids[idx]
        return w[:, :-1], w[:, 1:]
