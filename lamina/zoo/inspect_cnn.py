"""inspect: what a trained ConvNet has learned, and how it is fooled (the notes' visualizations).

A LeNet-5 (modern variant: ReLU, max pooling) is trained on Fashion-MNIST by the
``lenet5`` recipe's setup — or loaded from ``checkpoint`` (a ``.safetensors`` file the
Trainer wrote, e.g. ``runs/lenet5/modern/best.safetensors``) — and then inspected on
the test images. Written to the output directory (matplotlib, Agg backend):

- ``filters.png``: the six 5×5 filters of the first convolution;
- ``embedding_pca.png``: the 84-unit penultimate features of ``n_embed`` test images
  projected on their first two principal components (PCA in closed form: the SVD of the
  centered feature matrix), coloured by class;
- ``saliency.png`` (and ``saliency.npy``): saliency maps |∂ logit_y / ∂ x| of one test
  image per class, y the true class (Simonyan et al. 2014);
- ``fgsm_examples.png`` and ``fgsm_accuracy.png``: fast-gradient-sign adversarial
  examples (Goodfellow et al. 2015), x' = clip(x + ε·sign(∇ₓ loss)), and the test
  accuracy against ε. **ε is in pixel units of the [0, 1] image** (0.1 = a change of
  25.5 grey levels per pixel), converted to the standardized inputs the network sees;
  adversarial images are clipped to the valid pixel range [0, 1].
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data import load_fashion_mnist
from lamina.data.mnist import FASHION_CLASSES
from lamina.nn import functional as F
from lamina.train import Trainer
from lamina.train.callbacks import save_figure

from .fashion_mlp import fashion_splits
from .lenet import LeNet5
from .lenet import setup as lenet_setup
from .recipe import Recipe, save_results


# ---------------------------------------------------------------- analysis helpers
def first_layer_filters(model):
    """The first convolution's weights as a NumPy array (out, in, k, k)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.weight.numpy().copy()
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def penultimate(model):
    """The network up to (not including) its output layer, sharing ``model``'s modules:
    ``features`` then all of ``classifier`` but its last layer (LeNet5, VGGSmall)."""
    return nn.Sequential(model.features, model.classifier[:-1])


def pca_2d(features):
    """Closed-form PCA: ``features`` (N, D) centred and projected on the two leading
    right singular vectors. Returns ((N, 2) coordinates, (2,) explained variance ratios)."""
    h = np.asarray(features, dtype=np.float64)
    h = h - h.mean(0)
    _, s, vt = np.linalg.svd(h, full_matrices=False)
    var = s ** 2
    return h @ vt[:2].T, var[:2] / max(var.sum(), 1e-300)


def saliency(model, x, y):
    """|∂ logit_y / ∂ x| for each image (x: (N, ...) array, y: (N,) class indices), as an
    array shaped like ``x``. The model runs in eval mode; no parameter gradient is touched."""
    x = np.asarray(x, dtype=np.float32)
    onehot = lamina.from_numpy(np.eye(_n_out(model, x), dtype=np.float32)[np.asarray(y)])
    was_training = model.training
    model.eval()
    try:
        # the images are independent in eval mode, so the gradient of the sum is each
        # image's own d logit_y / d x
        g = lamina.grad(lambda inp: (model(inp) * onehot).sum())(x)
    finally:
        model.train(was_training)
    return np.abs(g)


