"""Transformer layers and stacks against PyTorch 2.13: outputs, input gradients and every
parameter gradient (weights copied via state_dict; float64 rtol 1e-8, float32 rtol 1e-4),
in train mode with dropout 0 (and eval mode where PyTorch's fast path agrees), plus a
float64 gradcheck of a tiny layer."""
import numpy as np
import pytest
import torch

import lamina
import lamina.nn as nn
from lamina.autograd import gradcheck


def rn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _tol(dtype):
    return dict(rtol=1e-8, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


def _load(lmod, tmod, dtype, seed=0, randomize=True):
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    tmod.to(tdt)
    if randomize:  # perturb every parameter so that biases and norms are non-trivial
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            for p in tmod.parameters():
                p.add_(torch.randn(p.shape, generator=g, dtype=tdt) * 0.1)
    lmod.to(lamina.float64 if dtype == np.float64 else lamina.float32)
    lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})


def compare(lmod, tmod, arrays, call, dtype, seed=0, grads=True):
    """``call(mod, tensors, lib)`` in both frameworks; compare output, then gradients of a
    random projection w.r.t. every input array and parameter."""
    _load(lmod, tmod, dtype, seed)
    tol = _tol(dtype)
    arrays = [a.astype(dtype) for a in arrays]
    lx = [lamina.tensor(a, requires_grad=grads) for a in arrays]
    tx = [torch.tensor(a, requires_grad=grads) for a in arrays]
    lo, to = call(lmod, lx, lamina), call(tmod, tx, torch)
    assert lo.shape == tuple(to.shape) and lo.dtype == np.dtype(dtype)
    np.testing.assert_allclose(lo.numpy(), to.detach().numpy(), **tol, err_msg="output")
    if not grads:
        return lo
    v = np.random.default_rng(seed + 1).standard_normal(lo.shape).astype(dtype)
    lo.backward(lamina.tensor(v))
    to.backward(torch.tensor(v))
    gtol = dict(rtol=tol["rtol"], atol=tol["atol"] * 10)
    for i, (a, b) in enumerate(zip(lx, tx)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **gtol,
                                   err_msg=f"input {i} gradient")
    tp = dict(tmod.named_parameters())
    lp = dict(lmod.named_parameters())
    assert set(lp) == set(tp), set(lp) ^ set(tp)
    for name, p in lp.items():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), **gtol,
                                   err_msg=f"{name} gradient")
    return lo


def _masks(lib, dtype, N, T, S, kind):
    """(causal float attn mask (T, T), bool key padding mask (N, S)) or bool variants."""
    rng = np.random.default_rng(11)
    kpm = rng.random((N, S)) > 0.7
    kpm[:, 0] = False
    if kind == "float":
        am = np.triu(np.full((T, T), -np.inf), 1).astype(dtype)
    else:
        am = np.triu(np.ones((T, T), bool), 1)
    return lib.tensor(am), lib.tensor(kpm)


pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched")
ACTS = ["relu", "gelu"]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_layer(norm_first, activation, dtype):
    E, H, FF, N, S = 8, 2, 16, 3, 5
    batch_first = activation == "gelu"
    torch.manual_seed(0)
    kw = dict(dim_feedforward=FF, dropout=0.0, activation=activation,
              batch_first=batch_first, norm_first=norm_first)
    tmod = torch.nn.TransformerEncoderLayer(E, H, **kw)
    lmod = nn.TransformerEncoderLayer(E, H, **kw)
    shape = (N, S, E) if batch_first else (S, N, E)

    def call(mod, x, lib):
        am, kpm = _masks(lib, dtype, N, S, S, "float" if norm_first else "bool")
        return mod(x[0], src_mask=am, src_key_padding_mask=kpm)
    compare(lmod, tmod, [rn(*shape, seed=1)], call, dtype)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoder_layer(norm_first, activation, dtype):
    E, H, FF, N, T, S = 8, 2, 16, 2, 4, 5
    batch_first = norm_first
    torch.manual_seed(0)
    kw = dict(dim_feedforward=FF, dropout=0.0, activation=activation,
              batch_first=batch_first, norm_first=norm_first)
    tmod = torch.nn.TransformerDecoderLayer(E, H, **kw)
    lmod = nn.TransformerDecoderLayer(E, H, **kw)
    sh = (lambda n, l: (n, l, E) if batch_first else (l, n, E))

    def call(mod, x, lib):
        am, _ = _masks(lib, dtype, N, T, S, "float")
        _, mkpm = _masks(lib, dtype, N, T, S, "bool")
        tkpm = lib.tensor(np.array([[False] * T, [False] * (T - 1) + [True]]))
        return mod(x[0], x[1], tgt_mask=am, tgt_key_padding_mask=tkpm,
                   memory_key_padding_mask=mkpm, tgt_is_causal=True)
    compare(lmod, tmod, [rn(*sh(N, T), seed=1), rn(*sh(N, S), seed=2)], call, dtype)


