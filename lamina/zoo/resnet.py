"""resnet: a small ResNet (He et al. 2015) on Fashion-MNIST, and the notes' depth
experiment — a deep plain network against the same network with residual connections.

The ResNet: a 3×3 conv stem (BN, ReLU), stages of basic residual blocks (the first block
of every later stage halves the resolution and doubles the width through a strided,
projection-shortcut block), global average pooling and a linear classifier. Trained like
vgg-small: augmented batches (random crop of the 2-pixel-padded image, horizontal flip),
SGD with Nesterov momentum under the 1cycle schedule, 5,000 training images held out
for validation. Target: ≥ 92% test accuracy.

The depth experiment trains two networks of the same depth — ``depth_blocks`` blocks of
two 3×3 conv-BN layers at one width, so 2·depth_blocks + 2 weight layers — that differ
only in the identity shortcuts (:class:`PlainNet` has none), on ``depth_subset`` training
images for ``depth_epochs`` epochs without augmentation, with the same schedule and seed.
Both training-loss curves (per batch, smoothed) go into ``depth_experiment.png``; the
results say which reached the lower training loss. Expected (He et al.'s degradation
problem): the plain net trains worse.
"""
import os

import numpy as np

import lamina
from lamina import nn
from lamina.train import Callback
from lamina.train.callbacks import save_figure

from .recipe import Recipe, save_results
from .vgg import fashion_cnn_setup


