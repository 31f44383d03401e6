"""Dense-prediction zoo models: the fully convolutional sliding-window classifier (fcn)
and the U-Net (unet) — model properties and the recipes' quick runs."""
import importlib
import json
import os

import numpy as np
import pytest

import lamina
from lamina.nn import functional as F

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")


def _fcn():
    return importlib.import_module("lamina.zoo.fcn")


def _unet():
    return importlib.import_module("lamina.zoo.unet")


def _first_param_grad(model, loss):
    loss.backward()
    g = next(iter(model.parameters())).grad
    return np.abs(g.numpy()).sum() if g is not None else 0.0


# ---------------------------------------------------------------------------- FCN
def test_fcn_takes_28x28_and_larger_inputs_and_has_no_linear_layer():
    fcn = _fcn()
    lamina.manual_seed(0)
    net = fcn.FCN()
    assert not any(isinstance(m, lamina.nn.Linear) for m in net.modules())
    assert net(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert net(lamina.zeros(2, 1, 84, 61)).shape == (2, 10)        # any size >= 28
    assert net.score_map(lamina.zeros(2, 1, 28, 28)).shape == (2, 10, 1, 1)
    assert net.score_map(lamina.zeros(1, 1, 112, 84)).shape == (1, 10, 22, 15)
    assert net.map_size(112, 84) == (22, 15)
    with pytest.raises(ValueError, match="at least 28x28"):
        net(lamina.zeros(1, 1, 27, 40))


def test_fcn_score_map_is_the_sliding_window_classifier():
    fcn = _fcn()
    lamina.manual_seed(1)
    net = fcn.FCN()
    x = np.random.default_rng(0).standard_normal((2, 1, 84, 96)).astype(np.float32)
    net.eval()
    with lamina.no_grad():
        # a few steps of batch statistics so batch norm is not the identity
        net.train()
        net(lamina.from_numpy(x[:, :, :28, :28].copy()))
        net.eval()
        maps = net.score_map(lamina.from_numpy(x)).numpy()
        for i, j in [(0, 0), (3, 7), (14, 17)]:
            r, c = net.window_origin(i, j)
            crop = lamina.from_numpy(x[:, :, r:r + 28, c:c + 28].copy())
            np.testing.assert_allclose(net(crop).numpy(), maps[:, :, i, j], atol=1e-4)
        # forward is the global average of the map
        np.testing.assert_allclose(net(lamina.from_numpy(x)).numpy(), maps.mean((2, 3)),
                                   atol=1e-5)


def test_fcn_gradient_reaches_the_first_layer():
    fcn = _fcn()
    lamina.manual_seed(0)
    net = fcn.FCN()
    x = lamina.from_numpy(np.random.default_rng(0).standard_normal((4, 1, 40, 40))
                          .astype(np.float32))
    loss = F.cross_entropy(net(x), lamina.from_numpy(np.array([0, 1, 2, 3])))
    assert _first_param_grad(net, loss) > 0


def test_canvas_items_are_placed_where_reported():
    fcn = _fcn()
    imgs = np.random.default_rng(0).random((10, 1, 28, 28)).astype(np.float32) + 1
    labels = np.arange(10)
    canv, places = fcn.make_canvases(imgs, labels, 3, 84, 3, -1.0, seed=0, align=1)
    assert canv.shape == (3, 1, 84, 84)
    k = 0
    for c, boxes in enumerate(places):
        assert len(boxes) == 3
        cover = np.zeros((84, 84), int)
        for r, col, label in boxes:
            np.testing.assert_array_equal(canv[c, :, r:r + 28, col:col + 28], imgs[k])
            assert label == labels[k]
            cover[r:r + 28, col:col + 28] += 1
            k += 1
        assert cover.max() == 1                                  # no overlaps
        assert np.all(canv[c, 0][cover == 0] == -1.0)
    assert fcn.nearest_position(6, 0, (15, 15)) == (2, 0)       # 6 / 4 = 1.5 -> 2
    assert fcn.nearest_position(5, 9, (15, 15)) == (1, 2)


# ---------------------------------------------------------------------------- U-Net
@pytest.mark.parametrize("up", ["transpose", "unpool"])
def test_unet_output_shape_equals_input_and_gradient_reaches_the_first_layer(up):
    unet = _unet()
    lamina.manual_seed(0)
    net = unet.UNet(width=4, depth=2, up=up)
    for shape in [(2, 1, 48, 48), (1, 1, 45, 37)]:
        assert net(lamina.zeros(*shape)).shape == shape
    assert unet.UNet(in_channels=3, out_channels=2, width=4, depth=3, up=up)(
        lamina.zeros(1, 3, 32, 40)).shape == (1, 2, 32, 40)
    x = lamina.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 24, 24))
                          .astype(np.float32))
    y = lamina.from_numpy((np.random.default_rng(1).random((2, 1, 24, 24)) > 0.5)
                          .astype(np.float32))
    loss = F.binary_cross_entropy_with_logits(net(x), y)
    assert _first_param_grad(net, loss) > 0
    with pytest.raises(ValueError, match="up must be"):
        unet.UNet(up="bilinear")


