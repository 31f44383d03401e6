"""Activation primitives with closed-form backward (one graph node each).

relu, tanh and sigmoid live in :mod:`lamina.ops.elementwise`; the ones here are used
in models often enough (gelu, elu, softplus, leaky_relu, prelu) or have PyTorch-specific
gradients at their kinks (threshold, hardtanh) that a single node pays. Forward formulas
and the gradient at the kinks follow PyTorch.
"""
import math

from .. import backend as B
from .. import grad_mode
from ..tensor import plain, result

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _floats(x, op):
    xd = x.data
    if xd.dtype.kind not in "fc":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {xd.dtype}")
    return xd


def _inplace(fn, a):
    """fn(a) written over a; 0-d results of NumPy arithmetic are scalars, not arrays."""
    return fn(a, out=a) if a.__class__ is B.xp.ndarray else fn(a)


def _record(name, x, y, backward):
    if x.requires_grad and grad_mode.enabled:
        backward.__qualname__ = f"{name}.<locals>.backward"  # grad_fn shows e.g. GeluBackward
        return result(y, (x,), backward)
    return plain(y)


# NumPy's three-argument where (and copyto with where=) run ~20x slower than arithmetic
# here, so the ops below select with exact arithmetic instead: max(x, 0) + a * min(x, 0),
# products with 0/1 masks, or max(mask, c) for a factor c in [0, 1].

def _mask(cond, dtype):
    return cond.astype(dtype, copy=False) if cond.__class__ is B.xp.ndarray else \
        B.xp.asarray(cond, dtype=dtype)


# ---------------------------------------------------------------- piecewise linear
def threshold(x, threshold, value):
    """y = x where x > threshold, else ``value``; the gradient is 0 where x <= threshold."""
    xd = _floats(x, "threshold")
    keep = xd > threshold
    y = B.xp.where(keep, xd, B.xp.asarray(value, dtype=xd.dtype))
    return _record("threshold", x, y, lambda g: (g * keep,))


def leaky_relu(x, negative_slope=0.01):
    """y = x for x > 0, negative_slope * x otherwise (gradient negative_slope at 0)."""
    xd = _floats(x, "leaky_relu")
    if 0.0 <= negative_slope <= 1.0:
        c = B.xp.maximum(_mask(xd > 0, xd.dtype), negative_slope)   # 1 or the slope
        y = xd * c
        return _record("leaky_relu", x, y, lambda g: (g * c,))
    y = B.xp.maximum(xd, 0) + negative_slope * B.xp.minimum(xd, 0)
    pos = xd > 0

    def backward(g):
        return (g * pos + (g * negative_slope) * ~pos,)
    return _record("leaky_relu", x, y, backward)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clip(x, min_val, max_val); the gradient is 0 at and beyond the bounds (PyTorch)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                         f"({max_val})")
    xd = _floats(x, "hardtanh")
    y = B.xp.clip(xd, min_val, max_val)
    return _record("hardtanh", x, y, lambda g: (g * ((xd > min_val) & (xd < max_val)),))


def prelu(x, weight):
    """y = x for x > 0, a_c * x otherwise, with a learned slope per channel (dim 1) or one
    shared slope. x: (N, C, *) or any shape when weight has one element; weight: (C,) or (1,).
    """
    xd, wd = _floats(x, "prelu"), weight.data
    if wd.ndim > 1:
        raise ValueError(f"prelu: weight must be 1-D, got shape {tuple(wd.shape)}")
    nw = wd.size
    if nw == 1:
        a = wd.reshape(())
    else:
        if xd.ndim < 2 or xd.shape[1] != nw:
            raise ValueError(f"prelu: weight of {nw} slopes needs an input with {nw} channels "
                             f"in dim 1, got shape {tuple(xd.shape)}")
        a = wd.reshape((nw,) + (1,) * (xd.ndim - 2))
    neg = B.xp.minimum(xd, 0)
    y = a * neg
    y += B.xp.maximum(xd, 0)
    gx = x.requires_grad and grad_mode.enabled
    gw = weight.requires_grad and grad_mode.enabled
    if not (gx or gw):
        return plain(y)
    wshape = wd.shape

    def backward(g):
        dx = dw = None
        if gx:
            pos = xd > 0
            dx = g * pos
            dx += (g * a) * ~pos
        if gw:
            gneg = g * neg
            axes = None if nw == 1 else (0,) + tuple(range(2, gneg.ndim))
            dw = B.xp.asarray(gneg.sum(axis=axes)).reshape(wshape)
        return dx, dw
    backward.__qualname__ = "prelu.<locals>.backward"
    return result(y, (x if gx else None, weight if gw else None), backward)


