"""wavenet: causality of the whole stack, the receptive field 2^L measured with gradients,
the gated residual layer against a torch re-implementation, incremental generation, the
scored validation loss, and the quick recipe on the shipped Shakespeare text."""
import json
import math

import numpy as np
import pytest
import torch

import lamina
from lamina.io import load
from lamina.zoo.wavenet import (RECIPE, GatedResidualLayer, WaveNet, empirical_receptive_field,
                                input_gradient, scored_nll, unigram_cross_entropy)

PNG = b"\x89PNG\r\n\x1a\n"


def embedded_grad(model, h, t):
    """d (w . logits(t)) / d h for embedded input h (1, C, T): (T,) summed |grad|."""
    ht = lamina.tensor(h, requires_grad=True)
    w = lamina.from_numpy(np.random.default_rng(t).standard_normal(model.vocab_size)
                          .astype(np.float32))
    (model.forward_embedded(ht)[0, t] * w).sum().backward()
    return np.abs(ht.grad.numpy()[0]).sum(0)


# ------------------------------------------------------------------ receptive field
def test_receptive_field_formula():
    assert WaveNet(5, 4, 4, n_layers=1).receptive_field == 2
    assert WaveNet(5, 4, 4, n_layers=6).receptive_field == 64
    assert WaveNet(5, 4, 4, n_layers=6).dilations == [1, 2, 4, 8, 16, 32]
    assert WaveNet(5, 4, 4, n_layers=4, n_blocks=2).receptive_field == 1 + 2 * 15
    assert WaveNet(5, 4, 4, n_layers=3, kernel_size=3).receptive_field == 1 + 2 * 7


@pytest.mark.parametrize("L", [1, 2, 3, 4, 5, 6, 7])
def test_measured_receptive_field_is_exactly_2_to_the_L(L):
    lamina.manual_seed(L)
    m = WaveNet(7, 16, 16, n_layers=L)
    T = 2 ** L + 20
    g = input_gradient(m, T)
    assert np.count_nonzero(g) == 2 ** L
    # and it is the 2^L positions ending at the output: t - 2^L + 1 .. t
    np.testing.assert_array_equal(np.flatnonzero(g), np.arange(T - 2 ** L, T))


def test_measured_receptive_field_of_repeated_blocks_and_kernel_3():
    lamina.manual_seed(0)
    m = WaveNet(7, 16, 16, n_layers=3, n_blocks=2)
    assert empirical_receptive_field(m) == m.receptive_field == 15
    m = WaveNet(7, 16, 16, n_layers=3, kernel_size=3)
    assert empirical_receptive_field(m) == m.receptive_field == 15


def test_wavenet_is_causal_output_t_has_zero_gradient_on_every_later_input():
    lamina.manual_seed(1)
    m = WaveNet(11, 8, 8, n_layers=4, n_blocks=2)           # receptive field 31
    R, T = m.receptive_field, 60
    h = np.random.default_rng(1).standard_normal((1, 8, T)).astype(np.float32)
    for t in (0, 5, 30, 44, 59):
        g = embedded_grad(m, h, t)
        assert np.all(g[t + 1:] == 0), t                     # the future: exactly zero
        assert np.all(g[:max(0, t - R + 1)] == 0), t         # beyond the receptive field
        assert np.all(g[max(0, t - R + 1):t + 1] > 0), t     # the whole window is seen


def test_changing_a_future_token_leaves_earlier_logits_unchanged():
    lamina.manual_seed(2)
    m = WaveNet(11, 8, 8, n_layers=3)
    ids = np.random.default_rng(2).integers(0, 11, (2, 20))
    a = m(ids).numpy()
    ids2 = ids.copy()
    ids2[:, 12] = (ids2[:, 12] + 1) % 11
    b = m(ids2).numpy()
    np.testing.assert_array_equal(a[:, :12], b[:, :12])
    assert np.abs(a[:, 12] - b[:, 12]).max() > 0


