"""The transfer-learning recipe (12) and the ConvNet-inspection recipe (13), and their helpers."""
import importlib
import os

import numpy as np
import pytest

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.train import Trainer
from lamina.zoo import LeNet5

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION),
                                   reason="Fashion-MNIST not installed "
                                          "(apt-get install dataset-fashion-mnist)")

transfer = importlib.import_module("lamina.zoo.transfer")
inspect_cnn = importlib.import_module("lamina.zoo.inspect_cnn")


def _snapshot(params):
    return [p.numpy().copy() for p in params]


def _fit(model, opt, epochs=3, n=40, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    Trainer(batch_size=10, seed=seed, verbose=False).fit(model, F.cross_entropy, opt, (x, y),
                                                         epochs=epochs)


# ---------------------------------------------------------------- transfer helpers
def test_new_head_copies_every_layer_but_the_head():
    lamina.manual_seed(0)
    pre = LeNet5(n_classes=5)
    for head, fresh in (("output", ("classifier.5.",)), ("classifier", ("classifier.",))):
        lamina.manual_seed(1)
        model = transfer.with_new_head(pre, 3, head)
        assert model(lamina.zeros(2, 1, 28, 28)).shape == (2, 3)
        old = pre.state_dict()
        for k, v in model.state_dict().items():
            if k.startswith(fresh):
                if v.shape == old[k].shape:
                    assert not np.array_equal(v.numpy(), old[k].numpy()), k
            else:
                np.testing.assert_array_equal(v.numpy(), old[k].numpy(), err_msg=k)
    with pytest.raises(ValueError, match="head"):
        transfer.with_new_head(pre, 3, "everything")


@pytest.mark.parametrize("frozen_head", ["output", "classifier"])
def test_freezing_leaves_the_feature_extractor_unchanged(frozen_head):
    lamina.manual_seed(0)
    pre = LeNet5(n_classes=5)
    model, opt = transfer.adapt(pre, "frozen", 5, lr=0.1, frozen_head=frozen_head,
                                weight_decay=1e-2)
    backbone, head = transfer.split_parameters(model, frozen_head)
    assert backbone and head and all(not p.requires_grad for p in backbone)
    assert all(p.requires_grad for p in head)
    b0, h0 = _snapshot(backbone), _snapshot(head)
    _fit(model, opt)
    for p, before in zip(backbone, b0):      # momentum and weight decay skipped too
        np.testing.assert_array_equal(p.numpy(), before)
    assert any(not np.array_equal(p.numpy(), before) for p, before in zip(head, h0))
    pre_backbone, _ = transfer.split_parameters(pre, frozen_head)
    for p, q in zip(backbone, pre_backbone):  # ...and equal to the pretrained layers
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_finetuning_trains_everything_with_a_scaled_backbone_rate():
    lamina.manual_seed(0)
    pre = LeNet5(n_classes=5)
    model, opt = transfer.adapt(pre, "finetune", 5, lr=0.1, backbone_lr_scale=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, pytest.approx(0.01)]
    backbone, head = transfer.split_parameters(model, "output")
    assert all(p.requires_grad for p in backbone + head)
    b0 = _snapshot(backbone)
    _fit(model, opt, epochs=1)
    assert all(not np.array_equal(p.numpy(), before) for p, before in zip(backbone, b0))
    lamina.manual_seed(5)                    # (the Trainer re-seeded with 0, as for `pre`)
    scratch, opt = transfer.adapt(pre, "scratch", 5, lr=0.1, backbone_lr_scale=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    assert not np.array_equal(scratch.features[0].weight.numpy(), pre.features[0].weight.numpy())
    with pytest.raises(ValueError, match="mode"):
        transfer.adapt(pre, "linear-probe", 5, lr=0.1)


@needs_fashion
def test_transfer_splits_are_few_shot_and_disjoint_by_class():
    from lamina.data import load_fashion_mnist
    d = transfer.transfer_splits(seed=0, n_per_class=50, subset=2000)
    x, y = d["target_train"]
    assert x.shape == (250, 1, 28, 28) and np.bincount(y).tolist() == [50] * 5
    assert len(d["source_train"][0]) == 2000 and set(d["source_train"][1].tolist()) == set(range(5))
    # standardized with the source images' statistics
    xs = d["source_train"][0]
    assert abs(float(xs.mean())) < 1e-3 and abs(float(xs.std()) - 1) < 1e-3
    # every target test image is one of classes 5-9 of the test split, in order
    _, yt = load_fashion_mnist("test")
    assert np.array_equal(d["target_test"][1], yt[np.isin(yt, transfer.TARGET_CLASSES)][:1000] - 5)
    again = transfer.transfer_splits(seed=0, n_per_class=50, subset=2000)["target_train"]
    np.testing.assert_array_equal(again[0], x)          # the 250 images are fixed by the seed


@needs_fashion
def test_transfer_quick_beats_chance_and_transfer_is_not_worse_than_scratch(tmp_path):
    r = transfer.RECIPE
    assert r.name == "transfer"
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    acc = {m: res[f"{m}_accuracy"] for m in transfer.MODES}
    assert res["pretrain"]["test_accuracy"] >= 0.75          # 5 source classes
    assert min(acc.values()) >= 0.6, acc                      # chance is 0.2
    assert acc["frozen"] >= acc["scratch"] - 0.1, acc
    assert acc["finetune"] >= acc["scratch"] - 0.1, acc
    assert os.path.isfile(tmp_path / "results.json")
    # each stage's checkpoint names its stage, so a fresh recipe (as `lamina eval` does)
    # rebuilds that stage's model and test split and scores the checkpoint
    ck = lamina.load(str(tmp_path / "frozen" / "last.safetensors"))
    cfg = dict(ck["config"])
    assert cfg.pop("recipe") == "transfer" and cfg["stage"] == "frozen"
    fresh = transfer.TransferRecipe()
    s = fresh.setup(fresh.config(cfg))
    s.model.load_state_dict(ck["model"])
    got = Trainer(metrics=s.metrics, verbose=False).evaluate(s.test, model=s.model,
                                                             loss_fn=s.loss_fn)
    assert got["accuracy"] == pytest.approx(acc["frozen"])


# ---------------------------------------------------------------- inspection helpers
def _linear_model(seed=0, n_in=16, n_out=3):
    lamina.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))


