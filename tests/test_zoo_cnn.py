"""Model zoo I: vgg-small, resnet (with the plain-vs-residual depth experiment) and
inception — the model classes, and each recipe's quick run on a Fashion-MNIST subset."""
import json
import os

import numpy as np
import pytest

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.zoo import RECIPES, InceptionNet, PlainNet, ResNetSmall, VGGSmall, get_recipe

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def of_type(model, cls):
    return [m for m in model.modules() if isinstance(m, cls)]


def first_conv_gets_gradient(model, in_channels=1):
    """Backpropagate a cross-entropy loss through ``model``; the first conv's weight
    gradient must be finite and not zero."""
    rng = np.random.default_rng(0)
    x = lamina.from_numpy(rng.standard_normal((4, in_channels, 28, 28)).astype(np.float32))
    y = lamina.from_numpy(np.array([0, 3, 7, 9]))
    model.train()
    F.cross_entropy(model(x), y).backward()
    g = of_type(model, nn.Conv2d)[0].weight.grad
    assert g is not None
    g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


# ---------------------------------------------------------------------------- registry
def test_the_three_recipes_are_registered():
    for name, target in (("vgg-small", 0.92), ("resnet", 0.92), ("inception", 0.91)):
        assert name in RECIPES
        r = get_recipe(name)
        assert r.name == name and r.summary
        assert r.target == ("accuracy", target)
        quick = r.config(quick=True)
        assert quick["subset"] and quick["epochs"] <= 2     # CI-sized
        assert r.config()["subset"] == 0 and r.config()["augment"] is True
        for k in r.search_space:
            assert k in r.config()


