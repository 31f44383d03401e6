"""Synthetic translation tasks for the seq2seq recipes (seq2seq-attention,
transformer-seq2seq), with the data pipeline and the decoding evaluation they share.

The task (default ``"reverse"``): a source sentence of 5–30 symbols drawn uniformly from
``n_symbols`` = 20 "words" is translated into the same symbols in reverse order, followed
by an end-of-sequence token; ``"sort"`` asks for the symbols in ascending order instead.
Token ids: 0 = padding, 1 = BOS (start of the decoder input), 2 = EOS, 3.. = symbols,
so the vocabulary has ``n_symbols + 3`` tokens. Sources are right-padded with 0.
Reversal is the notes' hard case for an encoder–decoder without attention: the first
source symbol is the last one to be emitted, so everything must survive in the fixed
vector for the whole length of the sentence; with attention the decoder looks it up.

Training batches group sentences of similar length (a shuffled, length-bucketed sampler)
and are cut to the longest sentence in the batch, so short sentences cost less.
"""
import numpy as np

import lamina
from lamina.data import DataLoader, TensorDataset

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
TASKS = ("reverse", "sort")


def vocab_size(n_symbols):
    """Number of token ids for ``n_symbols`` symbols (plus PAD, BOS, EOS)."""
    return n_symbols + N_SPECIAL


def symbol_names(n_symbols):
    """Printable names of the token ids: '_' PAD, '<s>' BOS, '</s>' EOS, then 'a', 'b', ...
    (letters, then 's26', ... beyond 26)."""
    letters = [chr(ord("a") + i) if i < 26 else f"s{i}" for i in range(n_symbols)]
    return ["_", "<s>", "</s>"] + letters


def translation_pairs(n, task="reverse", min_len=5, max_len=30, n_symbols=20, seed=0,
                      exclude=None):
    """``n`` random (source, target) pairs of the task.

    Returns ``src`` int64 (n, max_len) right-padded with PAD, ``src_len`` int64 (n,) in
    [min_len, max_len] (uniform), ``tgt`` int64 (n, max_len + 1): the translation then
    EOS, right-padded with PAD. ``exclude``: a set of source tuples that must not be drawn
    (to keep a test set disjoint from the training set); drawn sources are distinct.
    """
    if task not in TASKS:
        raise ValueError(f"translation_pairs: task must be one of {TASKS}, got {task!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"translation_pairs: need 1 <= min_len <= max_len, got "
                         f"{min_len}, {max_len}")
    if n_symbols < 2:
        raise ValueError(f"translation_pairs: n_symbols must be >= 2, got {n_symbols}")
    rng = np.random.default_rng(seed)
    seen = set(exclude or ())
    possible = sum(n_symbols ** k for k in range(min_len, max_len + 1))
    if n + len(seen) > possible:
        raise ValueError(f"translation_pairs: cannot draw {n} distinct sources (plus "
                         f"{len(seen)} excluded) from the {possible} of lengths "
                         f"{min_len}-{max_len} over {n_symbols} symbols")
    src = np.full((n, max_len), PAD, np.int64)
    tgt = np.full((n, max_len + 1), PAD, np.int64)
    lens = np.zeros(n, np.int64)
    i = 0
    while i < n:
        m = n - i
        ln = rng.integers(min_len, max_len + 1, m)
        sym = rng.integers(N_SPECIAL, N_SPECIAL + n_symbols, (m, max_len))
        for r in range(m):  # data generation, not a hot path
            s = sym[r, :ln[r]]
            key = tuple(s.tolist())
            if key in seen:
                continue
            seen.add(key)
            src[i, :ln[r]] = s
            out = s[::-1] if task == "reverse" else np.sort(s)
            tgt[i, :ln[r]] = out
            tgt[i, ln[r]] = EOS
            lens[i] = ln[r]
            i += 1
            if i == n:
                break
    return src, lens, tgt


