"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from .. import backend as B
from .optimizer import Optimizer, foreach_chunk


class SGD(Optimizer):
    """PyTorch's update, on each group's flat buffer:

        g = -grad (maximize) or grad;  g = g + weight_decay * p
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
        lr, mu, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        damp, nesterov, maximize = float(group["dampening"]), group["nesterov"], group["maximize"]
        state.pop("scratch", None)  # left by older versions
        buf_all = state.get("momentum_buffer") if mu else None
        first = bool(mu) and buf_all is None
        if first:
            buf_all = state["momentum_buffer"] = B.xp.empty_like(p)
        xp = B.xp

        def kernel(lo, hi, scratch):
            s0, s1 = scratch
            x, g, sign = p[lo:hi], grad[lo:hi], 1.0
            if wd:
                xp.multiply(x, wd, out=s0)
                if maximize:
                    s0 -= g
                else:
                    s0 += g
                g = s0
            elif maximize:
                sign = -1.0  # the effective gradient is sign * g
            if not mu:
                xp.multiply(g, lr * sign, out=s1)
                x -= s1
                return
            buf = buf_all[lo:hi]
            if first:
                xp.multiply(g, sign, out=buf)
            else:
                buf *= mu
                if damp:
                    xp.multiply(g, (1.0 - damp) * sign, out=s1)
                    buf += s1
                elif sign < 0:
                    buf -= g
                else:
                    buf += g
            if nesterov:
                xp.multiply(buf, mu, out=s1)
                if sign < 0:
                    s1 -= g
                else:
                    s1 += g
                s1 *= lr
            else:
                xp.multiply(buf, lr, out=s1)
            x -= s1

        foreach_chunk(kernel, p.size, p.dtype, 2)
