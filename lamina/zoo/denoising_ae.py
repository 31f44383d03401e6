"""denoising-ae: denoising autoencoders (Vincent et al. 2008) against a plain autoencoder
on Fashion-MNIST in [0, 1].

A denoising AE sees a corrupted image x̃ and is trained to output the clean x,
minimising ‖r(x̃) − x‖² (a fresh corruption every batch); the plain AE minimises
‖r(x) − x‖². Two corruptions:

- masking noise: each pixel zeroed with probability ``mask_fraction``;
- additive Gaussian noise: x + σ z, σ = ``sigma`` (not clipped).

One DAE per corruption; all models 784 - ``n_hidden`` (ReLU) - 784 (sigmoid), Adam.
Reported: per-pixel test MSE against the CLEAN images for clean, masked and noisy inputs
for every model (and for the corrupted images themselves, ``identity``); the DAE should
beat the plain AE on its corruption (``dae_over_plain`` < 1). The test corruptions are
drawn once (``seed``) and shared by all models. ``denoised.png``: clean test images,
then per corruption the corrupted input, the plain AE's and the DAE's outputs.
"""
import os
import time

import numpy as np

import lamina

from .autoencoders import (AutoEncoder, corruption, fashion_images, pixel_mse, reconstruct,
                           train_autoencoder)
from .image_grid import save_image_grid
from .recipe import Recipe, save_results

NOISES = ("mask", "gaussian")


def hidden_layer_ae(n_in, n_hidden):
    """784 - n_hidden (ReLU) - 784 (sigmoid): the model every variant here trains."""
    return AutoEncoder(n_in, n_hidden, hidden=(), code_activation="relu", output="sigmoid")


class DenoisingAERecipe(Recipe):
    name = "denoising-ae"
    summary = ("denoising autoencoders (masking and Gaussian noise) vs a plain autoencoder: "
               "test MSE to the clean images from corrupted inputs")
    defaults = dict(n_hidden=256, mask_fraction=0.5, sigma=0.5, epochs=12, lr=1e-3,
                    batch_size=128, seed=0, subset=0, n_show=10)
    quick = dict(subset=6000, epochs=8)

    def levels(self, cfg):
        return {"mask": cfg["mask_fraction"], "gaussian": cfg["sigma"]}

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        say = log if verbose else (lambda m: None)
        x, xt = fashion_images(cfg)
        levels = self.levels(cfg)
        rng = np.random.default_rng(cfg["seed"] + 12345)
        inputs = {"clean": xt}
        for k in NOISES:
            inputs[k] = corruption(k, levels[k])(xt, rng)
        mean_img = x.mean(0, dtype=np.float64)
        results = {"recipe": self.name, "n_train": len(x), "n_test": len(xt),
                   "noise": {"mask_fraction": cfg["mask_fraction"], "sigma": cfg["sigma"]},
                   "mean_image_mse": pixel_mse(np.broadcast_to(mean_img, xt.shape), xt),
                   "mse": {"identity": {k: pixel_mse(v, xt) for k, v in inputs.items()}}}
        self.models, outputs = {}, {}
        for name, noise in (("plain", None), ("dae_mask", "mask"), ("dae_gaussian", "gaussian")):
            lamina.manual_seed(cfg["seed"])
            model = hidden_layer_ae(x.shape[1], cfg["n_hidden"])
            hist = train_autoencoder(model, x, cfg["epochs"], cfg["lr"], cfg["batch_size"],
                                     cfg["seed"], corrupt=corruption(noise, levels.get(noise)),
                                     name=name, log=say)
            outputs[name] = {k: reconstruct(model, v) for k, v in inputs.items()}
            results["mse"][name] = {k: pixel_mse(r, xt) for k, r in outputs[name].items()}
            results.setdefault("history", {})[name] = hist
            self.models[name] = model
            say(f"{name}: test MSE to clean from " + ", ".join(
                f"{k} {v:.5f}" for k, v in results["mse"][name].items()))
        m = results["mse"]
        for k in NOISES:
            results[f"dae_over_plain_{k}"] = m[f"dae_{k}"][k] / m["plain"][k]
            results[f"dae_beats_plain_{k}"] = bool(m[f"dae_{k}"][k] < m["plain"][k])
            say(f"{k} noise: corrupted {m['identity'][k]:.5f}  plain AE {m['plain'][k]:.5f}  "
                f"DAE {m[f'dae_{k}'][k]:.5f}  (DAE / plain {results[f'dae_over_plain_{k}']:.3f})")
        if out_dir is not None:
            n = min(cfg["n_show"], len(xt))
            rows, labels = [xt[:n]], ["clean"]
            for k in NOISES:
                rows += [inputs[k][:n], outputs["plain"][k][:n], outputs[f"dae_{k}"][k][:n]]
                labels += [f"{k} noise", "plain AE", "DAE"]
            save_image_grid(os.path.join(out_dir, "denoised.png"), np.concatenate(rows),
                            nrow=n, row_labels=labels,
                            title=f"denoising: masking {cfg['mask_fraction']:g}, "
                                  f"Gaussian sigma {cfg['sigma']:g}")
            results["files"] = ["denoised.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = DenoisingAERecipe()
