"""inception: a small network of Inception modules (Szegedy et al. 2014) on
Fashion-MNIST.

A 3×3 conv stem (BN, ReLU) and 2×2 max pooling (28 -> 14), two Inception modules at
14×14, max pooling (-> 7), two more at 7×7, global average pooling, dropout and a linear
classifier. Every module concatenates a 1×1 branch, 1×1-reduce→3×3, 1×1-reduce→5×5 and
3×3 max pool→1×1 projection (batch norm after every conv). Trained like vgg-small
(augmentation, SGD + Nesterov under 1cycle, 5,000 validation images). Target: ≥ 91% test
accuracy.
"""
import lamina
from lamina import nn

from .recipe import Recipe
from .vgg import fashion_cnn_setup


def module_widths(cout):
    """Branch widths (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) of an Inception module
    with ``cout`` output channels (divisible by 8), in the proportions of GoogLeNet's
    module 3a: 1×1 1/4, 3×3 1/2 (reduced to 3/8 first), 5×5 1/8 (reduced to 1/16 first),
    pool projection 1/8 of ``cout``."""
    if cout % 8:
        raise ValueError(f"InceptionNet: module widths must be multiples of 8, got {cout}")
    e = cout // 8
    return 2 * e, 3 * e, 4 * e, max(1, e // 2), e, e


class InceptionNet(nn.Module):
    """(N, in_channels, H, W) -> (N, n_classes) logits.

    Stem: 3×3 conv (-> ``stem``) - BN - ReLU - 2×2 max pool. Then for each stage in
    ``stages`` (a tuple of tuples of module output widths), its Inception modules
    (:class:`~lamina.nn.InceptionModule` with batch norm, widths from
    :func:`module_widths`), 2×2 max pooling between stages. Head: global average pooling,
    dropout ``dropout``, linear."""

    def __init__(self, n_classes=10, in_channels=1, stem=24, stages=((32, 48), (64, 96)),
                 dropout=0.2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU(), nn.MaxPool2d(2))
        layers, cin = [], stem
        for i, stage in enumerate(stages):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for cout in stage:
                layers.append(nn.InceptionModule(cin, *module_widths(cout), norm=True))
                cin = cout
        self.stages = tuple(tuple(s) for s in stages)
        self.inception = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin, n_classes))

    def forward(self, x):
        return self.head(self.inception(self.stem(x)))


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    model = InceptionNet(stem=cfg["stem"], stages=tuple(tuple(s) for s in cfg["stages"]),
                         dropout=cfg["dropout"])
    return fashion_cnn_setup(cfg, model)


RECIPE = Recipe(
    name="inception",
    summary="small Inception network (4 modules) on Fashion-MNIST (>= 91% test accuracy)",
    defaults=dict(epochs=6, lr=0.1, weight_decay=5e-4, batch_size=128, seed=0, stem=24,
                  stages=[[32, 48], [64, 96]], dropout=0.2, augment=True, subset=0),
    quick=dict(epochs=2, subset=2000, batch_size=64),
    search_space={"lr": ("loguniform", 2e-2, 3e-1), "dropout": ("uniform", 0.0, 0.4),
                  "weight_decay": ("loguniform", 1e-5, 2e-3)},
    target=("accuracy", 0.91),
    setup=setup,
)