# ---------------------------------------------------------------------------- VGGSmall
def test_vgg_small_shapes_and_structure():
    net = VGGSmall()
    assert net(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert len(of_type(net, nn.Conv2d)) == 5                  # convs_per_stage (1, 2, 2)
    assert len(of_type(net, nn.BatchNorm2d)) == 5
    assert len(of_type(net, nn.BatchNorm1d)) == 1
    assert len(of_type(net, nn.MaxPool2d)) == 3
    assert len(of_type(net, nn.Dropout)) == 1                 # in the classifier
    assert len(of_type(VGGSmall(dropout=0.1), nn.Dropout)) == 4   # + after each stage
    assert all(c.bias is None for c in of_type(net, nn.Conv2d))   # BN follows every conv
    # convs 9*(1*16 + 16*32 + 32*32 + 32*64 + 64*64), BN 2*(16+2*32+2*64), FC 576*128,
    # BN1d 2*128, FC 128*10+10
    assert n_params(net) == 9 * (16 + 512 + 1024 + 2048 + 4096) + 2 * 208 + 73728 + 256 + 1290
    wide = VGGSmall(widths=(8, 16), convs_per_stage=2, hidden=32, n_classes=5)
    assert wide(lamina.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert len(of_type(wide, nn.Conv2d)) == 4
    with pytest.raises(ValueError, match="poolings"):
        VGGSmall(widths=(4,) * 6, convs_per_stage=1)
    with pytest.raises(ValueError, match="convs_per_stage"):
        VGGSmall(convs_per_stage=(1, 2))


def test_vgg_small_gradient_reaches_the_first_layer():
    lamina.manual_seed(0)
    first_conv_gets_gradient(VGGSmall(widths=(8, 16, 16)))


def test_vgg_small_dropout_only_in_training():
    lamina.manual_seed(0)
    net = VGGSmall(widths=(8, 8, 8), dropout=0.5, dropout_fc=0.5)
    x = lamina.from_numpy(np.random.default_rng(1).standard_normal((4, 1, 28, 28))
                          .astype(np.float32))
    net.eval()
    a, b = net(x).numpy(), net(x).numpy()
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- ResNet
def test_resnet_small_shapes_blocks_and_projection_shortcuts():
    net = ResNetSmall(widths=(8, 16), blocks=(1, 1))
    assert net(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert net.depth == 6
    b1, b2 = of_type(net, nn.ResidualBlock)
    assert b1.kind == b2.kind == "basic" and b1.residual and b2.residual
    assert isinstance(b1.shortcut, nn.Identity)               # same shape: identity
    assert b2.stride == 2 and not isinstance(b2.shortcut, nn.Identity)   # projection
    # stem 72+16, block 8->8: 2*(576+16), block 8->16/2: 1152+32+2304+32 + proj 128+32,
    # head 16*10+10
    assert n_params(net) == 88 + 1184 + 3520 + 160 + 170
    assert net.layers[-1](lamina.zeros(1, 8, 28, 28)).shape == (1, 16, 14, 14)
    default = ResNetSmall(widths=(24, 48, 96), stem_pool=True)
    assert default(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert default.depth == 8
    with pytest.raises(ValueError, match="one entry per stage"):
        ResNetSmall(widths=(8, 16), blocks=(1,))


def test_plain_net_is_the_resnet_without_shortcuts():
    plain = PlainNet(widths=(8, 16), blocks=(1, 1))
    res = ResNetSmall(widths=(8, 16), blocks=(1, 1))
    assert plain.depth == res.depth and not plain.residual
    assert all(not b.residual for b in of_type(plain, nn.ResidualBlock))
    assert n_params(plain) == n_params(res) - 160          # no projection conv + BN
    # with the same weights, the shortcut is the only difference
    state = {k: v for k, v in res.state_dict().items() if "shortcut" not in k}
    plain.load_state_dict(state)
    plain.eval(), res.eval()
    x = lamina.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 28, 28))
                          .astype(np.float32))
    assert not np.allclose(plain(x).numpy(), res(x).numpy())


def test_depth_experiment_nets_have_the_same_depth():
    from lamina.zoo.resnet import depth_pair
    plain, res = depth_pair(5, 8)
    assert plain.depth == res.depth == 12
    assert len(of_type(plain, nn.ResidualBlock)) == len(of_type(res, nn.ResidualBlock)) == 5
    assert n_params(plain) == n_params(res)                # one width: no projections
    assert plain(lamina.zeros(2, 1, 28, 28)).shape == res(lamina.zeros(2, 1, 28, 28)).shape \
        == (2, 10)


@pytest.mark.parametrize("cls", [ResNetSmall, PlainNet])
def test_resnet_gradient_reaches_the_first_layer(cls):
    lamina.manual_seed(0)
    first_conv_gets_gradient(cls(widths=(8, 16, 16), blocks=(2, 1, 1)))


# ---------------------------------------------------------------------------- Inception
def test_inception_net_shapes_and_modules():
    from lamina.zoo.inception import module_widths
    c1, c3r, c3, c5r, c5, pp = module_widths(96)
    assert c1 + c3 + c5 + pp == 96 and (c1, c3r, c3, c5r, c5, pp) == (24, 36, 48, 6, 12, 12)
    with pytest.raises(ValueError, match="multiples of 8"):
        module_widths(50)
    net = InceptionNet()
    assert net(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
    mods = of_type(net, nn.InceptionModule)
    assert [m.out_channels for m in mods] == [32, 48, 64, 96]
    assert [m.in_channels for m in mods] == [24, 32, 48, 64]
    assert len(of_type(net, nn.BatchNorm2d)) == 1 + 6 * 4     # stem + 6 convs a module
    assert net.inception[0](lamina.zeros(1, 24, 14, 14)).shape == (1, 32, 14, 14)
    small = InceptionNet(stem=8, stages=((16,),), n_classes=3)
    assert small(lamina.zeros(1, 1, 28, 28)).shape == (1, 3)
    assert n_params(small) < n_params(net)


def test_inception_gradient_reaches_the_first_layer():
    lamina.manual_seed(0)
    first_conv_gets_gradient(InceptionNet(stem=8, stages=((16,), (24,))))


# ---------------------------------------------------------------------------- quick runs
def quiet():
    return dict(verbose=False, log=lambda m: None)


@needs_fashion
def test_vgg_small_quick_is_well_above_chance(tmp_path):
    r = get_recipe("vgg-small")
    res = r.run(r.config(quick=True), out_dir=tmp_path, **quiet())
    assert res["test_accuracy"] >= 0.65                      # chance is 0.10
    for f in ("results.json", "curves.png", "best.safetensors"):
        assert os.path.isfile(tmp_path / f), f


@needs_fashion
def test_resnet_quick_trains_and_runs_the_depth_experiment(tmp_path):
    r = get_recipe("resnet")
    cfg = r.config(quick=True)
    res = r.run(cfg, out_dir=tmp_path, **quiet())
    assert res["test_accuracy"] >= 0.6                       # chance is 0.10
    de = res["depth_experiment"]
    png = tmp_path / "depth_experiment.png"
    assert de["png"] == "depth_experiment.png" and os.path.isfile(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert de["depth"] == 2 * cfg["depth_blocks"] + 2
    steps = cfg["depth_epochs"] * -(-cfg["depth_subset"] // cfg["batch_size"])
    for net in ("deep-plain", "deep-residual"):
        curve = de[net]["batch_losses"]
        assert len(curve) == steps and np.all(np.isfinite(curve))
        assert len(de[net]["train_loss"]) == cfg["depth_epochs"]
        assert os.path.isfile(tmp_path / net / "results.json")
    # the point of the experiment: at the same depth the residual net trains better
    assert de["trains_better"] == "deep-residual"
    assert de["deep-residual"]["final_train_loss"] < de["deep-plain"]["final_train_loss"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["depth_experiment"]["trains_better"] == "deep-residual"
    # a depth-experiment checkpoint rebuilds from its own config, as `lamina eval` does
    ck = lamina.load(str(tmp_path / "deep-plain" / "best.safetensors"))
    ck_cfg = dict(ck["config"])
    assert ck_cfg.pop("recipe") == "resnet"
    s = r.setup(r.config(ck_cfg))
    assert isinstance(s.model, PlainNet)
    s.model.load_state_dict(ck["model"])


@needs_fashion
def test_inception_quick_is_well_above_chance(tmp_path):
    r = get_recipe("inception")
    res = r.run(r.config(quick=True), out_dir=tmp_path, **quiet())
    assert res["test_accuracy"] >= 0.65                      # chance is 0.10