def _analytic_input_gradient(model, x, y):
    """d sum CE / dx of a Flatten-Linear model: (softmax(z) - onehot) @ W, reshaped."""
    lin = model[1]
    w, b = lin.weight.numpy().astype(np.float64), lin.bias.numpy().astype(np.float64)
    z = x.reshape(len(x), -1) @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return (p @ w).reshape(x.shape)


def test_fgsm_perturbation_has_max_norm_eps_and_the_gradients_sign():
    model = _linear_model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    sign = inspect_cnn.loss_gradient_sign(model, x, y, batch_size=3)
    np.testing.assert_array_equal(sign, np.sign(_analytic_input_gradient(model, x, y)))
    assert model.training                    # mode restored
    assert all(p.grad is None or not np.any(p.grad.numpy()) for p in model.parameters())
    for eps in (0.05, 0.3):
        adv = inspect_cnn.fgsm(x, sign, eps)
        delta = adv - x
        assert adv.dtype == np.float32
        assert np.abs(delta).max() == pytest.approx(eps, rel=1e-5)
        np.testing.assert_allclose(np.abs(delta), eps, rtol=1e-4)   # every pixel moves by eps
        np.testing.assert_array_equal(np.sign(delta), sign)
    clipped = inspect_cnn.fgsm(x, sign, 0.5, lo=-0.2, hi=0.2)
    assert clipped.min() >= -0.2 and clipped.max() <= 0.2
    # the loss goes up
    loss = lambda a: F.cross_entropy(model(lamina.from_numpy(a)), lamina.from_numpy(y)).item()
    assert loss(inspect_cnn.fgsm(x, sign, 0.1)) > loss(x)


def test_saliency_is_the_absolute_logit_gradient():
    model = _linear_model(seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0])
    sal = inspect_cnn.saliency(model, x, y)
    w = model[1].weight.numpy()
    assert sal.shape == x.shape and np.all(np.isfinite(sal))
    np.testing.assert_allclose(sal, np.abs(w[y]).reshape(x.shape), rtol=1e-6)


def test_pca_2d_is_the_closed_form_projection():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((300, 5)) * np.array([5.0, 2.0, 0.5, 0.2, 0.1]) + 3.0
    coords, ratios = inspect_cnn.pca_2d(h)
    cov = np.cov(h - h.mean(0), rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, ::-1][:, :2]
    ref = (h - h.mean(0)) @ top
    np.testing.assert_allclose(np.abs(coords), np.abs(ref), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ratios, vals[::-1][:2] / vals.sum(), rtol=1e-6)
    assert ratios[0] > 0.8


def test_pixel_affine_recovers_the_standardization():
    from lamina.data.transforms import Standardize
    raw = np.random.default_rng(0).random((20, 1, 6, 6)).astype(np.float32)
    raw[0, 0, 0, 0], raw[0, 0, 0, 1] = 0.0, 1.0
    norm = Standardize.fit(raw)
    scale, offset = inspect_cnn.pixel_affine(raw, norm(raw))
    assert scale == pytest.approx(1 / float(norm.std), rel=1e-5)
    assert offset == pytest.approx(-float(norm.mean) / float(norm.std), rel=1e-5)


def test_penultimate_and_first_filters_of_lenet():
    net = LeNet5()
    assert inspect_cnn.first_layer_filters(net).shape == (6, 1, 5, 5)
    with lamina.no_grad():
        assert inspect_cnn.penultimate(net)(lamina.zeros(3, 1, 28, 28)).shape == (3, 84)


@needs_fashion
def test_inspect_quick_writes_the_figures_and_fgsm_fools_the_network(tmp_path):
    r = inspect_cnn.RECIPE
    assert r.name == "inspect"
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    for f in ("filters.png", "embedding_pca.png", "saliency.png", "fgsm_examples.png",
              "fgsm_accuracy.png", "results.json", "saliency.npy"):
        assert os.path.getsize(tmp_path / f) > 1000 if f.endswith(".png") else \
            os.path.isfile(tmp_path / f), f
    acc = res["fgsm"]["accuracy"]
    assert res["fgsm"]["epsilons"][0] == 0 and acc[0] == res["train"]["test_accuracy"]
    assert acc[0] >= 0.65                               # chance is 0.1
    assert acc[-1] < acc[0] - 0.2                       # the largest eps fools it
    sal = np.load(tmp_path / "saliency.npy")
    assert sal.shape == (10, 1, 28, 28) and np.all(np.isfinite(sal)) and sal.max() > 0
    np.testing.assert_array_equal(sal, r.saliency_maps)
    assert 0 < sum(res["pca_explained_variance"]) <= 1
    # the same analysis of the checkpoint the run wrote (no training)
    ckpt = str(tmp_path / "train" / "best.safetensors")
    again = r.run(r.config({"checkpoint": ckpt, "epsilons": [0.0]}, quick=True),
                  verbose=False, log=lambda m: None)
    assert "train" not in again and again["accuracy_eps_0"] == pytest.approx(acc[0])
