"""Attention: scaled_dot_product_attention, MultiheadAttention, additive / multiplicative
attention and positional encodings, against PyTorch 2.13 (values, input and parameter
gradients; float64 rtol 1e-8, float32 rtol 1e-4) plus float64 gradcheck."""
import math

import numpy as np
import pytest
import torch

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina.autograd import gradcheck
from lamina.ops import attention as A
from helpers import check_op

TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched")
F64 = dict(dtype=np.float64, rtol=1e-8, atol=1e-10, gc_atol=1e-6, gc_rtol=1e-4)
F32 = dict(dtype=np.float32, rtol=1e-4, atol=1e-5, check_grad=False)


def rn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------- sdpa
def _sdpa_pair(mask=None, **kw):
    def lam(q, k, v):
        m = None if mask is None else lamina.tensor(mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)

    def tor(q, k, v):
        m = None if mask is None else torch.tensor(mask)
        return TF.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)
    return lam, tor


SDPA_CASES = {
    "plain": ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 3), None, {}),
    "bool_mask_2d": ((2, 4, 5), (2, 6, 5), (2, 6, 3), "bool", {}),
    "float_mask_3d": ((2, 4, 5), (2, 6, 5), (2, 6, 3), "float3", {}),
    "causal_LneS": ((2, 5, 4), (2, 3, 4), (2, 3, 2), None, {"is_causal": True}),
    "causal_square": ((1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4), None, {"is_causal": True}),
    "scale": ((2, 4, 5), (2, 6, 5), (2, 6, 3), "bool", {"scale": 0.37}),
    "broadcast": ((2, 1, 4, 5), (3, 6, 5), (1, 3, 6, 2), "float2", {}),
    "unbatched": ((4, 5), (6, 5), (6, 3), None, {}),
}


def _mask(kind, L, S, seed=7):
    rng = np.random.default_rng(seed)
    if kind == "bool":
        m = rng.random((L, S)) > 0.4
        m[:, 0] = True
        return m
    if kind == "float3":
        return rng.standard_normal((2, L, S))
    if kind == "float2":
        return rng.standard_normal((L, S))
    return None


@pytest.mark.parametrize("case", list(SDPA_CASES))
@pytest.mark.parametrize("prec", ["f64", "f32"])
def test_sdpa_parity(case, prec):
    qs, ks, vs, mk, kw = SDPA_CASES[case]
    mask = _mask(mk, qs[-2], ks[-2])
    if mask is not None and mask.dtype != bool and prec == "f32":
        mask = mask.astype(np.float32)
    lam, tor = _sdpa_pair(mask, **kw)
    check_op(lam, tor, rn(*qs, seed=1), rn(*ks, seed=2), rn(*vs, seed=3),
             **(F64 if prec == "f64" else F32))


def test_sdpa_float_mask_gradient():
    """A float attn_mask that requires grad gets d loss / d mask, as in PyTorch."""
    for dtype, kw in ((np.float64, F64), (np.float32, F32)):
        check_op(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                 lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m),
                 rn(2, 3, 4, seed=1), rn(2, 5, 4, seed=2), rn(2, 5, 3, seed=3),
                 rn(3, 5, seed=4), **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sdpa_fully_masked_rows_match_torch(dtype):
    """PyTorch 2.13 (CPU) returns 0 output and 0 gradient for a query row whose keys are
    all masked, for bool and -inf float masks alike."""
    b = np.ones((4, 6), bool)
    b[1] = False
    f = np.where(b, 0.0, -np.inf).astype(dtype)
    kw = F64 if dtype == np.float64 else F32
    for mask in (b, f):
        lam, tor = _sdpa_pair(mask)
        out = check_op(lam, tor, rn(2, 4, 5, seed=1), rn(2, 6, 5, seed=2), rn(2, 6, 3, seed=3),
                       **{**kw, "check_grad": False})
        assert np.all(out[0].numpy()[:, 1] == 0)


def test_sdpa_keeps_float32():
    q = lamina.tensor(rn(2, 4, 8).astype(np.float32), requires_grad=True)
    m = lamina.tensor(rn(4, 4))  # float64 mask: cast to the query's dtype
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=m)
    assert out.dtype == np.float32
    out.sum().backward()
    assert q.grad.dtype == np.float32