def test_unbatched_layers():
    E, H = 8, 2
    torch.manual_seed(0)
    tmod = torch.nn.TransformerDecoderLayer(E, H, 12, 0.0, batch_first=True)
    lmod = nn.TransformerDecoderLayer(E, H, 12, 0.0, batch_first=True)
    out = compare(lmod, tmod, [rn(4, E, seed=1), rn(3, E, seed=2)],
                  lambda m, x, lib: m(x[0], x[1], memory_key_padding_mask=lib.tensor(
                      np.array([False, False, True]))), np.float64)
    assert out.shape == (4, E)
    tmod = torch.nn.TransformerEncoderLayer(E, H, 12, 0.0, norm_first=True)
    lmod = nn.TransformerEncoderLayer(E, H, 12, 0.0, norm_first=True)
    compare(lmod, tmod, [rn(5, E, seed=1)], lambda m, x, lib: m(x[0]), np.float32)


def test_layer_bias_false_and_callable_activation():
    E, H = 8, 4
    torch.manual_seed(0)
    tmod = torch.nn.TransformerEncoderLayer(E, H, 12, 0.0, activation=torch.nn.functional.gelu,
                                            bias=False)
    lmod = nn.TransformerEncoderLayer(E, H, 12, 0.0, activation=nn.functional.gelu, bias=False)
    assert list(lmod.state_dict()) == list(tmod.state_dict())
    compare(lmod, tmod, [rn(5, 2, E, seed=1)], lambda m, x, lib: m(x[0]), np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_stack_with_norm(dtype):
    E, H, N, S = 8, 2, 3, 6
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(E, H, 16, 0.0, batch_first=True)
    tmod = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(E),
                                       enable_nested_tensor=False)
    lmod = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 16, 0.0, batch_first=True),
                                 2, norm=nn.LayerNorm(E))
    assert list(lmod.state_dict()) == list(tmod.state_dict())

    def call(mod, x, lib):
        mask = (nn.causal_mask(S, dtype) if lib is lamina else
                torch.nn.Transformer.generate_square_subsequent_mask(S, dtype=x[0].dtype))
        _, kpm = _masks(lib, dtype, N, S, S, "bool")
        return mod(x[0], mask=mask, src_key_padding_mask=kpm)
    compare(lmod, tmod, [rn(N, S, E, seed=1)], call, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoder_stack_with_norm(dtype):
    E, H, N, T, S = 8, 4, 2, 3, 5
    torch.manual_seed(0)
    tl = torch.nn.TransformerDecoderLayer(E, H, 16, 0.0, norm_first=True)
    tmod = torch.nn.TransformerDecoder(tl, 2, norm=torch.nn.LayerNorm(E))
    lmod = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, 16, 0.0, norm_first=True),
                                 2, norm=nn.LayerNorm(E))

    def call(mod, x, lib):
        am, mkpm = _masks(lib, dtype, N, T, S, "float")
        return mod(x[0], x[1], tgt_mask=am, memory_key_padding_mask=mkpm)
    compare(lmod, tmod, [rn(T, N, E, seed=1), rn(S, N, E, seed=2)], call, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_transformer(dtype):
    E, H, N, T, S = 8, 2, 2, 4, 5
    torch.manual_seed(0)
    kw = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=12, dropout=0.0, batch_first=True)
    tmod = torch.nn.Transformer(**kw)
    lmod = nn.Transformer(**kw)
    assert list(lmod.state_dict()) == list(tmod.state_dict())

    def call(mod, x, lib):
        tgt_mask = (nn.Transformer.generate_square_subsequent_mask(T, dtype=dtype)
                    if lib is lamina else
                    torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=x[0].dtype))
        _, skpm = _masks(lib, dtype, N, S, S, "bool")
        return mod(x[0], x[1], tgt_mask=tgt_mask, src_key_padding_mask=skpm,
                   memory_key_padding_mask=skpm)
    compare(lmod, tmod, [rn(N, S, E, seed=1), rn(N, T, E, seed=2)], call, dtype)


