"""clip_grad_norm_ / clip_grad_value_ / get_total_norm against torch.nn.utils."""
import math

import numpy as np
import pytest
import torch

import lamina
from lamina import nn
from lamina.nn.utils import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_,
                             get_total_norm)


def _params(dtype, scale, seed=0, with_none=True):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (2, 3, 2)]
    grads = [rng.standard_normal(s).astype(dtype) * scale for s in shapes]
    lp = [nn.Parameter(np.zeros(s, dtype)) for s in shapes]
    tp = [torch.nn.Parameter(torch.zeros(s, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype))
          for s in shapes]
    for a, b, g in zip(lp, tp, grads):
        a.grad = lamina.tensor(g.copy())
        b.grad = torch.tensor(g.copy())
    if with_none:  # a parameter without gradient is skipped
        lp.append(nn.Parameter(np.ones(3, dtype)))
        tp.append(torch.nn.Parameter(torch.ones(3, dtype=tp[0].dtype)))
    return lp, tp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("scale", [0.01, 10.0])       # below and above max_norm
def test_clip_grad_norm_matches_torch(dtype, norm_type, scale):
    lp, tp = _params(dtype, scale)
    ln = clip_grad_norm_(lp, max_norm=1.5, norm_type=norm_type)
    tn = torch.nn.utils.clip_grad_norm_(tp, max_norm=1.5, norm_type=norm_type)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert isinstance(ln, lamina.Tensor) and ln.shape == () and ln.dtype == dtype
    np.testing.assert_allclose(ln.numpy(), tn.numpy(), rtol=rtol)
    for a, b in zip(lp, tp):
        if b.grad is None:
            assert a.grad is None
        else:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=0)
    fresh, _ = _params(dtype, scale)  # unclipped gradients
    np.testing.assert_allclose(get_total_norm([p.grad for p in fresh if p.grad is not None],
                                              norm_type).numpy(), tn.numpy(), rtol=rtol)


def test_clip_grad_norm_single_tensor_and_empty():
    p = nn.Parameter(np.zeros(4, np.float32))
    p.grad = lamina.tensor(np.array([3.0, 4.0, 0.0, 0.0], np.float32))
    n = clip_grad_norm_(p, 1.0)
    assert float(n) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), np.array([3, 4, 0, 0]) / (5 + 1e-6), rtol=1e-6)
    assert float(clip_grad_norm_([nn.Parameter(np.zeros(2, np.float32))], 1.0)) == 0.0


def test_clip_grad_norm_nonfinite():
    lp, tp = _params(np.float32, 1.0, with_none=False)
    lp[0].grad.data[0, 0] = np.inf
    tp[0].grad[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(lp, 1.0, error_if_nonfinite=True)
    ln = clip_grad_norm_(lp, 1.0)
    tn = torch.nn.utils.clip_grad_norm_(tp, 1.0)
    assert math.isinf(float(ln)) and math.isinf(float(tn))
    for a, b in zip(lp, tp):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_clip_grad_norm_after_lazy_zero_grad():
    """Parameters whose gradient was zeroed by an optimizer (lazily) count as zero."""
    lin = nn.Linear(3, 2)
    opt = lamina.optim.SGD(lin.parameters(), lr=0.1)
    lin(lamina.tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.zero_grad()
    assert float(clip_grad_norm_(lin.parameters(), 1.0)) == 0.0
    lin(lamina.tensor(np.ones((4, 3), np.float32))).sum().backward()
    n = clip_grad_norm_(lin.parameters(), 0.5)
    expected = math.sqrt(2 * 3 * 16 + 2 * 16)
    assert float(n) == pytest.approx(expected, rel=1e-6)
    total = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in lin.parameters()))
    assert total == pytest.approx(0.5, rel=1e-5)


def test_clip_grads_with_norm_():
    lp, tp = _params(np.float64, 5.0)
    clip_grads_with_norm_(lp, 2.0, lamina.tensor(np.float64(7.0)))
    torch.nn.utils.clip_grads_with_norm_(tp, 2.0, torch.tensor(7.0, dtype=torch.float64))
    for a, b in zip(lp, tp):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value_matches_torch(dtype):
    lp, tp = _params(dtype, 2.0)
    assert clip_grad_value_(lp, 0.7) is None
    torch.nn.utils.clip_grad_value_(tp, 0.7)
    for a, b in zip(lp, tp):
        if b.grad is not None:
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
            assert a.grad.dtype == dtype
