"""The public custom-op API, in Chainer's style: forward and backward side by side on arrays.

    class Cube(lamina.autograd.Function):
        @staticmethod
        def forward(ctx, x):              # x: ndarray
            ctx.save_for_backward(x)
            return x ** 3
        @staticmethod
        def backward(ctx, g):             # g: ndarray, d loss / d output
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g         # one gradient per input (None for none)

    y = Cube.apply(t)                     # t: Tensor -> y: Tensor

Tensors passed to ``apply`` reach ``forward`` as arrays; other arguments pass unchanged.
``forward`` may return one array or a tuple; ``backward`` then receives one gradient per
output (zeros for outputs that got none).
"""
from .. import backend as B
from ..tensor import Tensor, plain, result
from .. import grad_mode


class Context:
    """Scratch space shared by one call's forward and backward."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def mark_non_differentiable(self, *outputs):
        """Outputs (the very arrays ``forward`` returns) that get no gradient, e.g. indices."""
        self.non_differentiable = outputs


class _MultiGrad(dict):
    """Gradients of several outputs of one node, keyed by output position; ``+`` merges."""

    def __add__(self, other):
        merged = _MultiGrad(self)
        for i, g in other.items():
            merged[i] = merged[i] + g if i in merged else g
        return merged


class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        ctx = Context()
        tensors = [a for a in args if isinstance(a, Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        with grad_mode.no_grad():
            out = cls.forward(ctx, *raw)
        multiple = isinstance(out, tuple)
        outs = tuple(B.xp.asarray(o) for o in (out if multiple else (out,)))
        if not (grad_mode.enabled and any(t.requires_grad for t in tensors)):
            wrapped = tuple(plain(o) for o in outs)
            return wrapped if multiple else wrapped[0]
        nondiff = getattr(ctx, "non_differentiable", ())
        tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        parents = tuple(args[i] for i in tensor_pos)
        name = cls.__name__

        def call_backward(g):
            grads = cls.backward(ctx, *g) if multiple else cls.backward(ctx, g)
            if not isinstance(grads, (tuple, list)):
                grads = (grads,)
            if len(grads) != len(args):
                raise RuntimeError(f"{name}.backward returned {len(grads)} gradients, expected "
                                   f"{len(args)} (one per forward input)")
            picked = []
            for i in tensor_pos:
                gi = grads[i]
                if gi is not None:
                    gi = B.xp.asarray(gi.data if isinstance(gi, Tensor) else gi)
                    if gi.shape != args[i].shape:
                        raise RuntimeError(f"{name}.backward: gradient {i} has shape "
                                           f"{tuple(gi.shape)}, input has {tuple(args[i].shape)}")
                picked.append(gi)
            return tuple(picked)

        call_backward.__qualname__ = f"{name}Backward"
        if not multiple:
            if _no_grad_output(outs[0], nondiff):
                return plain(outs[0])
            return result(outs[0], parents, call_backward)

        def hub_backward(mg):
            g = tuple(mg[i] if i in mg else B.xp.zeros_like(o) for i, o in enumerate(outs))
            return call_backward(g)

        hub_backward.__qualname__ = f"{name}Backward"
        hub = result(B.xp.zeros(0), parents, hub_backward)
        return tuple(plain(o) if _no_grad_output(o, nondiff) else result(o, (hub,), _select(i))
                     for i, o in enumerate(outs))


def _no_grad_output(out, nondiff):
    """Integer/bool outputs and those marked non-differentiable do not require grad."""
    return out.dtype.kind not in "fc" or any(out is m for m in nondiff)


def _select(i):
    def select_backward(g):
        return (_MultiGrad({i: g}),)
    return select_backward