def test_sdpa_dropout():
    rng_shape = (4, 64, 64)
    q = lamina.tensor(np.zeros((4, 64, 8)))
    v = lamina.tensor(np.ones((4, 64, 3)))
    # p = 0 is exactly the deterministic result
    x = [lamina.tensor(rn(2, 5, 4, seed=s)) for s in (1, 2, 3)]
    np.testing.assert_array_equal(F.scaled_dot_product_attention(*x, dropout_p=0.0).numpy(),
                                  F.scaled_dot_product_attention(*x).numpy())
    # p > 0: uniform probabilities 1/S, each dropped with probability p, kept ones scaled
    lamina.manual_seed(0)
    p = 0.3
    out, w = A.scaled_dot_product_attention(q, q, v, dropout_p=p, need_weights=True)
    w = w.numpy()
    assert w.shape == rng_shape
    dropped = np.mean(w == 0)
    assert abs(dropped - p) < 0.01, dropped
    np.testing.assert_allclose(w[w != 0], 1.0 / 64 / (1 - p), rtol=1e-12)
    # output = row sum of kept weights (v = 1): mean 1, and equal to w @ v exactly
    np.testing.assert_allclose(out.numpy()[..., 0], w.sum(-1), rtol=1e-12)
    assert abs(out.numpy().mean() - 1.0) < 0.02
    # gradients with a fixed dropout mask: gradcheck with the generator re-seeded each call
    xs = [lamina.tensor(rn(2, 4, 3, seed=s), requires_grad=True) for s in (4, 5, 6)]

    def f(q, k, v):
        lamina.manual_seed(3)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert gradcheck(f, xs, atol=1e-6, rtol=1e-4)


def test_sdpa_weights_output_gradcheck():
    """The internal need_weights output is differentiable (its own backward)."""
    xs = [lamina.tensor(rn(2, 3, 4, seed=s), requires_grad=True) for s in (1, 2, 3)]
    mask = lamina.tensor(_mask("bool", 3, 3))

    def f(q, k, v):
        o, w = A.scaled_dot_product_attention(q, k, v, attn_mask=mask, need_weights=True)
        return o.sum() + (w * w).sum()
    assert gradcheck(f, xs, atol=1e-6, rtol=1e-4)


def test_sdpa_errors():
    q = lamina.tensor(rn(2, 4, 5))
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(2, 4, 5\).*\(2, 6, 4\)"):
        F.scaled_dot_product_attention(q, lamina.tensor(rn(2, 6, 4)), lamina.tensor(rn(2, 6, 3)))
    k, v = lamina.tensor(rn(2, 6, 5)), lamina.tensor(rn(2, 6, 3))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 5\).*\(2, 4, 6\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=lamina.tensor(np.ones((4, 5), bool)))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=lamina.tensor(np.ones((4, 6), bool)),
                                       is_causal=True)


# ---------------------------------------------------------------- MultiheadAttention
def _params_to(lmod, tmod, dtype, seed=0):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    tmod.to(tdt)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in tmod.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=tdt) * 0.5)
    lmod.to(lamina.float64 if dtype == np.float64 else lamina.float32)
    lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})


def _tol(dtype):
    return (dict(rtol=1e-8, atol=1e-10) if dtype == np.float64
            else dict(rtol=1e-4, atol=1e-5))


