"""fashion-mlp: an MLP with dropout on Fashion-MNIST (28×28 clothing images, 10 classes).

784 standardized pixels -> 256 ReLU -> dropout -> 128 ReLU -> dropout -> 10 logits,
SGD with Nesterov momentum and a cosine-free step schedule; 5,000 training images held
out for validation. Fashion-MNIST is read from the IDX files lamina finds offline
(``apt-get install dataset-fashion-mnist``) or downloads. Target: ≥ 88% test accuracy.
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset, load_fashion_mnist
from lamina.data.transforms import Standardize
from lamina.nn import functional as F

from .recipe import Recipe, Setup


class MLP(nn.Module):
    """(N, n_in) -> (N, n_out) logits: Linear-ReLU-Dropout blocks, then a linear head."""

    def __init__(self, n_in=784, hidden=(256, 128), n_out=10, dropout=0.2):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def fashion_splits(seed=0, n_val=5000, flatten=True, subset=None):
    """Standardized Fashion-MNIST: (train, val, test) as (x float32, y int64) pairs, the
    statistics from the training part only. ``subset`` keeps the first n of each split
    (after shuffling) for quick runs."""
    x, y = load_fashion_mnist("train", flatten=flatten)
    xt, yt = load_fashion_mnist("test", flatten=flatten)
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    if subset:
        train, val = train[:subset], val[:max(subset // 5, 100)]
        xt, yt = xt[:subset // 2], yt[:subset // 2]
    norm = Standardize.fit(x[train])
    return (norm(x[train]), y[train]), (norm(x[val]), y[val]), (norm(xt), yt)


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = fashion_splits(cfg["seed"], subset=cfg["subset"])
    model = MLP(hidden=tuple(cfg["hidden"]), dropout=cfg["dropout"])
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True,
                           weight_decay=cfg["weight_decay"])
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"])
    return Setup(model, F.cross_entropy, opt, loader, val, test,
                 callbacks=[lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])


RECIPE = Recipe(
    name="fashion-mlp",
    summary="MLP 784-256-128-10 with dropout on Fashion-MNIST (>= 88% test accuracy)",
    defaults=dict(epochs=15, lr=0.02, weight_decay=1e-4, dropout=0.2, batch_size=128, seed=0,
                  hidden=[256, 128], subset=0),
    quick=dict(epochs=3, subset=6000),
    search_space={"lr": ("loguniform", 3e-3, 1e-1), "dropout": ("uniform", 0.0, 0.5),
                  "weight_decay": ("loguniform", 1e-6, 1e-3)},
    target=("accuracy", 0.88),
    setup=setup,
)