def loss_gradient_sign(model, x, y, batch_size=500):
    """sign(∂ CE(model(x), y) / ∂ x) per image, in batches, in eval mode: the direction
    of the fast gradient sign method (the same for every ε)."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    out = np.empty_like(x)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            yb = lamina.from_numpy(y[i:i + batch_size])
            g = lamina.grad(lambda inp: F.cross_entropy(model(inp), yb, reduction="sum"))(
                x[i:i + batch_size])
            out[i:i + batch_size] = np.sign(g)
    finally:
        model.train(was_training)
    return out


def fgsm(x, grad_sign, eps, lo=-np.inf, hi=np.inf):
    """Fast gradient sign: ``clip(x + eps * grad_sign, lo, hi)`` (``eps``, ``lo`` and
    ``hi`` in the units of ``x``); ``grad_sign`` from :func:`loss_gradient_sign`."""
    return np.clip(x + np.float32(eps) * grad_sign, lo, hi).astype(np.float32)


def pixel_affine(raw, standardized):
    """(scale, offset) with ``standardized = scale * raw + offset`` (the Standardize
    transform), recovered from a pair of arrays: scale is the change of one [0, 1]
    pixel unit, offset the standardized value of a black pixel."""
    raw = np.asarray(raw, np.float64).ravel()
    z = np.asarray(standardized, np.float64).ravel()
    i, j = int(np.argmin(raw)), int(np.argmax(raw))
    if raw[j] <= raw[i]:
        raise ValueError("pixel_affine: the raw images are constant")
    scale = (z[j] - z[i]) / (raw[j] - raw[i])
    return scale, z[i] - scale * raw[i]


def _n_out(model, x):
    was_training = model.training
    model.eval()
    try:
        with lamina.no_grad():
            return int(model(lamina.from_numpy(x[:1])).shape[-1])
    finally:
        model.train(was_training)


# ---------------------------------------------------------------- figures
def _figure(w, h):
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h), dpi=100)


def plot_filters(w, path):
    n = len(w)
    fig = _figure(1.3 * n, 1.6)
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        f = w[i, 0]
        m = np.abs(f).max() or 1.0
        ax.imshow(f, cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(f"filter {i}", fontsize=8)
        ax.axis("off")
    fig.suptitle("first-layer filters (grey = 0)", fontsize=9)
    save_figure(fig, path)


def plot_embedding(coords, y, ratios, path):
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    cmap = __import__("matplotlib").colormaps["tab10"]
    for c in range(10):
        sel = y == c
        ax.scatter(coords[sel, 0], coords[sel, 1], s=5, color=cmap(c), label=FASHION_CLASSES[c])
    ax.set_xlabel(f"PC 1 ({ratios[0] * 100:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({ratios[1] * 100:.1f}% of variance)")
    ax.set_title("penultimate features (84 units), PCA of test images")
    ax.legend(fontsize=7, markerscale=2.5, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def plot_saliency(x, sal, y, pred, path):
    n = len(x)
    fig = _figure(1.3 * n, 3.0)
    for i in range(n):
        ax = fig.add_subplot(2, n, i + 1)
        ax.imshow(x[i, 0], cmap="gray")
        ax.set_title(f"{FASHION_CLASSES[y[i]][:9]}\n(pred {FASHION_CLASSES[pred[i]][:9]})",
                     fontsize=6)
        ax.axis("off")
        ax = fig.add_subplot(2, n, n + i + 1)
        ax.imshow(sal[i, 0], cmap="hot")
        ax.axis("off")
    fig.suptitle("saliency |d logit_y / d x| (bottom) of test images (top)", fontsize=9)
    save_figure(fig, path)


def plot_fgsm_examples(x, sign, x_adv, y, pred, pred_adv, eps, lo, hi, path):
    n = len(x)
    fig = _figure(1.3 * n, 4.4)
    rows = ((x, lambda i: f"{FASHION_CLASSES[pred[i]][:9]}", (lo, hi)),
            (sign, lambda i: "sign(grad)" if i == 0 else "", (-1, 1)),
            (x_adv, lambda i: f"{FASHION_CLASSES[pred_adv[i]][:9]}", (lo, hi)))
    for r, (imgs, title, (vmin, vmax)) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(3, n, r * n + i + 1)
            ax.imshow(imgs[i, 0], cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_title(title(i), fontsize=6,
                         color="red" if r == 2 and pred_adv[i] != y[i] else "black")
            ax.axis("off")
    fig.suptitle(f"FGSM, eps = {eps} (pixel units of [0, 1]): clean prediction, "
                 f"perturbation, adversarial prediction (red = fooled)", fontsize=8)
    save_figure(fig, path)


def plot_fgsm_curve(eps, acc, path):
    fig = _figure(5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(eps, np.asarray(acc) * 100, marker="o")
    ax.set_xlabel("eps (pixel units of [0, 1] images)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy under the fast gradient sign attack")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------- the recipe
class InspectRecipe(Recipe):
    name = "inspect"
    summary = ("LeNet-5 on Fashion-MNIST inspected: filters, PCA of features, saliency, "
               "FGSM accuracy vs eps")
    defaults = dict(epochs=8, lr=0.05, weight_decay=5e-4, batch_size=128, seed=0, subset=0,
                    checkpoint="", schedule="constant", n_embed=2000, n_attack=0,
                    attack_batch=500, epsilons=[0.0, 0.01, 0.02, 0.05, 0.1, 0.2],
                    example_eps=0.1, n_examples=8)
    quick = dict(epochs=3, subset=4000, batch_size=64, n_embed=500)
    search_space = {"lr": ("loguniform", 1e-2, 2e-1)}
    target = ("accuracy_eps_0", 0.88)

    def setup(self, cfg):
        s = lenet_setup({**cfg, "variant": "modern"})
        self._test = s.test
        return s

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        out = out_dir
        results = {"recipe": self.name, "config": cfg}
        if cfg["checkpoint"]:
            model = LeNet5()
            model.load_state_dict(lamina.load(cfg["checkpoint"])["model"])
            _, _, test = fashion_splits(cfg["seed"], flatten=False, subset=cfg["subset"])
            log(f"loaded {cfg['checkpoint']}")
        else:
            log("--- training LeNet-5 (modern)")
            sub = os.path.join(out_dir, "train") if out_dir is not None else None
            res = super().run(cfg, sub, resume, verbose, log, callbacks)
            results["train"] = {k: v for k, v in res.items() if k != "config"}
            model, test = self.trainer.model, self._test
        model.eval()
        self.model = model
        xt, yt = test
        n_raw = len(xt)
        scale, offset = pixel_affine(load_fashion_mnist("test")[0][:n_raw], xt)
        lo, hi = offset, offset + scale          # black and white, standardized
        trainer = Trainer(metrics=("accuracy",), batch_size=cfg["attack_batch"],
                          verbose=False)
        trainer.model, trainer.loss_fn = model, F.cross_entropy

        # 1. first-layer filters
        w = first_layer_filters(model)
        results["filters_shape"] = list(w.shape)

        # 2. PCA of the penultimate features
        ne = min(cfg["n_embed"], n_raw)
        feats = trainer.predict(xt[:ne], model=penultimate(model))
        coords, ratios = pca_2d(feats)
        results["pca_explained_variance"] = [float(r) for r in ratios]
        log(f"PCA of the {feats.shape[1]} penultimate features of {ne} test images: "
            f"PC1 {ratios[0] * 100:.1f}%, PC2 {ratios[1] * 100:.1f}% of the variance")

        # 3. saliency of the first test image of each class
        idx = np.array([np.flatnonzero(yt == c)[0] for c in range(10) if np.any(yt == c)])
        sal = saliency(model, xt[idx], yt[idx])
        pred = trainer.predict(xt[idx]).argmax(1)
        self.saliency_maps = sal
        results["saliency_shape"] = list(sal.shape)

        # 4. FGSM: test accuracy against eps
        na = n_raw if not cfg["n_attack"] else min(cfg["n_attack"], n_raw)
        xa, ya = xt[:na], yt[:na]
        sign = loss_gradient_sign(model, xa, ya, cfg["attack_batch"])
        accs = []
        for eps in cfg["epsilons"]:
            acc = trainer.evaluate((fgsm(xa, sign, eps * scale, lo, hi), ya))["accuracy"]
            accs.append(float(acc))
        results["fgsm"] = {"epsilon_units": "pixels of [0, 1] images", "n_images": na,
                           "epsilons": list(cfg["epsilons"]), "accuracy": accs}
        for eps, acc in zip(cfg["epsilons"], accs):
            results[f"accuracy_eps_{eps:g}"] = acc
        log(f"FGSM on {na} test images, eps in [0, 1] pixel units:")
        log("  eps       " + "  ".join(f"{e:>6g}" for e in cfg["epsilons"]))
        log("  accuracy  " + "  ".join(f"{a * 100:5.1f}%" for a in accs))

        if out is not None:
            k = min(cfg["n_examples"], na)
            ex_eps = cfg["example_eps"]
            adv = fgsm(xa[:k], sign[:k], ex_eps * scale, lo, hi)
            plot_filters(w, os.path.join(out, "filters.png"))
            plot_embedding(coords, yt[:ne], ratios, os.path.join(out, "embedding_pca.png"))
            plot_saliency(xt[idx], sal, yt[idx], pred, os.path.join(out, "saliency.png"))
            np.save(os.path.join(out, "saliency.npy"), sal)
            plot_fgsm_examples(xa[:k], sign[:k], adv, ya[:k], trainer.predict(xa[:k]).argmax(1),
                               trainer.predict(adv).argmax(1), ex_eps, lo, hi,
                               os.path.join(out, "fgsm_examples.png"))
            plot_fgsm_curve(cfg["epsilons"], accs, os.path.join(out, "fgsm_accuracy.png"))
            results["files"] = ["filters.png", "embedding_pca.png", "saliency.png",
                                "saliency.npy", "fgsm_examples.png", "fgsm_accuracy.png"]
        results["seconds"] = time.perf_counter() - t0
        save_results(out, results)
        return results


RECIPE = InspectRecipe()
