"""tied-ae: the notes' tied-weight autoencoder r(x) = W h(Wᵀx + b) + c and its sparse forms,
on Fashion-MNIST in [0, 1].

One weight matrix W (784 × ``n_hidden``) is the encoder (x W) and, transposed, the
decoder (h Wᵀ). Three variants are trained with Adam on ‖r(x) − x‖²:

- ``plain``: ReLU hiddens h = max(Wᵀx + b, 0);
- ``threshold``: the notes' Theano snippet — no hidden bias, and
  hiddens = (prehiddens > threshold) · prehiddens, prehiddens = Wᵀx (a thresholded
  linear unit: only units whose input clears the threshold fire, and pass it unchanged);
- ``l1``: ReLU hiddens with the activity penalty ``l1`` · Σ_j |h_j| added to the cost.

Reported for each: test MSE (per pixel) and the mean fraction of active (non-zero)
hidden units on the test images. ``filters.png``: the first-layer filters — columns of
W reshaped 28 × 28, each scaled by its largest |weight| on a symmetric grey scale
(mid-grey = 0) — those of the ``n_filters`` units of largest mean activity on the test
images, a row per variant.
"""
import os
import time

import numpy as np

import lamina

from .autoencoders import (TiedAutoEncoder, encode, fashion_images, l1_activity,
                           pixel_mse, plain_loss, reconstruct, reconstruction_cost,
                           train_autoencoder)
from .image_grid import save_image_grid
from .recipe import Recipe, save_results

VARIANTS = ("plain", "threshold", "l1")


def l1_loss(weight):
    """The cost plus ``weight`` · Σ_j |h_j| (batch mean), for a model with encode/decode."""
    def loss(model, inp, target):
        h = model.encode(lamina.from_numpy(inp))
        r = model.decode(h)
        return reconstruction_cost(r, lamina.from_numpy(target)) + weight * l1_activity(h).mean()
    return loss


def make_variant(variant, n_in, cfg):
    if variant == "plain":
        return TiedAutoEncoder(n_in, cfg["n_hidden"], hidden="relu")
    if variant == "threshold":
        return TiedAutoEncoder(n_in, cfg["n_hidden"], hidden="threshold",
                               threshold=cfg["threshold"], bias=False)
    if variant == "l1":
        return TiedAutoEncoder(n_in, cfg["n_hidden"], hidden="relu")
    raise ValueError(f"tied-ae: unknown variant {variant!r} ({', '.join(VARIANTS)})")


def filter_images(weight, n, score):
    """The columns of ``weight`` (784, H) of the ``n`` highest ``score`` (H,) as (n, 784)
    images, each divided by its largest |value| (so in [-1, 1], 0 at mid-grey)."""
    w = np.asarray(weight, np.float64)
    idx = np.argsort(-np.asarray(score), kind="stable")[:n]
    f = w[:, idx].T
    return f / np.maximum(np.abs(f).max(1, keepdims=True), 1e-12)


class TiedAERecipe(Recipe):
    name = "tied-ae"
    summary = ("tied-weight autoencoder r(x) = W h(W^T x + b) + c: plain ReLU, thresholded "
               "linear units, L1-sparse; test MSE, active fraction, filters")
    defaults = dict(n_hidden=256, threshold=0.3, l1=0.3, epochs=15, lr=1e-3, batch_size=128,
                    seed=0, subset=0, variants=list(VARIANTS), n_filters=16)
    quick = dict(subset=6000, epochs=8)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        say = log if verbose else (lambda m: None)
        x, xt = fashion_images(cfg)
        mean_mse = pixel_mse(np.broadcast_to(x.mean(0, dtype=np.float64), xt.shape), xt)
        say(f"mean image: test MSE {mean_mse:.5f}")
        results = {"recipe": self.name, "n_train": len(x), "n_test": len(xt),
                   "mean_image_mse": mean_mse, "variants": {}}
        self.models, filters = {}, []
        for i, v in enumerate(cfg["variants"]):
            lamina.manual_seed(cfg["seed"])
            model = make_variant(v, x.shape[1], cfg)
            loss = l1_loss(cfg["l1"]) if v == "l1" else plain_loss
            hist = train_autoencoder(model, x, cfg["epochs"], cfg["lr"], cfg["batch_size"],
                                     cfg["seed"], loss_fn=loss, name=f"tied {v}", log=say)
            mse = pixel_mse(reconstruct(model, xt), xt)
            h = encode(model, xt)
            active = float(np.mean(h != 0))
            dead = float(np.mean(np.all(h == 0, axis=0)))
            results["variants"][v] = {"test_mse": mse, "active_fraction": active,
                                      "dead_unit_fraction": dead,
                                      "mean_abs_activity": float(np.abs(h).sum(1).mean()),
                                      "history": hist}
            say(f"tied {v}: test MSE {mse:.5f}, active hidden units {active * 100:.1f}%, "
                f"never active {dead * 100:.1f}%")
            self.models[v] = model
            filters.append(filter_images(model.weight.numpy(), cfg["n_filters"],
                                         np.abs(h).mean(0)))
        # one parameter matrix serves encoder and decoder
        results["n_weight_matrices"] = sum(p.ndim == 2 for p in model.parameters())
        if out_dir is not None:
            save_image_grid(os.path.join(out_dir, "filters.png"), np.concatenate(filters),
                            nrow=cfg["n_filters"], vmin=-1.0, vmax=1.0,
                            title="tied-AE filters (columns of W; grey = 0)",
                            row_labels=list(cfg["variants"]))
            results["files"] = ["filters.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = TiedAERecipe()