class ResNetSmall(nn.Module):
    """(N, in_channels, H, W) -> (N, n_classes) logits.

    Stem: 3×3 conv (``in_channels`` -> ``widths[0]``, stride ``stem_stride``) - BN - ReLU,
    then 2×2 max pooling if ``stem_pool``. Stage i: ``blocks[i]`` basic
    :class:`~lamina.nn.ResidualBlock`\\ s of width ``widths[i]``, the first with stride 2
    for i > 0 (projection shortcut). Head: global average pooling and a linear layer.
    ``residual=False`` drops every shortcut (the plain network of the same depth).
    Depth in weight layers: ``depth`` = 1 + 2·sum(blocks) + 1."""

    def __init__(self, n_classes=10, in_channels=1, widths=(16, 32, 64), blocks=(1, 1, 1),
                 stem_stride=1, stem_pool=False, residual=True):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"{type(self).__name__}: widths {tuple(widths)} and blocks "
                             f"{tuple(blocks)} need one entry per stage")
        self.widths, self.blocks, self.residual = tuple(widths), tuple(blocks), residual
        self.depth = 2 + 2 * sum(blocks)
        stem = [nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1,
                          bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        if stem_pool:
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        layers, cin = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(nn.ResidualBlock(cin, width, stride=stride, kind="basic",
                                               residual=residual))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, n_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


class PlainNet(ResNetSmall):
    """:class:`ResNetSmall` without shortcuts: the same layers and depth, every block a
    plain conv-BN-ReLU-conv-BN-ReLU stack (the notes' "plain network")."""

    def __init__(self, n_classes=10, in_channels=1, widths=(16, 32, 64), blocks=(1, 1, 1),
                 stem_stride=1, stem_pool=False):
        super().__init__(n_classes, in_channels, widths, blocks, stem_stride, stem_pool,
                         residual=False)


def depth_pair(depth_blocks, width, n_classes=10, in_channels=1):
    """(plain, residual): the depth experiment's two networks, both with a strided stem
    (28 -> 14 -> 7 with the max pool) and ``depth_blocks`` blocks of width ``width``."""
    kw = dict(n_classes=n_classes, in_channels=in_channels, widths=(width,),
              blocks=(depth_blocks,), stem_stride=2, stem_pool=True)
    return PlainNet(**kw), ResNetSmall(**kw)


NETS = ("resnet", "deep-plain", "deep-residual")


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    net = cfg["net"]
    if net == "resnet":
        model = ResNetSmall(widths=tuple(cfg["widths"]), blocks=tuple(cfg["blocks"]),
                            stem_pool=cfg["stem_pool"])
    elif net in ("deep-plain", "deep-residual"):
        model = depth_pair(cfg["depth_blocks"], cfg["depth_width"])[net == "deep-residual"]
    else:
        raise ValueError(f"resnet recipe: net must be one of {', '.join(NETS)}, got {net!r}")
    return fashion_cnn_setup(cfg, model)


class BatchLosses(Callback):
    """Collects the training loss of every batch."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, trainer, step, logs):
        self.losses.append(float(logs["loss"]))

    def state_dict(self):
        return {"losses": list(self.losses)}

    def load_state_dict(self, state):
        self.losses = list(state["losses"])


def smooth(values, window):
    """Running mean over the last ``window`` values (shorter at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.concatenate([[0.0], v]))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_depth_experiment(curves, path, title):
    """One PNG: per-batch training loss (faint) and its running mean for each network in
    ``curves`` ({label: list of batch losses}); matplotlib's Agg backend, written
    atomically."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for (label, losses), color in zip(curves.items(), ("tab:red", "tab:blue", "tab:green")):
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, color=color, alpha=0.25, lw=0.8)
        ax.plot(steps, smooth(losses, max(1, len(losses) // 20)), color=color, lw=2,
                label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


class ResNetRecipe(Recipe):
    name = "resnet"
    summary = ("small ResNet (basic blocks) on Fashion-MNIST (>= 92%), and deep plain vs "
               "residual nets of the same depth (depth_experiment.png)")
    defaults = dict(epochs=8, lr=0.1, weight_decay=5e-4, batch_size=128, seed=0,
                    widths=[24, 48, 96], blocks=[1, 1, 1], stem_pool=True, augment=True,
                    subset=0, net="resnet", depth_experiment=True, depth_blocks=10,
                    depth_width=16, depth_subset=10000, depth_epochs=3, depth_lr=0.05)
    quick = dict(epochs=2, subset=2000, batch_size=64, depth_blocks=5, depth_subset=1280,
                 depth_epochs=2)
    search_space = {"lr": ("loguniform", 2e-2, 3e-1),
                    "weight_decay": ("loguniform", 1e-5, 2e-3)}
    target = ("accuracy", 0.92)

    def setup(self, cfg):
        return setup(cfg)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if cfg["net"] != "resnet" or not cfg["depth_experiment"]:
            return super().run(cfg, out_dir, resume, verbose, log, callbacks)
        log("--- ResNet")
        main = super().run(cfg, out_dir, resume, verbose, log, callbacks)
        results = {"recipe": self.name, **{k: v for k, v in main.items() if k != "config"}}
        depth = {}
        curves = {}
        for net in ("deep-plain", "deep-residual"):
            sub_cfg = {**cfg, "net": net, "epochs": cfg["depth_epochs"], "lr": cfg["depth_lr"],
                       "subset": cfg["depth_subset"], "augment": False}
            log(f"--- depth experiment: {net}, {2 * cfg['depth_blocks'] + 2} weight layers")
            losses = BatchLosses()
            sub = os.path.join(out_dir, net) if out_dir is not None else None
            res = super().run(sub_cfg, sub, None, verbose, log, list(callbacks) + [losses])
            hist = self.history
            depth[net] = {**{k: v for k, v in res.items() if k != "config"},
                          "train_loss": [h["loss"] for h in hist],
                          "train_accuracy": [h.get("accuracy") for h in hist],
                          "val_accuracy": [h.get("val_accuracy") for h in hist],
                          "final_train_loss": hist[-1]["loss"],
                          "batch_losses": losses.losses}
            curves[f"{net} ({2 * cfg['depth_blocks'] + 2} layers)"] = losses.losses
        better = min(("deep-plain", "deep-residual"),
                     key=lambda n: depth[n]["final_train_loss"])
        depth["depth"] = 2 * cfg["depth_blocks"] + 2
        depth["trains_better"] = better
        log(f"depth experiment: final training loss plain "
            f"{depth['deep-plain']['final_train_loss']:.4f}, residual "
            f"{depth['deep-residual']['final_train_loss']:.4f}: {better} trains better")
        if out_dir is not None:
            path = os.path.join(out_dir, "depth_experiment.png")
            plot_depth_experiment(curves, path, f"Fashion-MNIST, {depth['depth']}-layer "
                                  f"networks: plain vs residual")
            depth["png"] = "depth_experiment.png"
        results["depth_experiment"] = depth
        results["config"] = cfg
        save_results(out_dir, results)
        self.depth_results = depth
        return results


RECIPE = ResNetRecipe()
