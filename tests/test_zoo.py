"""The README's main job: the digits recipes and the Fashion-MNIST MLP recipe."""
import os

import pytest

from lamina.data import load_digits
from lamina.zoo import get_recipe


def test_digits_split_is_fixed_and_disjoint():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert xtr.shape == (1438, 64) and xte.shape == (359, 64)
    assert xtr.dtype.name == "float32" and ytr.dtype.name == "int64"
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert set(ytr.tolist()) == set(range(10))
    rows = {r.tobytes() for r in xtr}
    assert not any(r.tobytes() in rows for r in xte)


def test_digits_mlp_default_config_reaches_97_percent(tmp_path):
    r = get_recipe("digits-mlp")
    lines = []
    res = r.run(r.config(), out_dir=tmp_path, log=lines.append)
    assert res["test_accuracy"] >= 0.97
    assert len([ln for ln in lines if ln.startswith("epoch")]) == 30
    assert lines[-1].startswith("test accuracy")
    for f in ("best.safetensors", "last.safetensors", "log.csv", "train.log", "curves.png",
              "results.json"):
        assert os.path.isfile(tmp_path / f), f


def test_recipe_config_rejects_unknown_settings():
    with pytest.raises(KeyError, match="no setting 'bogus'"):
        get_recipe("digits-mlp").config({"bogus": 1})


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_fashion_mlp_quick_is_well_above_chance(tmp_path):
    r = get_recipe("fashion-mlp")
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    assert res["test_accuracy"] >= 0.75          # chance is 0.10


def test_perceptron_recipe_quick_is_exact():
    r = get_recipe("perceptron")
    res = r.run(r.config(quick=True), log=lambda m: None)
    assert res["separable_accuracy"] == 1.0
    assert res["xor_perceptron_best_accuracy"] <= 0.75
    assert res["xor_mlp_accuracy"] == 1.0


def test_perceptron_rule_is_rosenblatts():
    import numpy as np
    from lamina.zoo import Perceptron
    p = Perceptron(2, lr=1.0)
    x = np.array([[1.0, 2.0], [-1.0, -1.0]])
    y = np.array([1, -1])
    assert p.epoch(x, y) == 1              # w = 0 misclassifies the first point only...
    np.testing.assert_array_equal(p.w.numpy(), [1.0, 2.0])
    assert p.b == 1.0                      # ...and the update is w += y x, b += y
    assert p.epoch(x, y) == 0


def test_digits_logreg_quick():
    r = get_recipe("digits-logreg")
    res = r.run(r.config(quick=True), verbose=False, log=lambda m: None)
    assert res["test_accuracy"] >= 0.93


def test_lenet5_variants_have_the_papers_shapes():
    import lamina
    from lamina.zoo import LeNet5
    for variant in ("modern", "1998"):
        net = LeNet5(variant=variant)
        assert net(lamina.zeros(2, 1, 28, 28)).shape == (2, 10)
        assert sum(p.numel() for p in net.parameters()) == 61706
    with pytest.raises(ValueError, match="variant"):
        LeNet5(variant="2025")


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed")
def test_lenet5_quick_is_well_above_chance():
    r = get_recipe("lenet5")
    res = r.run(r.config(quick=True), verbose=False, log=lambda m: None)
    assert res["modern"]["test_accuracy"] >= 0.65 and res["1998"]["test_accuracy"] >= 0.65


def test_polyfit_shows_under_and_overfitting_and_the_prior():
    r = get_recipe("polyfit")
    fits = r.run(r.config(quick=True), log=lambda m: None)["fits"]
    o1, o2, o9, o9_l2 = fits
    assert o1["val_mse"] > o2["val_mse"]                      # order 1 underfits
    assert o9["train_mse"] < o2["train_mse"] and o9["val_mse"] > 2 * o2["val_mse"]  # overfits
    assert o9_l2["val_mse"] < o9["val_mse"]                   # the prior helps


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not installed")
def test_multitask_quick_learns_both_heads():
    from lamina.zoo.multitask import SUPERCLASS
    assert SUPERCLASS.tolist() == [0, 1, 0, 1, 0, 2, 0, 2, 2, 2]
    r = get_recipe("multitask")
    res = r.run(r.config(quick=True), verbose=False, log=lambda m: None)
    assert res["test_class_accuracy"] >= 0.65 and res["test_super_accuracy"] >= 0.85
