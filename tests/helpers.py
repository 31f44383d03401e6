"""Shared test machinery: PyTorch parity (values and gradients) plus float64 gradcheck.

``check_op(lam_fn, torch_fn, *arrays)`` runs the same function in lamina and PyTorch on
the same inputs, compares the outputs, backpropagates the same random output gradient
through both and compares every input gradient; then it runs lamina's gradcheck on
float64 copies. Integer/bool arrays are passed as constant tensors.
"""
import numpy as np
import torch

import lamina
from lamina.autograd import gradcheck

torch.set_default_dtype(torch.float32)


def rand(*shape, low=-2.0, high=2.0, seed=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape).astype(dtype)


def noncontig(a):
    """A non-contiguous view with the values of ``a`` (transposed storage)."""
    if a.ndim < 2:
        return np.repeat(a, 2)[::2]
    base = np.ascontiguousarray(np.swapaxes(a, -1, -2))
    return np.swapaxes(base, -1, -2)


def _is_float(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _outputs(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def _to_np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    if isinstance(t, lamina.Tensor):
        return t.numpy()
    return np.asarray(t)


def check_op(lam_fn, torch_fn, *arrays, atol=1e-5, rtol=1e-4, grad=True, check_grad=True,
             gc_atol=1e-5, gc_rtol=1e-3, dtype=np.float32, seed=0, eps=1e-6):
    """Assert lamina and torch agree on values and gradients; gradcheck lamina in float64."""
    arrays = [np.asarray(a) if not isinstance(a, np.ndarray) else a for a in arrays]
    cast = [a.astype(dtype) if _is_float(a) else a for a in arrays]
    lam_in = [lamina.tensor(a, requires_grad=grad and _is_float(a)) for a in cast]
    tor_in = [torch.tensor(a, requires_grad=grad and _is_float(a)) for a in cast]
    lam_out = _outputs(lam_fn(*lam_in))
    tor_out = _outputs(torch_fn(*tor_in))
    assert len(lam_out) == len(tor_out), f"{len(lam_out)} outputs vs torch's {len(tor_out)}"
    for i, (lo, to) in enumerate(zip(lam_out, tor_out)):
        ln, tn = _to_np(lo), _to_np(to)
        assert ln.shape == tn.shape, f"output {i}: shape {ln.shape} vs torch {tn.shape}"
        if tn.dtype.kind == "f":
            assert ln.dtype == tn.dtype, f"output {i}: dtype {ln.dtype} vs torch {tn.dtype}"
        np.testing.assert_allclose(ln, tn, atol=atol, rtol=rtol, equal_nan=True,
                                   err_msg=f"output {i} values differ from torch")
    if not grad:
        return lam_out
    rng = np.random.default_rng(seed)
    diff = [(lo, to) for lo, to in zip(lam_out, tor_out)
            if isinstance(lo, lamina.Tensor) and lo.requires_grad]
    if not diff:
        raise AssertionError("no differentiable output to check gradients of")
    vs = [rng.standard_normal(lo.shape).astype(lo.dtype) for lo, _ in diff]
    lam_loss = sum((lo * lamina.tensor(v)).sum() for (lo, _), v in zip(diff, vs))
    tor_loss = sum((to * torch.tensor(v)).sum() for (_, to), v in zip(diff, vs))
    lam_loss.backward()
    tor_loss.backward()
    for i, (li, ti) in enumerate(zip(lam_in, tor_in)):
        if not li.requires_grad:
            continue
        tg = ti.grad
        lg = li.grad
        if tg is None:
            assert lg is None or np.all(lg.numpy() == 0), f"input {i}: torch has no grad"
            continue
        assert lg is not None, f"input {i}: lamina computed no gradient"
        assert lg.shape == tuple(tg.shape), f"input {i}: grad shape {lg.shape} vs {tg.shape}"
        np.testing.assert_allclose(lg.numpy(), tg.numpy(), atol=atol * 10, rtol=rtol * 10,
                                   equal_nan=True, err_msg=f"input {i} gradient differs")
    if check_grad:
        gc_in = [lamina.tensor(a.astype(np.float64), requires_grad=True) if _is_float(a)
                 else lamina.tensor(a) for a in arrays]
        assert gradcheck(lam_fn, gc_in, eps=eps, atol=gc_atol, rtol=gc_rtol)
    return lam_out


def check_module(layer, tlayer, *arrays, dtype=np.float32, atol=None, rtol=None, seed=0,
                 randomize=True, gradcheck_params=True, grad=True, compare_buffers=True,
                 steps=1):
    """Copy torch's parameters and buffers into ``layer`` (same names), then compare with
    torch, in ``dtype``: outputs, input gradients and parameter gradients by name, and
    buffers (running statistics) after ``steps`` forward/backward passes. Finally run a
    float64 gradcheck over the inputs and (optionally) the parameters.

    Default tolerances: float32 rtol 1e-4 (atol 1e-5); float64 rtol 1e-8 (atol 1e-10).
    Float arrays become grad-requiring inputs; integer arrays are passed as constants.
    """
    f64 = np.dtype(dtype) == np.float64
    atol = (1e-10 if f64 else 1e-5) if atol is None else atol
    rtol = (1e-8 if f64 else 1e-4) if rtol is None else rtol
    tdtype = torch.float64 if f64 else torch.float32
    tlayer = tlayer.to(tdtype)
    layer = layer.to(lamina.float64 if f64 else lamina.float32)
    if randomize:
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            for p in tlayer.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=tdtype) * 0.5)
    layer.load_state_dict({k: v.numpy() for k, v in tlayer.state_dict().items()})
    cast = [a.astype(dtype) if _is_float(a) else a for a in arrays]
    rng = np.random.default_rng(seed)
    for step in range(steps):
        lx = [lamina.tensor(a, requires_grad=grad and _is_float(a)) for a in cast]
        tx = [torch.tensor(a, requires_grad=grad and _is_float(a)) for a in cast]
        out, tout = layer(*lx), tlayer(*tx)
        ln, tn = _to_np(out), _to_np(tout)
        assert ln.shape == tn.shape, f"step {step}: output shape {ln.shape} vs torch {tn.shape}"
        assert ln.dtype == tn.dtype, f"step {step}: output dtype {ln.dtype} vs torch {tn.dtype}"
        np.testing.assert_allclose(ln, tn, atol=atol, rtol=rtol,
                                   err_msg=f"step {step}: output differs from torch")
        if compare_buffers:
            tb = dict(tlayer.named_buffers())
            for name, b in layer.named_buffers():
                np.testing.assert_allclose(b.numpy(), tb[name].numpy(), atol=atol, rtol=rtol,
                                           err_msg=f"step {step}: buffer {name} differs")
        if not grad:
            continue
        layer.zero_grad()
        tlayer.zero_grad()
        v = rng.standard_normal(ln.shape).astype(ln.dtype)
        out.backward(lamina.tensor(v))
        tout.backward(torch.tensor(v))
        for i, (a, b) in enumerate(zip(lx, tx)):
            if a.requires_grad:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol * 10,
                                           rtol=rtol * 10, err_msg=f"input {i} gradient")
        tparams = dict(tlayer.named_parameters())
        for name, p in layer.named_parameters():
            tp = tparams[name]
            if tp.grad is None:
                assert p.grad is None or not p.grad.numpy().any(), f"{name}: torch has no grad"
                continue
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=atol * 10,
                                       rtol=rtol * 10, err_msg=f"{name} gradient")
    if grad:
        layer.double()
        gin = [lamina.tensor(a.astype(np.float64), requires_grad=True) if _is_float(a)
               else lamina.tensor(a) for a in arrays]
        params = list(layer.parameters()) if gradcheck_params else []
        n = len(gin)
        assert gradcheck(lambda *t: layer(*t[:n]), gin + params)
    return layer