def compare_modules(lmod, tmod, arrays, call, dtype, seed=0, randomize=True, grads=True):
    """Run ``call(mod, tensors, lib)`` in both frameworks on the same float ``arrays``
    (inputs that require grad) and compare every non-None output, then the gradients of
    a random projection of the outputs w.r.t. the inputs and every parameter."""
    if randomize:
        _params_to(lmod, tmod, dtype, seed)
    else:
        tmod.to(torch.float64 if dtype == np.float64 else torch.float32)
        lmod.to(lamina.float64 if dtype == np.float64 else lamina.float32)
        lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})
    tol = _tol(dtype)
    arrays = [a.astype(dtype) for a in arrays]
    lx = [lamina.tensor(a, requires_grad=True) for a in arrays]
    tx = [torch.tensor(a, requires_grad=True) for a in arrays]
    lo, to = call(lmod, lx, lamina), call(tmod, tx, torch)
    lo = list(lo) if isinstance(lo, (tuple, list)) else [lo]
    to = list(to) if isinstance(to, (tuple, list)) else [to]
    assert len(lo) == len(to)
    pairs = []
    for i, (a, b) in enumerate(zip(lo, to)):
        if b is None:
            assert a is None, f"output {i}: torch gives None"
            continue
        assert a.shape == tuple(b.shape), f"output {i}: shape {a.shape} vs {tuple(b.shape)}"
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol,
                                   err_msg=f"output {i}")
        pairs.append((a, b))
    if not grads:
        return lo
    rng = np.random.default_rng(seed + 1)
    vs = [rng.standard_normal(a.shape).astype(dtype) for a, _ in pairs]
    sum((a * lamina.tensor(v)).sum() for (a, _), v in zip(pairs, vs)).backward()
    sum((b * torch.tensor(v)).sum() for (_, b), v in zip(pairs, vs)).backward()
    gtol = dict(rtol=tol["rtol"], atol=tol["atol"] * 10)
    for i, (a, b) in enumerate(zip(lx, tx)):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **gtol,
                                   err_msg=f"input {i} gradient")
    tp = dict(tmod.named_parameters())
    lp = dict(lmod.named_parameters())
    assert set(lp) == set(tp), (set(lp) ^ set(tp))
    for name, p in lp.items():
        t = tp[name]
        if t.grad is None:
            assert p.grad is None or not p.grad.numpy().any(), name
            continue
        assert p.grad is not None, f"{name}: no gradient"
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), **gtol,
                                   err_msg=f"{name} gradient")
    return lo


def _mha_masks(lib, N, H, L, S, kpm_kind, am_kind, seed=5, unbatched=False):
    rng = np.random.default_rng(seed)
    kpm = am = None
    if kpm_kind:
        m = rng.random((N, S)) > 0.7
        m[:, 0] = False
        if unbatched:
            m = m[0]
        kpm = m if kpm_kind == "bool" else np.where(m, -np.inf, rng.standard_normal(m.shape))
    if am_kind:
        shape = (L, S) if am_kind.endswith("2d") else ((H, L, S) if unbatched else (N * H, L, S))
        m = rng.random(shape) > 0.7
        m[..., 0] = False
        am = m if am_kind.startswith("bool") else np.where(m, -np.inf,
                                                          rng.standard_normal(shape))
    conv = (lambda a: None if a is None else lib.tensor(a))
    return conv(kpm), conv(am)


def _float_mask(m, dtype, lib):
    if m is None or m.dtype in (lamina.bool, torch.bool):
        return m
    return lib.tensor(m.numpy().astype(dtype))


MHA_CASES = [
    # batch_first, kpm, attn_mask, need_weights, average, extra kwargs
    (False, None, None, True, True, {}),
    (True, "bool", None, True, False, {}),
    (False, None, "bool2d", True, True, {}),
    (True, "bool", "bool3d", True, True, {}),
    (False, "float", "float2d", True, False, {}),
    (True, "float", "float3d", False, True, {}),
    (False, "bool", "bool2d", False, True, {}),
    (True, "bool", None, True, True, {"kdim": 3, "vdim": 5}),
    (False, "bool", "bool2d", True, False, {"add_bias_kv": True}),
    (True, "bool", "float3d", True, True, {"add_zero_attn": True}),
    (False, "bool", "bool2d", True, True, {"add_bias_kv": True, "add_zero_attn": True,
                                          "kdim": 4}),
    (True, "bool", None, False, True, {"bias": False}),
]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("case", range(len(MHA_CASES)))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mha_parity(case, dtype):
    bf, kpm_kind, am_kind, need_w, avg, kw = MHA_CASES[case]
    E, H, N, L, S = 8, 2, 3, 4, 5
    kdim, vdim = kw.get("kdim", E), kw.get("vdim", E)
    self_attn = kdim == E and vdim == E and case % 2 == 0
    if self_attn:
        S = L
    torch.manual_seed(0)
    tmod = torch.nn.MultiheadAttention(E, H, batch_first=bf, **kw)
    lmod = nn.MultiheadAttention(E, H, batch_first=bf, **kw)
    shape = (lambda n, s, d: (n, s, d) if bf else (s, n, d))
    arrays = [rn(*shape(N, L, E), seed=1)]
    if not self_attn:
        arrays += [rn(*shape(N, S, kdim), seed=2), rn(*shape(N, S, vdim), seed=3)]

    def call(mod, x, lib):
        kpm, am = _mha_masks(lib, N, H, L, S, kpm_kind, am_kind)
        kpm, am = _float_mask(kpm, dtype, lib), _float_mask(am, dtype, lib)
        q, k, v = (x[0], x[0], x[0]) if self_attn else x
        return mod(q, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=need_w,
                   average_attn_weights=avg)
    out = compare_modules(lmod, tmod, arrays, call, dtype)
    assert (out[1] is None) == (not need_w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mha_unbatched(dtype):
    E, H, L = 6, 3, 4
    torch.manual_seed(0)
    tmod, lmod = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)

    def call(mod, x, lib):
        kpm, am = _mha_masks(lib, 1, H, L, L, "bool", "bool3d", unbatched=True)
        return mod(x[0], x[0], x[0], key_padding_mask=kpm, attn_mask=am,
                   average_attn_weights=False)
    out = compare_modules(lmod, tmod, [rn(L, E, seed=1)], call, dtype)
    assert out[0].shape == (L, E) and out[1].shape == (H, L, L)


