"""pixelcnn: masked convolutions (types A and B) leak nothing from future pixels, parity of
MaskedConv2d with torch, the bits/dim formula, pixel-by-pixel sampling, and the quick
recipe on binarized Fashion-MNIST."""
import json
import math
import os

import numpy as np
import pytest
import torch

import lamina
from lamina.zoo.pixelcnn import (RECIPE, MaskedConv2d, PixelCNN, causal_mask,
                                 independent_bernoulli_bpd, nll_bits_per_dim)

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def input_grad(model, x, i, j):
    """|d logit(i, j) / d x| for one image x (1, C, H, W), summed over channels: (H, W)."""
    xt = lamina.tensor(x, requires_grad=True)
    out = model(xt)
    out[0, :, i, j].sum().backward()
    return np.abs(xt.grad.numpy()[0]).sum(0)


def later(H, W, i, j):
    """Boolean (H, W): (i, j) itself and every pixel after it in raster order."""
    return (np.arange(H * W) >= i * W + j).reshape(H, W)


# ------------------------------------------------------------------------ masks
def test_masks_A_and_B():
    a = causal_mask(3, "A")
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    b = causal_mask(5, "B")
    np.testing.assert_array_equal(b, [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0],
                                      [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert causal_mask(1, "B").tolist() == [[1.0]] and causal_mask(1, "A").tolist() == [[0.0]]


def test_bad_mask_type_and_even_kernel_are_clear_errors():
    with pytest.raises(ValueError, match=r"MaskedConv2d: mask_type must be 'A' or 'B'.*'C'"):
        MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ValueError, match=r"MaskedConv2d: kernel_size must be an odd.*4"):
        MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ValueError, match="MaskedConv2d"):
        MaskedConv2d(3, 4, 3, "B")(lamina.zeros(2, 1, 8, 8))     # wrong channels


# ------------------------------------------------------------------ torch parity
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_forward_backward_match_torch_conv_with_the_masked_weight(mask_type):
    lamina.manual_seed(0)
    m = MaskedConv2d(3, 5, 5, mask_type)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    gy = rng.standard_normal((2, 5, 9, 7)).astype(np.float32)
    xl = lamina.tensor(x, requires_grad=True)
    out = m(xl)
    (out * lamina.from_numpy(gy)).sum().backward()

    mask = torch.from_numpy(causal_mask(5, mask_type))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(m.weight.numpy(), requires_grad=True)
    bt = torch.tensor(m.bias.numpy(), requires_grad=True)
    ot = torch.nn.functional.conv2d(xt, wt * mask, bt, padding=2)
    (ot * torch.from_numpy(gy)).sum().backward()
    np.testing.assert_allclose(out.numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.weight.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.bias.grad.numpy(), bt.grad.numpy(), rtol=1e-4, atol=1e-4)
    # the masked weights get exactly zero gradient, the visible ones do not
    g = m.weight.grad.numpy()
    assert np.all(g[:, :, mask.numpy() == 0] == 0)
    assert np.all(np.abs(g[:, :, mask.numpy() == 1]).sum(axis=(0, 1)) > 0)


# ----------------------------------------------------------------- no leakage
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_single_layer_sees_only_the_past_and_the_centre_only_for_type_B(mask_type):
    lamina.manual_seed(2)
    m = MaskedConv2d(1, 4, 3, mask_type)
    x = np.random.default_rng(0).standard_normal((1, 1, 6, 6)).astype(np.float32)
    i, j = 3, 2
    g = input_grad(m, x, i, j)
    assert np.all(g[later(6, 6, i, j + 1)] == 0)          # strictly later pixels
    assert g[i, j - 1] != 0 and g[i - 1, j - 1] != 0 and g[i - 1, j + 1] != 0
    if mask_type == "A":
        assert g[i, j] == 0
    else:
        assert g[i, j] != 0


POSITIONS = [(0, 0), (0, 5), (3, 3), (5, 0), (10, 27), (14, 14), (27, 0), (27, 27)]


def test_pixelcnn_logit_has_exactly_zero_gradient_on_its_pixel_and_every_later_one():
    lamina.manual_seed(3)
    model = PixelCNN(channels=8, n_layers=4, head_channels=8)
    x = np.random.default_rng(3).random((1, 1, 28, 28)).astype(np.float32)
    for i, j in POSITIONS:
        g = input_grad(model, x, i, j)
        assert np.all(g[later(28, 28, i, j)] == 0), (i, j)
        earlier = g[~later(28, 28, i, j)]
        if (i, j) != (0, 0):
            assert np.count_nonzero(earlier) > 0, (i, j)
        if j > 0:
            assert g[i, j - 1] != 0                          # left neighbour is seen
        if i > 0:
            assert g[i - 1, j] != 0                          # the pixel above is seen


def test_the_leak_test_catches_a_type_B_first_layer():
    lamina.manual_seed(3)
    model = PixelCNN(channels=8, n_layers=2, head_channels=8)
    model.first = MaskedConv2d(1, 8, 7, "B")                 # wrong: sees its own pixel
    x = np.random.default_rng(3).random((1, 1, 12, 12)).astype(np.float32)
    assert input_grad(model, x, 5, 5)[5, 5] != 0