def test_unet_uses_its_skip_connections():
    """The decoder's first conv at each level takes the upsampled map and the encoder's
    map of the same resolution, concatenated."""
    unet = _unet()
    lamina.manual_seed(0)
    net = unet.UNet(width=4, depth=2)
    assert net.decoder[0][0].in_channels == 8      # 4 upsampled + 4 from the skip
    assert net.decoder[1][0].in_channels == 16     # 8 upsampled + 8 from the skip


def test_segmentation_data_and_iou_metrics():
    unet = _unet()
    imgs = np.zeros((4, 1, 28, 28), np.float32)
    imgs[:, :, 5:20, 8:16] = 1.0
    x, mask = unet.segmentation_data(imgs, 6, canvas=40, noise=0.0, contrast=(1, 1), seed=0)
    assert x.shape == mask.shape == (6, 1, 40, 40)
    assert np.all(mask.sum((1, 2, 3)) == 15 * 8)
    np.testing.assert_array_equal(x > 0.5, mask > 0.5)
    logits = np.where(mask > 0.5, 3.0, -3.0)
    for metric in (unet.MaskIoU(), unet.MeanIoU(), unet.PixelAccuracy()):
        metric.update(logits, mask)
        assert metric.compute() == pytest.approx(1.0)
    half = logits.copy()
    half[:, :, :, :] = -3.0
    half[:, :, :20] = np.where(mask[:, :, :20] > 0.5, 3.0, -3.0)   # top half only
    m = unet.MaskIoU()
    m.update(half, mask)
    expected = unet.iou_per_image(half > 0, mask > 0.5).mean()
    assert m.compute() == pytest.approx(expected)
    assert 0 < expected < 1


# ---------------------------------------------------------------------------- quick runs
@needs_fashion
def test_fcn_quick_classifies_and_its_heatmap_finds_the_items(tmp_path):
    r = _fcn().RECIPE
    assert r.name == "fcn"
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    assert res["test_accuracy"] >= 0.65                      # chance is 0.10
    assert res["canvas_centre_accuracy"] >= 0.5              # chance is 0.10
    assert res["canvas_map_shape"] == [10, 22, 22]
    assert os.path.getsize(tmp_path / "heatmap.png") > 10_000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["canvas_centre_matches"] == res["canvas_centre_matches"]


@needs_fashion
def test_unet_quick_segments_well_above_chance(tmp_path):
    r = _unet().RECIPE
    assert r.name == "unet"
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    # predicting "all item" gives IoU ~0.2 (the item covers ~20% of a canvas), all
    # background 0
    assert res["test_iou"] >= 0.6 and res["test_miou"] >= 0.75
    assert os.path.getsize(tmp_path / "segmentation.png") > 10_000
    assert json.loads((tmp_path / "results.json").read_text())["test_iou"] == res["test_iou"]
