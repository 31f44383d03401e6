"""The losses not covered by tests/ops/test_softmax_loss.py: values and gradients (every
float input, the target included where PyTorch differentiates it) against PyTorch in
float32 and float64, float64 gradcheck, every reduction, the edge cases (kinks, zeros,
tiny variances, near-zero vectors), the modules, and the error messages."""
import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from helpers import check_op, rand

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [np.float32, np.float64]


def check(lam_fn, torch_fn, *arrays, dtype=np.float64, gradcheck=True, **kw):
    """check_op with the brief's tolerances: float64 rtol 1e-8, float32 rtol 1e-4; the
    float64 gradcheck runs once (with the float64 parity run)."""
    f64 = np.dtype(dtype) == np.float64
    tol = dict(rtol=1e-8, atol=1e-10) if f64 else dict(rtol=1e-4, atol=1e-5)
    tol.update(kw)
    return check_op(lam_fn, torch_fn, *arrays, dtype=dtype, check_grad=gradcheck and f64,
                    **tol)


def const(mod, a, dtype):
    """A constant (no grad) tensor of ``a`` in lamina or torch."""
    if mod is lamina:
        return lamina.tensor(np.asarray(a, dtype))
    return torch.tensor(np.asarray(a, dtype))


def signs(*shape, seed):
    return np.where(rand(*shape, seed=seed) > 0, 1.0, -1.0)


# ---------------------------------------------------------------- regression losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_mse_l1_weighted(name, reduction, dtype):
    # torch 2.13's weight: same shape as input, 'mean' = sum(w l) / sum(w); weight gets a grad
    a, b, w = rand(3, 5, seed=1), rand(3, 5, seed=2), rand(3, 5, seed=3, low=0.1, high=2)
    check(lambda x, y, w: getattr(F, name)(x, y, reduction=reduction, weight=w),
          lambda x, y, w: getattr(TF, name)(x, y, reduction=reduction, weight=w), a, b, w,
          dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_l1_float64_and_target_grad(dtype):
    a, b = rand(2, 3, 4, seed=4), rand(2, 3, 4, seed=5)
    for name in ("mse_loss", "l1_loss"):
        check(lambda x, y: getattr(F, name)(x, y), lambda x, y: getattr(TF, name)(x, y), a, b,
              dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_smooth_l1(beta, reduction, dtype):
    a, b = rand(4, 6, seed=6), rand(4, 6, seed=7)
    check(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=beta),
          lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=beta), a, b,
          dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_beta_zero_is_l1(reduction, dtype):
    a, b = rand(3, 4, seed=8), rand(3, 4, seed=9)
    out = check(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.0),
                lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=0.0), a, b,
                dtype=dtype)
    ref = F.l1_loss(lamina.tensor(a.astype(dtype)), lamina.tensor(b.astype(dtype)),
                    reduction=reduction)
    np.testing.assert_array_equal(out[0].numpy(), ref.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber(delta, reduction, dtype):
    a, b = rand(4, 6, seed=10), rand(4, 6, seed=11)
    check(lambda x, y: F.huber_loss(x, y, reduction=reduction, delta=delta),
          lambda x, y: TF.huber_loss(x, y, reduction=reduction, delta=delta), a, b,
          dtype=dtype)
    w = rand(4, 6, seed=12, low=0.1, high=2.0)   # weighted 'mean' divides by the count
    check(lambda x, y, w: F.huber_loss(x, y, reduction=reduction, delta=delta, weight=w),
          lambda x, y, w: TF.huber_loss(x, y, reduction=reduction, delta=delta, weight=w),
          a, b, w, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_smooth_l1_huber_at_the_switch_point(dtype):
    # |d| exactly at beta / delta (and d = 0): value and slope as torch (no finite
    # differences across the switch)
    a = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 0.25])
    b = np.zeros_like(a)
    for beta in (0.5, 1.0):
        check(lambda x, y: F.smooth_l1_loss(x, y, reduction="none", beta=beta),
              lambda x, y: TF.smooth_l1_loss(x, y, reduction="none", beta=beta), a, b,
              dtype=dtype, gradcheck=False)
        check(lambda x, y: F.huber_loss(x, y, reduction="none", delta=beta),
              lambda x, y: TF.huber_loss(x, y, reduction="none", delta=beta), a, b,
              dtype=dtype, gradcheck=False)


