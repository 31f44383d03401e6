"""CTC loss (F.ctc_loss, nn.CTCLoss) against torch 2.13 and brute force; greedy decoding."""
import itertools

import numpy as np
import pytest
import torch

import lamina
import lamina.nn.functional as F
from lamina import nn
from lamina.autograd import gradcheck

TOL = {np.float64: dict(rtol=1e-8, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _case(seed, T=30, N=6, C=5, smax=8, blank=0, min_len=0):
    """Random logits, padded targets without blank (many repeats: few classes), input
    lengths long enough for the target (labels + a blank between each repeat)."""
    rng = np.random.default_rng(seed)
    labels = [c for c in range(C) if c != blank]
    tl = rng.integers(min_len, smax + 1, N)
    targets = rng.choice(labels, size=(N, smax))
    need = tl + np.array([(targets[i, 1:tl[i]] == targets[i, :tl[i] - 1]).sum() if tl[i] > 1
                          else 0 for i in range(N)])
    il = np.array([rng.integers(max(need[i], 1), T + 1) for i in range(N)])
    il[0] = T
    x = rng.standard_normal((T, N, C)) * 2
    return x, targets, il, tl


def _concat(targets, tl):
    return np.concatenate([targets[i, :tl[i]] for i in range(len(tl))]).astype(np.int64)


def _compare(x, targets, il, tl, dtype=np.float64, blank=0, reduction="mean",
             zero_infinity=False, log_softmax=True, seed=0, lengths_as=np.asarray):
    """Losses and gradients w.r.t. x (through log_softmax by default) vs torch."""
    xl = lamina.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    il_l, tl_l = lengths_as(il), lengths_as(tl)
    out = F.ctc_loss(xl.log_softmax(-1) if log_softmax else xl, lamina.tensor(targets),
                     il_l, tl_l, blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    tout = torch.nn.functional.ctc_loss(
        xt.log_softmax(-1) if log_softmax else xt, torch.tensor(targets), torch.tensor(il),
        torch.tensor(tl), blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    assert out.shape == tuple(tout.shape) and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[dtype])
    # positive weights: inf losses must not meet -inf in the sum
    v = np.random.default_rng(seed).uniform(0.5, 1.5, out.shape).astype(dtype)
    (out * lamina.tensor(v)).sum().backward()
    (tout * torch.tensor(v)).sum().backward()
    assert xl.grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), equal_nan=True,
                               **TOL[dtype])
    return out, tout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["padded", "concat"])
def test_parity_random_alignments(dtype, reduction, layout):
    x, targets, il, tl = _case(1)
    tg = targets if layout == "padded" else _concat(targets, tl)
    _compare(x, tg, il, tl, dtype=dtype, reduction=reduction)


def test_repeated_labels_and_tight_lengths():
    # "aab", "aaa", "abab" with inputs exactly as long as they must be (a blank between
    # the repeats), one step more, and with an extra padding column
    targets = np.array([[1, 1, 2, 0], [3, 3, 3, 0], [1, 2, 1, 2], [2, 2, 0, 0], [4, 0, 0, 0]])
    tl = np.array([3, 3, 4, 2, 1])
    il = np.array([4, 6, 4, 4, 1])
    x = np.random.default_rng(2).standard_normal((7, 5, 5))
    for dtype in (np.float64, np.float32):
        for red in ("none", "mean"):
            out, _ = _compare(x, targets, il, tl, dtype=dtype, reduction=red)
    assert np.isfinite(out.numpy())


