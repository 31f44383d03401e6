"""unet: a U-Net-style encoder–decoder (Ronneberger et al. 2015) segmenting Fashion-MNIST
items on noisy canvases.

The task (:func:`segmentation_data`): each ``canvas``×``canvas`` image holds one
Fashion-MNIST item, placed at a random position and with a random contrast, under
Gaussian pixel noise; the target is the item's pixel mask (its clean pixels brighter than
``threshold``). Training canvases use items of the training split, the held-out canvases
items of the test split.

The network: an encoder of double 3×3 conv-BN-ReLU blocks with 2×2 max pooling, a
bottleneck, and a decoder that upsamples — by 2×2 transposed convolution
(``up="transpose"``) or by max-unpooling at the encoder's pooling switches after a 1×1
conv (``up="unpool"``, SegNet-style) — concatenates the encoder's feature map of the same
resolution (the skip connection) and applies another double conv; a 1×1 conv gives one
logit per pixel. Loss: per-pixel binary cross-entropy with logits. Reported: the IoU of
predicted (logit > 0) and true masks, averaged over the held-out canvases (``iou``,
target ≥ 0.85), the mean over the two classes item/background of the IoU pooled over all
pixels (``miou``) and pixel accuracy. ``segmentation.png`` shows held-out inputs, true
masks and predictions.
"""
import os

import numpy as np

import lamina
from lamina import nn
from lamina.data import DataLoader, TensorDataset, load_fashion_mnist
from lamina.data.transforms import Standardize
from lamina.nn import functional as F
from lamina.train.metrics import Metric
from lamina.train.callbacks import save_figure

from .recipe import Recipe, Setup, write_json


def double_conv(cin, cout):
    """(3×3 conv (padding 1, no bias) → BatchNorm2d → ReLU) twice."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """(N, in_channels, H, W) -> (N, out_channels, H, W) per-pixel logits, any H, W.

    ``depth`` poolings; level k has ``width * 2**k`` channels. ``up``: 'transpose'
    (ConvTranspose2d 2×2, stride 2) or 'unpool' (1×1 conv, then MaxUnpool2d with the
    indices of the encoder's MaxPool2d). Odd sizes are handled: each upsampling is sized
    to its skip connection's feature map."""

    def __init__(self, in_channels=1, out_channels=1, width=16, depth=2, up="transpose"):
        super().__init__()
        if up not in ("transpose", "unpool"):
            raise ValueError(f"UNet: up must be 'transpose' or 'unpool', got {up!r}")
        if depth < 1:
            raise ValueError(f"UNet: depth must be at least 1, got {depth}")
        self.up_mode, self.depth = up, depth
        ch = [width * 2 ** k for k in range(depth + 1)]
        self.encoder = nn.ModuleList([double_conv(in_channels if k == 0 else ch[k - 1], ch[k])
                                      for k in range(depth)])
        self.pool = nn.MaxPool2d(2, return_indices=up == "unpool")
        self.bottleneck = double_conv(ch[depth - 1], ch[depth])
        if up == "transpose":
            self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[k + 1], ch[k], 2, stride=2)
                                      for k in range(depth)])
        else:
            self.ups = nn.ModuleList([nn.Conv2d(ch[k + 1], ch[k], 1) for k in range(depth)])
            self.unpool = nn.MaxUnpool2d(2)
        self.decoder = nn.ModuleList([double_conv(2 * ch[k], ch[k]) for k in range(depth)])
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x):
        skips, switches = [], []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            if self.up_mode == "unpool":
                x, idx = self.pool(x)
                switches.append(idx)
            else:
                x = self.pool(x)
        x = self.bottleneck(x)
        for k in reversed(range(self.depth)):
            size = skips[k].shape[-2:]
            if self.up_mode == "transpose":
                x = self.ups[k](x, output_size=size)
            else:
                x = self.unpool(self.ups[k](x), switches[k], output_size=size)
            x = self.decoder[k](lamina.cat([x, skips[k]], dim=1))
        return self.head(x)


# ---------------------------------------------------------------------------- the task
def segmentation_data(images, n, canvas=48, noise=0.25, contrast=(0.5, 1.0), threshold=0.2,
                      seed=0):
    """``n`` noisy canvases with one item each, and the items' masks.

    images: (M, 1, 28, 28) in [0, 1] (Fashion-MNIST); canvas i uses image i mod M at a
    random position, multiplied by a random contrast in ``contrast``, plus N(0, noise²)
    noise on every pixel. mask: 1 where the clean item exceeds ``threshold``. Returns
    (x (n, 1, canvas, canvas) float32, mask (n, 1, canvas, canvas) float32)."""
    rng = np.random.default_rng(seed)
    item = images.shape[-1]
    if canvas < item:
        raise ValueError(f"segmentation_data: canvas {canvas} is smaller than the items "
                         f"({item}x{item})")
    x = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    mask = np.zeros_like(x)
    rows = rng.integers(0, canvas - item + 1, n)
    cols = rng.integers(0, canvas - item + 1, n)
    gain = rng.uniform(*contrast, n).astype(np.float32)
    for i in range(n):
        img = images[i % len(images)]
        r, c = rows[i], cols[i]
        x[i, :, r:r + item, c:c + item] = gain[i] * img
        mask[i, :, r:r + item, c:c + item] = img > threshold
    x += noise * rng.standard_normal(x.shape).astype(np.float32)
    return x, mask


