"""softmax / log_softmax and the losses: values and gradients against PyTorch, float64
gradcheck, stability at large logits, and the errors on bad targets."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import lamina
import lamina.nn.functional as F
from helpers import check_op, noncontig, rand

REDUCTIONS = ["mean", "sum", "none"]


# ---------------------------------------------------------------- softmax
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_any_dim(name, dim):
    a = rand(2, 3, 4, seed=1)
    check_op(lambda x: getattr(F, name)(x, dim), lambda x: getattr(TF, name)(x, dim), a)
    check_op(lambda x: getattr(x, name)(dim=dim), lambda x: getattr(x, name)(dim=dim),
             noncontig(a))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_large_logits_no_nan(name):
    a = np.array([[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -999.0], [0.0, 1e4, -1e4]])
    out = check_op(lambda x: getattr(F, name)(x, 1), lambda x: getattr(TF, name)(x, 1), a)
    assert np.all(np.isfinite(out[0].numpy()))
    check_op(lambda x: getattr(F, name)(x, 0), lambda x: getattr(TF, name)(x, 0), a)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # check_op's sum of -inf * v
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_neg_inf_entries_and_dtype(name):
    a = np.array([[-np.inf, 0.0, 1.0], [2.0, -np.inf, -np.inf]])
    check_op(lambda x: getattr(F, name)(x, 1), lambda x: getattr(TF, name)(x, 1), a,
             check_grad=False)  # -inf inputs: finite differences are undefined there
    out = getattr(F, name)(lamina.tensor(rand(2, 3)), -1, dtype=lamina.float64)
    assert out.dtype == np.float64


def test_softmax_bad_dim():
    with pytest.raises(IndexError, match=r"softmax: dim 2 is out of range .*\(2, 3\)"):
        F.softmax(lamina.tensor(rand(2, 3)), 2)
    with pytest.raises(IndexError, match="log_softmax: dim -3"):
        lamina.log_softmax(lamina.tensor(rand(2, 3)), -3)


# ---------------------------------------------------------------- cross_entropy
T_NC = np.array([2, 0, 3, 3, 1])
T_NCD = np.array([[[0, 1, 2], [2, 2, 0]], [[1, 0, 0], [2, 1, 1]]])   # (2, 2, 3), C=3


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices(reduction, smoothing):
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    check_op(lambda x, t: F.cross_entropy(x, t, **kw), lambda x, t: TF.cross_entropy(x, t, **kw),
             rand(5, 4, seed=2), T_NC)
    check_op(lambda x, t: F.cross_entropy(x, t, **kw), lambda x, t: TF.cross_entropy(x, t, **kw),
             rand(2, 3, 2, 3, seed=3), T_NCD)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_weight_and_ignore_index(reduction, smoothing):
    w = np.array([0.5, 2.0, 1.0, 0.25])
    t = np.array([2, -100, 3, 1, -100])

    def run(mod, x, t, ignore=-100):
        return mod.cross_entropy(x, t, weight=mod.tensor(w, dtype=mod.float32),
                                 ignore_index=ignore, reduction=reduction,
                                 label_smoothing=smoothing)
    check_op(lambda x, t: run(F_mod, x, t), lambda x, t: run(torch_mod, x, t), rand(5, 4, seed=4),
             t)
    # ignore_index that is a real class; no weight
    kw = {"ignore_index": 1, "reduction": reduction, "label_smoothing": smoothing}
    check_op(lambda x, t: F.cross_entropy(x, t, **kw), lambda x, t: TF.cross_entropy(x, t, **kw),
             rand(2, 3, 2, 3, seed=5), T_NCD)
    w3 = np.array([1.5, 0.5, 2.0], np.float32)
    check_op(lambda x, t: F.cross_entropy(x, t, weight=lamina.tensor(w3), **kw),
             lambda x, t: TF.cross_entropy(x, t, weight=torch.tensor(w3), **kw),
             rand(2, 3, 2, 3, seed=6), T_NCD)


class F_mod:  # the two namespaces run() needs, side by side
    cross_entropy = staticmethod(F.cross_entropy)
    tensor = staticmethod(lamina.tensor)
    float32 = lamina.float32


class torch_mod:
    cross_entropy = staticmethod(TF.cross_entropy)
    tensor = staticmethod(torch.tensor)
    float32 = torch.float32


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    t = np.array([-100, -100])
    check_op(lambda x, t: F.cross_entropy(x, t), lambda x, t: TF.cross_entropy(x, t),
             rand(2, 3, seed=7), t, check_grad=False)  # nan output: nothing to difference


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probability_targets(reduction, smoothing):
    # the target is differentiable too (torch gives it a gradient)
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    q = TF.softmax(torch.tensor(rand(4, 3, seed=8)), 1).numpy()
    check_op(lambda x, q: F.cross_entropy(x, q, **kw), lambda x, q: TF.cross_entropy(x, q, **kw),
             rand(4, 3, seed=9), q)
    q4 = TF.softmax(torch.tensor(rand(2, 3, 2, 2, seed=10)), 1).numpy()
    w = np.array([0.5, 1.0, 2.0], np.float32)
    check_op(lambda x, q: F.cross_entropy(x, q, weight=lamina.tensor(w), **kw),
             lambda x, q: TF.cross_entropy(x, q, weight=torch.tensor(w), **kw),
             rand(2, 3, 2, 2, seed=11), q4)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_1d_logits(reduction):
    check_op(lambda x: F.cross_entropy(x, lamina.tensor(2), reduction=reduction),
             lambda x: TF.cross_entropy(x, torch.tensor(2), reduction=reduction), rand(4, seed=12))
    q = np.array([0.1, 0.2, 0.3, 0.4])
    check_op(lambda x, q: F.cross_entropy(x, q, reduction=reduction, label_smoothing=0.1),
             lambda x, q: TF.cross_entropy(x, q, reduction=reduction, label_smoothing=0.1),
             rand(4, seed=13), q)


def test_cross_entropy_large_logits_and_noncontiguous():
    a = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [5.0, 5.0, 5.0]])
    out = check_op(lambda x, t: F.cross_entropy(x, t, reduction="none"),
                   lambda x, t: TF.cross_entropy(x, t, reduction="none"), a, np.array([1, 2, 0]))
    assert np.all(np.isfinite(out[0].numpy()))
    check_op(lambda x, t: F.cross_entropy(x, t), lambda x, t: TF.cross_entropy(x, t),
             noncontig(rand(4, 5, seed=14)), np.array([4, 0, 1, 1]))


@pytest.mark.parametrize("offsets", [[10.0, -50.0, 0.0, 5.0], [10.0, -50.0, -70.0, -300.0]],
                         ids=["moderate", "far"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_cross_entropy_rows_far_apart(reduction, offsets):
    # rows moderately and far (exp underflows with one batch-wide shift) below the batch
    # max must all keep full precision
    a = rand(4, 5, seed=27) + np.array(offsets)[:, None]
    t = np.array([0, 4, 2, 1])
    check_op(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1),
             lambda x, t: TF.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1), a, t)
    q = TF.softmax(torch.tensor(rand(4, 5, seed=28)), 1).numpy()
    check_op(lambda x, q: F.cross_entropy(x, q, reduction=reduction),
             lambda x, q: TF.cross_entropy(x, q, reduction=reduction), a, q)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_empty_batch_like_torch(reduction):
    x = lamina.zeros(0, 3, requires_grad=True)
    out = F.cross_entropy(x, lamina.tensor(np.zeros(0, np.int64)), reduction=reduction)
    ref = TF.cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long),
                           reduction=reduction)
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    out.sum().backward()
    assert x.grad.shape == (0, 3)


def test_cross_entropy_module_and_methods_agree():
    x = lamina.tensor(rand(5, 4, seed=15), requires_grad=True)
    t = lamina.tensor(T_NC)
    a = lamina.nn.CrossEntropyLoss(label_smoothing=0.1)(x, t)
    b = lamina.cross_entropy(x, t, label_smoothing=0.1)
    assert a.item() == b.item()


def test_cross_entropy_errors():
    x = lamina.tensor(rand(3, 4))
    with pytest.raises(IndexError, match=r"cross_entropy: target class 4 is out of range for 4"):
        F.cross_entropy(x, lamina.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="target class -1"):
        F.cross_entropy(x, lamina.tensor([0, -1, 1]))
    with pytest.raises(ValueError,
                       match=r"target shape \(2,\) does not match input shape \(3, 4\)"):
        F.cross_entropy(x, lamina.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"probability targets must have the input's shape "
                                         r"\(3, 4\), got \(3, 3\)"):
        F.cross_entropy(x, lamina.tensor(rand(3, 3)))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(x, lamina.tensor([0, 1, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(x, lamina.tensor([0, 1, 1]), weight=lamina.ones(3))
    with pytest.raises(TypeError, match="class indices"):
        F.cross_entropy(x, lamina.tensor([True, False, True]))


# ---------------------------------------------------------------- nll_loss
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_on_log_softmax(reduction):
    check_op(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, reduction=reduction),
             lambda x, t: TF.nll_loss(TF.log_softmax(x, 1), t, reduction=reduction),
             rand(5, 4, seed=16), T_NC)
    w = np.array([0.5, 2.0, 1.0], np.float32)
    check_op(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, weight=lamina.tensor(w),
                                     ignore_index=2, reduction=reduction),
             lambda x, t: TF.nll_loss(TF.log_softmax(x, 1), t, weight=torch.tensor(w),
                                      ignore_index=2, reduction=reduction),
             rand(2, 3, 2, 3, seed=17), T_NCD)


def test_nll_loss_is_not_renormalised():
    # nll_loss(input)[i] = -input[i, t_i] for any input, normalised or not
    check_op(lambda x, t: F.nll_loss(x, t), lambda x, t: TF.nll_loss(x, t), rand(5, 4, seed=18),
             T_NC)
    with pytest.raises(IndexError, match="nll_loss: target class 7"):
        F.nll_loss(lamina.tensor(rand(2, 4)), lamina.tensor([1, 7]))


# ---------------------------------------------------------------- binary cross-entropy
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(reduction):
    t = rand(3, 4, seed=19, low=0.0, high=1.0)
    check_op(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
             lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction),
             rand(3, 4, seed=20), t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_weight", [False, True])
def test_bce_with_logits_pos_weight(reduction, with_weight):
    t = (rand(3, 4, seed=21) > 0).astype(np.float64)
    pw = np.array([0.5, 1.0, 2.0, 3.0], np.float32)   # broadcasts over the last dim
    w = np.array([[1.0], [0.5], [2.0]], np.float32) if with_weight else None

    def run(f, T, x, t):
        return f(x, t, weight=None if w is None else T(w), pos_weight=T(pw), reduction=reduction)
    check_op(lambda x, t: run(F.binary_cross_entropy_with_logits, lamina.tensor, x, t),
             lambda x, t: run(TF.binary_cross_entropy_with_logits, torch.tensor, x, t),
             rand(3, 4, seed=22), t)


def test_bce_with_logits_large_logits():
    a = np.array([[100.0, -100.0, 30.0], [-30.0, 0.0, 1e4]])
    t = np.array([[0.0, 1.0, 1.0], [0.0, 0.5, 0.0]])
    pw = np.array([2.0, 0.5, 1.0], np.float32)
    for kw in ({}, {"pos_weight": pw}):
        out = check_op(
            lambda x, t: F.binary_cross_entropy_with_logits(
                x, t, reduction="none", **{k: lamina.tensor(v) for k, v in kw.items()}),
            lambda x, t: TF.binary_cross_entropy_with_logits(
                x, t, reduction="none", **{k: torch.tensor(v) for k, v in kw.items()}), a, t)
        assert np.all(np.isfinite(out[0].numpy()))


def test_bce_with_logits_module_and_errors():
    x, t = lamina.tensor(rand(2, 3)), lamina.tensor(rand(2, 3, low=0, high=1))
    assert lamina.nn.BCEWithLogitsLoss()(x, t).item() == \
        F.binary_cross_entropy_with_logits(x, t).item()
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape "
                                         r"\(3, 2\) must match input shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, lamina.tensor(rand(3, 2)))
    with pytest.raises(ValueError, match="reduction must be"):
        F.binary_cross_entropy_with_logits(x, t, reduction="batchmean")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    p = rand(3, 4, seed=23, low=0.05, high=0.95)
    t = rand(3, 4, seed=24, low=0.0, high=1.0)
    check_op(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction),
             lambda x, t: TF.binary_cross_entropy(x, t, reduction=reduction), p, t)
    w = np.array([0.5, 1.0, 2.0, 1.5], np.float32)
    check_op(lambda x, t: F.binary_cross_entropy(x, t, lamina.tensor(w), reduction=reduction),
             lambda x, t: TF.binary_cross_entropy(x, t, torch.tensor(w), reduction=reduction),
             noncontig(p), t)


def test_binary_cross_entropy_at_exact_zero_and_one():
    # log clamped at -100 and gradient (p - t) / max(p (1 - p), 1e-12), as torch; the loss
    # has a kink at the boundary, so finite differences do not apply (check_grad=False)
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5])
    out = check_op(lambda x: F.binary_cross_entropy(x, lamina.tensor(t, dtype=lamina.float32),
                                                    reduction="none"),
                   lambda x: TF.binary_cross_entropy(x, torch.tensor(t, dtype=torch.float32),
                                                     reduction="none"), p, check_grad=False)
    np.testing.assert_allclose(out[0].numpy(), [0, 0, 100, 100, np.log(2)], rtol=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(lamina.tensor([1.5]), lamina.tensor([1.0]))


# ---------------------------------------------------------------- mse / l1
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_mse_l1(name, reduction):
    a, b = rand(3, 4, seed=25), rand(3, 4, seed=26)
    check_op(lambda x, y: getattr(F, name)(x, y, reduction=reduction),
             lambda x, y: getattr(TF, name)(x, y, reduction=reduction), a, b)
    check_op(lambda x, y: getattr(F, name)(x, y, reduction=reduction),
             lambda x, y: getattr(TF, name)(x, y, reduction=reduction), noncontig(a), b)


def test_l1_at_equal_values_and_errors():
    a = np.array([1.0, 2.0, -1.0])
    check_op(lambda x, y: F.l1_loss(x, y), lambda x, y: TF.l1_loss(x, y), a, a.copy(),
             check_grad=False)  # |x - y| has a kink at x == y: torch parity only
    with pytest.raises(ValueError, match=r"mse_loss: target shape \(3, 1\) must match input "
                                         r"shape \(3,\)"):
        F.mse_loss(lamina.tensor(a), lamina.tensor(a[:, None]))
    with pytest.raises(ValueError, match="l1_loss: reduction"):
        F.l1_loss(lamina.tensor(a), lamina.tensor(a), reduction="avg")
