"""Model zoo: gan and dcgan — the networks (shapes, ranges, parity with PyTorch), the
adversarial losses against torch, one training step of each player, the classifier
statistics on hand-made probabilities, and each recipe's quick run on a Fashion-MNIST
subset (learning, no NaNs, figures and results.json written)."""
import json
import os

import numpy as np
import pytest
import torch

import lamina
from lamina import nn
from lamina.zoo.dcgan import RECIPE as DCGAN_RECIPE
from lamina.zoo.dcgan import DCDiscriminator, DCGenerator
from lamina.zoo.gan import RECIPE as GAN_RECIPE
from lamina.zoo.gan import (Discriminator, Generator, class_statistics, discriminator_loss,
                            generator_loss, histogram_entropy, interpolation_latents)

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def latents(n, d=64, seed=0):
    return lamina.from_numpy(np.random.default_rng(seed).standard_normal((n, d))
                             .astype(np.float32))


def to_torch(module_lam, module_torch):
    """Copy a lamina module's parameters and buffers into a torch module of the same
    structure (same state-dict names)."""
    state = {k: torch.from_numpy(np.array(v.numpy() if hasattr(v, "numpy") else v))
             for k, v in module_lam.state_dict().items()}
    module_torch.load_state_dict(state)
    return module_torch


# ---------------------------------------------------------------- networks
def test_mlp_generator_and_discriminator_shapes_and_ranges():
    lamina.manual_seed(0)
    G, D = Generator(latent_dim=64), Discriminator()
    x = G(latents(5))
    assert x.shape == (5, 784)
    assert np.all(np.abs(x.numpy()) <= 1.0)
    assert x.numpy().std() > 0.01              # not constant
    assert D(x).shape == (5,)
    assert D(x.reshape(5, 1, 28, 28)).shape == (5,)   # image layout is flattened
    with pytest.raises(ValueError, match=r"Generator.*\(N, 64\).*\(5, 32\)"):
        G(latents(5, d=32))
    with pytest.raises(ValueError, match=r"Discriminator.*784.*\(5, 100\)"):
        D(lamina.from_numpy(np.zeros((5, 100), np.float32)))


def test_dcgan_transposed_convolutions_go_7_14_28():
    lamina.manual_seed(0)
    G = DCGenerator(latent_dim=16, channels=8)
    h = latents(3, d=16).reshape(3, 16, 1, 1)
    sizes = []
    for layer in G.net:
        h = layer(h)
        if isinstance(layer, nn.ConvTranspose2d):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(16, 7, 7), (8, 14, 14), (1, 28, 28)]
    x = G(latents(3, d=16))
    assert x.shape == (3, 1, 28, 28)
    assert np.all(np.abs(x.numpy()) <= 1.0)
    D = DCDiscriminator(channels=8)
    assert D(x).shape == (3,)
    with pytest.raises(ValueError, match=r"DCDiscriminator.*\(N, 1, 28, 28\).*\(3, 784\)"):
        D(x.reshape(3, 784))


def test_dcgan_init_is_normal_002():
    lamina.manual_seed(0)
    G = DCGenerator(latent_dim=64, channels=32)
    w = G.net[0].weight.numpy()
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    bn = G.net[1].weight.numpy()
    assert abs(bn.mean() - 1.0) < 0.01 and 0.01 < bn.std() < 0.03


def _torch_dcgan(latent_dim, c):
    tn = torch.nn
    G = tn.Sequential(
        tn.ConvTranspose2d(latent_dim, 2 * c, 7, bias=False), tn.BatchNorm2d(2 * c), tn.ReLU(),
        tn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), tn.BatchNorm2d(c),
        tn.ReLU(), tn.ConvTranspose2d(c, 1, 4, stride=2, padding=1), tn.Tanh())
    D = tn.Sequential(
        tn.Conv2d(1, c, 4, stride=2, padding=1), tn.LeakyReLU(0.2),
        tn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), tn.BatchNorm2d(2 * c),
        tn.LeakyReLU(0.2), tn.Conv2d(2 * c, 1, 7))
    return G, D


