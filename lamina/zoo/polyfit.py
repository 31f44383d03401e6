"""polyfit: picking the right hypothesis class, and the prior as a regularizer.

A small noisy sample (12 points) of a gently curved function is fitted by polynomials of
order 1, 2 and 9 — linear models on the features x, x², ..., x^M (written in the
Legendre basis, the same hypothesis class with a better-conditioned optimisation) —
trained by full-batch gradient descent on the squared error. Order 1 underfits, order 9
overfits (tiny training error, large validation error). A Gaussian prior on the weights,
p(θ) ∝ exp(-λ‖θ‖²/2), adds (λ/2)‖θ‖² to the loss (weight decay, the MAP estimate): order 9's
validation error comes down.
"""

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F

from .recipe import Recipe, save_results


def true_function(x):
    return 1.05 + 1.6 * x - 1.5 * x ** 2


def sample(n, noise, rng):
    x = rng.uniform(-1, 1, (n, 1))
    return x, true_function(x) + rng.normal(0, noise, (n, 1))


def features(x, order):
    """(N, 1) -> (N, order): Legendre polynomials P_1..P_order of x (P_0 is the bias)."""
    cols = np.polynomial.legendre.legvander(x[:, 0], order)[:, 1:]
    return cols.astype(np.float32)


class PolynomialRegression(nn.Module):
    """y = b + Σ_k w_k P_k(x): a linear layer on polynomial features, (N, 1) -> (N, 1)."""

    def __init__(self, order):
        super().__init__()
        self.order = order
        self.linear = nn.Linear(order, 1)

    def forward(self, x):
        x = x.numpy() if isinstance(x, lamina.Tensor) else np.asarray(x)
        return self.linear(lamina.from_numpy(features(x, self.order)))


def fit(order, x, y, steps, lr, weight_decay=0.0, seed=0):
    """Full-batch Adam on the mean squared error plus (weight_decay/2)·‖w‖² (Adam's L2
    term adds weight_decay·w to the gradient); the bias is not decayed."""
    lamina.manual_seed(seed)
    model = PolynomialRegression(order)
    decay = [model.linear.weight]
    opt = lamina.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                             {"params": [model.linear.bias], "weight_decay": 0.0}], lr=lr)
    xt, yt = lamina.from_numpy(features(x, order)), lamina.from_numpy(y.astype(np.float32))
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model.linear(xt), yt)
        loss.backward()
        opt.step()
    return model


def mse(model, x, y):
    with lamina.no_grad():
        return float(F.mse_loss(model(x), lamina.from_numpy(y.astype(np.float32))).item())


class PolyfitRecipe(Recipe):
    name = "polyfit"
    summary = "fits of order 1, 2, 9 to 12 noisy points: under/overfitting, and the L2 prior"
    defaults = dict(n_train=12, n_val=200, noise=0.2, steps=6000, lr=0.05,
                    weight_decay=1e-2, seed=0, epochs=1, batch_size=12)
    quick = dict(steps=3000)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        rng = np.random.default_rng(cfg["seed"])
        x, y = sample(cfg["n_train"], cfg["noise"], rng)
        xv, yv = sample(cfg["n_val"], cfg["noise"], rng)
        rows = []
        for order, wd in ((1, 0.0), (2, 0.0), (9, 0.0), (9, cfg["weight_decay"])):
            m = fit(order, x, y, cfg["steps"], cfg["lr"], wd, cfg["seed"])
            row = {"order": order, "weight_decay": wd, "train_mse": mse(m, x, y),
                   "val_mse": mse(m, xv, yv)}
            rows.append(row)
            prior = f" + L2 prior (λ={wd:g})" if wd else ""
            log(f"order {order}{prior}: train MSE {row['train_mse']:.4f}, "
                f"validation MSE {row['val_mse']:.4f}")
        log(f"(noise variance {cfg['noise'] ** 2:.4f} is the best possible validation MSE)")
        results = {"recipe": self.name, "fits": rows, "config": cfg}
        save_results(out_dir, results)
        return results


RECIPE = PolyfitRecipe()