@pytest.mark.parametrize("blank", [2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blank_not_zero(blank, dtype):
    x, targets, il, tl = _case(3, C=5, blank=blank)
    _compare(x, targets, il, tl, dtype=dtype, blank=blank, reduction="none")
    _compare(x, _concat(targets, tl), il, tl, dtype=dtype, blank=blank, reduction="sum")


def _too_short_batch():
    # sample 1: "aaa" needs 5 steps, has 4; sample 2: 3 labels in 2 steps; samples 0, 3 fine
    targets = np.array([[1, 2, 3], [2, 2, 2], [1, 2, 3], [3, 1, 1]])
    tl = np.array([3, 3, 3, 3])
    il = np.array([6, 4, 2, 6])
    x = np.random.default_rng(4).standard_normal((6, 4, 4))
    return x, targets, il, tl


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_too_short_for_their_targets_are_zeroed_with_zero_infinity(dtype):
    x, targets, il, tl = _too_short_batch()
    for red in ("none", "sum", "mean"):
        out, _ = _compare(x, targets, il, tl, dtype=dtype, reduction=red, zero_infinity=True)
        if red == "none":
            lo = out.numpy()
            assert lo[1] == 0 and lo[2] == 0 and np.isfinite(lo).all()
    # the feasible samples' gradients are finite, the infeasible ones' zero, as torch
    xl = lamina.tensor(x.astype(dtype), requires_grad=True)
    F.ctc_loss(xl.log_softmax(-1), targets, il, tl, reduction="sum",
               zero_infinity=True).backward()
    g = xl.grad.numpy()
    assert np.isfinite(g[:, [0, 3]]).all() and (g[:, 1:3] == 0).all()


@pytest.mark.parametrize("module", [False, True])
def test_inputs_too_short_for_their_targets_raise_without_zero_infinity(module):
    """PyTorch returns inf here; lamina says which sample cannot be aligned and why."""
    x, targets, il, tl = _too_short_batch()
    lp = lamina.tensor(x).log_softmax(-1)
    call = nn.CTCLoss() if module else F.ctc_loss
    with pytest.raises(ValueError, match=r"ctc_loss: target 1 \(length 3, 2 repeated "
                       r"neighbours\) needs at least 5 input steps but its input length is "
                       r"4 \(log_probs \(6, 4, 4\); 2 such sample"):
        call(lp, targets, il, tl)
    # a repeat right after the target's end does not count (padding is not a label)
    ok = F.ctc_loss(lp[:, :1], np.array([[1, 2, 2]]), [2], [2], reduction="none")
    assert np.isfinite(ok.numpy()).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_one_and_empty_targets(dtype):
    x, targets, il, tl = _case(5, N=1)
    _compare(x, targets, il, tl, dtype=dtype, reduction="mean")
    # target length 0 (all blanks), alone and mixed with others; 'mean' divides by 1
    x, targets, il, tl = _case(6, N=4)
    tl[[0, 2]] = 0
    for red in ("none", "mean"):
        _compare(x, targets, il, tl, dtype=dtype, reduction=red)
        _compare(x, _concat(targets, tl), il, tl, dtype=dtype, reduction=red)
    _compare(x, targets[:, :0], il, np.zeros(4, np.int64), dtype=dtype, reduction="sum")


def test_long_sequences():
    """T = 200: float64 parity with torch; float32 against the float64 result. (Here
    torch's own float32 gradients are off by ~1.4e-4; lamina keeps each step's alpha/beta
    row max at 0, so its float32 rounding does not grow with the log-likelihood, ~1.5e-5.)"""
    x, targets, il, tl = _case(15, T=200, N=5, C=6, smax=40, min_len=20)
    out64, tout64 = _compare(x, targets, il, tl, dtype=np.float64, reduction="none")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.ctc_loss(xt.log_softmax(-1), torch.tensor(targets), torch.tensor(il),
                                 torch.tensor(tl), reduction="sum").backward()
    x32 = lamina.tensor(x.astype(np.float32), requires_grad=True)
    out32 = F.ctc_loss(x32.log_softmax(-1), targets, il, tl, reduction="none")
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), tout64.detach().numpy(), rtol=2e-7)
    out32.sum().backward()
    np.testing.assert_allclose(x32.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=5e-5)


def test_labels_equal_to_blank_follow_torch():
    # PyTorch does not reject a target label equal to blank; it runs the same recursion
    x, targets, il, tl = _case(16, N=3)
    targets[:, 1] = 0
    targets[1, :3] = 0
    _compare(x, targets, il, tl, reduction="none")


