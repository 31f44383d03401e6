"""digits-logreg: multinomial logistic regression on the shipped 8×8 digits.

One linear layer 64 -> 10 and softmax cross-entropy (the notes' "logistic regression"
baseline before hidden layers), mini-batch SGD with momentum and a little weight decay.
Target: ≥ 95% test accuracy.
"""
import lamina
from lamina import nn
from lamina.nn import functional as F

from .digits_mlp import digits_splits
from .recipe import Recipe, Setup


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = digits_splits(cfg["seed"])
    model = nn.Linear(64, 10)
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                           weight_decay=cfg["weight_decay"])
    return Setup(model, F.cross_entropy, opt, train, val, test,
                 callbacks=[lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])


RECIPE = Recipe(
    name="digits-logreg",
    summary="logistic regression (one linear layer) on the shipped 8x8 digits (>= 95%)",
    defaults=dict(epochs=40, lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=32, seed=0),
    quick=dict(epochs=8),
    search_space={"lr": ("loguniform", 1e-2, 1.0), "weight_decay": ("loguniform", 1e-6, 1e-2)},
    target=("accuracy", 0.95),
    setup=setup,
)