def test_eval_mode_matches_torch_fast_path():
    """In eval mode under no_grad PyTorch may take its fused "fast path"; outputs agree."""
    E, H, N, S = 8, 2, 3, 5
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(E, H, 16, 0.1, batch_first=True)
    tmod = torch.nn.TransformerEncoder(tl, 2, enable_nested_tensor=False).eval()
    lmod = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 16, 0.1, batch_first=True),
                                 2).eval()
    lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})
    x = rn(N, S, E, seed=1).astype(np.float32)
    kpm = np.zeros((N, S), bool)
    kpm[1, 3:] = True
    with torch.no_grad():
        to = tmod(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm))
    with lamina.no_grad():
        lo = lmod(lamina.tensor(x), src_key_padding_mask=lamina.tensor(kpm))
    np.testing.assert_allclose(lo.numpy(), to.numpy(), rtol=1e-4, atol=1e-5)


def test_causal_mask_helpers():
    for sz in (1, 4):
        ref = torch.nn.Transformer.generate_square_subsequent_mask(sz).numpy()
        np.testing.assert_array_equal(nn.causal_mask(sz).numpy(), ref)
        np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(sz).numpy(),
                                      ref)
    assert nn.causal_mask(3).dtype == np.float32
    assert nn.causal_mask(3, lamina.float64).dtype == np.float64


def test_encoder_layer_gradcheck():
    lamina.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, 6, 0.0, activation="gelu", norm_first=True).double()
    x = lamina.tensor(rn(3, 2, 4, seed=1), requires_grad=True)
    mask = nn.causal_mask(3, lamina.float64)
    assert gradcheck(lambda x, *p: layer(x, src_mask=mask), [x] + list(layer.parameters()),
                     atol=1e-6, rtol=1e-4)


def test_decoder_layer_gradcheck():
    lamina.manual_seed(0)
    layer = nn.TransformerDecoderLayer(4, 2, 6, 0.0, batch_first=True).double()
    t = lamina.tensor(rn(2, 3, 4, seed=1), requires_grad=True)
    m = lamina.tensor(rn(2, 2, 4, seed=2), requires_grad=True)
    assert gradcheck(lambda t, m, *p: layer(t, m), [t, m] + list(layer.parameters()),
                     atol=1e-6, rtol=1e-4)


def test_dropout_train_vs_eval():
    lamina.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = lamina.tensor(rn(4, 2, 8).astype(np.float32))
    a, b = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(a, b)  # random masks in training
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


def test_errors():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=8\).*\(4, 2, 6\)"):
        layer(lamina.tensor(rn(4, 2, 6)))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 4\), got \(4, 2\)"):
        layer(lamina.tensor(rn(4, 2, 8).astype(np.float32)),
              src_key_padding_mask=lamina.tensor(np.zeros((4, 2), bool)))
    with pytest.raises(ValueError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    t = nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(ValueError, match=r"batch number of src and tgt must be equal"):
        t(lamina.tensor(rn(4, 2, 8)), lamina.tensor(rn(3, 3, 8)))
    with pytest.raises(ValueError, match=r"feature number of src and tgt.*d_model=8"):
        t(lamina.tensor(rn(4, 2, 8)), lamina.tensor(rn(3, 2, 6)))
