"""lenet5: LeNet-5 (LeCun et al. 1998) on Fashion-MNIST, in two variants.

- ``1998``: tanh units and average pooling ("subsampling"), as in the paper (without its
  sparse C3 connection table and RBF output layer);
- ``modern``: ReLU and max pooling.

conv 5×5 (1→6, padding 2, so 28×28 acts like the paper's 32×32 input) → pool 2 →
conv 5×5 (6→16) → pool 2 → FC 400→120 → 84 → 10. SGD with momentum and a cosine learning-rate
schedule; 5,000 training images held out for validation. Target: modern ≥ 90% test accuracy.
"""
import os

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset
from lamina.nn import functional as F

from .fashion_mlp import fashion_splits
from .recipe import Recipe, Setup, save_results


class LeNet5(nn.Module):
    """(N, 1, 28, 28) images -> (N, n_classes) logits. ``variant``: 'modern' (ReLU, max
    pooling) or '1998' (tanh, average pooling)."""

    def __init__(self, n_classes=10, variant="modern", in_channels=1):
        super().__init__()
        if variant not in ("modern", "1998"):
            raise ValueError(f"LeNet5: variant must be 'modern' or '1998', got {variant!r}")
        act = nn.ReLU if variant == "modern" else nn.Tanh
        pool = nn.MaxPool2d if variant == "modern" else nn.AvgPool2d
        self.variant = variant
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), act(), pool(2),
            nn.Conv2d(6, 16, 5), act(), pool(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(400, 120), act(), nn.Linear(120, 84), act(),
            nn.Linear(84, n_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = fashion_splits(cfg["seed"], flatten=False, subset=cfg["subset"])
    model = LeNet5(variant=cfg["variant"])
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9,
                           weight_decay=cfg["weight_decay"])
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"])
    sched = None
    if cfg["schedule"] == "cosine":
        sched = lamina.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
    elif cfg["schedule"] != "constant":
        raise ValueError(f"lenet5: schedule must be 'cosine' or 'constant', got "
                         f"{cfg['schedule']!r}")
    return Setup(model, F.cross_entropy, opt, loader, val, test, scheduler=sched,
                 callbacks=[lamina.train.EarlyStopping("val_loss", patience=cfg["epochs"])])


class LeNetRecipe(Recipe):
    name = "lenet5"
    summary = "LeNet-5 on Fashion-MNIST, 1998 (tanh, avg-pool) and modern (ReLU, max-pool); modern >= 90%"
    defaults = dict(epochs=12, lr=0.05, weight_decay=5e-4, batch_size=128, seed=0,
                    variant="both", subset=0, schedule="cosine")
    quick = dict(epochs=3, subset=4000, batch_size=64)
    search_space = {"lr": ("loguniform", 1e-2, 2e-1)}
    target = ("accuracy", 0.90)

    def setup(self, cfg):
        if cfg["variant"] == "both":
            cfg = {**cfg, "variant": "modern"}
        return setup(cfg)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if cfg["variant"] != "both":
            return super().run(cfg, out_dir, resume, verbose, log, callbacks)
        results = {"recipe": self.name, "config": cfg}
        for variant in ("1998", "modern"):
            log(f"--- LeNet-5, {variant} variant")
            sub = os.path.join(out_dir, variant) if out_dir is not None else None
            res = super().run({**cfg, "variant": variant}, sub, None, verbose, log, callbacks)
            results[variant] = {k: v for k, v in res.items() if k != "config"}
        log("test accuracy: " + ", ".join(f"{v} {results[v]['test_accuracy'] * 100:.2f}%"
                                          for v in ("1998", "modern")))
        save_results(out_dir, results)
        return results


RECIPE = LeNetRecipe()
