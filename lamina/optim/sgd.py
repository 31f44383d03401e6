"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from .. import backend as B
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's update, on each group's flat buffer:

        g = grad + weight_decay * p
        buf = g (first step), else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf (momentum > 0)
        p -= lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid hyper-parameters lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay} (all must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, group, p, grad, state):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        tmp = state.get("scratch")
        if tmp is None or tmp.shape != p.shape:
            tmp = state["scratch"] = B.xp.empty_like(p)
        g = grad
        if group["maximize"]:
            B.xp.negative(grad, out=tmp)
            g = tmp
        if wd:
            if g is tmp:
                tmp += wd * p
            else:
                B.xp.multiply(p, wd, out=tmp)
                tmp += g
            g = tmp
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                if group["dampening"]:
                    buf += (1 - group["dampening"]) * g
                else:
                    buf += g
            if group["nesterov"]:
                if g is tmp:
                    tmp += mu * buf
                else:
                    B.xp.multiply(buf, mu, out=tmp)
                    tmp += g
                g = tmp
            else:
                g = buf
        B.xp.multiply(g, lr, out=tmp)
        p -= tmp

    def state_dict(self):
        sd = super().state_dict()
        for s in sd["state"].values():
            s.pop("scratch", None)
        return sd
