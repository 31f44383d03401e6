"""multitask: one network, two tasks, one additive loss (the notes' multi-task learning).

Fashion-MNIST images go through a shared convolutional trunk into two heads: the 10
classes, and a 3-way super-class — tops (T-shirt, pullover, coat, shirt), bottoms and
dresses (trouser, dress), footwear and bags (sandal, sneaker, bag, ankle boot). The loss
is λ₁·CE(classes) + λ₂·CE(super-classes); both test accuracies are reported.
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset
from lamina.nn import functional as F
from lamina.train.metrics import accuracy

from .fashion_mlp import fashion_splits
from .recipe import Recipe, Setup

#: class index -> super-class (0 tops, 1 bottoms/dresses, 2 footwear/bags)
SUPERCLASS = np.array([0, 1, 0, 1, 0, 2, 0, 2, 2, 2])
SUPERCLASS_NAMES = ("tops", "bottoms/dresses", "footwear/bags")


class TwoHeadCNN(nn.Module):
    """(N, 1, 28, 28) -> ((N, n_classes), (N, n_super)) logits from a shared trunk:
    conv 3×3 (1→16) ReLU pool → conv 3×3 (16→32) ReLU pool → FC 1568→128 ReLU."""

    def __init__(self, n_classes=10, n_super=3, width=16, hidden=128, dropout=0.25):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 49, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.classes = nn.Linear(hidden, n_classes)
        self.super_classes = nn.Linear(hidden, n_super)

    def forward(self, x):
        h = self.trunk(x)
        return self.classes(h), self.super_classes(h)


def two_labels(y):
    """(N,) class labels -> (N, 2) [class, super-class]."""
    return np.stack([y, SUPERCLASS[y]], 1)


def class_accuracy(out, target):
    return accuracy(out[0], np.asarray(target)[:, 0])


def super_accuracy(out, target):
    return accuracy(out[1], np.asarray(target)[:, 1])


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    (x, y), (xv, yv), (xt, yt) = fashion_splits(cfg["seed"], flatten=False,
                                                 subset=cfg["subset"])
    model = TwoHeadCNN(width=cfg["width"], dropout=cfg["dropout"])
    weights = (cfg["weight_classes"], cfg["weight_super"])
    criterion = nn.MultiTaskLoss(weights)

    def loss_fn(out, target):
        t = target.numpy()
        return criterion(F.cross_entropy(out[0], lamina.from_numpy(t[:, 0].copy())),
                         F.cross_entropy(out[1], lamina.from_numpy(t[:, 1].copy())))

    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9,
                           weight_decay=cfg["weight_decay"])
    loader = DataLoader(TensorDataset(x, two_labels(y)), batch_size=cfg["batch_size"],
                        shuffle=True, seed=cfg["seed"])
    return Setup(model, loss_fn, opt, loader, (xv, two_labels(yv)), (xt, two_labels(yt)),
                 metrics=(class_accuracy, super_accuracy),
                 callbacks=[lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])


RECIPE = Recipe(
    name="multitask",
    summary="Fashion-MNIST with two heads (10 classes + 3 super-classes), additive loss",
    defaults=dict(epochs=8, lr=0.05, weight_decay=5e-4, batch_size=128, seed=0, width=16,
                  dropout=0.25, weight_classes=1.0, weight_super=0.5, subset=0),
    quick=dict(epochs=2, subset=3000, batch_size=64),
    search_space={"lr": ("loguniform", 1e-2, 1e-1), "weight_super": ("uniform", 0.0, 1.0)},
    target=("class_accuracy", 0.90),
    setup=setup,
)