# ---------------------------------------------------------------- torch parity
def test_gated_residual_layer_matches_torch_values_and_gradients():
    lamina.manual_seed(3)
    layer = GatedResidualLayer(4, 5, dilation=4).double()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 17))
    g_res, g_skip = rng.standard_normal((2, 4, 17)), rng.standard_normal((2, 5, 17))
    xl = lamina.tensor(x, requires_grad=True)
    res, skip = layer(xl)
    ((res * lamina.from_numpy(g_res)).sum() + (skip * lamina.from_numpy(g_skip)).sum()
     ).backward()

    tp = {n: torch.tensor(p.numpy(), requires_grad=True) for n, p in layer.named_parameters()}
    xt = torch.tensor(x, requires_grad=True)
    tf = torch.nn.functional
    y = tf.conv1d(tf.pad(xt, (4, 0)), tp["dilated.weight"], tp["dilated.bias"], dilation=4)
    z = torch.tanh(y[:, :4]) * torch.sigmoid(y[:, 4:])
    res_t = xt + tf.conv1d(z, tp["residual.weight"], tp["residual.bias"])
    skip_t = tf.conv1d(z, tp["skip.weight"], tp["skip.bias"])
    ((res_t * torch.from_numpy(g_res)).sum() + (skip_t * torch.from_numpy(g_skip)).sum()
     ).backward()
    np.testing.assert_allclose(res.numpy(), res_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(skip.numpy(), skip_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=n)


# ------------------------------------------------------------ generation, losses
def test_incremental_steps_give_the_full_forward_logits():
    lamina.manual_seed(4)
    m = WaveNet(9, 8, 8, n_layers=3)                         # receptive field 8
    ids = np.random.default_rng(4).integers(0, 9, (2, 30))
    full = m(ids).numpy()
    logits, state = m.step(ids[:, :5], None)
    got = [logits.numpy()]
    for t in range(5, 30):
        logits, state = m.step(ids[:, t:t + 1], state)
        assert state.shape == (2, min(7, t + 1))      # at most receptive_field - 1 ids
        got.append(logits.numpy())
    np.testing.assert_allclose(np.concatenate(got, axis=1), full, rtol=1e-5, atol=1e-6)
    a = m.generate(ids[0, :4], 12, 1.0, 5)
    assert a.shape == (12,) and a.min() >= 0 and a.max() < 9
    np.testing.assert_array_equal(a, m.generate(ids[0, :4], 12, 1.0, 5))


def test_scored_nll_equals_one_prediction_at_a_time():
    lamina.manual_seed(5)
    m = WaveNet(6, 4, 4, n_layers=2)                         # receptive field 4
    seq = np.random.default_rng(5).integers(0, 6, 43)
    want = []
    for p in range(4, 43):
        z = m(seq[None, p - 4:p]).numpy()[0, -1].astype(np.float64)
        want.append(np.log(np.exp(z - z.max()).sum()) + z.max() - z[seq[p]])
    got = scored_nll(m, seq, 4, seq_len=7, batch_size=2)     # blocks of 7, a partial block
    assert abs(got - np.mean(want)) < 1e-5
    with pytest.raises(ValueError, match="must be >= the receptive field"):
        scored_nll(m, seq, 3)


def test_unigram_cross_entropy_closed_form():
    tr, va = np.array([0, 0, 1]), np.array([1, 2])
    p = np.array([3, 2, 1]) / 6.0                            # add-one over 3 symbols
    assert abs(unigram_cross_entropy(tr, va, 3) + np.log(p[[1, 2]]).mean()) < 1e-12


def test_errors_name_the_model_and_shapes():
    m = WaveNet(6, 4, 4, n_layers=2)
    with pytest.raises(ValueError, match=r"WaveNet: input token ids must be in \[0, 6\)"):
        m(np.array([[1, 7]]))
    with pytest.raises(ValueError, match=r"WaveNet: embedded input must be \(B, 4, T\)"):
        m.forward_embedded(lamina.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="WaveNet: n_layers"):
        WaveNet(6, 4, 4, n_layers=0)


# --------------------------------------------------------------------- recipe
def test_quick_recipe_learns_and_writes_its_outputs(tmp_path):
    cfg = RECIPE.config(quick=True)
    r = RECIPE.run(cfg, out_dir=str(tmp_path), verbose=False, log=lambda *a: None)
    assert r["untrained_val_loss"] > 4.0
    assert r["val_loss"] < 0.6 * r["untrained_val_loss"]
    assert r["val_loss"] < r["unigram_val_loss"] - 0.7
    assert r["val_bits_per_char"] == pytest.approx(r["val_loss"] / math.log(2))
    for row in r["receptive_field_by_layers"]:
        assert row["measured"] == row["expected"] == 2 ** row["layers"]
    assert r["trained_model_measured_receptive_field"] == r["receptive_field"] == 32
    assert r["sample"].startswith("ROMEO:") and len(r["sample"]) == 6 + cfg["sample_chars"]
    with open(tmp_path / "receptive_field.png", "rb") as f:
        assert f.read(8) == PNG
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recipe"] == "wavenet" and saved["val_loss"] == pytest.approx(r["val_loss"])
    ck = load(str(tmp_path / "model.safetensors"))            # what `lamina generate` reads
    model, vocab = RECIPE.text_model(RECIPE.config({k: v for k, v in ck["config"].items()
                                                    if k != "recipe"}))
    model.load_state_dict(ck["model"])
    assert len(vocab) == 76 and model.receptive_field == 32
