"""Per-coordinate adaptive rates: Adagrad (Duchi et al. 2011), RMSprop (Tieleman &
Hinton 2012), Adadelta (Zeiler 2012), with PyTorch's update formulas, on flat buffers."""
from .. import backend as B
from .adam import _check_nonneg
from .optimizer import Optimizer, foreach_chunk


def _effective_grad(xp, g, x, wd, maximize, out):
    """``-g`` (maximize) plus ``wd * x``; returns ``(array, sign)`` with the effective
    gradient equal to ``sign * array`` (no pass spent on a bare negation)."""
    if not wd:
        return g, (-1.0 if maximize else 1.0)
    xp.multiply(x, wd, out=out)
    if maximize:
        out -= g
    else:
        out += g
    return out, 1.0


class Adagrad(Optimizer):
    """Adagrad, PyTorch's update (``t`` the group's step count):

        g = -g (maximize);  g = g + weight_decay * p
        sum = sum + g^2                                  (sum starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    A param group's own ``initial_accumulator_value`` is used for its accumulator
    (PyTorch uses the constructor's value for every group).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check_nonneg("Adagrad", group, ("lr", "lr_decay", "weight_decay",
                                         "initial_accumulator_value", "eps"))

    def _prepare(self, group, data, state):
        if not state:
            state["step"] = 0
            state["sum"] = B.xp.full_like(data, float(group["initial_accumulator_value"]))

    def _update(self, group, p, grad, state):
        t = state["step"] = state["step"] + 1
        clr = float(group["lr"]) / (1.0 + (t - 1) * float(group["lr_decay"]))
        eps, wd, maximize = float(group["eps"]), float(group["weight_decay"]), group["maximize"]
        acc, xp = state["sum"], B.xp

        def kernel(lo, hi, scratch):
            s0, s1 = scratch
            x = p[lo:hi]
            g, sign = _effective_grad(xp, grad[lo:hi], x, wd, maximize, s0)
            a = acc[lo:hi]
            xp.square(g, out=s1)
            a += s1
            xp.sqrt(a, out=s1)
            s1 += eps
            xp.divide(g, s1, out=s1)
            s1 *= clr * sign
            x -= s1

        foreach_chunk(kernel, p.size, p.dtype, 2)


class RMSprop(Optimizer):
    """RMSprop, PyTorch's update:

        g = -g (maximize);  g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        centered:  g_avg = alpha * g_avg + (1 - alpha) * g;  d = sqrt(v - g_avg^2) + eps
        else:      d = sqrt(v) + eps
        momentum > 0:  buf = momentum * buf + g / d;  p = p - lr * buf
        else:          p = p - lr * g / d
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check_nonneg("RMSprop", group, ("lr", "alpha", "eps", "weight_decay", "momentum"))

    def _prepare(self, group, data, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = B.xp.zeros_like(data)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = B.xp.zeros_like(data)
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = B.xp.zeros_like(data)

    def _update(self, group, p, grad, state):
        state["step"] += 1
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, mom, maximize = float(group["weight_decay"]), float(group["momentum"]), group["maximize"]
        sq_all = state["square_avg"]
        ga_all = state["grad_avg"] if group["centered"] else None
        buf_all = state["momentum_buffer"] if mom > 0 else None
        xp = B.xp

        def kernel(lo, hi, scratch):
            s0, s1, s2 = scratch
            x = p[lo:hi]
            g, sign = _effective_grad(xp, grad[lo:hi], x, wd, maximize, s0)
            sq = sq_all[lo:hi]
            sq *= alpha
            xp.square(g, out=s1)
            s1 *= 1.0 - alpha
            sq += s1
            if ga_all is not None:
                ga = ga_all[lo:hi]
                ga *= alpha
                xp.multiply(g, (1.0 - alpha) * sign, out=s1)
                ga += s1
                xp.square(ga, out=s1)
                xp.subtract(sq, s1, out=s1)
                xp.sqrt(s1, out=s1)
            else:
                xp.sqrt(sq, out=s1)
            s1 += eps
            xp.divide(g, s1, out=s1)  # sign * g / d
            if buf_all is not None:
                buf = buf_all[lo:hi]
                buf *= mom
                if sign < 0:
                    buf -= s1
                else:
                    buf += s1
                xp.multiply(buf, lr, out=s1)
            else:
                s1 *= lr * sign
            x -= s1

        foreach_chunk(kernel, p.size, p.dtype, 3)


class Adadelta(Optimizer):
    """Adadelta, PyTorch's update:

        g = -g (maximize);  g = g + weight_decay * p
        v = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta^2
        p = p - lr * delta
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group):
        _check_nonneg("Adadelta", group, ("lr", "eps", "weight_decay"))
        rho = group["rho"]
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho={rho} (must be in [0, 1])")

    def _prepare(self, group, data, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = B.xp.zeros_like(data)
            state["acc_delta"] = B.xp.zeros_like(data)

    def _update(self, group, p, grad, state):
        state["step"] += 1
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        wd, maximize = float(group["weight_decay"]), group["maximize"]
        sq_all, acc_all, xp = state["square_avg"], state["acc_delta"], B.xp

        def kernel(lo, hi, scratch):
            s0, s1, s2 = scratch
            x = p[lo:hi]
            g, sign = _effective_grad(xp, grad[lo:hi], x, wd, maximize, s0)
            sq, acc = sq_all[lo:hi], acc_all[lo:hi]
            sq *= rho
            xp.square(g, out=s1)
            s1 *= 1.0 - rho
            sq += s1
            xp.add(sq, eps, out=s1)
            xp.sqrt(s1, out=s1)             # std
            xp.add(acc, eps, out=s2)
            xp.sqrt(s2, out=s2)
            s2 /= s1
            s2 *= g                         # sign * delta
            acc *= rho
            xp.square(s2, out=s1)
            s1 *= 1.0 - rho
            acc += s1
            s2 *= lr * sign
            x -= s2

        foreach_chunk(kernel, p.size, p.dtype, 3)
