"""Evolution strategies: a gradient-free optimizer that needs only the loss.

Each step samples ``population // 2`` Gaussian directions ε_i over the flat parameter
vector θ and evaluates the loss at θ + σ ε_i and θ - σ ε_i (antithetic pairs). The losses
are replaced by centred ranks (in [-0.5, 0.5]; robust to the loss's scale and outliers),
and θ moves against the estimated gradient

    g = 1 / (n σ) Σ_i (r(θ + σ ε_i) - r(θ - σ ε_i)) ε_i,      θ ← θ - lr · g

(Salimans et al. 2017's variant of natural evolution strategies). Weight decay, if
given, adds ``weight_decay · θ`` to g. Usage::

    opt = EvolutionStrategies(model.parameters(), lr=0.05, sigma=0.1, population=50)
    def closure():
        with lamina.no_grad():
            return loss_fn(model(x), y)
    loss = opt.step(closure)      # the loss at the parameters before the update
"""
import numpy as np

from ..grad_mode import no_grad
from .optimizer import Optimizer


def centered_ranks(x):
    """Ranks of x scaled to [-0.5, 0.5] (ties broken by position)."""
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / max(len(x) - 1, 1) - 0.5


class EvolutionStrategies(Optimizer):
    def __init__(self, params, lr=0.05, sigma=0.1, population=50, weight_decay=0.0,
                 seed=None):
        if lr <= 0 or sigma <= 0:
            raise ValueError(f"EvolutionStrategies: lr and sigma must be positive, got "
                             f"lr={lr}, sigma={sigma}")
        if population < 2 or population % 2:
            raise ValueError(f"EvolutionStrategies: population must be an even number >= 2 "
                             f"(antithetic pairs), got {population}")
        super().__init__(params, dict(lr=lr, sigma=sigma, population=population,
                                      weight_decay=weight_decay))
        if seed is None:
            from .. import backend as B
            seed = int(B.rng().integers(2 ** 63))
        self.rng = np.random.default_rng(seed)

    def step(self, closure=None):
        """One ES update; ``closure()`` returns the loss at the current parameters."""
        if closure is None:
            raise ValueError("EvolutionStrategies.step needs a closure that returns the loss")

        def loss():
            with no_grad():
                v = closure()
            return float(v.item() if hasattr(v, "item") else v)

        flats = [self._group_buffers(i)[0] for i in range(len(self.param_groups))]
        base = loss()
        for flat, group in zip(flats, self.param_groups):
            half, sigma = group["population"] // 2, group["sigma"]
            eps = self.rng.standard_normal((half, flat.size)).astype(flat.dtype, copy=False)
            theta = flat.copy()
            f = np.empty(2 * half)
            for i in range(half):
                np.add(theta, sigma * eps[i], out=flat)
                f[2 * i] = loss()
                np.subtract(theta, sigma * eps[i], out=flat)
                f[2 * i + 1] = loss()
            r = centered_ranks(f)
            weights = (r[0::2] - r[1::2]).astype(flat.dtype)
            g = weights @ eps
            g /= 2 * half * sigma
            if group["weight_decay"]:
                g += group["weight_decay"] * theta
            np.subtract(theta, group["lr"] * g, out=flat)
        return base

    def state_dict(self):
        sd = super().state_dict()
        sd["rng"] = self.rng.bit_generator.state
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)
        if rng is not None:
            self.rng.bit_generator.state = rng
