"""contractive-ae: the contractive autoencoder (Rifai et al. 2011) against a plain one, on
Fashion-MNIST in [0, 1].

Both are :class:`~lamina.zoo.autoencoders.SigmoidAutoEncoder`\\ s, h = σ(Wx + b)
(``n_hidden`` units), r = σ(Vh + c). The CAE adds to the cost ‖r(x) − x‖² the penalty
λ ‖∂h/∂x‖²_F, computed exactly in closed form for the sigmoid layer
(:func:`~lamina.zoo.autoencoders.contractive_penalty`):

    ‖J‖²_F = Σ_j (h_j (1 − h_j))² Σ_i W_ji².

A contractive encoder is locally insensitive to small input changes — the notes'
"preference for locally constant features": for small noise,
E‖r(x + σz) − x‖² ≈ E‖r(x) − x‖² + σ² ‖∂r/∂x‖²_F — so it should reconstruct noisy inputs
better than the plain AE. Reported: per-pixel test MSE (to the clean images) from clean
and from Gaussian-noisy inputs (σ = ``sigma``), and the encoder's mean Jacobian norm
‖∂h/∂x‖_F on the test images for both models (the CAE's must be smaller).
``reconstructions.png``: clean / noisy test images, then each model's outputs from the
clean and from the noisy ones.
"""
import os
import time

import numpy as np

import lamina

from .autoencoders import (SigmoidAutoEncoder, encode, fashion_images, gaussian_noise,
                           pixel_mse, reconstruct, reconstruction_cost, train_autoencoder)
from .image_grid import save_image_grid
from .recipe import Recipe, save_results


def contractive_loss(lam):
    """‖r(x) − x‖² + λ ‖∂h/∂x‖²_F (both batch means) for a SigmoidAutoEncoder."""
    def loss(model, inp, target):
        h = model.encode(lamina.from_numpy(inp))
        cost = reconstruction_cost(model.decode(h), lamina.from_numpy(target))
        return cost + lam * model.jacobian_penalty(h).mean() if lam else cost
    return loss


def jacobian_norms(model, x):
    """‖∂h/∂x‖_F of ``model``'s sigmoid encoder at each row of ``x``: (N,) NumPy."""
    h = encode(model, x).astype(np.float64)
    w2 = (model.encoder.weight.numpy().astype(np.float64) ** 2).sum(1)
    return np.sqrt(((h * (1 - h)) ** 2) @ w2)


class ContractiveAERecipe(Recipe):
    name = "contractive-ae"
    summary = ("contractive autoencoder (exact sigmoid-layer Jacobian penalty) vs a plain "
               "one: Jacobian norm and test MSE from noisy inputs")
    defaults = dict(n_hidden=256, lam=0.1, sigma=0.3, epochs=20, lr=1e-3, batch_size=128,
                    seed=0, subset=0, n_show=10)
    quick = dict(subset=6000, epochs=10)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        t0 = time.perf_counter()
        say = log if verbose else (lambda m: None)
        x, xt = fashion_images(cfg)
        noisy = gaussian_noise(xt, cfg["sigma"], np.random.default_rng(cfg["seed"] + 12345))
        results = {"recipe": self.name, "n_train": len(x), "n_test": len(xt),
                   "mean_image_mse": pixel_mse(np.broadcast_to(x.mean(0, dtype=np.float64),
                                                               xt.shape), xt),
                   "noisy_input_mse": pixel_mse(noisy, xt)}
        self.models, outs = {}, {}
        for name, lam in (("plain", 0.0), ("cae", cfg["lam"])):
            lamina.manual_seed(cfg["seed"])
            model = SigmoidAutoEncoder(x.shape[1], cfg["n_hidden"])
            hist = train_autoencoder(model, x, cfg["epochs"], cfg["lr"], cfg["batch_size"],
                                     cfg["seed"], loss_fn=contractive_loss(lam), name=name,
                                     log=say)
            outs[name] = {"clean": reconstruct(model, xt), "noisy": reconstruct(model, noisy)}
            jn = jacobian_norms(model, xt)
            results[name] = {"test_mse": pixel_mse(outs[name]["clean"], xt),
                             "noisy_test_mse": pixel_mse(outs[name]["noisy"], xt),
                             "jacobian_norm": float(jn.mean()),
                             "jacobian_norm_sq": float((jn ** 2).mean()),
                             "history": hist}
            self.models[name] = model
            r = results[name]
            say(f"{name}: test MSE {r['test_mse']:.5f}, from noisy inputs "
                f"{r['noisy_test_mse']:.5f}, mean ||dh/dx||_F {r['jacobian_norm']:.3f}")
        p, c = results["plain"], results["cae"]
        results["jacobian_ratio"] = c["jacobian_norm"] / p["jacobian_norm"]
        results["cae_smaller_jacobian"] = bool(c["jacobian_norm"] < p["jacobian_norm"])
        results["noisy_mse_ratio"] = c["noisy_test_mse"] / p["noisy_test_mse"]
        results["cae_beats_plain_on_noisy"] = bool(c["noisy_test_mse"] < p["noisy_test_mse"])
        say(f"CAE / plain: Jacobian norm {results['jacobian_ratio']:.3f}, "
            f"noisy-input MSE {results['noisy_mse_ratio']:.3f}")
        if out_dir is not None:
            n = min(cfg["n_show"], len(xt))
            rows = [xt[:n], noisy[:n], outs["plain"]["clean"][:n], outs["plain"]["noisy"][:n],
                    outs["cae"]["clean"][:n], outs["cae"]["noisy"][:n]]
            save_image_grid(os.path.join(out_dir, "reconstructions.png"), np.concatenate(rows),
                            nrow=n, title=f"contractive AE (lambda {cfg['lam']:g}), "
                                          f"Gaussian noise sigma {cfg['sigma']:g}",
                            row_labels=["clean", "noisy", "plain AE (clean)",
                                        "plain AE (noisy)", "CAE (clean)", "CAE (noisy)"])
            results["files"] = ["reconstructions.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = ContractiveAERecipe()