def segmentation_splits(cfg):
    """(train, val, test) as (canvases, masks), standardized with the training canvases'
    scalar mean and std. Items: the training split's for train/val (disjoint), the test
    split's for test."""
    xtr, _ = load_fashion_mnist("train")
    xte, _ = load_fashion_mnist("test")
    order = np.random.default_rng(cfg["seed"]).permutation(len(xtr))
    n_train, n_val, n_test = cfg["n_train"], cfg["n_val"], cfg["n_test"]
    kw = dict(canvas=cfg["canvas"], noise=cfg["noise"], threshold=cfg["threshold"])
    train = segmentation_data(xtr[order[n_val:n_val + n_train]], n_train, seed=cfg["seed"],
                              **kw)
    val = segmentation_data(xtr[order[:n_val]], n_val, seed=cfg["seed"] + 1, **kw)
    test = segmentation_data(xte[:n_test], n_test, seed=cfg["seed"] + 2, **kw)
    norm = Standardize.fit(train[0])
    return [(norm(x), m) for x, m in (train, val, test)]


# ---------------------------------------------------------------------------- metrics
def _masks(output, target):
    out = output.numpy() if hasattr(output, "numpy") else np.asarray(output)
    tgt = target.numpy() if hasattr(target, "numpy") else np.asarray(target)
    return out > 0, tgt > 0.5


def iou_per_image(pred, true):
    """IoU of boolean masks (N, ...) image by image; 1 where both are empty."""
    axes = tuple(range(1, pred.ndim))
    inter = (pred & true).sum(axes)
    union = (pred | true).sum(axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


class MaskIoU(Metric):
    """Mean over images of the IoU of the predicted mask (logit > 0) and the true mask."""
    name = "iou"

    def update(self, output, target):
        pred, true = _masks(output, target)
        ious = iou_per_image(pred, true)
        self.total += float(ious.sum())
        self.count += len(ious)


class MeanIoU(Metric):
    """IoU of each class (item, background) over all pixels seen, averaged over the two."""
    name = "miou"

    def reset(self):
        self.counts = np.zeros(3)     # |fg ∩|, |fg ∪|, |bg ∩| ; bg ∪ follows from the total
        self.pixels = 0
        self.count = 0

    def update(self, output, target):
        pred, true = _masks(output, target)
        self.counts += [(pred & true).sum(), (pred | true).sum(), (~pred & ~true).sum()]
        self.pixels += pred.size
        self.count += len(pred)

    def compute(self):
        fg_i, fg_u, bg_i = self.counts
        bg_u = self.pixels - fg_i         # pixels not in both foregrounds
        return float((fg_i / max(fg_u, 1) + bg_i / max(bg_u, 1)) / 2)


class PixelAccuracy(Metric):
    name = "pixel_accuracy"

    def update(self, output, target):
        pred, true = _masks(output, target)
        self.total += float((pred == true).sum())
        self.count += pred.size


def plot_segmentation(x, mask, logits, path, n=6):
    """One PNG: ``n`` canvases (top), their true masks, the predicted probabilities and
    the predicted masks with each canvas's IoU. matplotlib Agg, written atomically."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    n = min(n, len(x))
    prob = 1 / (1 + np.exp(-logits[:n, 0]))
    pred = logits[:n] > 0
    ious = iou_per_image(pred, mask[:n] > 0.5)
    rows = [("input", x[:n, 0], "gray"), ("true mask", mask[:n, 0], "gray"),
            ("predicted probability", prob, "magma"), ("predicted mask", pred[:, 0], "gray")]
    fig = Figure(figsize=(1.8 * n, 1.9 * len(rows)), dpi=100)
    for r, (title, imgs, cmap) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(len(rows), n, r * n + i + 1)
            ax.imshow(imgs[i], cmap=cmap, vmin=None if r == 0 else 0, vmax=None if r == 0 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(title, fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel(f"IoU {ious[i]:.3f}", fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------------- recipe
def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = segmentation_splits(cfg)
    model = UNet(width=cfg["width"], depth=cfg["depth"], up=cfg["up"])
    opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"])
    sched = lamina.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], epochs=cfg["epochs"], steps_per_epoch=len(loader),
        pct_start=0.2)
    return Setup(model, F.binary_cross_entropy_with_logits, opt, loader, val, test,
                 metrics=(MaskIoU(), MeanIoU(), PixelAccuracy()), scheduler=sched,
                 scheduler_interval="step")


class UNetRecipe(Recipe):
    name = "unet"
    summary = ("U-Net (skip connections, transposed conv or unpooling) segmenting "
               "Fashion-MNIST items on noisy canvases (mean IoU >= 0.85)")
    defaults = dict(epochs=4, lr=0.01, batch_size=32, seed=0, width=8, depth=2,
                    up="transpose", canvas=48, noise=0.25, threshold=0.2,
                    n_train=8000, n_val=500, n_test=1000)
    quick = dict(epochs=2, n_train=640, n_val=64, n_test=128)
    search_space = {"lr": ("loguniform", 1e-3, 3e-2), "width": ("choice", [8, 16])}
    target = ("iou", 0.85)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        results = super().run(cfg, out_dir, resume, verbose, log, callbacks)
        log(f"held-out canvases: mean IoU {results['test_iou']:.4f} (per canvas), "
            f"{results['test_miou']:.4f} (item/background classes), pixel accuracy "
            f"{results['test_pixel_accuracy'] * 100:.2f}%")
        if out_dir is not None:
            x, mask = self._test
            logits = self.trainer.predict(x[:8])
            plot_segmentation(x, mask, logits, os.path.join(out_dir, "segmentation.png"))
            results["figure"] = "segmentation.png"
            write_json(os.path.join(out_dir, "results.json"), results)
        return results

    def setup(self, cfg):
        s = setup(cfg)
        self._test = s.test
        return s


RECIPE = UNetRecipe()