def test_smooth_l1_huber_relation_and_errors():
    x, y = lamina.tensor(rand(5, seed=13)), lamina.tensor(rand(5, seed=14))
    np.testing.assert_allclose(F.huber_loss(x, y, delta=0.7).item(),
                               0.7 * F.smooth_l1_loss(x, y, beta=0.7).item(), rtol=1e-6)
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0, got -1"):
        F.smooth_l1_loss(x, y, beta=-1)
    with pytest.raises(ValueError, match="huber_loss: delta must be > 0, got 0"):
        F.huber_loss(x, y, delta=0)


# ---------------------------------------------------------------- gaussian_nll_loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1), (1, 3)],
                         ids=["hetero", "one-less-dim", "N1", "1D"])
def test_gaussian_nll(var_shape, full, reduction, dtype):
    mu, y = rand(4, 3, seed=15), rand(4, 3, seed=16)
    var = rand(*var_shape, seed=17, low=0.2, high=2.0)
    kw = {"full": full, "reduction": reduction}
    check(lambda m, t, v: F.gaussian_nll_loss(m, t, v, **kw),
          lambda m, t, v: TF.gaussian_nll_loss(m, t, v, **kw), mu, y, var, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_nll_float_var(dtype):
    mu, y = rand(4, 3, seed=18), rand(4, 3, seed=19)
    check(lambda m, t: F.gaussian_nll_loss(m, t, 0.7, full=True),
          lambda m, t: TF.gaussian_nll_loss(m, t, 0.7, full=True), mu, y, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_nll_small_var_clamped_but_gradient_passes(dtype):
    # var below eps (and 0) is clamped to eps for the value; the gradient still reaches
    # var as if unclamped (torch clamps under no_grad): parity only, finite differences
    # see the flat clamp
    mu, y = rand(2, 3, seed=20), rand(2, 3, seed=21)
    var = np.array([[1e-9, 0.0, 0.5], [1e-6, 2e-6, 1e-7]])
    for full in (False, True):
        out = check(lambda m, t, v: F.gaussian_nll_loss(m, t, v, full=full, reduction="none"),
                    lambda m, t, v: TF.gaussian_nll_loss(m, t, v, full=full,
                                                         reduction="none"),
                    mu, y, var, dtype=dtype, gradcheck=False)
        assert np.all(np.isfinite(out[0].numpy()))
    check(lambda m, t, v: F.gaussian_nll_loss(m, t, v, eps=1e-3),
          lambda m, t, v: TF.gaussian_nll_loss(m, t, v, eps=1e-3), mu, y, var, dtype=dtype,
          gradcheck=False)


def test_gaussian_nll_errors():
    mu, y = lamina.tensor(rand(4, 3)), lamina.tensor(rand(4, 3))
    with pytest.raises(ValueError, match=r"gaussian_nll_loss: var shape \(4, 2\) does not "
                                         r"fit input shape \(4, 3\)"):
        F.gaussian_nll_loss(mu, y, lamina.ones(4, 2))
    with pytest.raises(ValueError, match="var has negative entries"):
        F.gaussian_nll_loss(mu, y, -lamina.ones(4, 3))
    with pytest.raises(ValueError, match="var must be non-negative"):
        F.gaussian_nll_loss(mu, y, -1.0)
    with pytest.raises(ValueError, match=r"target shape \(3, 4\) must match input shape"):
        F.gaussian_nll_loss(mu, lamina.tensor(rand(3, 4)), lamina.ones(4, 3))
    with pytest.raises(ValueError, match="gaussian_nll_loss: reduction"):
        F.gaussian_nll_loss(mu, y, lamina.ones(4, 3), reduction="batchmean")


# ---------------------------------------------------------------- kl_div
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, reduction, dtype):
    logp = TF.log_softmax(torch.tensor(rand(4, 5, seed=22)), 1).numpy()
    q = TF.softmax(torch.tensor(rand(4, 5, seed=23)), 1).numpy()
    tgt = np.log(q) if log_target else q
    kw = {"reduction": reduction, "log_target": log_target}
    with pytest.warns(UserWarning) if reduction == "mean" else _nothing():
        check(lambda x, t: F.kl_div(x, t, **kw), lambda x, t: TF.kl_div(x, t, **kw), logp, tgt,
              dtype=dtype)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_kl_div_zeros_in_target(reduction, dtype):
    # 0 log 0 = 0; the input gradient is -t (0 there); the target gradient log t + 1 - x
    # diverges at t = 0, where torch returns nan: the same here
    logp = TF.log_softmax(torch.tensor(rand(3, 4, seed=24)), 1).numpy()
    q = np.array([[0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    out = check(lambda x, t: F.kl_div(x, t, reduction=reduction),
                lambda x, t: TF.kl_div(x, t, reduction=reduction), logp, q, dtype=dtype,
                gradcheck=False)
    assert np.all(np.isfinite(out[0].numpy()))
    # target constant: the input gradient alone, and gradcheck of it
    check(lambda x: F.kl_div(x, const(lamina, q, dtype), reduction=reduction),
          lambda x: TF.kl_div(x, const(torch, q, dtype), reduction=reduction), logp,
          dtype=dtype)


def test_kl_div_0d_batchmean_and_errors():
    check(lambda x, t: F.kl_div(x, t, reduction="batchmean"),
          lambda x, t: TF.kl_div(x, t, reduction="batchmean"), np.array(-0.5), np.array(0.3))
    x = lamina.tensor(rand(2, 3))
    with pytest.raises(ValueError, match="kl_div: reduction must be 'mean', 'batchmean', "
                                         "'sum' or 'none', got 'avg'"):
        F.kl_div(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"kl_div: target shape \(3,\) must match input "
                                         r"shape \(2, 3\)"):
        F.kl_div(x, lamina.tensor(rand(3)))
    with pytest.raises(TypeError, match="kl_div: target must be a floating-point tensor"):
        F.kl_div(x, lamina.tensor([[0, 1, 0], [1, 0, 0]]))


# ---------------------------------------------------------------- cross_entropy / nll, 2 dtypes
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll_both_dtypes(reduction, dtype):
    # (tests/ops/test_softmax_loss.py covers the options in float32; here float64 parity
    # at rtol 1e-8 too: spatial index targets with weight, ignore_index and smoothing,
    # and differentiable probability targets)
    t = np.array([[[0, 1, 2], [2, -100, 0]], [[1, 0, 0], [2, 1, -100]]])
    w = np.array([1.5, 0.5, 2.0])
    for smoothing in (0.0, 0.2):
        def run(mod, f, x):
            return f(x, const(mod, t, np.int64), weight=const(mod, w, dtype),
                     reduction=reduction, label_smoothing=smoothing)
        check(lambda x: run(lamina, F.cross_entropy, x),
              lambda x: run(torch, TF.cross_entropy, x), rand(2, 3, 2, 3, seed=80), dtype=dtype)
    q = TF.softmax(torch.tensor(rand(4, 5, seed=81)), 1).numpy()
    check(lambda x, q: F.cross_entropy(x, q, reduction=reduction, label_smoothing=0.1),
          lambda x, q: TF.cross_entropy(x, q, reduction=reduction, label_smoothing=0.1),
          rand(4, 5, seed=82), q, dtype=dtype)
    check(lambda x: F.nll_loss(F.log_softmax(x, 1), const(lamina, t, np.int64),
                               weight=const(lamina, w, dtype), reduction=reduction),
          lambda x: TF.nll_loss(TF.log_softmax(x, 1), const(torch, t, np.int64),
                                weight=const(torch, w, dtype), reduction=reduction),
          rand(2, 3, 2, 3, seed=83), dtype=dtype)


# ---------------------------------------------------------------- binary / soft margin
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_multilabel_pos_weight(reduction, dtype):
    # multi-label (N, C) 0/1 targets, one pos_weight per class, per-sample weight (N, 1)
    t = (rand(5, 4, seed=25) > 0).astype(np.float64)
    pw = np.array([0.5, 1.0, 2.0, 3.0])
    w = np.array([[1.0], [0.5], [2.0], [1.5], [0.25]])

    def run(mod, f, x, t):
        return f(x, t, weight=const(mod, w, dtype), pos_weight=const(mod, pw, dtype),
                 reduction=reduction)
    check(lambda x, t: run(lamina, F.binary_cross_entropy_with_logits, x, t),
          lambda x, t: run(torch, TF.binary_cross_entropy_with_logits, x, t),
          rand(5, 4, seed=26), t, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_float64_and_module(reduction, dtype):
    p = rand(3, 4, seed=27, low=0.05, high=0.95)
    t = rand(3, 4, seed=28, low=0.0, high=1.0)
    w = rand(4, seed=29, low=0.5, high=2.0)
    check(lambda x, t: nn.BCELoss(weight=const(lamina, w, dtype), reduction=reduction)(x, t),
          lambda x, t: tnn.BCELoss(weight=const(torch, w, dtype), reduction=reduction)(x, t),
          p, t, dtype=dtype)


def test_bce_errors():
    x = lamina.tensor(rand(2, 3, low=0.1, high=0.9))
    with pytest.raises(TypeError, match="binary_cross_entropy: target must be a floating-"
                                        "point tensor"):
        F.binary_cross_entropy(x, lamina.tensor([[0, 1, 1], [1, 0, 0]]))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits: target must be"):
        F.binary_cross_entropy_with_logits(x, lamina.tensor([[0, 1, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight of "
                                         r"shape \(2,\) does not broadcast to the input shape "
                                         r"\(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=lamina.ones(2))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: weight of shape \(2, 3, 1\)"):
        F.binary_cross_entropy(x, x, weight=lamina.ones(2, 3, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin(reduction, dtype):
    y = signs(3, 5, seed=30)   # torch does not differentiate the target: a constant
    check(lambda x: F.soft_margin_loss(x, const(lamina, y, dtype), reduction=reduction),
          lambda x: TF.soft_margin_loss(x, const(torch, y, dtype), reduction=reduction),
          rand(3, 5, seed=31), dtype=dtype)


def test_soft_margin_large_margins_finite():
    # torch's log1p(exp(-yx)) overflows to inf (and its gradient to nan) here; lamina's
    # stable form gives the exact limits
    x = lamina.tensor(np.array([-100.0, 100.0, 1e4, 30.0]), requires_grad=True)
    y = lamina.tensor(np.array([1.0, -1.0, -1.0, 1.0]))
    out = F.soft_margin_loss(x, y, reduction="none")
    np.testing.assert_allclose(out.numpy(), [100, 100, 1e4, math.log1p(math.exp(-30))],
                               rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1, 1, 1, -1 / (1 + math.exp(30))],
                               rtol=1e-6, atol=1e-16)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin(reduction, dtype):
    t = (rand(4, 3, seed=32) > 0).astype(np.float64)
    w = np.array([0.5, 1.0, 2.0])
    check(lambda x, t: F.multilabel_soft_margin_loss(x, t, const(lamina, w, dtype),
                                                     reduction=reduction),
          lambda x, t: TF.multilabel_soft_margin_loss(x, t, const(torch, w, dtype),
                                                      reduction=reduction),
          rand(4, 3, seed=33), t, dtype=dtype)


# ---------------------------------------------------------------- multi_margin_loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, False),
                                               (1, 0.5, True), (2, 2.0, True)])
def test_multi_margin(p, margin, weighted, reduction, dtype):
    t = np.array([2, 0, 3, 3, 1, 0])
    w = np.array([0.5, 2.0, 1.0, 0.25]) if weighted else None

    def run(mod, f, x):
        return f(x, const(mod, t, np.int64), p=p, margin=margin,
                 weight=None if w is None else const(mod, w, dtype), reduction=reduction)
    check(lambda x: run(lamina, F.multi_margin_loss, x),
          lambda x: run(torch, TF.multi_margin_loss, x), rand(6, 4, seed=34), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_margin_1d_input_and_kink(dtype):
    for p in (1, 2):
        check(lambda x: F.multi_margin_loss(x, lamina.tensor(1), p=p, reduction="none"),
              lambda x: TF.multi_margin_loss(x, torch.tensor(1), p=p, reduction="none"),
              rand(5, seed=35), dtype=dtype)
    # margin - x_y + x_j exactly 0 (and exactly the margin): torch's slope there is 0
    x = np.array([[1.0, 0.0, 0.5, 1.0], [0.25, 0.25, -0.75, 2.0]])
    t = np.array([0, 3])
    for p in (1, 2):
        check(lambda x: F.multi_margin_loss(x, lamina.tensor(t), p=p, reduction="none"),
              lambda x: TF.multi_margin_loss(x, torch.tensor(t), p=p, reduction="none"), x,
              dtype=dtype, gradcheck=False)


def test_multi_margin_errors():
    x = lamina.tensor(rand(3, 4))
    with pytest.raises(ValueError, match="multi_margin_loss: only p == 1 and p == 2"):
        F.multi_margin_loss(x, lamina.tensor([0, 1, 2]), p=3)
    with pytest.raises(IndexError, match="multi_margin_loss: target class 4 is out of range "
                                         "for 4 classes"):
        F.multi_margin_loss(x, lamina.tensor([0, 4, 2]))
    with pytest.raises(TypeError, match="multi_margin_loss: target must hold class indices"):
        F.multi_margin_loss(x, lamina.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"multi_margin_loss: target shape \(2,\) does not "
                                         r"match input shape \(3, 4\) \(expected \(3,\)\)"):
        F.multi_margin_loss(x, lamina.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"multi_margin_loss: input must be \(N, C\) or "
                                         r"\(C,\) with C > 0, got shape \(3, 4, 1\)"):
        F.multi_margin_loss(lamina.tensor(rand(3, 4, 1)), lamina.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.multi_margin_loss(x, lamina.tensor([0, 1, 2]), weight=lamina.ones(3))
    with pytest.raises(ValueError, match="MultiMarginLoss: only p == 1 and p == 2"):
        nn.MultiMarginLoss(p=3)


# ---------------------------------------------------------------- embedding / ranking hinges
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_embedding(margin, reduction, dtype):
    y = signs(4, 5, seed=36)
    kw = {"margin": margin, "reduction": reduction}
    check(lambda x: F.hinge_embedding_loss(x, const(lamina, y, dtype), **kw),
          lambda x: TF.hinge_embedding_loss(x, const(torch, y, dtype), **kw),
          rand(4, 5, seed=37), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hinge_embedding_kink_int_and_odd_labels(dtype):
    # x == margin with y = -1 is the kink (torch's slope there: -1); labels other than
    # +-1 get both terms; integer labels work
    x = np.array([1.0, 0.5, 2.0, 1.0, 2.0, -0.5])
    y = np.array([-1, -1, 1, 0, 2, -1])
    check(lambda x: F.hinge_embedding_loss(x, lamina.tensor(y), reduction="none"),
          lambda x: TF.hinge_embedding_loss(x, torch.tensor(y), reduction="none"), x,
          dtype=dtype, gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking(margin, reduction, dtype):
    # the target is a float input: torch differentiates it, so is it compared here
    y = signs(6, seed=38)
    kw = {"margin": margin, "reduction": reduction}
    check(lambda a, b, y: F.margin_ranking_loss(a, b, y, **kw),
          lambda a, b, y: TF.margin_ranking_loss(a, b, y, **kw),
          rand(6, seed=39), rand(6, seed=40), y, dtype=dtype)
    # broadcasting with equal ranks, as torch: (4, 1) against (1, 3)
    check(lambda a, b, y: F.margin_ranking_loss(a, b, y, **kw),
          lambda a, b, y: TF.margin_ranking_loss(a, b, y, **kw),
          rand(4, 1, seed=41), rand(1, 3, seed=42), signs(4, 3, seed=43), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_margin_ranking_kink(dtype):
    a, b = np.array([1.0, 0.0, 0.5]), np.array([1.0, 0.0, 0.0])
    y = np.array([1.0, -1.0, 1.0])
    check(lambda a, b, y: F.margin_ranking_loss(a, b, y, margin=0.5, reduction="none"),
          lambda a, b, y: TF.margin_ranking_loss(a, b, y, margin=0.5, reduction="none"),
          a, b, y, dtype=dtype, gradcheck=False)


# ---------------------------------------------------------------- triplet / cosine
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2, False), (2, True), (1, False), (1, True), (3, True)])
def test_triplet_margin(p, swap, reduction, dtype):
    a, pos, neg = rand(6, 4, seed=44), rand(6, 4, seed=45), rand(6, 4, seed=46)
    # margin 2 keeps most hinges active; swap must actually change some negatives
    kw = {"margin": 2.0, "p": p, "swap": swap, "reduction": reduction}
    check(lambda a, b, c: F.triplet_margin_loss(a, b, c, **kw),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, **kw), a, pos, neg, dtype=dtype)
    if swap:
        d_an = np.linalg.norm(a - neg + 1e-6, p, axis=1)
        d_pn = np.linalg.norm(pos - neg + 1e-6, p, axis=1)
        assert (d_pn < d_an).any() and (d_pn > d_an).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_margin_1d_eps_and_kink(dtype):
    check(lambda a, b, c: F.triplet_margin_loss(a, b, c, margin=0.5, eps=1e-3),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, margin=0.5, eps=1e-3),
          rand(5, seed=47), rand(5, seed=48), rand(5, seed=49), dtype=dtype)
    # positive == anchor - eps ... the hinge exactly 0 when d_pos + margin == d_neg
    a = np.zeros((2, 2))
    pos = np.array([[3.0, 0.0], [0.0, 1.0]])
    neg = np.array([[5.0, 0.0], [0.0, 3.0]])
    check(lambda a, b, c: F.triplet_margin_loss(a, b, c, margin=2.0, eps=0.0,
                                                reduction="none"),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, margin=2.0, eps=0.0,
                                                 reduction="none"),
          a, pos, neg, dtype=dtype, gradcheck=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.4, -0.3])
def test_cosine_embedding(margin, reduction, dtype):
    y = np.array([1, -1, -1, 1, -1, 1, 0])   # a 0 label counts 0, as in torch
    kw = {"margin": margin, "reduction": reduction}
    check(lambda a, b: F.cosine_embedding_loss(a, b, lamina.tensor(y), **kw),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(y), **kw),
          rand(7, 3, seed=50), rand(7, 3, seed=51), dtype=dtype)
    check(lambda a, b: F.cosine_embedding_loss(a, b, lamina.tensor(-1), **kw),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(-1), **kw),
          rand(4, seed=52), rand(4, seed=53), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_near_zero_vectors(dtype):
    # the 1e-12 added to each squared norm keeps cos finite for tiny and zero vectors
    a = np.array([[1e-8, -2e-8, 0.0], [0.0, 0.0, 0.0], [1e-3, 2e-3, 0.0], [1.0, 2.0, 3.0]])
    b = np.array([[3e-8, 1e-8, 1e-8], [1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [1e-7, 0.0, 0.0]])
    y = np.array([1, -1, 1, -1])
    out = check(lambda a, b: F.cosine_embedding_loss(a, b, lamina.tensor(y), margin=-0.5,
                                                     reduction="none"),
                lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(y), margin=-0.5,
                                                      reduction="none"),
                a, b, dtype=dtype, gradcheck=False)
    assert np.all(np.isfinite(out[0].numpy()))


def test_cosine_triplet_ranking_errors():
    a, b = lamina.tensor(rand(3, 4)), lamina.tensor(rand(3, 4))
    with pytest.raises(ValueError, match=r"cosine_embedding_loss: expected input1 and input2 "
                                         r"of shape \(N, D\) with target \(N,\).*got input1 "
                                         r"\(3, 4\), input2 \(3, 4\), target \(2,\)"):
        F.cosine_embedding_loss(a, b, lamina.tensor([1, -1]))
    with pytest.raises(ValueError, match=r"input2 \(3, 3\)"):
        F.cosine_embedding_loss(a, lamina.tensor(rand(3, 3)), lamina.tensor([1, -1, 1]))
    with pytest.raises(ValueError, match=r"triplet_margin_loss: inputs must have the same "
                                         r"number of dimensions, got anchor \(3, 4\), "
                                         r"positive \(4,\), negative \(3, 4\)"):
        F.triplet_margin_loss(a, lamina.tensor(rand(4)), b)
    with pytest.raises(ValueError, match=r"margin_ranking_loss: input shapes do not "
                                         r"broadcast: input1 \(3, 4\), input2 \(3, 4\), "
                                         r"target \(3, 2\)"):
        F.margin_ranking_loss(a, b, lamina.tensor(rand(3, 2)))


# ---------------------------------------------------------------- errors shared by all
_ELEMENTWISE = ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                "hinge_embedding_loss", "kl_div", "binary_cross_entropy_with_logits"]


@pytest.mark.parametrize("name", _ELEMENTWISE)
def test_elementwise_losses_shape_and_reduction_errors(name):
    x = lamina.tensor(rand(2, 3, low=0.1, high=0.9))
    with pytest.raises(ValueError, match=rf"{name}: target shape \(3, 2\) must match input "
                                         rf"shape \(2, 3\)"):
        getattr(F, name)(x, lamina.tensor(rand(3, 2)))
    with pytest.raises(ValueError, match=rf"{name}: reduction must be .*got 'avg'"):
        getattr(F, name)(x, x, reduction="avg")


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses_reject_integer_target(name):
    with pytest.raises(TypeError, match=rf"{name}: target must be a floating-point tensor, "
                                        rf"got dtype int64"):
        getattr(F, name)(lamina.tensor(rand(3)), lamina.tensor([1, 2, 3]))
    if name != "smooth_l1_loss":   # torch's smooth_l1_loss has no weight
        with pytest.raises(ValueError, match=rf"{name}: weight shape \(3, 1\) must match "
                                             rf"input shape \(3,\)"):
            getattr(F, name)(lamina.tensor(rand(3)), lamina.tensor(rand(3)),
                             weight=lamina.ones(3, 1))


# ---------------------------------------------------------------- modules
_MODULE_CASES = [
    ("L1Loss", {"reduction": "sum"}, 2),
    ("MSELoss", {}, 2),
    ("SmoothL1Loss", {"beta": 0.5, "reduction": "none"}, 2),
    ("HuberLoss", {"delta": 0.7}, 2),
    ("KLDivLoss", {"reduction": "batchmean", "log_target": True}, 2),
    ("MarginRankingLoss", {"margin": 0.2}, 3),
    ("TripletMarginLoss", {"margin": 1.5, "p": 1.0, "swap": True}, 3),
    ("GaussianNLLLoss", {"full": True, "eps": 1e-4}, 3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw,n_in", _MODULE_CASES, ids=[c[0] for c in _MODULE_CASES])
def test_modules_match_torch(name, kw, n_in, dtype):
    arrays = [rand(4, 3, seed=60 + i) for i in range(n_in)]
    if name == "GaussianNLLLoss":
        arrays[2] = rand(4, 3, seed=63, low=0.1, high=1.0)
    if name == "MarginRankingLoss":
        arrays = [rand(5, seed=64), rand(5, seed=65), signs(5, seed=66)]
    check(lambda *a: getattr(nn, name)(**kw)(*a), lambda *a: getattr(tnn, name)(**kw)(*a),
          *arrays, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_modules_with_constant_targets_match_torch(dtype):
    y = signs(4, 3, seed=67)
    t = np.array([1, 0, 2, 2])
    w = np.array([0.3, 1.0, 2.0])
    cases = [
        (lambda m, M: M.SoftMarginLoss()(m[0], const(m[1], y, dtype))),
        (lambda m, M: M.HingeEmbeddingLoss(margin=0.5)(m[0], const(m[1], y, dtype))),
        (lambda m, M: M.CosineEmbeddingLoss(margin=0.1)(m[0], m[0] * 2 - 1,
                                                        const(m[1], y[:, 0], np.int64))),
        (lambda m, M: M.MultiMarginLoss(p=2, margin=0.8, weight=const(m[1], w, dtype))(
            m[0], const(m[1], t, np.int64))),
        (lambda m, M: M.NLLLoss(weight=const(m[1], w, dtype), ignore_index=2)(
            m[0], const(m[1], t, np.int64))),
        (lambda m, M: M.CrossEntropyLoss(weight=const(m[1], w, dtype), label_smoothing=0.1)(
            m[0], const(m[1], t, np.int64))),
        (lambda m, M: M.MultiLabelSoftMarginLoss(weight=const(m[1], w, dtype))(
            m[0], const(m[1], y > 0, dtype))),
        (lambda m, M: M.BCEWithLogitsLoss(pos_weight=const(m[1], w, dtype))(
            m[0], const(m[1], y > 0, dtype))),
    ]
    for case in cases:
        check(lambda x: case((x, lamina), nn), lambda x: case((x, torch), tnn),
              rand(4, 3, seed=68), dtype=dtype)


@pytest.mark.parametrize("name", ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss",
                                  "MultiMarginLoss", "MultiLabelSoftMarginLoss"])
def test_class_weights_are_buffers_like_torch(name):
    w = np.array([0.5, 1.0, 2.0], np.float32)
    kw = {"weight": w}
    if name == "BCEWithLogitsLoss":
        kw["pos_weight"] = w * 2
    lam = getattr(nn, name)(**{k: lamina.tensor(v) for k, v in kw.items()})
    tor = getattr(tnn, name)(**{k: torch.tensor(v) for k, v in kw.items()})
    assert list(lam.state_dict()) == list(tor.state_dict())
    lam.load_state_dict({k: v.numpy() * 3 for k, v in tor.state_dict().items()})
    np.testing.assert_array_equal(lam.weight.numpy(), w * 3)
    assert lam.double().weight.dtype == np.float64
    assert list(getattr(nn, name)().state_dict()) == list(getattr(tnn, name)().state_dict())


# ---------------------------------------------------------------- multi-task
def test_weighted_sum_losses_matches_torch_and_grads():
    x = rand(4, 3, seed=70)
    t = np.array([0, 2, 1, 1])
    reg = rand(4, 3, seed=71)

    def run(mod, f, lin):
        return [f.cross_entropy(lin, const(mod, t, np.int64)), f.mse_loss(lin, const(mod, reg,
                                                                                    np.float64))]
    xl = lamina.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lam_terms, tor_terms = run(lamina, F, xl), run(torch, TF, xt)
    # a learnable weight gets a gradient too
    w = lamina.tensor(0.25, dtype=lamina.float64, requires_grad=True)
    total = F.weighted_sum_losses(lam_terms, [1.5, w])
    wt = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    ref = 1.5 * tor_terms[0] + wt * tor_terms[1]
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-12)
    total.backward()
    ref.backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grad.item(), wt.grad.item(), rtol=1e-12)
    # no weights: the plain sum; dicts by name
    d = {"a": lam_terms[0], "b": lam_terms[1]}
    np.testing.assert_allclose(F.weighted_sum_losses(d).item(),
                               lam_terms[0].item() + lam_terms[1].item(), rtol=1e-12)
    np.testing.assert_allclose(F.weighted_sum_losses(d, {"b": 2.0, "a": 0.5}).item(),
                               0.5 * lam_terms[0].item() + 2 * lam_terms[1].item(), rtol=1e-12)


def test_multi_task_loss_module():
    a = lamina.tensor(2.0, requires_grad=True)
    b = lamina.tensor(3.0, requires_grad=True)
    crit = nn.MultiTaskLoss({"cls": 1.0, "box": 0.5})
    total = crit(cls=a * a, box=b * 4)
    assert total.item() == pytest.approx(4 + 0.5 * 12)
    assert crit.terms == {"cls": 4.0, "box": 12.0}
    total.backward()
    assert a.grad.item() == pytest.approx(4.0) and b.grad.item() == pytest.approx(2.0)
    assert crit({"cls": a, "box": b}).item() == pytest.approx(2 + 1.5)
    seq = nn.MultiTaskLoss([0.1, 10])
    assert seq(a, b).item() == pytest.approx(0.2 + 30)
    assert seq([a, b]).item() == pytest.approx(0.2 + 30) and seq.terms == {0: 2.0, 1: 3.0}
    assert nn.MultiTaskLoss()(a, b).item() == pytest.approx(5.0)
    assert not list(crit.state_dict())


def test_multi_task_errors():
    a = lamina.tensor(1.0)
    with pytest.raises(ValueError, match="weighted_sum_losses: 2 losses but 3 weights"):
        F.weighted_sum_losses([a, a], [1, 2, 3])
    with pytest.raises(ValueError, match=r"weights must be a dict with the loss names "
                                         r"\['x', 'y'\], got \['x'\]"):
        F.weighted_sum_losses({"x": a, "y": a}, {"x": 1.0})
    with pytest.raises(ValueError, match="dict weights need a dict of losses"):
        nn.MultiTaskLoss({"x": 1.0})(a)
    with pytest.raises(ValueError, match="no losses given"):
        F.weighted_sum_losses([])
    with pytest.raises(TypeError, match="by position or by name, not both"):
        nn.MultiTaskLoss()(a, b=a)