# ---------------------------------------------------------------- smooth
def _expm1_nonpos(n):
    """exp(n) - 1 for n <= 0, accurate near 0. float32: 2h / (1 - h), h = tanh(n / 2)
    (NumPy's expm1 is a scalar loop, tanh is vectorized); other dtypes: expm1."""
    if n.dtype != B.float32:
        return B.xp.expm1(n)
    h = n * 0.5
    h = _inplace(B.xp.tanh, h)
    d = 1 - h
    h *= 2
    h /= d
    return h


def elu(x, alpha=1.0):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise; dy/dx = alpha * exp(x) for x <= 0."""
    xd = _floats(x, "elu")
    e = _expm1_nonpos(B.xp.minimum(xd, 0))      # 0 where x > 0
    y = e * alpha
    y += B.xp.maximum(xd, 0)

    def backward(g):
        d = e + 1
        d *= alpha
        d += _mask(xd > 0, d.dtype) * (1.0 - alpha)   # 1 where x > 0
        d *= g
        return (d,)
    return _record("elu", x, y, backward)


def softplus(x, beta=1.0, threshold=20.0):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (linear there).

    Computed as max(bx, 0) + log1p(exp(-|bx|)), with log1p(z) = log(u) - ((u - 1) - z) / u,
    u = 1 + z (exact to first order; NumPy's log1p is a scalar loop)."""
    xd = _floats(x, "softplus")
    bx = xd * beta if beta != 1 else xd
    z = B.xp.abs(bx)
    z *= -1
    z = _inplace(B.xp.exp, z)                   # exp(-|bx|) in (0, 1]
    u = z + 1
    corr = u - 1
    corr -= z
    corr /= u
    sp = B.xp.log(u)
    sp -= corr
    sp += B.xp.maximum(bx, 0)
    if beta != 1:
        sp /= beta
    above = bx > threshold
    lin = _mask(above, xd.dtype)
    y = sp
    B.xp.copyto(y, xd, where=above)             # exactly x where linear (also x = +inf)

    def backward(g):
        s = B.xp.maximum(_mask(bx > 0, xd.dtype), z)
        s /= u                                  # sigmoid(bx) = 1/u or z/u
        s = B.xp.maximum(s, lin)                # exactly 1 in the linear region
        s *= g
        return (s,)
    return _record("softplus", x, y, backward)


def _normal_cdf(xd):
    """Phi(x) = 0.5 erfc(-x / sqrt 2), the standard normal CDF."""
    if xd.dtype != B.float32:
        cdf = _erf(xd * _SQRT1_2)
        cdf += 1
        cdf *= 0.5
        return cdf.astype(xd.dtype, copy=False)
    # float32: Phi(x) = c or 1 - c for x <= 0 or x > 0, c = 0.5 erfc(|x| / sqrt 2),
    # blended with a 0/1 mask (NumPy's where is ~20x slower than arithmetic)
    c = _erfc_nonneg32(B.xp.abs(xd) * _SQRT1_2)
    c *= 0.5
    cdf = c * -2.0
    cdf += 1
    cdf *= xd > 0
    cdf += c
    return cdf


