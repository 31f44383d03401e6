"""Metrics against direct computations (and torch.topk for top-k)."""
import math

import numpy as np
import torch

import lamina
from lamina.train import metrics as M


def test_accuracy_variants():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 7))
    y = rng.integers(0, 7, 50)
    assert M.accuracy(logits, y) == (logits.argmax(1) == y).mean()
    assert M.accuracy(lamina.tensor(logits), lamina.tensor(y)) == (logits.argmax(1) == y).mean()
    seq = rng.standard_normal((4, 7, 5))                   # (N, C, T) like cross_entropy
    ys = rng.integers(0, 7, (4, 5))
    assert M.accuracy(seq, ys) == (seq.argmax(1) == ys).mean()
    ys_ign = ys.copy()
    ys_ign[0] = -100
    keep = ys_ign != -100
    assert M.accuracy(seq, ys_ign, ignore_index=-100) == (seq.argmax(1)[keep] == ys[keep]).mean()
    binary = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    assert M.accuracy(binary, np.array([1, 0, 0, 0])) == 0.75
    acc = M.Accuracy()
    acc.update(logits[:20], y[:20])
    acc.update(logits[20:], y[20:])
    assert acc.compute() == M.accuracy(logits, y)


def test_top_k_matches_torch():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((200, 10))
    y = rng.integers(0, 10, 200)
    for k in (1, 3, 5, 10):
        top = torch.topk(torch.tensor(logits), k, dim=1).indices.numpy()
        want = (top == y[:, None]).any(1).mean()
        assert M.top_k_accuracy(logits, y, k) == want


def test_confusion_matrix():
    pred = np.array([0, 1, 1, 2, 2, 2])
    true = np.array([0, 1, 2, 2, 2, 0])
    cm = M.confusion_matrix(pred, true, num_classes=4)
    want = np.zeros((4, 4), int)
    for t, p in zip(true, pred):
        want[t, p] += 1
    np.testing.assert_array_equal(cm, want)
    scores = np.eye(3)[pred]
    np.testing.assert_array_equal(M.confusion_matrix(scores, true), want[:3, :3])


def test_perplexity_and_bits_per_char():
    assert math.isclose(M.perplexity(math.log(65)), 65)
    assert math.isclose(M.bits_per_char(math.log(2) * 1.5), 1.5)


def test_running_perplexity_and_bpc_match_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 5, 7))                # (N, C, T) as for sequence models
    y = rng.integers(0, 5, (3, 7))
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(y)).item()
    ppl, bpc = M.make_metric("perplexity"), M.make_metric("bpc")
    for m in (ppl, bpc):
        m.update(logits[:1], y[:1])
        m.update(logits[1:], y[1:])
    assert math.isclose(ppl.compute(), math.exp(ce), rel_tol=1e-9)
    assert math.isclose(bpc.compute(), ce / math.log(2), rel_tol=1e-9)