def test_mha_is_causal_hint_and_state_dict():
    E, H, N, L = 8, 4, 2, 5
    torch.manual_seed(0)
    tmod = torch.nn.MultiheadAttention(E, H, batch_first=True)
    lmod = nn.MultiheadAttention(E, H, batch_first=True)
    assert list(lmod.state_dict()) == list(tmod.state_dict())

    def call(mod, x, lib):
        mask = (nn.causal_mask(L) if lib is lamina else
                torch.nn.Transformer.generate_square_subsequent_mask(L)).to(
            lib.float64) if lib is torch else nn.causal_mask(L, lamina.float64)
        return mod(x[0], x[0], x[0], attn_mask=mask, is_causal=True, need_weights=False)
    compare_modules(lmod, tmod, [rn(N, L, E, seed=1)], call, np.float64)
    with pytest.raises(RuntimeError, match="need attn_mask"):
        lmod(*(lamina.tensor(rn(N, L, E)),) * 3, is_causal=True)


def test_mha_fully_masked_rows_are_zero():
    """Documented difference: PyTorch gives NaN rows with need_weights=True; lamina zeros
    (what PyTorch's need_weights=False path gives)."""
    E, H, N, L = 4, 2, 2, 3
    torch.manual_seed(0)
    tmod, lmod = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})
    x = rn(L, N, E).astype(np.float32)
    kpm = np.zeros((N, L), bool)
    kpm[0] = True
    lo, lw = lmod(*(lamina.tensor(x),) * 3, key_padding_mask=lamina.tensor(kpm))
    to, _ = tmod(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(kpm), need_weights=False)
    np.testing.assert_allclose(lo.numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(lw.numpy()[0] == 0) and np.isfinite(lw.numpy()).all()


def test_mha_train_dropout_statistics():
    lamina.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, dropout=0.25)
    x = lamina.tensor(rn(64, 16, 8).astype(np.float32))
    _, w = m(x, x, x, average_attn_weights=False)
    assert abs(np.mean(w.numpy() == 0) - 0.25) < 0.01
    m.eval()
    _, w = m(x, x, x)
    np.testing.assert_allclose(w.numpy().sum(-1), 1, rtol=1e-5)


def test_mha_gradcheck():
    lamina.manual_seed(0)
    for kw in ({}, {"kdim": 3, "vdim": 2, "add_bias_kv": True, "add_zero_attn": True}):
        m = nn.MultiheadAttention(4, 2, batch_first=True, **kw).double()
        with lamina.no_grad():
            for p in m.parameters():
                p.data[...] = rn(*p.shape, seed=p.numel()) * 0.5
        q = lamina.tensor(rn(2, 3, 4, seed=1), requires_grad=True)
        k = lamina.tensor(rn(2, 2, kw.get("kdim", 4), seed=2), requires_grad=True)
        v = lamina.tensor(rn(2, 2, kw.get("vdim", 4), seed=3), requires_grad=True)
        kpm = lamina.tensor(np.array([[False, False], [False, True]]))

        def f(q, k, v, *params):
            o, w = m(q, k, v, key_padding_mask=kpm)
            return o.sum() + (w * w).sum()
        assert gradcheck(f, [q, k, v] + list(m.parameters()), atol=1e-6, rtol=1e-4)
    # packed self-attention path, with the weights output
    m = nn.MultiheadAttention(4, 2).double()
    x = lamina.tensor(rn(3, 2, 4, seed=4), requires_grad=True)
    assert gradcheck(lambda x, *p: (lambda o, w: o.sum() + (w * w).sum())(
        *m(x, x, x, attn_mask=nn.causal_mask(3, lamina.float64))),
        [x] + list(m.parameters()), atol=1e-6, rtol=1e-4)


