"""Metrics on predictions (NumPy arrays or Tensors in, Python numbers / arrays out).

Running metrics for the Trainer accumulate over batches: ``m.update(output, target)``,
then ``m.compute()``; ``m.reset()`` starts a new epoch.
"""
import math

import numpy as np

from ..tensor import Tensor


def _np(a):
    return a.numpy() if isinstance(a, Tensor) else np.asarray(a)


def _class_logits(output, target):
    """(scores (M, C), labels (M,)): class axis 1 moved last, like cross_entropy's input."""
    out, tgt = _np(output), _np(target)
    if out.ndim > 2:
        out = np.moveaxis(out, 1, -1).reshape(-1, out.shape[1])
        tgt = tgt.reshape(-1)
    return out, tgt


def accuracy(output, target, ignore_index=None):
    """Fraction of rows whose arg-max class equals the integer target. ``output`` (N, C)
    or (N, C, d...) scores; for a single logit (N,) or (N, 1), threshold 0 against 0/1
    targets (binary classification with logits)."""
    out, tgt = _np(output), _np(target)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        pred = (out.reshape(-1) > 0).astype(np.int64)
        return float((pred == tgt.reshape(-1).astype(np.int64)).mean())
    out, tgt = _class_logits(out, tgt)
    keep = tgt != ignore_index if ignore_index is not None else slice(None)
    return float((out.argmax(1)[keep] == tgt[keep]).mean())


def top_k_accuracy(output, target, k=5):
    """Fraction of rows whose target is among the k highest scores."""
    out, tgt = _class_logits(output, target)
    k = min(k, out.shape[1])
    top = np.argpartition(-out, k - 1, axis=1)[:, :k]
    return float((top == tgt[:, None]).any(1).mean())


def confusion_matrix(output_or_pred, target, num_classes=None):
    """C[i, j] = number of samples of true class i predicted as class j. The first
    argument is (N, C) scores or (N,) predicted labels."""
    p, t = _np(output_or_pred), _np(target).reshape(-1).astype(np.int64)
    pred = p.argmax(1) if p.ndim == 2 else p.reshape(-1).astype(np.int64)
    n = num_classes or int(max(pred.max(initial=0), t.max(initial=0)) + 1)
    return np.bincount(t * n + pred, minlength=n * n).reshape(n, n)


def perplexity(mean_nll):
    """exp of the mean negative log-likelihood per token (natural log)."""
    return float(math.exp(mean_nll))


def bits_per_char(mean_nll):
    """Mean negative log-likelihood per character in bits (nats / ln 2)."""
    return float(mean_nll / math.log(2))


class Metric:
    """A running metric: a weighted mean of per-batch values by default."""

    name = "metric"

    def __init__(self):
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def batch_value(self, output, target):
        raise NotImplementedError

    def update(self, output, target):
        n = len(_np(target).reshape(-1)) if target is not None else 1
        self.total += self.batch_value(output, target) * n
        self.count += n

    def compute(self):
        return self.total / max(self.count, 1)


class Accuracy(Metric):
    name = "accuracy"

    def __init__(self, ignore_index=None):
        self.ignore_index = ignore_index
        super().__init__()

    def update(self, output, target):
        out, tgt = _np(output), _np(target)
        if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
            pred = (out.reshape(-1) > 0).astype(np.int64)
            tgt = tgt.reshape(-1).astype(np.int64)
        else:
            out, tgt = _class_logits(out, tgt)
            pred = out.argmax(1)
            if self.ignore_index is not None:
                keep = tgt != self.ignore_index
                pred, tgt = pred[keep], tgt[keep]
        self.total += float((pred == tgt).sum())
        self.count += len(tgt)


class TopKAccuracy(Metric):
    def __init__(self, k=5):
        self.k = k
        self.name = f"top{k}_accuracy"
        super().__init__()

    def batch_value(self, output, target):
        return top_k_accuracy(output, target, self.k)


class _TokenNLL(Metric):
    """Mean negative log-likelihood (nats) of integer targets under softmax(output),
    over all tokens; subclasses map it to perplexity or bits per character."""

    def __init__(self, ignore_index=None):
        self.ignore_index = ignore_index
        super().__init__()

    def update(self, output, target):
        out, tgt = _class_logits(output, target)
        if self.ignore_index is not None:
            keep = tgt != self.ignore_index
            out, tgt = out[keep], tgt[keep]
        out = out.astype(np.float64)
        m = out.max(1, keepdims=True)
        logz = np.log(np.exp(out - m).sum(1)) + m[:, 0]
        self.total += float((logz - out[np.arange(len(tgt)), tgt]).sum())
        self.count += len(tgt)


class Perplexity(_TokenNLL):
    name = "perplexity"

    def compute(self):
        return perplexity(self.total / max(self.count, 1))


class BitsPerChar(_TokenNLL):
    name = "bpc"

    def compute(self):
        return bits_per_char(self.total / max(self.count, 1))


METRICS = {"accuracy": Accuracy, "perplexity": Perplexity, "bpc": BitsPerChar, "acc": Accuracy, "top5": lambda: TopKAccuracy(5),
           "top5_accuracy": lambda: TopKAccuracy(5)}


def make_metric(m):
    """A Metric from a name ('accuracy', 'top5'), a Metric, or fn(output, target) -> float."""
    if isinstance(m, Metric):
        return m
    if isinstance(m, str):
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; choose from {sorted(METRICS)} or pass a "
                             f"function (output, target) -> float")
        return METRICS[m]()
    if callable(m):
        metric = Metric()
        metric.name = getattr(m, "__name__", "metric")
        metric.batch_value = m
        return metric
    raise TypeError(f"metric must be a name, a Metric or a function, got {type(m).__name__}")