def test_dcgan_matches_torch_forward_and_backward():
    lamina.manual_seed(1)
    G, D = DCGenerator(latent_dim=10, channels=4), DCDiscriminator(channels=4)
    tG, tD = _torch_dcgan(10, 4)
    to_torch(G.net, tG)
    to_torch(D.net, tD)
    z = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    zl = lamina.from_numpy(z)
    zl.requires_grad = True
    zt = torch.from_numpy(z).requires_grad_()
    out_l = D(G(zl))                               # train mode: batch statistics
    out_t = tD(tG(zt.reshape(6, 10, 1, 1))).reshape(-1)
    np.testing.assert_allclose(out_l.numpy(), out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    loss_l = generator_loss(out_l)
    loss_t = torch.nn.functional.binary_cross_entropy_with_logits(out_t, torch.ones(6))
    loss_l.backward()
    loss_t.backward()
    np.testing.assert_allclose(zl.grad.numpy(), zt.grad.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(G.net[0].weight.grad.numpy(), tG[0].weight.grad.numpy(),
                               rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(D.net[0].weight.grad.numpy(), tD[0].weight.grad.numpy(),
                               rtol=1e-3, atol=1e-6)
    # Running statistics updated as torch does.
    np.testing.assert_allclose(G.net[1].running_mean.numpy(), tG[1].running_mean.numpy(),
                               rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- losses
LOGITS_REAL = np.array([2.0, -0.5, 0.3, 4.0, -3.0], np.float32)
LOGITS_FAKE = np.array([-1.0, 0.7, -2.5, 0.0, 1.5], np.float32)


def test_discriminator_loss_matches_torch_values_and_gradients():
    r, f = lamina.from_numpy(LOGITS_REAL.copy()), lamina.from_numpy(LOGITS_FAKE.copy())
    r.requires_grad = f.requires_grad = True
    loss = discriminator_loss(r, f)
    loss.backward()
    tr = torch.from_numpy(LOGITS_REAL).requires_grad_()
    tf = torch.from_numpy(LOGITS_FAKE).requires_grad_()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    tl = bce(tr, torch.ones(5)) + bce(tf, torch.zeros(5))
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-6)
    np.testing.assert_allclose(r.grad.numpy(), tr.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(f.grad.numpy(), tf.grad.numpy(), rtol=1e-5, atol=1e-7)
    # closed form: d/dl of -log σ(l) is σ(l) - 1; of -log(1 - σ(l)) is σ(l), each / N
    sig = 1 / (1 + np.exp(-LOGITS_REAL.astype(np.float64)))
    np.testing.assert_allclose(r.grad.numpy(), (sig - 1) / 5, rtol=1e-5)


def test_generator_loss_is_non_saturating_and_matches_torch():
    f = lamina.from_numpy(LOGITS_FAKE.copy())
    f.requires_grad = True
    loss = generator_loss(f)
    loss.backward()
    tf = torch.from_numpy(LOGITS_FAKE).requires_grad_()
    tl = -torch.nn.functional.logsigmoid(tf).mean()
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-6)
    np.testing.assert_allclose(f.grad.numpy(), tf.grad.numpy(), rtol=1e-5, atol=1e-7)
    # Non-saturating: where D confidently rejects a sample (logit -8) the gradient stays
    # near -1/N, while the minimax loss log(1 - σ(l)) would give only -σ(l)/N ≈ -3e-4/N.
    g = lamina.from_numpy(np.array([-8.0], np.float32))
    g.requires_grad = True
    generator_loss(g).backward()
    assert g.grad.numpy()[0] < -0.99


def test_one_step_of_each_player_lowers_its_loss():
    lamina.manual_seed(0)
    G, D = Generator(latent_dim=16, hidden=(32,)), Discriminator(hidden=(32,))
    rng = np.random.default_rng(0)
    real = lamina.from_numpy(rng.uniform(-1, 1, (32, 784)).astype(np.float32))
    z = latents(32, d=16)
    opt_d = lamina.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = lamina.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    fake = G(z).detach()

    def d_loss():
        return discriminator_loss(D(real), D(fake))

    before = d_loss()
    opt_d.zero_grad()
    before.backward()
    opt_d.step()
    with lamina.no_grad():
        after = d_loss().item()
    assert after < before.item() - 1e-3
    assert all(p.grad is None or not np.any(p.grad.numpy()) for p in G.parameters())

    g_before = generator_loss(D(G(z)))
    opt_g.zero_grad()
    g_before.backward()
    d_params = [p.numpy().copy() for p in D.parameters()]
    opt_g.step()
    with lamina.no_grad():
        g_after = generator_loss(D(G(z))).item()
    assert g_after < g_before.item() - 1e-3
    for p, old in zip(D.parameters(), d_params):      # the G step leaves D alone
        np.testing.assert_array_equal(p.numpy(), old)


# ---------------------------------------------------------------- evaluation helpers
def test_class_statistics_on_hand_made_probabilities():
    uniform = np.eye(10)[np.arange(1000) % 10] * 0.9 + 0.01   # every class 100 times
    s = class_statistics(uniform)
    assert s["histogram"] == [100] * 10
    np.testing.assert_allclose(s["entropy"], np.log(10), rtol=1e-12)
    np.testing.assert_allclose(s["confidence"], 0.91, rtol=1e-12)
    assert not s["collapsed"] and s["largest_fraction"] == 0.1

    one = np.full((50, 10), 0.05)
    one[:, 3] = 0.55
    s = class_statistics(one)
    assert s["histogram"] == [0, 0, 0, 50, 0, 0, 0, 0, 0, 0]
    assert s["entropy"] == 0.0 and s["largest_fraction"] == 1.0 and s["collapsed"]
    np.testing.assert_allclose(s["confidence"], 0.55)

    # two equal classes: log 2 nats — below the collapse threshold
    two = np.eye(10)[np.arange(40) % 2]
    s = class_statistics(two)
    np.testing.assert_allclose(s["entropy"], np.log(2))
    assert s["collapsed"]
    np.testing.assert_allclose(histogram_entropy([1, 1, 2]), -(2 * 0.25 * np.log(0.25)
                                                                + 0.5 * np.log(0.5)))
    with pytest.raises(ValueError, match="histogram_entropy"):
        histogram_entropy([0, 0])
    with pytest.raises(ValueError, match=r"class_statistics.*\(10,\)"):
        class_statistics(np.ones(10))


def test_interpolation_latents_are_straight_lines():
    z = interpolation_latents(np.random.default_rng(0), latent_dim=5, rows=3, steps=4)
    assert z.shape == (12, 5)
    rows = z.reshape(3, 4, 5)
    steps = np.diff(rows, axis=1)
    np.testing.assert_allclose(steps, np.repeat(steps[:, :1], 3, axis=1), atol=1e-6)
    assert not np.allclose(rows[0, 0], rows[1, 0])


# ---------------------------------------------------------------- quick recipe runs
def quiet():
    return dict(verbose=False, log=lambda *a, **k: None)


def check_run(res, out_dir, epochs):
    hist = res["history"]
    assert len(hist) == epochs
    for row in hist:
        assert all(np.isfinite(v) for v in row.values())
    # learning: the samples' mean image moves well toward the data's
    assert hist[-1]["mean_image_distance"] < 0.7 * res["start"]["mean_image_distance"]
    # D tells real from generated better than chance
    assert hist[-1]["d_accuracy"] > 0.55
    for e in range(1, epochs + 1):
        with open(os.path.join(out_dir, f"samples_epoch{e}.png"), "rb") as fh:
            assert fh.read(8) == PNG
    with open(os.path.join(out_dir, "interpolation.png"), "rb") as fh:
        assert fh.read(8) == PNG
    with open(os.path.join(out_dir, "results.json")) as fh:
        saved = json.load(fh)
    assert saved["recipe"] == res["recipe"] and "seconds" in saved and "config" in saved
    for key in ("samples", "real"):
        s = saved[key]
        assert sum(s["histogram"]) == res["config"]["n_eval"]
        assert 0.0 <= s["entropy"] <= np.log(10) + 1e-9 and 0.1 <= s["confidence"] <= 1.0
    # the classifier is much better than chance on the real test images
    assert saved["classifier"]["test_accuracy"] > 0.5


@needs_fashion
def test_gan_quick_run_learns_and_writes_figures(tmp_path):
    res = GAN_RECIPE.run(GAN_RECIPE.config(quick=True), out_dir=tmp_path, **quiet())
    check_run(res, tmp_path, GAN_RECIPE.quick["epochs"])
    assert os.path.exists(tmp_path / "classifier.safetensors")
    assert not res["classifier"]["cached"]


@needs_fashion
def test_dcgan_quick_run_learns_and_writes_figures(tmp_path):
    res = DCGAN_RECIPE.run(DCGAN_RECIPE.config(quick=True), out_dir=tmp_path, **quiet())
    check_run(res, tmp_path, DCGAN_RECIPE.quick["epochs"])


def test_recipe_settings():
    for r in (GAN_RECIPE, DCGAN_RECIPE):
        cfg = r.config()
        assert cfg["lr"] == 2e-4 and cfg["beta1"] == 0.5
        with pytest.raises(KeyError, match=r.name):
            r.config({"no_such_setting": 1})