def test_mha_errors():
    m = nn.MultiheadAttention(8, 2)
    x = lamina.tensor(rn(4, 3, 8).astype(np.float32))
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=8.*expected query "
                                         r"embedding dimension 8, got 6.*\(4, 3, 6\)"):
        y = lamina.tensor(rn(4, 3, 6).astype(np.float32))
        m(y, y, y)
    with pytest.raises(ValueError, match=r"MultiheadAttention.*key_padding_mask of shape "
                                         r"\(3, 4\), got \(4, 3\)"):
        m(x, x, x, key_padding_mask=lamina.tensor(np.zeros((4, 3), bool)))
    with pytest.raises(ValueError, match=r"2-D attn_mask is \(4, 5\), but should be \(4, 4\)"):
        m(x, x, x, attn_mask=lamina.tensor(np.zeros((4, 5), bool)))
    with pytest.raises(ValueError, match=r"3-D attn_mask is \(2, 4, 4\), but should be "
                                         r"\(6, 4, 4\)"):
        m(x, x, x, attn_mask=lamina.tensor(np.zeros((2, 4, 4), bool)))
    with pytest.raises(ValueError, match=r"MultiheadAttention.*key and value must be 3-D"):
        m(x, lamina.tensor(rn(4, 8)), x)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)


# ---------------------------------------------------------------- additive / multiplicative
def _torch_attend(scores, values, kpm):
    if kpm is not None:
        scores = scores.masked_fill(kpm[:, None, :], float("-inf"))
    w = torch.softmax(scores, -1)
    return w @ values, w


def _torch_additive(p, q, keys, values, kpm):
    wq = (q @ p["query_proj.weight"].T)[:, :, None, :]
    uk = (keys @ p["key_proj.weight"].T + p["key_proj.bias"])[:, None, :, :]
    return _torch_attend(torch.tanh(wq + uk) @ p["v"], values, kpm)


def _torch_multiplicative(p, q, keys, values, kpm, scaled):
    qq = q @ p["weight"] if "weight" in p else q
    s = qq @ keys.transpose(1, 2)
    if scaled:
        s = s / math.sqrt(keys.shape[-1])
    return _torch_attend(s, values, kpm)


@pytest.mark.parametrize("kind", ["additive", "general", "dot", "scaled"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("single_query", [True, False])
def test_attention_modules_vs_torch_reference(kind, dtype, single_query):
    N, L, S, Dq, Dk, Dv = 3, 2, 5, 4, 6, 3
    if kind == "additive":
        mod = nn.AdditiveAttention(Dq, Dk, 7)
    elif kind == "dot":
        Dk = Dq
        mod = nn.MultiplicativeAttention(Dq, score="dot")
    else:
        mod = nn.MultiplicativeAttention(Dq, Dk, scaled=kind == "scaled")
    mod = mod.to(lamina.float64 if dtype == np.float64 else lamina.float32)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    params = {k: torch.tensor(v.numpy(), dtype=tdt, requires_grad=True)
              for k, v in mod.named_parameters()}
    q = rn(N, Dq, seed=1) if single_query else rn(N, L, Dq, seed=1)
    keys, values = rn(N, S, Dk, seed=2), rn(N, S, Dv, seed=3)
    kpm = np.zeros((N, S), bool)
    kpm[0, 3:] = True
    kpm[2, 1:] = True
    arrays = [a.astype(dtype) for a in (q, keys, values)]
    lx = [lamina.tensor(a, requires_grad=True) for a in arrays]
    tx = [torch.tensor(a, requires_grad=True) for a in arrays]
    lc, lw = mod(lx[0], lx[1], lx[2], key_padding_mask=lamina.tensor(kpm))
    tq = tx[0][:, None, :] if single_query else tx[0]
    if kind == "additive":
        tc, tw = _torch_additive(params, tq, tx[1], tx[2], torch.tensor(kpm))
    else:
        tc, tw = _torch_multiplicative(params, tq, tx[1], tx[2], torch.tensor(kpm),
                                       kind == "scaled")
    if single_query:
        tc, tw = tc[:, 0], tw[:, 0]
    tol = _tol(dtype)
    np.testing.assert_allclose(lc.numpy(), tc.detach().numpy(), **tol)
    np.testing.assert_allclose(lw.numpy(), tw.detach().numpy(), **tol)
    assert np.all(lw.numpy()[0, ..., 3:] == 0)
    g1, g2 = rn(*lc.shape, seed=8).astype(dtype), rn(*lw.shape, seed=9).astype(dtype)
    ((lc * lamina.tensor(g1)).sum() + (lw * lamina.tensor(g2)).sum()).backward()
    ((tc * torch.tensor(g1)).sum() + (tw * torch.tensor(g2)).sum()).backward()
    gtol = dict(rtol=tol["rtol"], atol=tol["atol"] * 10)
    for a, b in zip(lx, tx):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **gtol)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), params[name].grad.numpy(), **gtol,
                                   err_msg=name)
    if dtype == np.float64:
        gin = [lamina.tensor(a, requires_grad=True) for a in (q, keys, values)]
        m = lamina.tensor(kpm)
        assert gradcheck(lambda q, k, v, *p: (lambda c, w: c.sum() + (w * w).sum())(
            *mod(q, k, v, key_padding_mask=m)), gin + list(mod.parameters()),
            atol=1e-6, rtol=1e-4)


