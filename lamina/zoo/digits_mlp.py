"""digits-mlp: a multilayer perceptron on the 8×8 handwritten digits shipped with lamina.

64 inputs -> 128 ReLU -> 64 ReLU -> 10 logits, softmax cross-entropy, mini-batch SGD with
momentum, shuffled every epoch; 10% of the training images are held out for validation
(the best epoch's weights are kept). Target: ≥ 97% test accuracy.
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import load_digits
from lamina.nn import functional as F

from .recipe import Recipe, Setup


class DigitsMLP(nn.Module):
    """(N, 64) pixel vectors -> (N, 10) class logits."""

    def __init__(self, hidden=(128, 64), n_in=64, n_classes=10):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def digits_splits(seed=0, val_fraction=0.1):
    """((x, y) train, (x, y) validation, (x, y) test) of the shipped digits: the fixed
    test split of :func:`load_digits`, and a seeded hold-out from its training split."""
    x, y = load_digits("train")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val]), load_digits("test")


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = digits_splits(cfg["seed"])
    model = DigitsMLP(hidden=tuple(cfg["hidden"]))
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                           weight_decay=cfg["weight_decay"])
    return Setup(model, F.cross_entropy, opt, train, val, test,
                 callbacks=[lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])


RECIPE = Recipe(
    name="digits-mlp",
    summary="MLP 64-128-64-10 on the shipped 8x8 digits (>= 97% test accuracy)",
    defaults=dict(epochs=30, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=32, seed=0,
                  hidden=[128, 64]),
    quick=dict(epochs=5),
    search_space={"lr": ("loguniform", 3e-3, 3e-1), "batch_size": ("choice", [16, 32, 64]),
                  "momentum": ("choice", [0.0, 0.5, 0.9])},
    target=("accuracy", 0.97),
    setup=setup,
)
