"""perceptron: Rosenblatt's learning rule, its limit on XOR, and backprop getting past it.

1. A perceptron (sign of w·x + b) trained by Rosenblatt's rule — on a mistake,
   w ← w + lr·y·x and b ← b + lr·y, no gradients — on linearly separable 2-D data: it
   converges and classifies every point (the perceptron convergence theorem).
2. The same rule on XOR: no line separates the classes, so no epoch gets more than 3 of
   the 4 points (75%).
3. A 2-8-1 tanh MLP trained by backprop (BCE with logits, full-batch SGD): 100% on XOR.
"""
import numpy as np

import lamina
from lamina import nn
from lamina.data import synthetic
from lamina.nn import functional as F

from .recipe import Recipe, write_json


class Perceptron:
    """Rosenblatt's perceptron: ŷ = sign(w·x + b) with labels in {-1, +1}, trained online
    by the mistake-driven rule (not by gradient descent). x: (N, D)."""

    def __init__(self, n_in, lr=1.0):
        self.w = lamina.zeros(n_in, dtype=lamina.float64)
        self.b = 0.0
        self.lr = lr

    def decision(self, x):
        return (lamina.as_tensor(x, dtype=lamina.float64) @ self.w).numpy() + self.b

    def predict(self, x):
        return np.where(self.decision(x) >= 0, 1, -1)

    def accuracy(self, x, y):
        return float((self.predict(x) == y).mean())

    def epoch(self, x, y, rng=None):
        """One pass in (optionally shuffled) order; returns the number of mistakes."""
        order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
        w, mistakes = self.w.data, 0
        for i in order:        # the rule is online: one sample at a time by definition
            if y[i] * (x[i] @ w + self.b) <= 0:
                w += self.lr * y[i] * x[i]
                self.b += self.lr * y[i]
                mistakes += 1
        return mistakes

    def fit(self, x, y, max_epochs=100, seed=0):
        """Train until an epoch without mistakes (or ``max_epochs``); returns the
        per-epoch accuracies."""
        rng = np.random.default_rng(seed)
        x = np.asarray(x, np.float64)
        accs = []
        for _ in range(max_epochs):
            mistakes = self.epoch(x, y, rng)
            accs.append(self.accuracy(x, y))
            if mistakes == 0:
                break
        return accs


def separable_blobs(n=200, margin=0.1, seed=0):
    """Two Gaussian clouds on either side of a random line, at least ``margin`` from it:
    x float64 (n, 2), y in {-1, +1}."""
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal(2)
    normal /= np.linalg.norm(normal)
    x = rng.standard_normal((4 * n, 2)) * 1.5
    d = x @ normal - 0.3
    keep = np.abs(d) >= margin
    x, d = x[keep][:n], d[keep][:n]
    return x, np.where(d > 0, 1, -1)


class PerceptronRecipe(Recipe):
    name = "perceptron"
    summary = "Rosenblatt's perceptron: 100% on separable data, <= 75% on XOR; an MLP solves XOR"
    defaults = dict(epochs=100, mlp_epochs=2000, lr=0.5, hidden=8, seed=0, batch_size=4)
    quick = dict(epochs=50, mlp_epochs=1000)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        lamina.manual_seed(cfg["seed"])
        x, y = separable_blobs(seed=cfg["seed"])
        p = Perceptron(2)
        accs = p.fit(x, y, cfg["epochs"], cfg["seed"])
        log(f"1. perceptron, linearly separable data ({len(x)} points): "
            f"{accs[-1] * 100:.1f}% after {len(accs)} epochs "
            f"({'converged' if accs[-1] == 1.0 else 'not converged'})")

        xx, yx = synthetic.xor()
        yx_pm = np.where(yx.ravel() > 0, 1, -1)
        px = Perceptron(2)
        xor_accs = px.fit(xx.astype(np.float64), yx_pm, cfg["epochs"], cfg["seed"])
        log(f"2. perceptron, XOR: best {max(xor_accs) * 100:.0f}% over {len(xor_accs)} epochs "
            f"(a line can get at most 3 of the 4 points: XOR is not linearly separable)")

        mlp = nn.Sequential(nn.Linear(2, cfg["hidden"]), nn.Tanh(), nn.Linear(cfg["hidden"], 1))
        opt = lamina.optim.SGD(mlp.parameters(), lr=cfg["lr"])
        trainer = lamina.train.Trainer(metrics=["accuracy"], verbose=False)
        data = [(lamina.from_numpy(xx), lamina.from_numpy(yx))]        # one full batch
        hist = trainer.fit(mlp, F.binary_cross_entropy_with_logits, opt, data,
                           epochs=cfg["mlp_epochs"])
        mlp_acc = trainer.evaluate(data)["accuracy"]
        log(f"3. 2-{cfg['hidden']}-1 tanh MLP trained by backprop, XOR: {mlp_acc * 100:.0f}% "
            f"(final loss {hist[-1]['loss']:.4f})")
        results = {"recipe": self.name, "separable_accuracy": accs[-1],
                   "separable_epochs": len(accs), "xor_perceptron_best_accuracy": max(xor_accs),
                   "xor_mlp_accuracy": mlp_acc, "config": cfg}
        if out_dir is not None:
            import os
            write_json(os.path.join(out_dir, "results.json"), results)
        return results


RECIPE = PerceptronRecipe()
