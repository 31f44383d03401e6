"""stacked-ae-pretrain: greedy layer-wise pre-training of a stacked denoising autoencoder,
then fine-tuning with 100 labels per class — against the same network from scratch.

The network is an MLP 784-500-250-100-10 with sigmoid hidden units (``sizes``). Each
hidden layer is first trained, without labels, as a denoising autoencoder (Vincent et al.
2008) on the codes of the layer below for all 60,000 Fashion-MNIST training images in
[0, 1]: its input is corrupted by masking noise (each unit zeroed with probability
``noise``), encoded by the layer, h = sigmoid(W x~ + b), and decoded by a separate linear
layer whose sigmoid output should reproduce the *clean* input (cross-entropy loss; the
inputs and codes are all in [0, 1]). Greedy: layer 1 on the pixels, then layer 2 on the
(clean) codes of the trained layer 1, and so on.

The pretrained encoder weights are copied into the classifier, a softmax layer is put on
top, and the whole network is fine-tuned on ``n_per_class`` = 100 labelled images per
class (1,000 in all, drawn with the label seed). The baseline is the identical
architecture from random initialization trained on the same 1,000 images. **Both get the
same fixed budget** — ``finetune_epochs`` epochs of Adam (same learning rate, batch size
and weight decay), no early stopping and no validation split (with 100 labels per class
none is held out) — and both are evaluated at the end on the full 10,000-image test set.
With ``label_seeds`` > 1 the labelled sample (and the head initialization) is redrawn and
the mean ± std of the accuracies reported; pre-training is done once (it sees no labels).

Written: ``results.json``, ``filters.png`` (the first layer's pretrained weights as 28×28
images) and ``denoising.png`` (clean test images, their corrupted versions and the first
layer's reconstructions).
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F

from .autoencoders import mask_noise
from .image_grid import batched, fashion_unit, save_image_grid
from .recipe import Recipe, save_results


def balanced_subset(y, n_per_class, seed=0, classes=None):
    """Indices of exactly ``n_per_class`` examples of each class of ``y`` (all classes
    present, or ``classes``), drawn without replacement with ``seed`` and shuffled."""
    y = np.asarray(y)
    classes = np.unique(y) if classes is None else classes
    rng = np.random.default_rng(seed)
    picked = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if len(idx) < n_per_class:
            raise ValueError(f"balanced_subset: class {c} has {len(idx)} examples, fewer "
                             f"than n_per_class={n_per_class}")
        picked.append(rng.choice(idx, n_per_class, replace=False))
    return rng.permutation(np.concatenate(picked))


class DenoisingAutoEncoder(nn.Module):
    """One layer of the stack: ``encoder`` Linear(n_in, n_hidden) + sigmoid, ``decoder``
    Linear(n_hidden, n_in) giving the logits of the reconstruction of inputs in [0, 1].

    Shapes: x (N, n_in) -> ``encode`` (N, n_hidden); ``forward`` (N, n_in) logits."""

    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.encoder = nn.Linear(n_in, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_in)

    def encode(self, x):
        return self.encoder(x).sigmoid()

    def forward(self, x):
        return self.decoder(self.encode(x))

    def loss(self, x_corrupted, x_clean):
        """Reconstruction cross-entropy per input unit (mean), of the clean input from the
        (possibly corrupted) one."""
        return F.binary_cross_entropy_with_logits(self(x_corrupted), x_clean)


def reconstruction_loss(layer, x, batch_size=1000):
    """Mean reconstruction cross-entropy of clean inputs x (array) by ``layer``."""
    total = 0.0
    with lamina.no_grad():
        for s in range(0, len(x), batch_size):
            xb = lamina.from_numpy(x[s:s + batch_size])
            total += float(layer.loss(xb, xb).item()) * len(xb)
    return total / len(x)


def encode_all(layer, x, batch_size=2000):
    """Codes of all of x (array) by ``layer``, as a float32 array."""
    return batched(layer.encode, x, batch_size)


class StackedAutoEncoder(nn.Module):
    """Greedily pretrained stack of denoising autoencoders for layer sizes ``sizes``
    (e.g. (784, 500, 250, 100)): ``layers[i]`` maps sizes[i] -> sizes[i+1].

    Shapes: x (N, sizes[0]) -> ``forward`` (N, sizes[-1]), the top code."""

    def __init__(self, sizes=(784, 500, 250, 100)):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"StackedAutoEncoder: sizes needs >= 2 entries, got {sizes}")
        self.sizes = tuple(sizes)
        self.layers = nn.ModuleList([DenoisingAutoEncoder(a, b)
                                     for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        for layer in self.layers:
            x = layer.encode(x)
        return x

    def pretrain(self, x, epochs=5, lr=1e-3, batch_size=100, noise=0.25, seed=0,
                 n_monitor=2000, log=print):
        """Greedy layer-wise pre-training on the array x (N, sizes[0]) in [0, 1]: layer i
        is trained as a denoising autoencoder (Adam) on the clean codes of layers < i.
        Returns one dict per layer with the clean reconstruction loss on the first
        ``n_monitor`` inputs before and after its training and the per-epoch train loss."""
        rng = np.random.default_rng(seed)
        history, codes = [], np.asarray(x, np.float32)
        for i, layer in enumerate(self.layers):
            mon = codes[:n_monitor]
            before = reconstruction_loss(layer, mon)
            opt = lamina.optim.Adam(layer.parameters(), lr=lr)
            epoch_losses = []
            for epoch in range(epochs):
                order = rng.permutation(len(codes))
                total = 0.0
                for s in range(0, len(order), batch_size):
                    clean = codes[order[s:s + batch_size]]
                    loss = layer.loss(lamina.from_numpy(mask_noise(clean, noise, rng)),
                                      lamina.from_numpy(clean))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.item()) * len(clean)
                epoch_losses.append(total / len(codes))
                log(f"[pretrain layer {i + 1} {layer.encoder.in_features}->"
                    f"{layer.encoder.out_features}] epoch {epoch + 1}/{epochs}  denoising "
                    f"loss {epoch_losses[-1]:.4f}")
            after = reconstruction_loss(layer, mon)
            history.append({"layer": i + 1, "recon_before": before, "recon_after": after,
                            "train_loss": epoch_losses})
            log(f"[pretrain layer {i + 1}] clean reconstruction loss {before:.4f} -> "
                f"{after:.4f}")
            if i + 1 < len(self.layers):
                codes = encode_all(layer, codes)
        return history


class MLPClassifier(nn.Module):
    """Sigmoid MLP ``sizes[0]`` -> ... -> ``sizes[-1]`` -> ``n_classes`` logits; the
    hidden layers ``hidden[i]`` have the shapes of a StackedAutoEncoder's encoders.

    Shapes: x (N, sizes[0]) -> (N, n_classes)."""

    def __init__(self, sizes=(784, 500, 250, 100), n_classes=10):
        super().__init__()
        self.sizes = tuple(sizes)
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nn.Linear(sizes[-1], n_classes)

    def forward(self, x):
        for layer in self.hidden:
            x = layer(x).sigmoid()
        return self.out(x)

    def load_pretrained(self, sae):
        """Copy the encoder weights of a StackedAutoEncoder of the same sizes into the
        hidden layers (the output layer keeps its initialization)."""
        if tuple(sae.sizes) != self.sizes:
            raise ValueError(f"MLPClassifier.load_pretrained: the stack has sizes "
                             f"{sae.sizes}, the classifier {self.sizes}")
        for lin, dae in zip(self.hidden, sae.layers):
            lin.load_state_dict(dae.encoder.state_dict())
        return self


def fit_classifier(model, x, y, epochs, lr, batch_size, weight_decay, seed):
    """Adam on cross-entropy for a fixed number of epochs; returns per-epoch train loss."""
    opt = lamina.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    hist = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            loss = F.cross_entropy(model(lamina.from_numpy(x[b])), lamina.from_numpy(y[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(b)
        hist.append(total / len(x))
    return hist


def accuracy(model, x, y, batch_size=2000):
    model.eval()
    return float((batched(model, x, batch_size).argmax(1) == y).mean())


class StackedAERecipe(Recipe):
    name = "stacked-ae-pretrain"
    summary = ("greedy layer-wise denoising-AE pre-training on all images, fine-tuning on "
               "100 labels/class vs the same net from scratch (Fashion-MNIST)")
    defaults = dict(seed=0, subset=0, sizes=[784, 500, 250, 100], noise=0.25,
                    pretrain_epochs=8, pretrain_lr=1e-3, pretrain_batch_size=100,
                    n_per_class=100, label_seeds=3, finetune_epochs=60, lr=1e-3,
                    batch_size=50, weight_decay=0.0)
    quick = dict(subset=3000, sizes=[784, 128, 64, 32], pretrain_epochs=3, label_seeds=1,
                 n_per_class=50, finetune_epochs=40, lr=3e-3)
    target = ("pretrained_accuracy", 0.80)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError("stacked-ae-pretrain: --resume is not supported")
        t0 = time.perf_counter()
        say = log if verbose else (lambda *a, **k: None)
        sizes = tuple(int(s) for s in cfg["sizes"])
        (x, y), _, (xt, yt) = fashion_unit(cfg["seed"], cfg["subset"])
        if sizes[0] != x.shape[1]:
            raise ValueError(f"stacked-ae-pretrain: sizes[0] must be {x.shape[1]}, got {sizes}")

        # 1. unsupervised, greedy, on every training image (no labels)
        lamina.manual_seed(cfg["seed"])
        sae = StackedAutoEncoder(sizes)
        say(f"--- greedy pre-training {'-'.join(map(str, sizes))} on {len(x)} unlabelled "
            f"images, masking noise {cfg['noise']}")
        layers = sae.pretrain(x, cfg["pretrain_epochs"], cfg["pretrain_lr"],
                              cfg["pretrain_batch_size"], cfg["noise"], cfg["seed"], log=say)
        t_pre = time.perf_counter() - t0

        # 2. supervised, on n_per_class labels per class, pretrained vs scratch
        runs = []
        for j in range(cfg["label_seeds"]):
            ls = cfg["seed"] + 100 + j
            idx = balanced_subset(y, cfg["n_per_class"], ls)
            xl, yl = x[idx], y[idx]
            accs = {}
            for mode in ("pretrained", "scratch"):
                lamina.manual_seed(ls)                 # same init draw for both
                model = MLPClassifier(sizes, 10)
                if mode == "pretrained":
                    model.load_pretrained(sae)
                hist = fit_classifier(model, xl, yl, cfg["finetune_epochs"], cfg["lr"],
                                      cfg["batch_size"], cfg["weight_decay"], ls)
                accs[mode] = accuracy(model, xt, yt)
                accs[f"{mode}_final_train_loss"] = hist[-1]
                accs[f"{mode}_train_accuracy"] = accuracy(model, xl, yl)
            accs["label_seed"] = ls
            runs.append(accs)
            say(f"--- labels seed {ls} ({len(idx)} images): test accuracy pretrained "
                f"{accs['pretrained'] * 100:.2f}%  scratch {accs['scratch'] * 100:.2f}%")

        pre = np.array([r["pretrained"] for r in runs])
        scr = np.array([r["scratch"] for r in runs])
        results = {"recipe": self.name, "pretrained_accuracy": float(pre.mean()),
                   "scratch_accuracy": float(scr.mean()),
                   "pretrained_accuracy_std": float(pre.std(ddof=1)) if len(runs) > 1 else 0.0,
                   "scratch_accuracy_std": float(scr.std(ddof=1)) if len(runs) > 1 else 0.0,
                   "n_labelled": 10 * cfg["n_per_class"], "n_unlabelled": len(x),
                   "n_test": len(xt), "budget": "fixed: finetune_epochs for both, no early "
                   "stopping", "runs": runs, "pretrain": layers, "pretrain_seconds": t_pre}
        say(f"test accuracy with {cfg['n_per_class']} labels/class over {len(runs)} label "
            f"sample(s): pretrained {pre.mean() * 100:.2f}% ± {results['pretrained_accuracy_std'] * 100:.2f}"
            f"  scratch {scr.mean() * 100:.2f}% ± {results['scratch_accuracy_std'] * 100:.2f}")
        if out_dir is not None:
            w = sae.layers[0].encoder.weight.numpy()[:100]
            lo, hi = w.min(1, keepdims=True), w.max(1, keepdims=True)
            save_image_grid(os.path.join(out_dir, "filters.png"), (w - lo) / (hi - lo + 1e-8),
                            nrow=10, title="first-layer denoising-AE filters (each scaled "
                            "to its own range)")
            rng = np.random.default_rng(cfg["seed"] + 1)
            clean = xt[:10]
            noisy = mask_noise(clean, cfg["noise"], rng)
            with lamina.no_grad():
                rec = sae.layers[0](lamina.from_numpy(noisy)).sigmoid().numpy()
            save_image_grid(os.path.join(out_dir, "denoising.png"),
                            np.concatenate([clean, noisy, rec]), nrow=10,
                            row_labels=["clean", "masked", "layer-1 recon"],
                            title=f"denoising AE, masking noise {cfg['noise']}")
            results["figures"] = ["filters.png", "denoising.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = StackedAERecipe()
