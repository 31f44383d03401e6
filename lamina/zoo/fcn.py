"""fcn: a fully convolutional classifier on Fashion-MNIST, run as a sliding-window
detector on a larger canvas (the notes' "sliding-window ConvNet": fully connected
layers recast as convolutions, as in OverFeat).

The network has no fully connected layer. Its last feature convolution has a 5×5 kernel
that exactly covers the 5×5 feature map a 28×28 image leaves, so on a 28×28 input it
produces one vector of class scores (a 1×1 map) — what a fully connected layer would —
and global average pooling turns the map into logits. The convolutions are unpadded, so
on a larger input (any size ≥ 28×28) the same network computes, in one pass, the class
scores of *every* 28×28 window at a stride of 4 pixels (its two 2×2 poolings): position
(i, j) of :meth:`FCN.score_map` equals the network applied to the crop whose top-left
corner is (4i, 4j). ``forward`` pools that map into one prediction per image.

The recipe trains it as an ordinary 28×28 classifier (SGD with Nesterov momentum, 5,000
training images held out for validation), reports the test accuracy, then places
several test items at known (random, non-overlapping) positions on blank canvases,
computes the score map of each canvas, and checks whether the arg-max class of the map
at each item's centre (the window nearest to the item) is the item's label. Training
batches are shifted by up to 2 pixels, since an item can sit up to 2 pixels off the
nearest window. ``heatmap.png`` shows the first canvas, the arg-max class map (brightness:
its softmax probability) and the probability of each placed item's true class.
Target: ≥ 90% test accuracy.
"""
import os

import numpy as np

import lamina
from lamina import nn
from lamina.data import FASHION_CLASSES, DataLoader, TensorDataset
from lamina.data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from lamina.nn import functional as F
from lamina.train.callbacks import save_figure

from .fashion_mlp import fashion_splits
from .recipe import Recipe, Setup, write_json


