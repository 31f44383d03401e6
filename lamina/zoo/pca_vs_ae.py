"""pca-vs-ae: PCA in closed form against a linear and a non-linear autoencoder with the
same code size, on Fashion-MNIST in [0, 1] (the notes: "if the manifold is linear,
learning ... can be done in closed form: compute the eigenvectors of the data
covariance matrix"; "if the manifold is non-linear ... we can use autoencoders").

- PCA: the ``code`` leading eigenvectors of the training covariance (``np.linalg.eigh``);
  x̂ = m + (x − m) V Vᵀ.
- Linear AE: r(x) = D(Ex + b) + c, code ``code`` (decoder bias started at the mean
  image). Its global optimum spans the principal subspace, so its error should approach
  PCA's (``linear_ae_over_pca`` ≈ 1; ``linear_ae_subspace_alignment``, the mean squared
  cosine of the principal angles between its decoder's columns and the PCA subspace).
- Non-linear AE: 784 - ``hidden`` (ReLU) - ``code`` - ``hidden`` (ReLU) - 784 (sigmoid);
  it should beat PCA (``nonlinear_ae_over_pca`` < 1).

All trained with Adam on the notes' cost ‖r(x) − x‖²; reported are per-pixel test MSEs,
with the mean training image as the baseline. ``reconstructions.png``: test images
(rows: originals / PCA / linear AE / non-linear AE).
"""
import os
import time

import numpy as np

import lamina

from .autoencoders import (AutoEncoder, fashion_images, pca_fit, pca_reconstruct,
                           pixel_mse, reconstruct, subspace_alignment, train_autoencoder)
from .image_grid import save_image_grid
from .recipe import Recipe, save_results


class PCAvsAERecipe(Recipe):
    name = "pca-vs-ae"
    summary = ("PCA (closed form) vs a linear and a non-linear autoencoder, same code size, "
               "Fashion-MNIST reconstruction MSE")
    defaults = dict(code=32, hidden=[512], epochs=25, linear_epochs=15, lr=1e-3,
                    linear_lr=2e-3, batch_size=128, seed=0, subset=0, n_show=10)
    quick = dict(subset=6000, epochs=15, linear_epochs=30, hidden=[128])
    target = ("nonlinear_ae_over_pca", 1.0)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        say = log if verbose else (lambda m: None)
        x, xt = fashion_images(cfg)
        k = cfg["code"]
        lamina.manual_seed(cfg["seed"])

        mean_img = x.mean(0, dtype=np.float64)
        mean_mse = pixel_mse(np.broadcast_to(mean_img, xt.shape), xt)
        mean, comps, eigvals = pca_fit(x, k)
        pca_rec = pca_reconstruct(xt, mean, comps)
        pca_mse = pixel_mse(pca_rec, xt)
        explained = float(eigvals[:k].sum() / eigvals.sum())
        say(f"mean image: test MSE {mean_mse:.5f}")
        say(f"PCA ({k} components, {explained * 100:.1f}% of the variance): "
            f"test MSE {pca_mse:.5f}")

        linear = AutoEncoder(x.shape[1], k, hidden=(), code_activation="linear",
                             output="linear")
        linear.decoder[0].bias.data[...] = mean_img          # start at the mean image
        lin_hist = train_autoencoder(linear, x, cfg["linear_epochs"], cfg["linear_lr"],
                                     cfg["batch_size"], cfg["seed"], name="linear AE",
                                     log=say)
        lin_rec = reconstruct(linear, xt)
        lin_mse = pixel_mse(lin_rec, xt)
        align = subspace_alignment(linear.decoder[0].weight.numpy(), comps)
        say(f"linear AE: test MSE {lin_mse:.5f}  ({lin_mse / pca_mse:.3f} x PCA), "
            f"subspace alignment with PCA {align:.3f}")

        deep = AutoEncoder(x.shape[1], k, hidden=tuple(cfg["hidden"]), activation="relu",
                           code_activation="linear", output="sigmoid")
        deep_hist = train_autoencoder(deep, x, cfg["epochs"], cfg["lr"], cfg["batch_size"],
                                      cfg["seed"], name="non-linear AE", log=say)
        deep_rec = reconstruct(deep, xt)
        deep_mse = pixel_mse(deep_rec, xt)
        say(f"non-linear AE: test MSE {deep_mse:.5f}  ({deep_mse / pca_mse:.3f} x PCA)")

        results = {
            "recipe": self.name, "code": k, "n_train": len(x), "n_test": len(xt),
            "mse": {"mean_image": mean_mse, "pca": pca_mse, "linear_ae": lin_mse,
                    "nonlinear_ae": deep_mse},
            "pca_explained_variance": explained,
            "linear_ae_over_pca": lin_mse / pca_mse,
            "nonlinear_ae_over_pca": deep_mse / pca_mse,
            "linear_ae_subspace_alignment": align,
            "nonlinear_beats_pca": bool(deep_mse < pca_mse),
            "history": {"linear_ae": lin_hist, "nonlinear_ae": deep_hist},
        }
        if out_dir is not None:
            n = min(cfg["n_show"], len(xt))
            save_image_grid(os.path.join(out_dir, "reconstructions.png"),
                            np.concatenate([xt[:n], pca_rec[:n], lin_rec[:n], deep_rec[:n]]),
                            nrow=n, title=f"test images, code size {k}",
                            row_labels=["original", "PCA", "linear AE", "non-linear AE"])
            results["files"] = ["reconstructions.png"]
        self.models = {"linear_ae": linear, "nonlinear_ae": deep}
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = PCAvsAERecipe()