def test_pixelcnn_shapes_and_errors():
    model = PixelCNN(channels=8, n_layers=2, head_channels=8)
    assert model(lamina.zeros(3, 1, 10, 12)).shape == (3, 1, 10, 12)
    assert model.rows_above == 3 + 2
    with pytest.raises(ValueError, match=r"PixelCNN: expected binary images \(N, 1, H, W\)"):
        model(lamina.zeros(3, 10, 12))


# ----------------------------------------------------------------- likelihood
def test_bits_per_dim_formula():
    x = (np.random.default_rng(0).random((4, 1, 5, 5)) < 0.3).astype(np.float32)
    v = float(nll_bits_per_dim(lamina.zeros(4, 1, 5, 5), x).item())
    assert abs(v - 1.0) < 1e-6                                # p = 1/2 everywhere
    z = np.random.default_rng(1).standard_normal((4, 1, 5, 5)).astype(np.float32)
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    want = -np.mean(x * np.log2(p) + (1 - x) * np.log2(1 - p))
    got = float(nll_bits_per_dim(lamina.from_numpy(z), x).item())
    assert abs(got - want) < 1e-5


def test_independent_bernoulli_baseline_closed_form():
    xtr = np.zeros((2, 1, 2, 2), np.float32)
    xtr[0, 0, 0, 0] = 1                                       # pixel (0,0): 1 of 2 images
    xte = np.ones((1, 1, 2, 2), np.float32)
    # Laplace: p(0,0) = 2/4, others 1/4
    want = -(np.log2(0.5) + 3 * np.log2(0.25)) / 4
    assert abs(independent_bernoulli_bpd(xtr, xte) - want) < 1e-12


# ------------------------------------------------------------------- sampling
def test_cropped_rows_give_exactly_the_full_image_logits():
    lamina.manual_seed(4)
    model = PixelCNN(channels=8, n_layers=3, head_channels=8)
    x = (np.random.default_rng(4).random((2, 1, 16, 16)) < 0.5).astype(np.float32)
    full = model(lamina.from_numpy(x)).numpy()
    for i in (0, 2, 9, 15):
        lo = max(0, i - model.rows_above)
        crop = model(lamina.from_numpy(x[:, :, lo:i + 1].copy())).numpy()
        np.testing.assert_allclose(crop[:, :, -1], full[:, :, i], rtol=1e-5, atol=1e-6)


def test_sampling_shape_binary_and_reproducible():
    lamina.manual_seed(5)
    model = PixelCNN(channels=8, n_layers=2, head_channels=8)
    a = model.sample(3, 7, size=(6, 5))
    assert a.shape == (3, 1, 6, 5) and a.dtype == np.float32
    assert set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, model.sample(3, np.random.default_rng(7), size=(6, 5)))
    assert not np.array_equal(a, model.sample(3, 8, size=(6, 5)))
    assert model.training                                     # mode restored
    prefix = np.ones((2, 1, 6, 5), np.float32)
    c = model.sample(2, 0, size=(6, 5), prefix=prefix, start_row=3)
    np.testing.assert_array_equal(c[:, :, :3], 1.0)
    with pytest.raises(ValueError, match="PixelCNN.sample: prefix must have shape"):
        model.sample(2, 0, size=(6, 5), prefix=prefix[:1], start_row=3)


def test_sampling_follows_the_model_probabilities():
    # a model whose only nonzero parameter is the last bias b: every pixel ~ Bernoulli(s(b))
    model = PixelCNN(channels=4, n_layers=1, head_channels=4)
    for p in model.parameters():
        p.data[...] = 0
    model.head2.bias.data[...] = math.log(0.2 / 0.8)
    s = model.sample(200, 0, size=(4, 4))
    assert abs(s.mean() - 0.2) < 0.03                         # 3200 draws: sd 0.007


# --------------------------------------------------------------------- recipe
def test_recipe_configs():
    assert RECIPE.name == "pixelcnn" and RECIPE.summary
    q = RECIPE.config(quick=True)
    assert q["n_train"] <= 2000 and q["epochs"] == 1
    assert RECIPE.config()["n_test"] == 0                       # the whole test set


@needs_fashion
def test_quick_recipe_learns_and_beats_independent_pixels(tmp_path):
    r = RECIPE.run(RECIPE.config(quick=True), out_dir=str(tmp_path), verbose=False,
                   log=lambda *a: None)
    assert r["untrained_test_bits_per_dim"] > 0.9
    assert r["test_bits_per_dim"] < 0.5 * r["untrained_test_bits_per_dim"]
    assert r["test_bits_per_dim"] < r["baseline_bits_per_dim"] - 0.15
    assert abs(r["test_nats_per_image"] - r["test_bits_per_dim"] * 784 * math.log(2)) < 1e-6
    for name in ("samples.png", "completions.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == PNG
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recipe"] == "pixelcnn" and saved["config"]["n_train"] == 1600
    assert saved["test_bits_per_dim"] == pytest.approx(r["test_bits_per_dim"])