def test_minus_inf_log_probs_and_garbage_past_lengths():
    """log(0) entries (masked classes) give finite losses and gradients where an alignment
    avoids them and inf where none does; values past input_lengths (nan here) are ignored
    and get zero gradients."""
    rng = np.random.default_rng(17)
    T, N, C = 10, 3, 5
    lp = rng.standard_normal((T, N, C))
    lp[:, :, 4] = -np.inf  # class 4 is never possible
    lp[2:5, 0, 1] = -np.inf
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    targets = np.array([[1, 2, 1], [2, 3, 0], [4, 1, 0]])
    tl, il = np.array([3, 2, 2]), np.array([8, 6, 9])
    xl = lamina.tensor(lp, requires_grad=True)
    xt = torch.tensor(lp, requires_grad=True)
    out = F.ctc_loss(xl, targets, il, tl, reduction="none")
    tout = torch.nn.functional.ctc_loss(xt, torch.tensor(targets), torch.tensor(il),
                                        torch.tensor(tl), reduction="none")
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10)
    assert np.isfinite(out.numpy()[:2]).all() and np.isinf(out.numpy()[2])
    out[:2].sum().backward()
    tout[:2].sum().backward()
    valid = (np.arange(T)[:, None] < il[None])[:, :, None]
    # torch's raw-input gradient is ours + exp(log_probs) on valid steps; at log(0) entries
    # torch has nan (it computes exp(-inf - -inf)), lamina the true derivative 0
    fin = np.isfinite(lp)[:, :2]
    want = xt.grad.numpy()[:, :2][fin]
    np.testing.assert_allclose(want, (xl.grad.numpy() + np.exp(lp) * valid)[:, :2][fin],
                               rtol=1e-8, atol=1e-10)
    assert (xl.grad.numpy()[:, :2][~fin] == 0).all()
    assert np.isnan(xl.grad.numpy()[:il[2], 2]).all()  # the impossible sample, as torch
    garbage = lp[:, :2].copy()
    garbage[~np.broadcast_to(valid[:, :2], garbage.shape)] = np.nan
    xg = lamina.tensor(garbage, requires_grad=True)
    out2 = F.ctc_loss(xg, targets[:2], il[:2], tl[:2], reduction="sum")
    np.testing.assert_allclose(out2.numpy(), out.numpy()[:2].sum(), rtol=1e-12)
    out2.backward()
    np.testing.assert_allclose(xg.grad.numpy(), xl.grad.numpy()[:, :2], rtol=1e-12,
                               atol=1e-15)


def test_zero_input_length():
    x = np.random.default_rng(7).standard_normal((5, 3, 4))
    targets = np.array([[1, 2], [1, 0], [3, 3]])
    _compare(x, targets, np.array([5, 0, 0]), np.array([2, 1, 0]), reduction="none",
             zero_infinity=True)


def test_unbatched_and_length_types():
    x, targets, il, tl = _case(8, N=1)
    xl = lamina.tensor(x[:, 0], requires_grad=True)
    xt = torch.tensor(x[:, 0], requires_grad=True)
    t = torch.nn.functional.ctc_loss(xt.log_softmax(-1), torch.tensor(targets[0, :tl[0]]),
                                     torch.tensor(il[0]), torch.tensor(tl[0]), reduction="none")
    for il_, tl_ in [(int(il[0]), int(tl[0])), ((int(il[0]),), [int(tl[0])]),
                     (lamina.tensor(il[0]), lamina.tensor(tl[0]))]:
        for tg in (targets[0, :tl[0]], targets[:1]):
            xl.grad = None
            out = F.ctc_loss(xl.log_softmax(-1), lamina.tensor(tg), il_, tl_,
                             reduction="none")
            assert out.shape == ()
            np.testing.assert_allclose(out.numpy(), t.detach().numpy(), rtol=1e-10)
            out.backward()
            assert xl.grad.shape == xl.shape
    t.backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    x, targets, il, tl = _case(9)
    for as_ in (list, tuple, lamina.tensor, lambda a: lamina.tensor(a.astype(np.int32))):
        _compare(x, targets, il, tl, reduction="mean",
                 lengths_as=lambda a: as_(a.tolist()) if as_ in (list, tuple) else as_(a))


def test_raw_input_gradient_is_the_true_derivative():
    """On inputs that are not log-softmax outputs lamina returns d loss / d log_probs
    (gradcheck); torch returns that plus exp(log_probs) on the valid steps (its gradient
    assumes normalized inputs). The losses agree exactly."""
    x, targets, il, tl = _case(10, T=12, N=4)
    xl, xt = _raw_grads(x, targets, il, tl)
    valid = (np.arange(x.shape[0])[:, None] < il[None])[:, :, None]
    np.testing.assert_allclose(xt.grad.numpy(), xl.grad.numpy() + np.exp(x) * valid,
                               rtol=1e-8, atol=1e-10)


