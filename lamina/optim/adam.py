"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) on flat buffers."""
import math

from .. import backend as B
from .optimizer import Optimizer, foreach_chunk


def _check_nonneg(name, group, keys):
    for k in keys:
        v = group[k]
        if not v >= 0:  # also catches NaN
            raise ValueError(f"{name}: invalid {k}={v} (must be >= 0)")


def _check_betas(name, betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    for i, b in enumerate((b1, b2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name}: invalid betas[{i}]={b} (must be in [0, 1))")


class Adam(Optimizer):
    """Adam, with PyTorch's update (``g`` the gradient, ``t`` the group's step count):

        g = -g (maximize);  g = g + weight_decay * p   (L2, unless decoupled)
        p = p * (1 - lr * weight_decay)                (decoupled_weight_decay: AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v)                          (amsgrad; v_max replaces v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The flat state keeps ``m / (1 - beta1)`` and ``v / (1 - beta2)`` (so the moving
    averages update as ``m = beta1 * m + g``, one pass fewer each) with the constants
    folded into the final step: the whole update is 10 passes over chunks that stay in
    cache. ``state['exp_avg_scale'] * state['exp_avg']`` is PyTorch's ``exp_avg``
    (likewise ``exp_avg_sq`` and ``max_exp_avg_sq``). A scheduler that changes the betas
    (OneCycleLR) costs one extra rescaling pass on those steps.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        name = type(self).__name__
        _check_nonneg(name, group, ("lr", "eps", "weight_decay"))
        _check_betas(name, group["betas"])

    def _prepare(self, group, data, state):
        b1, b2 = (float(b) for b in group["betas"])
        s1, s2 = 1.0 - b1, 1.0 - b2
        if not state:
            state.update(step=0, exp_avg=B.xp.zeros_like(data), exp_avg_scale=s1,
                         exp_avg_sq=B.xp.zeros_like(data), exp_avg_sq_scale=s2)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = B.xp.zeros_like(data)
            state["max_exp_avg_sq_scale"] = s2
        # keep every stored moment at scale 1 - beta of the current betas
        for key, s in (("exp_avg", s1), ("exp_avg_sq", s2), ("max_exp_avg_sq", s2)):
            old = state.get(key + "_scale")
            if old is not None and old != s:
                state[key] *= old / s
                state[key + "_scale"] = s

    def _update(self, group, p, grad, state):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        b1, b2 = (float(b) for b in group["betas"])
        t = state["step"] = state["step"] + 1
        bc1, bc2_sqrt = 1.0 - b1 ** t, math.sqrt(1.0 - b2 ** t)
        root_s2 = math.sqrt(1.0 - b2)
        # p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), with m = s1*M and v = s2*V:
        #   = C * M / (sqrt(V) + eps2)
        coef = lr * (1.0 - b1) * bc2_sqrt / (bc1 * root_s2)
        eps2 = eps * bc2_sqrt / root_s2
        decoupled = group["decoupled_weight_decay"]
        l2 = wd if (wd and not decoupled) else 0.0
        shrink = 1.0 - lr * wd if (wd and decoupled) else 1.0
        maximize = group["maximize"]
        m_all, v_all = state["exp_avg"], state["exp_avg_sq"]
        vmax_all = state.get("max_exp_avg_sq") if group["amsgrad"] else None
        xp = B.xp

        def kernel(lo, hi, scratch):
            s0, s1 = scratch
            g, m, v, x = grad[lo:hi], m_all[lo:hi], v_all[lo:hi], p[lo:hi]
            if l2:
                xp.multiply(x, l2, out=s0)
                if maximize:
                    s0 -= g
                else:
                    s0 += g
                g = s0
            m *= b1
            if maximize and not l2:
                m -= g
            else:
                m += g
            v *= b2
            xp.square(g, out=s1)
            v += s1
            if vmax_all is not None:
                v = vmax_all[lo:hi]
                xp.maximum(v, v_all[lo:hi], out=v)
            xp.sqrt(v, out=s1)
            s1 += eps2
            xp.divide(m, s1, out=s1)
            s1 *= coef
            if shrink != 1.0:
                x *= shrink
            x -= s1

        foreach_chunk(kernel, p.size, p.dtype, 2)


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's AdamW): each step first shrinks the
    parameters, ``p *= 1 - lr * weight_decay``, then applies the Adam step to the plain
    gradient. Default ``weight_decay=1e-2`` as in PyTorch."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