def task_splits(n_train, n_test, task="reverse", min_len=5, max_len=30, n_symbols=20,
                seed=0, n_val=0):
    """Disjoint train / val / test sets of :func:`translation_pairs`, each a tuple
    ``(src, src_len, tgt)``; returns a dict with keys 'train', 'val' (None if n_val is 0),
    'test'. No source sentence appears in two splits."""
    kw = dict(task=task, min_len=min_len, max_len=max_len, n_symbols=n_symbols)
    train = translation_pairs(n_train, seed=seed, **kw)
    seen = {tuple(r[:k].tolist()) for r, k in zip(train[0], train[1])}
    test = translation_pairs(n_test, seed=seed + 1, exclude=seen, **kw)
    val = None
    if n_val:
        seen |= {tuple(r[:k].tolist()) for r, k in zip(test[0], test[1])}
        val = translation_pairs(n_val, seed=seed + 2, exclude=seen, **kw)
    return {"train": train, "val": val, "test": test}


def decoder_input(tgt):
    """Teacher forcing: the decoder input is the target shifted right, starting with BOS
    (B, L) -> (B, L); PAD stays PAD after the end."""
    tgt = np.asarray(tgt)
    out = np.empty_like(tgt)
    out[:, 0] = BOS
    out[:, 1:] = tgt[:, :-1]
    out[:, 1:][tgt[:, :-1] == PAD] = PAD
    return out


class LengthBucketSampler:
    """Indices for a DataLoader: each epoch, the data are shuffled, cut into chunks of
    ``bucket`` * batch_size samples, each chunk sorted by length (so a batch holds similar
    lengths), and the batches are shuffled again. ``len`` is the number of samples."""

    def __init__(self, lengths, batch_size, bucket=50, seed=0):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.bucket = batch_size, bucket
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        n, bs = len(self.lengths), self.batch_size
        order = self.rng.permutation(n)
        chunk = bs * self.bucket
        batches = []
        for s in range(0, n, chunk):
            part = order[s:s + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i:i + bs] for i in range(0, len(part), bs)]
        # a short batch (at most one: the end of the last chunk) goes last, so the
        # DataLoader's consecutive batch_size slices are exactly these batches
        full = [b for b in batches if len(b) == bs]
        short = [b for b in batches if len(b) < bs]
        for j in self.rng.permutation(len(full)):
            yield from full[j].tolist()
        for b in short:
            yield from b.tolist()


def _trim(batch):
    """(src, tgt_in, tgt_out) arrays cut to the longest source / target in the batch."""
    src, tgt_in, tgt_out = batch
    s = max(int((src != PAD).sum(1).max()), 1)
    t = max(int((tgt_out != PAD).sum(1).max()), 1)
    return src[:, :s], tgt_in[:, :t], tgt_out[:, :t]


def train_loader(split, batch_size, seed=0):
    """A DataLoader of ((src (B, S), tgt_in (B, T)), tgt_out (B, T)) batches from a
    ``(src, src_len, tgt)`` split: length-bucketed and shuffled, trimmed to each batch's
    longest sentence."""
    src, lens, tgt = split
    ds = TensorDataset(src, decoder_input(tgt), tgt)
    return DataLoader(ds, batch_size=batch_size, sampler=LengthBucketSampler(
        lens, batch_size, seed=seed), batch_transform=_trim)


def eval_loader(split, batch_size):
    """A DataLoader over a split in its order (sorted batches are not needed here),
    trimmed like :func:`train_loader`."""
    src, lens, tgt = split
    ds = TensorDataset(src, decoder_input(tgt), tgt)
    return DataLoader(ds, batch_size=batch_size, batch_transform=_trim)


# ------------------------------------------------------------------ losses and metrics
def sequence_loss(logits, target, label_smoothing=0.0):
    """Mean token cross-entropy of logits (B, T, V) against target (B, T), PAD ignored."""
    v = logits.shape[-1]
    t = target.data if hasattr(target, "data") else np.asarray(target)
    return lamina.nn.functional.cross_entropy(
        logits.reshape(-1, v), lamina.from_numpy(np.ascontiguousarray(t.reshape(-1))),
        ignore_index=PAD, label_smoothing=label_smoothing)