def _raw_grads(x, targets, il, tl):
    """Inputs (lamina, torch) after backward of the summed loss on raw log_probs x."""
    xl = lamina.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lo = F.ctc_loss(xl, targets, il, tl, reduction="sum")
    to = torch.nn.functional.ctc_loss(xt, torch.tensor(targets), torch.tensor(il),
                                      torch.tensor(tl), reduction="sum")
    np.testing.assert_allclose(lo.numpy(), to.detach().numpy(), rtol=1e-10)
    lo.backward()
    to.backward()
    return xl, xt


def _brute_force_nll(lp, target, blank):
    """-log sum over all length-T paths that collapse to target of prod_t p_t(path_t)."""
    T, C = lp.shape
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        collapsed = [k for i, k in enumerate(path) if k != blank and (i == 0 or
                                                                       path[i - 1] != k)]
        if collapsed == list(target):
            total += np.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return -np.log(total) if total > 0 else np.inf


@pytest.mark.parametrize("blank", [0, 2])
def test_against_brute_force(blank):
    rng = np.random.default_rng(11)
    T, C = 5, 3
    x = rng.standard_normal((T, 4, C))
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    lab = [c for c in range(C) if c != blank]
    targets = [[lab[0], lab[0]], [lab[1], lab[0], lab[1]], [], [lab[1]] * 3]
    tl = np.array([len(t) for t in targets])
    padded = np.zeros((4, 3), np.int64)
    for i, t in enumerate(targets):
        padded[i, :len(t)] = t
    il = np.array([5, 4, 3, 5])
    out = F.ctc_loss(lamina.tensor(lp), padded, il, tl, blank=blank, reduction="none")
    want = [_brute_force_nll(lp[:il[i], i], targets[i], blank) for i in range(4)]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10)


def test_gradcheck():
    x, targets, il, tl = _case(12, T=6, N=3, C=4, smax=3)
    tl[1] = 0
    for red in ("none", "mean"):
        for tg in (targets, _concat(targets, tl)):
            assert gradcheck(lambda a: F.ctc_loss(a, tg, il, tl, blank=1, reduction=red),
                             [lamina.tensor(x, requires_grad=True)])
    assert gradcheck(lambda a: F.ctc_loss(a.log_softmax(-1), targets, il, tl),
                     [lamina.tensor(x, requires_grad=True)])
    assert gradcheck(lambda a: F.ctc_loss(a, targets[:1], il[0], tl[0]),
                     [lamina.tensor(x[:, 0], requires_grad=True)])


def test_module_and_retain_graph():
    x, targets, il, tl = _case(13)
    crit, tcrit = nn.CTCLoss(blank=0, reduction="sum"), torch.nn.CTCLoss(reduction="sum")
    assert "reduction='sum'" in repr(crit)
    xl = lamina.tensor(x, requires_grad=True)
    out = crit(xl.log_softmax(-1), targets, il, tl)
    want = tcrit(torch.tensor(x).log_softmax(-1), torch.tensor(targets), torch.tensor(il),
                 torch.tensor(tl))
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-10)
    out.backward(retain_graph=True)
    g1 = xl.grad.numpy().copy()
    out.backward()
    np.testing.assert_allclose(xl.grad.numpy(), 2 * g1, rtol=1e-12)
    assert nn.CTCLoss().reduction == "mean" and nn.CTCLoss().zero_infinity is False
    with lamina.no_grad():
        assert not crit(xl, targets, il, tl).requires_grad


