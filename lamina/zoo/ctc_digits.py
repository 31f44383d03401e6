"""ctc: reading strips of handwritten digits without alignment (Connectionist Temporal
Classification, Graves et al. 2006).

A strip is 3–8 of the shipped 8×8 digits (:func:`lamina.data.load_digits`) drawn at random
and laid side by side with random gaps of 0–``max_gap`` blank columns, then read left to
right one column at a time: a sequence of up to 8·8 + 7·``max_gap`` steps of 8 pixel values.
The label is the string of digits only — nobody says which columns belong to which digit.
:class:`CTCReader` (a bidirectional GRU over the columns and a linear layer to 11 classes,
blank = 0 and digit d = d + 1) is trained with ``F.ctc_loss``, and its output is read by
best-path decoding (``F.ctc_greedy_decode``). Training strips are built from the training
images of the fixed digits split, test strips from the held-out test images only; the
metric is the exact sequence accuracy (every digit right, none missing or extra).
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset, load_digits
from lamina.nn import functional as F
from lamina.train.metrics import Metric

from .recipe import Recipe, Setup

BLANK = 0
N_CLASSES = 11      # blank + the ten digits (digit d is class d + 1)


def make_strips(images, labels, n, min_len=3, max_len=8, max_gap=2, seed=0, augment=False):
    """``n`` random digit strips.

    images (M, 8, 8) (or (M, 64)) in [0, 1], labels (M,) in 0..9. Each strip takes
    ``min_len``..``max_len`` random images (with replacement), a random gap of
    0..``max_gap`` zero columns between neighbours, and is transposed so that time runs
    over the columns. Returns ``(x, lengths, targets)``: x float32 (n, W, 8) with
    W = 8·max_len + (max_len - 1)·max_gap, zero-padded on the right; lengths int64 (n,)
    the number of real columns; targets int64 (n, max_len) the digit classes (digit + 1),
    padded with the blank 0 (so a target's length is ``(targets > 0).sum(1)``).
    ``augment``: each placed digit is shifted up or down by one row (zero fill) with
    probability 2/3 and its intensity scaled by a factor in [0.7, 1] (training strips).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2 and images.shape[1] == 64:
        images = images.reshape(-1, 8, 8)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or images.shape[1:] != (8, 8) or len(labels) != len(images):
        raise ValueError(f"make_strips: need images (M, 8, 8) and labels (M,), got "
                         f"{images.shape} and {labels.shape}")
    if not 1 <= min_len <= max_len or max_gap < 0:
        raise ValueError(f"make_strips: need 1 <= min_len <= max_len and max_gap >= 0, got "
                         f"min_len={min_len}, max_len={max_len}, max_gap={max_gap}")
    rng = np.random.default_rng(seed)
    width = 8 * max_len + (max_len - 1) * max_gap
    x = np.zeros((n, width, 8), np.float32)
    lengths = np.zeros(n, np.int64)
    targets = np.zeros((n, max_len), np.int64)
    columns = images.transpose(0, 2, 1)           # (M, column, row): time = column
    for i in range(n):
        k = int(rng.integers(min_len, max_len + 1))
        pick = rng.integers(0, len(images), k)
        pos = 0
        for j, p in enumerate(pick):
            if j:
                pos += int(rng.integers(0, max_gap + 1))
            glyph = columns[p]
            if augment:
                shift = int(rng.integers(-1, 2))
                if shift:
                    glyph = np.roll(glyph, shift, axis=1)
                    glyph[:, 0 if shift > 0 else -1] = 0.0
                glyph = glyph * np.float32(rng.uniform(0.7, 1.0))
            x[i, pos:pos + 8] = glyph
            pos += 8
        lengths[i] = pos
        targets[i, :k] = labels[pick] + 1
    return x, lengths, targets


def labels_to_string(seq):
    """Classes (digit + 1, blanks/padding 0 skipped) -> the digit string."""
    return "".join(str(int(c) - 1) for c in np.asarray(seq).reshape(-1) if int(c) > 0)


class CTCReader(nn.Module):
    """A bidirectional GRU over the columns of a strip, then dropout and a linear layer
    to the classes (blank 0 and the labels); ``dropout`` also acts between GRU layers.

    forward(x (N, T, rows) float, lengths (N,) int) -> (log_probs (T, N, n_classes),
    lengths): log-softmax scores in the (T, N, C) layout ``F.ctc_loss`` expects, and the
    lengths passed through (padded steps are masked inside the GRU). ``decode`` gives the
    greedy (best-path) label lists.
    """

    def __init__(self, rows=8, hidden=64, num_layers=2, n_classes=N_CLASSES, dropout=0.0):
        super().__init__()
        self.rows, self.n_classes = rows, n_classes
        self.rnn = nn.GRU(rows, hidden, num_layers=num_layers, batch_first=True,
                          bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, x, lengths=None):
        if x.ndim != 3 or x.shape[2] != self.rows:
            raise ValueError(f"CTCReader: expected input (N, T, {self.rows}) — a batch of "
                             f"strips read column by column — got shape {tuple(x.shape)}")
        n, t = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = np.full(n, t, np.int64)
        lengths = lengths.numpy() if isinstance(lengths, lamina.Tensor) else np.asarray(lengths)
        if lengths.shape != (n,):
            raise ValueError(f"CTCReader: lengths must have shape ({n},) for input "
                             f"{tuple(x.shape)}, got {lengths.shape}")
        h, _ = self.rnn(x, lengths=lengths)
        logits = self.out(self.drop(h))                        # (N, T, C)
        return F.log_softmax(logits, -1).transpose(0, 1), lengths

    def decode(self, x, lengths=None):
        """Greedy CTC decoding: a list of N label lists (classes, blank removed)."""
        with lamina.no_grad():
            lp, lens = self(x if isinstance(x, lamina.Tensor) else lamina.from_numpy(
                np.asarray(x, np.float32)), lengths)
        return F.ctc_greedy_decode(lp, lens, blank=BLANK)


def ctc_loss(out, targets):
    """CTC loss of a :class:`CTCReader` output against blank-padded targets (N, S)."""
    log_probs, lengths = out
    t = targets.numpy() if isinstance(targets, lamina.Tensor) else np.asarray(targets)
    return F.ctc_loss(log_probs, lamina.from_numpy(t), lengths, (t > 0).sum(1), blank=BLANK)


def sequence_matches(decoded, targets):
    """(N,) bool: decoded label list i equals target row i without its padding."""
    t = targets.numpy() if isinstance(targets, lamina.Tensor) else np.asarray(targets)
    return np.array([list(d) == [int(c) for c in row if c > 0] for d, row in zip(decoded, t)])


class SequenceAccuracy(Metric):
    """Fraction of strips whose greedy CTC decoding is exactly the target string."""

    name = "sequence_accuracy"

    def update(self, output, target):
        log_probs, lengths = output
        ok = sequence_matches(F.ctc_greedy_decode(log_probs, lengths, blank=BLANK), target)
        self.total += float(ok.sum())
        self.count += len(ok)


def strips_splits(cfg):
    """Training, validation and test strips: train/val from the training digits of the
    fixed split (val from a different seed), test only from the held-out test digits."""
    xi, yi = load_digits("train", flatten=False)
    xt, yt = load_digits("test", flatten=False)
    kw = dict(min_len=cfg["min_len"], max_len=cfg["max_len"], max_gap=cfg["max_gap"])
    train = make_strips(xi, yi, cfg["n_train"], seed=cfg["seed"], augment=cfg["augment"], **kw)
    val = make_strips(xi, yi, cfg["n_val"], seed=cfg["seed"] + 1, **kw)
    test = make_strips(xt, yt, cfg["n_test"], seed=cfg["seed"] + 2, **kw)
    return train, val, test


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = strips_splits(cfg)
    model = CTCReader(hidden=cfg["hidden"], num_layers=cfg["num_layers"],
                      dropout=cfg["dropout"])
    opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"])
    sched = lamina.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
    return Setup(model, ctc_loss, opt, loader, val, test, metrics=(SequenceAccuracy(),),
                 scheduler=sched, clip_grad_norm=cfg["clip"])


RECIPE = Recipe(
    name="ctc",
    summary="bidirectional GRU + CTC loss reading strips of 3-8 shipped 8x8 digits",
    defaults=dict(epochs=8, lr=3e-3, batch_size=64, seed=0, hidden=64, num_layers=2,
                  clip=5.0, n_train=12000, n_val=500, n_test=1000, min_len=3, max_len=8,
                  max_gap=2, augment=True, dropout=0.25),
    quick=dict(epochs=4, n_train=3000, n_val=200, n_test=300, min_len=1, max_len=3,
               hidden=48, num_layers=1, lr=1e-2, augment=False, dropout=0.0),
    search_space={"lr": ("loguniform", 1e-3, 1e-2), "hidden": ("choice", [48, 64, 96])},
    target=("sequence_accuracy", 0.90),
    setup=setup,
)