def _np(a):
    return a.numpy() if hasattr(a, "numpy") else np.asarray(a)


def token_accuracy(logits, target):
    """Teacher-forced next-token accuracy over non-PAD target positions."""
    pred, t = _np(logits).argmax(-1), _np(target)
    valid = t != PAD
    return float((pred[valid] == t[valid]).mean()) if valid.any() else 0.0


def forced_sequence_accuracy(logits, target):
    """Fraction of sequences whose every teacher-forced next token is right."""
    pred, t = _np(logits).argmax(-1), _np(target)
    return float(((pred == t) | (t == PAD)).all(1).mean())


def strip(tokens):
    """Decoded tokens (B, L) -> list of int lists, cut before the first EOS (and PAD)."""
    out = []
    for row in _np(tokens).tolist():
        seq = []
        for tok in row:
            if tok in (EOS, PAD):
                break
            seq.append(tok)
        out.append(seq)
    return out


def exact_match(pred_tokens, tgt):
    """(B,) bool: the decoded sequence (up to its EOS) equals the target (up to its EOS);
    a prediction that never emits EOS is correct only if the target fills it exactly."""
    pred, ref = strip(pred_tokens), strip(tgt)
    return np.array([p == r for p, r in zip(pred, ref)], bool)


def length_buckets(lengths, edges=(5, 11, 16, 21, 26, 31)):
    """Bucket labels ('5-10', '11-15', ...) and bucket index (N,) of each length; a
    length outside all buckets gets -1."""
    edges = list(edges)
    labels = [f"{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])]
    idx = np.searchsorted(edges, lengths, side="right") - 1
    idx[(lengths < edges[0]) | (lengths >= edges[-1])] = -1
    return labels, idx


def accuracy_by_length(correct, lengths, edges=(5, 11, 16, 21, 26, 31)):
    """{bucket label: exact-match accuracy} for the buckets that have samples."""
    labels, idx = length_buckets(np.asarray(lengths), edges)
    correct = np.asarray(correct)
    return {lab: float(correct[idx == i].mean()) for i, lab in enumerate(labels)
            if (idx == i).any()}


def decode_split(model, split, method="greedy", batch_size=250, **kw):
    """Decode every source of a ``(src, src_len, tgt)`` split with ``model.decode``
    (batches of similar length; ``max_len`` defaults to the batch's longest source + 5;
    ``kw`` go to ``decode``) and return (exact-match accuracy, (N,) bool correct,
    accuracy by length bucket)."""
    src, lens, tgt = split
    order = np.argsort(lens, kind="stable")  # similar lengths together: shorter decodes
    correct = np.zeros(len(src), bool)
    was = model.training
    model.eval()
    try:
        for s in range(0, len(src), batch_size):
            rows = order[s:s + batch_size]
            k = int(lens[rows].max())
            x = lamina.from_numpy(np.ascontiguousarray(src[rows, :k]))
            # the translations of these tasks are as long as their sources (+ EOS); a
            # few steps more let a model that overshoots be caught as wrong
            pred = model.decode(x, method=method, **{"max_len": k + 5, **kw})
            correct[rows] = exact_match(pred, tgt[rows])
    finally:
        model.train(was)
    return float(correct.mean()), correct, accuracy_by_length(correct, lens)


def format_length_table(rows, title="exact match by source length"):
    """A text table: rows = {name: {bucket: accuracy}} -> lines with one column per
    bucket (accuracies in %)."""
    buckets = []
    for r in rows.values():
        buckets += [b for b in r if b not in buckets]
    width = max([len(n) for n in rows] + [10])
    lines = [title, " " * width + "".join(f"{b:>9}" for b in buckets)]
    for name, r in rows.items():
        lines.append(f"{name:<{width}}" + "".join(
            f"{r[b] * 100:8.1f}%" if b in r else f"{'-':>9}" for b in buckets))
    return "\n".join(lines)