def test_batch_first_transposed_input():
    """(N, T, C) model output transposed to (T, N, C): a non-contiguous view."""
    x, targets, il, tl = _case(18)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    xl = lamina.tensor(xb, requires_grad=True)
    out = F.ctc_loss(xl.log_softmax(-1).transpose(0, 1), targets, il, tl)
    xt = torch.tensor(xb, requires_grad=True)
    tout = torch.nn.functional.ctc_loss(xt.log_softmax(-1).transpose(0, 1),
                                        torch.tensor(targets), torch.tensor(il),
                                        torch.tensor(tl))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10)
    out.backward()
    tout.backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("args, match", [
    (dict(x=(6, 2, 4, 1)), r"\(T, N, C\).*\(6, 2, 4, 1\)"),
    (dict(tl=[5, 1]), r"target_lengths 5 exceeds .* S = 3 .*\(2, 3\)"),
    (dict(il=[7, 6]), r"input_lengths 7 exceeds .* T = 6"),
    (dict(il=[6, 6, 6]), r"input_lengths must have one entry per batch element \(2\).*\(3,\)"),
    (dict(tl=[2]), r"target_lengths must have one entry"),
    (dict(il=[6, -1]), r"input_lengths must be >= 0"),
    (dict(blank=4), r"blank 4 is out of range for 4 classes"),
    (dict(blank=-1), r"blank -1 is out of range"),
    (dict(targets=np.array([1, 2, 3])), r"concatenated 1-D targets must hold .* = 4"),
    (dict(targets=np.ones((3, 3), np.int64)), r"targets must be \(N, S\).*\(6, 2, 4\).*\(3, 3\)"),
    (dict(targets=np.array([[1, 5, 1], [2, 0, 0]])), r"target label 5 is out of range"),
    (dict(targets=np.array([[1, 2, 1], [-2, 0, 0]])), r"target label -2 is out of range"),
    (dict(reduction="avg"), r"reduction"),
])
def test_bad_input_raises(args, match):
    x = lamina.tensor(np.zeros(args.get("x", (6, 2, 4))), requires_grad=True)
    targets = args.get("targets", np.array([[1, 2, 1], [2, 0, 0]]))
    with pytest.raises(ValueError, match=r"ctc_loss: .*" + match):
        F.ctc_loss(x, targets, args.get("il", [6, 5]), args.get("tl", [3, 1]),
                   blank=args.get("blank", 0), reduction=args.get("reduction", "mean"))


def test_bad_types_raise():
    x = lamina.tensor(np.zeros((6, 2, 4)))
    with pytest.raises(ValueError, match="ctc_loss: input_lengths must be integers"):
        F.ctc_loss(x, np.array([[1], [2]]), np.array([5.5, 6.0]), [1, 1])
    with pytest.raises(TypeError, match="ctc_loss: log_probs must be float32 or float64"):
        F.ctc_loss(lamina.tensor(np.zeros((6, 2, 4), np.int64)), np.array([[1], [2]]),
                   [6, 6], [1, 1])


def test_greedy_decode():
    # argmax path per sample: "a a _ a b b _" -> a a b ; "_ _ c" -> c ; "b b b" -> b
    paths = np.array([[1, 1, 0, 1, 2, 2, 0], [0, 0, 3, 3, 0, 0, 0], [2, 2, 2, 2, 2, 2, 2]]).T
    T, N, C = paths.shape[0], 3, 4
    x = np.full((T, N, C), -5.0)
    np.put_along_axis(x, paths[:, :, None], 0.0, axis=2)
    assert F.ctc_greedy_decode(lamina.tensor(x)) == [[1, 1, 2], [3], [2]]
    assert F.ctc_greedy_decode(lamina.tensor(x), [3, 2, 7]) == [[1], [], [2]]
    assert F.ctc_greedy_decode(lamina.tensor(x), input_lengths=lamina.tensor([7, 3, 1]),
                               blank=2) == [[1, 0, 1, 0], [0, 3], []]
    assert F.ctc_greedy_decode(lamina.tensor(x[:, 0])) == [1, 1, 2]
    with pytest.raises(ValueError, match=r"ctc_greedy_decode: input_lengths 8 exceeds"):
        F.ctc_greedy_decode(lamina.tensor(x), [8, 1, 1])
    with pytest.raises(ValueError, match=r"ctc_greedy_decode: log_probs must be .*\(7,\)"):
        F.ctc_greedy_decode(lamina.tensor(x[:, 0, 0]))
    with pytest.raises(ValueError, match=r"ctc_greedy_decode: blank 4 is out of range"):
        F.ctc_greedy_decode(lamina.tensor(x), blank=4)


def test_training_reduces_loss_and_decodes():
    """Free logits trained by SGD through log_softmax + CTCLoss: the loss falls and greedy
    decoding returns the targets (including the repeated labels)."""
    T, N, C = 12, 4, 4
    targets = np.array([[1, 1, 2], [3, 2, 0], [2, 2, 2], [1, 3, 1]])
    tl = np.array([3, 2, 3, 3])
    logits = nn.Parameter(
        np.random.default_rng(14).standard_normal((T, N, C)).astype(np.float32) * 0.1)
    opt = lamina.optim.SGD([logits], lr=2.0, momentum=0.9)
    crit = nn.CTCLoss()
    losses = []
    for _ in range(60):
        loss = crit(logits.log_softmax(-1), targets, [T] * N, tl)
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.05 * losses[0]
    decoded = F.ctc_greedy_decode(logits)
    assert decoded == [list(t[:n]) for t, n in zip(targets, tl)]
