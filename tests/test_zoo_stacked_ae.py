"""The stacked-ae-pretrain recipe: the balanced label subset, greedy denoising pre-training,
the copy of the pretrained weights into the classifier, and the quick run."""
import json
import os

import numpy as np
import pytest

import lamina
from lamina.zoo.stacked_ae import (RECIPE, DenoisingAutoEncoder, MLPClassifier,
                                   StackedAutoEncoder, balanced_subset, encode_all,
                                   mask_noise, reconstruction_loss)

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def test_balanced_subset_has_exactly_n_per_class_and_is_deterministic():
    y = np.random.default_rng(0).integers(0, 10, 3000)
    idx = balanced_subset(y, 37, seed=5)
    assert len(idx) == 370 and len(np.unique(idx)) == 370
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=10), [37] * 10)
    np.testing.assert_array_equal(idx, balanced_subset(y, 37, seed=5))
    assert not np.array_equal(np.sort(idx), np.sort(balanced_subset(y, 37, seed=6)))
    assert len(set(y[idx[:20]])) > 1                     # shuffled, not grouped by class
    with pytest.raises(ValueError, match="class 3 has 2 examples"):
        balanced_subset(np.array([3, 3, 4, 4, 4]), 3)


def test_mask_noise_zeroes_about_p_of_the_entries():
    x = np.ones((200, 100), np.float32)
    m = mask_noise(x, 0.25, np.random.default_rng(0))
    assert set(np.unique(m)) == {0.0, 1.0}
    assert abs((m == 0).mean() - 0.25) < 0.01
    assert mask_noise(x, 0.0, None) is x


def toy_images(n=600, d=64, seed=0):
    """Images in [0, 1] from a few prototypes (so there is structure to learn)."""
    rng = np.random.default_rng(seed)
    protos = rng.random((5, d)) < 0.4
    x = protos[rng.integers(0, 5, n)].astype(np.float32)
    return np.clip(x * 0.9 + 0.1 * rng.random((n, d)), 0, 1).astype(np.float32)


def test_pretraining_reduces_each_layers_reconstruction_loss():
    lamina.manual_seed(0)
    x = toy_images()
    sae = StackedAutoEncoder((64, 32, 16, 8))
    hist = sae.pretrain(x, epochs=20, lr=5e-3, batch_size=50, noise=0.2, seed=0,
                        log=lambda *a: None)
    assert [h["layer"] for h in hist] == [1, 2, 3]
    codes = x
    for h, layer in zip(hist, sae.layers):
        # the monitored losses are those of the trained layer on its own (clean) inputs
        assert np.isclose(reconstruction_loss(layer, codes[:2000]), h["recon_after"], rtol=1e-5)
        # cross-entropy with targets in (0, 1) is at least their entropy: the excess over
        # that floor (a KL) must at least halve
        t = np.clip(codes.astype(np.float64), 1e-12, 1 - 1e-12)
        floor = float(np.mean(-t * np.log(t) - (1 - t) * np.log(1 - t)))
        assert h["recon_after"] - floor < 0.5 * (h["recon_before"] - floor), (h, floor)
        assert h["train_loss"][-1] < h["train_loss"][0]
        codes = encode_all(layer, codes)
    assert sae(lamina.from_numpy(x[:7])).shape == (7, 8)


def test_pretrained_weights_are_copied_into_the_classifier():
    lamina.manual_seed(0)
    sae = StackedAutoEncoder((64, 32, 16, 8))
    sae.pretrain(toy_images(200), epochs=1, batch_size=50, log=lambda *a: None)
    lamina.manual_seed(1)
    clf = MLPClassifier((64, 32, 16, 8), n_classes=5)
    head = clf.out.weight.numpy().copy()
    clf.load_pretrained(sae)
    for lin, dae in zip(clf.hidden, sae.layers):
        np.testing.assert_array_equal(lin.weight.numpy(), dae.encoder.weight.numpy())
        np.testing.assert_array_equal(lin.bias.numpy(), dae.encoder.bias.numpy())
        assert not np.shares_memory(lin.weight.numpy(), dae.encoder.weight.numpy())
    np.testing.assert_array_equal(clf.out.weight.numpy(), head)   # the head is untouched
    # the classifier's features are the stack's code
    x = lamina.from_numpy(toy_images(9))
    with lamina.no_grad():
        h = sae(x).numpy()
        np.testing.assert_allclose(clf(x).numpy(), h @ clf.out.weight.numpy().T
                                   + clf.out.bias.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sizes"):
        MLPClassifier((64, 32, 16)).load_pretrained(sae)


def test_denoising_autoencoder_shapes():
    dae = DenoisingAutoEncoder(10, 4)
    x = lamina.from_numpy(np.random.default_rng(0).random((3, 10)).astype(np.float32))
    assert dae.encode(x).shape == (3, 4) and dae(x).shape == (3, 10)
    assert dae.loss(x, x).shape == ()
    with pytest.raises(ValueError, match="sizes"):
        StackedAutoEncoder((784,))


@needs_fashion
def test_quick_recipe_both_accuracies_well_above_chance(tmp_path):
    cfg = RECIPE.config(quick=True)
    r = RECIPE.run(cfg, out_dir=str(tmp_path), verbose=False)
    assert r["pretrained_accuracy"] > 0.4 and r["scratch_accuracy"] > 0.4    # chance 0.1
    assert r["n_labelled"] == 10 * cfg["n_per_class"]
    for layer in r["pretrain"]:
        assert layer["recon_after"] < layer["recon_before"]
    for name in ("filters.png", "denoising.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == PNG
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recipe"] == "stacked-ae-pretrain" and saved["seconds"] > 0
    assert saved["scratch_accuracy"] == r["scratch_accuracy"]
