"""Lazy parameter gradients that sum over the uses of a parameter in one backward pass.

A layer applied at every step of a Python loop (an RNN cell, an output Linear) receives
one gradient piece per step. :class:`StackedParamGrad` keeps the pieces instead of adding
them: the engine's ``prev + new`` just extends two lists, and the parameter's gradient is
then ONE product over all steps, dG_all^T [a_1; ...; a_T], written straight into the
(flat) gradient storage (see :class:`~lamina.autograd.engine.LazyGrad`), instead of T
small products and T additions.
"""
from .. import backend as B
from ..autograd.engine import LazyGrad
from ..parallel import matmul as _mm

# pieces of more rows than this are not stacked: copying large pieces into one array
# would cost more than the products and additions it saves
MAX_STACKED_ROWS = 1024


class SharedRows:
    """What the lazy gradients of one op's parameters share (a weight and its bias): the
    concatenation of the output gradients over uses (and its sum over rows, the bias
    gradient), computed once for all of them."""

    __slots__ = ("key", "cat", "bias_sum")

    def __init__(self):
        self.key = self.cat = self.bias_sum = None


class StackedParamGrad(LazyGrad):
    """Sum over uses of dG_t^T a_t (a weight; ``as_`` is the list of the a_t) or of
    dG_t.sum(0) (a bias; ``as_`` is None). dG_t: (rows, out), a_t: (rows, in). Adding two
    of the same kind concatenates the lists; the products happen once, when the engine
    writes the gradient.

    ``fm`` (feature-major): the pieces in ``gs`` are dG_t^T, (out, rows), as an op that
    computes feature-major (the fused LSTM cell) has them; they are then joined side by
    side and the weight gradient is [dG_1^T | ... | dG_T^T] [a_1; ...; a_T], with no
    per-step transposing copy (~86 us a step for the char-LSTM cell's (1024, 32) gates)."""

    __slots__ = ("sh", "gs", "as_", "shape", "dtype", "fm")

    def __init__(self, sh, gs, as_, shape, dtype, fm=False):
        self.sh, self.gs, self.as_, self.shape, self.dtype = sh, gs, as_, shape, dtype
        self.fm = fm

    def __add__(self, other):
        rows = 1 if self.fm else 0
        if other.__class__ is StackedParamGrad and (other.as_ is None) == (self.as_ is None) \
                and other.fm is self.fm \
                and other.shape == self.shape and other.dtype == self.dtype \
                and self.gs[-1].shape[rows] <= MAX_STACKED_ROWS \
                and other.gs[0].shape[rows] <= MAX_STACKED_ROWS:
            self.gs += other.gs  # the engine owns both; extending in place is safe
            if self.as_ is not None:
                self.as_ += other.as_
            return self
        other = other.materialize() if isinstance(other, LazyGrad) else other
        return self.materialize() + other

    __radd__ = __add__

    def _gcat(self):
        gs = self.gs
        if len(gs) == 1:
            return gs[0]
        sh = self.sh
        key = sh.key
        if key is not None and len(key) == len(gs) and all(a is b for a, b in zip(key, gs)):
            return sh.cat
        cat = B.xp.concatenate(gs, axis=1 if self.fm else 0)
        sh.key, sh.cat, sh.bias_sum = list(gs), cat, None
        return cat

    def write_into(self, out):
        xp = B.xp
        g = self._gcat()
        rows = 1 if self.fm else 0
        if self.as_ is None:
            sh = self.sh
            if len(self.gs) > 1 and sh.cat is g:
                if sh.bias_sum is None:
                    sh.bias_sum = g.sum(rows)
                out[...] = sh.bias_sum
            else:
                xp.sum(g, axis=rows, out=out)
            return
        a = self.as_[0] if len(self.as_) == 1 else xp.concatenate(self.as_)
        _mm(g if self.fm else g.T, a, out=out)

    def materialize(self):
        out = B.xp.empty(self.shape, dtype=self.dtype)
        self.write_into(out)
        return out


def weight_and_bias_grads(g, a, weight_shape, bias_shape=None):
    """Lazy (weight, bias) gradients g^T a and g.sum(0) for one use, sharing their
    stacked rows; g: (rows, out), a: (rows, in). bias_shape None: no bias gradient."""
    sh = SharedRows()
    dt = g.dtype if g.dtype == a.dtype else B.xp.result_type(g.dtype, a.dtype)
    return (StackedParamGrad(sh, [g], [a], weight_shape, dt),
            None if bias_shape is None else StackedParamGrad(sh, [g], None, bias_shape, g.dtype))
