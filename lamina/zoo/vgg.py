"""vgg-small: a VGG-style CNN (Simonyan & Zisserman 2014) with batch norm and dropout on
Fashion-MNIST, trained with data augmentation.

Three stages of 3×3 conv-BN-ReLU layers (1, 2 and 2 of them, 16, 32 and 64 channels, as
VGG's configuration A stacks one conv, then pairs), each followed by 2×2 max pooling
(28 → 14 → 7 → 3), then FC (with BN) → ReLU → dropout → 10 logits (dropout in the
classifier, as in VGG; optional dropout after each stage too). The training
batches are augmented: a random 28×28 crop of the image padded by 2 pixels (with the
background value) and a random horizontal flip. SGD with Nesterov momentum under the
1cycle schedule; 5,000 training images held out for validation. Target: ≥ 92% test
accuracy.
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset
from lamina.data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from lamina.nn import functional as F

from .fashion_mlp import fashion_splits
from .recipe import Recipe, Setup


def conv_bn_relu(cin, cout):
    """3×3 conv (padding 1, no bias) → BatchNorm2d → ReLU, as a list of layers."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class VGGSmall(nn.Module):
    """(N, in_channels, H, W) images -> (N, n_classes) logits.

    ``widths``: channels of each stage; every stage is ``convs_per_stage`` 3×3
    conv-BN-ReLU layers (one number for all stages, or one per stage), 2×2 max pooling
    and, if ``dropout`` > 0, dropout with that probability. The classifier is Flatten →
    Linear(→ ``hidden``) → BatchNorm1d → ReLU → Dropout(``dropout_fc``) → Linear.
    ``image_size`` (28 for Fashion-MNIST) fixes the classifier's input width."""

    def __init__(self, n_classes=10, in_channels=1, widths=(16, 32, 64),
                 convs_per_stage=(1, 2, 2), hidden=128, dropout=0.0, dropout_fc=0.3, image_size=28):
        super().__init__()
        if isinstance(convs_per_stage, int):
            convs_per_stage = (convs_per_stage,) * len(widths)
        if len(convs_per_stage) != len(widths) or min(convs_per_stage, default=0) < 1:
            raise ValueError(f"VGGSmall: need at least one conv per stage for each of the "
                             f"widths {tuple(widths)}, got convs_per_stage "
                             f"{tuple(convs_per_stage)}")
        layers, cin, size = [], in_channels, image_size
        for width, n_convs in zip(widths, convs_per_stage):
            for _ in range(n_convs):
                layers += conv_bn_relu(cin, width)
                cin = width
            layers.append(nn.MaxPool2d(2))
            size //= 2
            if dropout:
                layers.append(nn.Dropout(dropout))
        if size < 1:
            raise ValueError(f"VGGSmall: {len(widths)} poolings leave nothing of a "
                             f"{image_size}x{image_size} image")
        self.widths, self.convs_per_stage = tuple(widths), tuple(convs_per_stage)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * size * size, hidden, bias=False),
            nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout_fc),
            nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def augmentation(x_train, seed, padding=2, flip=True):
    """The training batches' augmentation: random crop of the image padded by
    ``padding`` pixels of background (the standardized value of a black pixel, the
    minimum of ``x_train``) and, if ``flip``, a random horizontal flip."""
    rng = np.random.default_rng(seed + 1000)
    steps = []
    if padding:
        steps.append(RandomCrop(x_train.shape[-1], padding=padding,
                                fill=float(x_train.min()), rng=rng))
    if flip:
        steps.append(RandomHorizontalFlip(rng=rng))
    if not steps:
        return None
    chain = Compose(steps)

    def batch_transform(batch):
        x, *rest = batch
        return (chain(x).astype(np.float32, copy=False), *rest)
    return batch_transform


def fashion_cnn_setup(cfg, model):
    """Everything but the model of the Fashion-MNIST CNN recipes (vgg-small, resnet,
    inception): augmented, shuffled training batches, SGD with Nesterov momentum and
    ``weight_decay`` under OneCycleLR (peak ``lr``, stepped every batch), validation on
    5,000 held-out images. ``cfg``: seed, subset, batch_size, epochs, lr, weight_decay,
    augment."""
    train, val, test = fashion_splits(cfg["seed"], flatten=False, subset=cfg["subset"])
    transform = augmentation(train[0], cfg["seed"]) if cfg["augment"] else None
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"], batch_transform=transform)
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True,
                           weight_decay=cfg["weight_decay"])
    sched = lamina.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], epochs=cfg["epochs"], steps_per_epoch=len(loader),
        pct_start=0.25)
    return Setup(model, F.cross_entropy, opt, loader, val, test, scheduler=sched,
                 scheduler_interval="step")


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    model = VGGSmall(widths=tuple(cfg["widths"]), convs_per_stage=tuple(cfg["convs"]),
                     hidden=cfg["hidden"],
                     dropout=cfg["dropout"], dropout_fc=cfg["dropout_fc"])
    return fashion_cnn_setup(cfg, model)


RECIPE = Recipe(
    name="vgg-small",
    summary="VGG-style CNN 16-32-64 with batch norm, dropout and augmentation on "
            "Fashion-MNIST (>= 92% test accuracy)",
    defaults=dict(epochs=10, lr=0.1, weight_decay=5e-4, batch_size=128, seed=0,
                  widths=[16, 32, 64], convs=[1, 2, 2], hidden=128, dropout=0.0,
                  dropout_fc=0.3, augment=True, subset=0),
    quick=dict(epochs=2, subset=3000, batch_size=64),
    search_space={"lr": ("loguniform", 2e-2, 3e-1), "dropout": ("uniform", 0.0, 0.3),
                  "weight_decay": ("loguniform", 1e-5, 2e-3)},
    target=("accuracy", 0.92),
    setup=setup,
)