def test_attention_modules_all_padded_and_errors():
    mod = nn.AdditiveAttention(4, 4, 5)
    q, k = lamina.tensor(rn(2, 4).astype(np.float32)), lamina.tensor(rn(2, 3, 4).astype(np.float32))
    c, w = mod(q, k, key_padding_mask=lamina.tensor(np.array([[1, 1, 1], [0, 0, 1]], bool)))
    assert np.all(c.numpy()[0] == 0) and np.all(w.numpy()[0] == 0)
    np.testing.assert_allclose(w.numpy()[1].sum(), 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"AdditiveAttention: expected query \(N, 4\).*\(2, 5\)"):
        mod(lamina.tensor(rn(2, 5)), k)
    with pytest.raises(ValueError, match=r"MultiplicativeAttention.*key_padding_mask of shape "
                                         r"\(2, 3\).*\(3, 2\)"):
        nn.MultiplicativeAttention(4)(q, k, key_padding_mask=lamina.tensor(np.zeros((3, 2), bool)))
    with pytest.raises(ValueError, match="query_size == key_size"):
        nn.MultiplicativeAttention(4, 5, score="dot")


# ---------------------------------------------------------------- positional encodings
def test_sinusoidal_positional_encoding():
    d, L, N = 7, 9, 2
    pe = nn.SinusoidalPositionalEncoding(d, max_len=20, dropout=0.0)
    pos = np.arange(20)[:, None]
    i = np.arange(d)[None, :]
    angle = pos / np.power(10000.0, (i - i % 2) / d)
    ref = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(pe.pe.numpy(), ref, rtol=1e-6, atol=1e-6)
    assert "pe" not in pe.state_dict()
    x = rn(L, N, d).astype(np.float32)
    out = pe(lamina.tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), x + ref[:L, None, :], rtol=1e-5, atol=1e-6)
    pb = nn.SinusoidalPositionalEncoding(d, max_len=20, dropout=0.0, batch_first=True)
    xb = lamina.tensor(np.swapaxes(x, 0, 1), requires_grad=True)
    ob = pb(xb)
    np.testing.assert_allclose(ob.numpy(), np.swapaxes(out.numpy(), 0, 1), rtol=1e-6)
    ob.sum().backward()
    np.testing.assert_array_equal(xb.grad.numpy(), 1)
    with pytest.raises(ValueError, match=r"sequence length 21 exceeds max_len 20"):
        pe(lamina.tensor(rn(21, 1, d)))
    with pytest.raises(ValueError, match=r"SinusoidalPositionalEncoding\(d_model=7\).*\(3, 1, 8\)"):
        pe(lamina.tensor(rn(3, 1, 8)))


def test_learned_positional_encoding():
    pe = nn.LearnedPositionalEncoding(4, max_len=6, dropout=0.0, batch_first=True).double()
    assert list(pe.state_dict()) == ["weight"]
    assert abs(float(pe.weight.numpy().std()) - 0.02) < 0.015
    x = lamina.tensor(rn(2, 5, 4), requires_grad=True)
    out = pe(x)
    np.testing.assert_allclose(out.numpy(), x.numpy() + pe.weight.numpy()[None, :5])
    assert gradcheck(lambda x, w: pe(x), [x, pe.weight])