class FCN(nn.Module):
    """Fully convolutional classifier: (N, in_channels, H, W) with H, W ≥ 28 ->
    (N, n_classes) logits (global average pooling of :meth:`score_map`).

    conv 5×5 (→ ``widths[0]``) BN ReLU, max-pool 2 → conv 3×3 (→ ``widths[1]``) BN ReLU,
    max-pool 2 → conv 5×5 (→ ``hidden``; the "fully connected layer as a convolution")
    BN ReLU, dropout → conv 1×1 (→ ``n_classes``). No padding anywhere: the receptive
    field is :attr:`window` = 28 pixels and the map's stride :attr:`stride` = 4."""

    window = 28
    stride = 4

    def __init__(self, n_classes=10, in_channels=1, widths=(24, 48), hidden=96, dropout=0.3):
        super().__init__()
        w1, w2 = widths
        self.n_classes = n_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w1, 5, bias=False), nn.BatchNorm2d(w1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, bias=False), nn.BatchNorm2d(w2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w2, hidden, 5, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Dropout(dropout))
        self.scores = nn.Conv2d(hidden, n_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def map_size(self, h, w):
        """Spatial size of the score map for an h×w input."""
        def one(n):
            return (((n - 4) // 2 - 2) // 2 - 4)
        return one(h), one(w)

    def score_map(self, x):
        """(N, C, H, W) -> (N, n_classes, (H - 28) // 4 + 1, (W - 28) // 4 + 1): the class
        scores (logits) of the 28×28 window at each position, stride 4."""
        h, w = x.shape[-2:]
        if h < self.window or w < self.window:
            raise ValueError(f"FCN: input must be at least {self.window}x{self.window}, got "
                             f"shape {tuple(x.shape)}")
        return self.scores(self.features(x))

    def forward(self, x):
        return self.pool(self.score_map(x)).flatten(1)

    def window_origin(self, i, j):
        """Top-left pixel of the input window that map position (i, j) scores."""
        return self.stride * i, self.stride * j


# ---------------------------------------------------------------------------- canvases
def make_canvases(images, labels, n_canvases, size, n_items, background, seed,
                  align=FCN.stride):
    """Blank ``size``×``size`` canvases (value ``background``) with ``n_items``
    non-overlapping 28×28 items each, drawn in order from ``images`` (N, 1, 28, 28).
    Top-left corners are random multiples of ``align`` pixels (with ``align`` = 4, the
    map's stride, each item is exactly one of the score map's windows; with 1, up to 2
    pixels off the nearest one). Returns (canvases (n, 1, size, size) float32, placements:
    per canvas a list of (row, col, label))."""
    rng = np.random.default_rng(seed)
    item = images.shape[-1]
    slots = (size - item) // align + 1
    canvases = np.full((n_canvases, 1, size, size), background, dtype=np.float32)
    placements, k = [], 0
    for c in range(n_canvases):
        boxes = []
        for _ in range(1000):
            if len(boxes) == n_items:
                break
            r, col = (int(v) * align for v in rng.integers(0, slots, 2))
            if all(abs(r - r2) >= item or abs(col - c2) >= item for r2, c2, _ in boxes):
                idx = k % len(images)
                k += 1
                canvases[c, :, r:r + item, col:col + item] = images[idx]
                boxes.append((r, col, int(labels[idx])))
        if len(boxes) < n_items:
            raise ValueError(f"make_canvases: cannot place {n_items} items of {item}x{item} "
                             f"on a {size}x{size} canvas")
        placements.append(boxes)
    return canvases, placements


def nearest_position(row, col, map_shape, stride=FCN.stride):
    """The score map position whose window is closest to the item with top-left corner
    (row, col) — the map cell under the item's centre."""
    i = min(max(int(np.floor(row / stride + 0.5)), 0), map_shape[0] - 1)
    j = min(max(int(np.floor(col / stride + 0.5)), 0), map_shape[1] - 1)
    return i, j


def centre_predictions(model, canvases, placements):
    """(score maps (n, C, h, w) as softmax probabilities, per item (label, predicted
    class at the map position whose window is the item))."""
    was = model.training
    model.eval()
    try:
        with lamina.no_grad():
            logits = model.score_map(lamina.from_numpy(canvases)).numpy()
    finally:
        model.train(was)
    z = logits - logits.max(1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(1, keepdims=True)
    pairs = []
    for c, boxes in enumerate(placements):
        for r, col, label in boxes:
            i, j = nearest_position(r, col, probs.shape[2:], model.stride)
            pairs.append((label, int(probs[c, :, i, j].argmax())))
    return probs, pairs


def plot_heatmap(canvas, probs, boxes, path, stride=FCN.stride, window=FCN.window):
    """One PNG: the canvas with its items' boxes and labels; the arg-max class of the
    score map (colour: class, brightness: its probability), drawn at each window's centre;
    and the map of each item's true-class probability. matplotlib Agg, written atomically."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    size = canvas.shape[-1]
    n_cls, h, w = probs.shape
    # map position (i, j) scores the window centred at (4i + 14, 4j + 14); the cells drawn
    # cover [4i + 12, 4i + 16) so the map lines up with the canvas
    half = window / 2 - stride / 2
    extent = (half - 0.5, half + w * stride - 0.5, half + h * stride - 0.5, half - 0.5)
    cmap = colormaps["tab10"]
    cls = probs.argmax(0)
    conf = probs.max(0)
    rgb = cmap(cls % 10)[..., :3] * conf[..., None]
    fig = Figure(figsize=(14, 4.8), dpi=100)
    axes = [fig.add_subplot(1, 3, k + 1) for k in range(3)]
    axes[0].imshow(canvas[0], cmap="gray")
    axes[0].set_title("canvas: items and labels")
    for r, c, label in boxes:
        axes[0].add_patch(Rectangle((c - 0.5, r - 0.5), window, window, fill=False,
                                    ec=cmap(label % 10), lw=1.5))
        axes[0].text(c, r - 1, FASHION_CLASSES[label], color=cmap(label % 10), fontsize=8,
                     va="bottom")
    axes[1].imshow(canvas[0], cmap="gray", alpha=0.0)
    axes[1].imshow(rgb, extent=extent, interpolation="nearest")
    axes[1].set_xlim(-0.5, size - 0.5)
    axes[1].set_ylim(size - 0.5, -0.5)
    axes[1].set_facecolor("black")
    axes[1].set_title("sliding-window arg-max class (brightness = probability)")
    axes[1].legend(handles=[Patch(color=cmap(k % 10), label=FASHION_CLASSES[k])
                            for k in range(n_cls)], fontsize=6, loc="lower left",
                   bbox_to_anchor=(1.0, 0.0), frameon=False)
    true_prob = np.zeros((h, w))
    for r, c, label in boxes:
        true_prob = np.maximum(true_prob, probs[label])
    im = axes[2].imshow(true_prob, extent=extent, cmap="magma", vmin=0, vmax=1,
                        interpolation="nearest")
    axes[2].set_facecolor("black")
    axes[2].set_xlim(-0.5, size - 0.5)
    axes[2].set_ylim(size - 0.5, -0.5)
    for r, c, label in boxes:
        axes[2].plot(c + window / 2 - 0.5, r + window / 2 - 0.5, "c+", ms=8)
    axes[2].set_title("probability of the placed items' classes (+ item centres)")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    save_figure(fig, path)


# ---------------------------------------------------------------------------- recipe
def shift_augmentation(background, seed, padding=2):
    """The training batches' augmentation: each image shifted by up to ``padding`` pixels
    (random crop of the image padded with ``background``) and mirrored with probability
    1/2 — so the network also recognises items that sit between two of the score map's
    windows (stride 4: at most 2 pixels off)."""
    rng = np.random.default_rng(seed + 1000)
    chain = Compose([RandomCrop(FCN.window, padding=padding, fill=background, rng=rng),
                     RandomHorizontalFlip(rng=rng)])

    def batch_transform(batch):
        x, *rest = batch
        return (chain(x).astype(np.float32, copy=False), *rest)
    return batch_transform


def setup(cfg):
    lamina.manual_seed(cfg["seed"])
    train, val, test = fashion_splits(cfg["seed"], flatten=False, subset=cfg["subset"])
    background = float(train[0].min())          # a black pixel, standardized
    model = FCN(widths=tuple(cfg["widths"]), hidden=cfg["hidden"], dropout=cfg["dropout"])
    opt = lamina.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True,
                           weight_decay=cfg["weight_decay"])
    transform = (shift_augmentation(background, cfg["seed"], cfg["shift"])
                 if cfg["shift"] else None)
    loader = DataLoader(TensorDataset(*train), batch_size=cfg["batch_size"], shuffle=True,
                        seed=cfg["seed"], batch_transform=transform)
    sched = lamina.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], epochs=cfg["epochs"], steps_per_epoch=len(loader),
        pct_start=0.25)
    s = Setup(model, F.cross_entropy, opt, loader, val, test, scheduler=sched,
              scheduler_interval="step")
    s.background = background
    return s


class FCNRecipe(Recipe):
    name = "fcn"
    summary = ("fully convolutional Fashion-MNIST classifier (global pooling), run as a "
               "sliding-window detector on a canvas of several items (heatmap.png)")
    defaults = dict(epochs=6, lr=0.1, weight_decay=5e-4, batch_size=128, seed=0,
                    widths=[24, 48], hidden=96, dropout=0.3, shift=2, subset=0,
                    canvas_size=112, canvas_items=5, canvases=20, canvas_align=1)
    quick = dict(epochs=2, subset=3000, batch_size=64, canvases=10)
    search_space = {"lr": ("loguniform", 1e-2, 2e-1), "dropout": ("uniform", 0.0, 0.5)}
    target = ("accuracy", 0.90)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        results = super().run(cfg, out_dir, resume, verbose, log, callbacks)
        model, s = self.trainer.model, self.setup_
        xt, yt = s.test
        n = cfg["canvases"] * cfg["canvas_items"]
        images, labels = xt[:n], yt[:n]          # test items, never trained on
        canvases, placements = make_canvases(images, labels, cfg["canvases"],
                                             cfg["canvas_size"], cfg["canvas_items"],
                                             s.background, cfg["seed"] + 7,
                                             align=cfg["canvas_align"])
        probs, pairs = centre_predictions(model, canvases, placements)
        hits = [int(lab == pred) for lab, pred in pairs]
        results["canvas_map_shape"] = list(probs.shape[1:])
        results["canvas_items"] = len(pairs)
        results["canvas_centre_matches"] = int(sum(hits))
        results["canvas_centre_accuracy"] = float(np.mean(hits))
        results["canvas_first"] = [{"row": r, "col": c, "label": FASHION_CLASSES[lab],
                                    "predicted": FASHION_CLASSES[pred], "match": lab == pred}
                                   for (r, c, lab), (_, pred) in zip(placements[0], pairs)]
        log(f"canvas {cfg['canvas_size']}x{cfg['canvas_size']} -> score map "
            f"{probs.shape[2]}x{probs.shape[3]} per class; arg-max class at the item centre "
            f"matches the label for {sum(hits)}/{len(hits)} items "
            f"({results['canvas_centre_accuracy'] * 100:.1f}%)")
        if out_dir is not None:
            path = os.path.join(out_dir, "heatmap.png")
            plot_heatmap(canvases[0], probs[0], placements[0], path)
            results["heatmap"] = "heatmap.png"
            write_json(os.path.join(out_dir, "results.json"), results)
        return results

    def setup(self, cfg):
        self.setup_ = setup(cfg)
        return self.setup_


RECIPE = FCNRecipe()