def gelu(x, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF: 0.5 x (1 + erf(x / sqrt 2)); with
    ``approximate='tanh'``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    xd = _floats(x, "gelu")
    if approximate == "none":
        cdf = _normal_cdf(xd)
        y = xd * cdf

        def backward(g):
            pdf = B.xp.exp(xd * xd * -0.5)
            pdf *= _INV_SQRT_2PI
            pdf *= xd
            pdf += cdf
            pdf *= g
            return (pdf,)
        return _record("gelu", x, y, backward)
    if approximate == "tanh":
        x2 = xd * xd
        t = x2 * 0.044715
        t += 1
        t *= xd
        t *= _SQRT_2_PI
        t = _inplace(B.xp.tanh, t)
        y = t + 1
        y *= xd
        y *= 0.5

        def backward(g):
            # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
            inner = x2 * (3 * 0.044715)
            inner += 1
            inner *= _SQRT_2_PI
            d = t * t
            d -= 1
            d *= inner
            d *= xd
            d *= -0.5
            d += 0.5 * (1 + t)
            d *= g
            return (d,)
        return _record("gelu", x, y, backward)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


# ---------------------------------------------------------------- step
def step(x, straight_through=False, clip=None):
    """Heaviside step: 1 where x > 0, else 0 (x's dtype).

    The true gradient is 0 almost everywhere. With ``straight_through=True`` the
    gradient passes through unchanged, as if the step were the identity (the
    straight-through estimator of Bengio et al., 2013); ``clip=c`` additionally zeroes it
    where |x| > c (the "hard tanh" variant used for binarized networks, c = 1).
    """
    xd = _floats(x, "step")
    y = (xd > 0).astype(xd.dtype)
    if not straight_through:
        return _record("step", x, y, lambda g: (B.xp.zeros_like(g),))
    if clip is None:
        return _record("step", x, y, lambda g: (g,))
    return _record("step", x, y, lambda g: (g * (B.xp.abs(xd) <= clip),))


# ---------------------------------------------------------------- erf
def _erf_series(z):
    """erf(z) for 0 <= z <= 2.5: 2/sqrt(pi) exp(-z^2) sum_k 2^k z^(2k+1) / (2k+1)!!
    (all terms positive: no cancellation; 40 terms reach float64 precision)."""
    z2 = z * z
    term = z.copy()
    s = z.copy()
    for k in range(1, 40):
        term *= z2 * (2.0 / (2 * k + 1))
        s += term
    return (2 * _INV_SQRT_PI) * B.xp.exp(-z2) * s


def _erfc_cfrac(z):
    """erfc(z) for z >= 2.5 by Laplace's continued fraction
    exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))) cut at depth 30."""
    f = z.copy()
    for k in range(30, 0, -1):
        f = z + (k * 0.5) / f
    return B.xp.exp(-z * z) * _INV_SQRT_PI / f


def erf_fallback(x):
    """erf in plain array arithmetic (relative error < 1e-12 in float64), used when
    neither SciPy nor CuPy provides one."""
    dtype = x.dtype
    z = B.xp.abs(x.astype(B.float64))
    small = z < 2.5
    with B.xp.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        lo = _erf_series(B.xp.where(small, z, 0))
        hi = 1 - _erfc_cfrac(B.xp.where(small, 2.5, z))
    return (B.xp.sign(x) * B.xp.where(small, lo, hi)).astype(dtype, copy=False)


# erfcx(a) = exp(a^2) erfc(a) ~ P(t), t = 1 / (1 + a / 2), a >= 0: a degree-9 polynomial
# fitted for this file (iteratively reweighted least squares for the relative error, on
# [0, 10]); relative error 3e-8 in exact arithmetic, ~3e-7 evaluated in float32
_ERFCX_P = (-6.01352576414989e-06, 0.2822214170863177, 0.2810981334749523,
            0.24979464305867755, 0.18124742634704422, 0.017080441341238463,
            0.22118997339377283, -0.4414787297088367, 0.26390434574620003,
            -0.055051669558473806)


def _erfc_nonneg32(a):
    """erfc(a) for float32 a >= 0 in a few SIMD-friendly passes (SciPy's erf is a scalar
    loop, ~10x slower): exp(-a^2) P(1 / (1 + a/2))."""
    t = a * 0.5
    t += 1
    t = _inplace(B.xp.reciprocal, t)
    r = t * _ERFCX_P[-1]
    for c in _ERFCX_P[-2:0:-1]:
        r += c
        r *= t
    r += _ERFCX_P[0]
    e = a * a
    e *= -1
    with B.xp.errstate(under="ignore"):
        e = _inplace(B.xp.exp, e)
    r *= e
    return r


_erf_impl = {}


def _erf(x):
    fn = _erf_impl.get(B.name)
    if fn is None:
        fn = erf_fallback
        try:  # special functions are outside the array namespace: take the backend's own
            if B.name == "cupy":
                from cupyx.scipy.special import erf as fn
            else:
                from scipy.special import erf as fn
        except ImportError:
            pass
        _erf_impl[B.name] = fn
    return fn(x)
