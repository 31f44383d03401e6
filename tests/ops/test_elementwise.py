"""Elementwise ops against PyTorch: values, gradients, float64 gradchecks, broadcasting,
PyTorch's dtype promotion and gradient conventions, errors, and in-place updates.

Most cases are a function ``f(m, *xs)`` written once for both frameworks: ``m`` is the
``lamina`` or ``torch`` module, so operators, methods and ``m.<name>`` functions all work.
"""
import operator
import warnings

import numpy as np
import pytest
import torch

import lamina as L
from lamina.autograd.gradcheck import gradcheck, gradcheck_inputs
from helpers import check_op, noncontig, rand


def run(f, *arrays, **kw):
    return check_op(lambda *xs: f(L, *xs), lambda *xs: f(torch, *xs), *arrays, **kw)


def away(*shape, seed=None):
    """Values with |v| in [0.5, 2] and random sign: safe denominators and divisors."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float64)


def pos(*shape, seed=None):
    return rand(*shape, low=0.3, high=2.0, seed=seed)


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


# ---------------------------------------------------------------- binary arithmetic
# name -> (operator form or None, input makers for (a, b))
BINARY = {
    "add": (lambda x, y: x + y, rand, rand),
    "sub": (lambda x, y: x - y, rand, rand),
    "mul": (lambda x, y: x * y, rand, rand),
    "div": (lambda x, y: x / y, rand, away),
    "pow": (lambda x, y: x ** y, pos, rand),
    "remainder": (lambda x, y: x % y, rand, away),
    "maximum": (None, rand, rand),
    "minimum": (None, rand, rand),
}
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((4,), (2, 3, 4)),
          ((), (3, 4)), ((3, 4), ()), ((), ()), ((1,), (2, 3))]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name,form", [(n, f) for n in BINARY for f in
                                       ["operator", "method", "function"]
                                       if f != "operator" or BINARY[n][0] is not None])
def test_binary_matches_torch(name, form, shapes):
    op, mk_a, mk_b = BINARY[name]
    a, b = mk_a(*shapes[0], seed=1), mk_b(*shapes[1], seed=2)
    if form == "operator":
        f = lambda m, x, y: op(x, y)  # noqa: E731
    elif form == "method":
        f = lambda m, x, y: getattr(x, name)(y)  # noqa: E731
    else:
        f = lambda m, x, y: getattr(m, name)(x, y)  # noqa: E731
    run(f, a, b)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_noncontiguous_inputs(name):
    op, mk_a, mk_b = BINARY[name]
    a, b = noncontig(mk_a(3, 4, seed=3)), noncontig(mk_b(3, 4, seed=4))
    assert not a.flags.c_contiguous
    run(lambda m, x, y: getattr(m, name)(x, y), a, b)
    # strided lamina views (transposes, not copies) give the same values and gradients
    run(lambda m, x, y: getattr(m, name)(x.transpose(0, 1), y.T), mk_a(4, 3, seed=5),
        mk_b(4, 3, seed=6))
    assert not L.tensor(mk_a(4, 3)).T.data.flags.c_contiguous


SCALAR_FORMS = {
    "x+2": (lambda m, x: x + 2, rand), "2+x": (lambda m, x: 2 + x, rand),
    "x-2.5": (lambda m, x: x - 2.5, rand), "2-x": (lambda m, x: 2 - x, rand),
    "x*3": (lambda m, x: x * 3, rand), "3*x": (lambda m, x: 3 * x, rand),
    "x/2": (lambda m, x: x / 2, rand), "2/x": (lambda m, x: 2 / x, away),
    "x**2": (lambda m, x: x ** 2, rand), "x**3": (lambda m, x: x ** 3, rand),
    "x**0": (lambda m, x: x ** 0, rand), "x**1": (lambda m, x: x ** 1, rand),
    "x**0.5": (lambda m, x: x ** 0.5, pos), "x**-1.5": (lambda m, x: x ** -1.5, pos),
    "x**-2": (lambda m, x: x ** -2, away),
    "2**x": (lambda m, x: 2 ** x, rand), "2.5**x": (lambda m, x: 2.5 ** x, rand),
    "0.5**x": (lambda m, x: 0.5 ** x, rand), "x%1.5": (lambda m, x: x % 1.5, rand),
    "-x": (lambda m, x: -x, rand), "+x": (lambda m, x: +x, rand),
    "abs(x)": (lambda m, x: abs(x), rand),
    "add_alpha": (lambda m, x: m.add(x, x * x, alpha=3), rand),
    "sub_alpha": (lambda m, x: x.sub(2 * x, alpha=0.5), rand),
    "add_scalar_fn": (lambda m, x: m.add(x, 2.0), rand),
    "mul_scalar_fn": (lambda m, x: m.mul(x, -1.5), rand),
    "pow_scalar_fn": (lambda m, x: m.pow(x, 3), rand),
    "pow_scalar_base_fn": (lambda m, x: m.pow(2.0, x), rand),
    "div_scalar_fn": (lambda m, x: m.div(x, 4), rand),
}


@pytest.mark.parametrize("shape", [(3, 4), ()], ids=str)
@pytest.mark.parametrize("name", list(SCALAR_FORMS))
def test_scalar_and_reflected_forms(name, shape):
    f, mk = SCALAR_FORMS[name]
    run(f, mk(*shape, seed=7))


def test_pow_tensor_exponent_at_zero_base():
    # d/dx x^y is 0 where y == 0; d/dy x^y is 0 where x == 0 and y >= 0 (PyTorch's rules)
    x = np.array([0.0, 0.0, 0.0, 0.5, 2.0, 1.5])
    y = np.array([2.0, 1.5, 0.0, 0.0, -1.0, 3.0])
    # finite differences in y at (x=0, y=0) see 0^(-eps) = inf, so parity only here
    out = run(lambda m, a, b: a ** b, x, y, check_grad=False)
    assert np.isfinite(out[0].numpy()).all()
    # where the function is smooth around the point (not 0^1.5: negative bases are nan)
    # the float64 gradcheck holds too
    run(lambda m, a, b: a ** b, x[[0, 3, 4, 5]], y[[0, 3, 4, 5]])


def test_pow_negative_base_with_integer_exponent():
    run(lambda m, x: x ** 3 + x ** -2, away(2, 3, seed=8))
    # a constant float exponent tensor (log of a negative base has no real derivative)
    run(lambda m, x: m.pow(x, m.tensor([1.0, 2.0, 3.0])), away(2, 3, seed=9))


def test_pow_with_integer_tensor_exponent():
    run(lambda m, x, n: x ** n, rand(2, 3, seed=10), np.array([0, 1, 2]))


# ---------------------------------------------------------------- unary
# name -> input maker (the op's domain)
UNARY = {
    "neg": rand, "abs": rand, "exp": rand, "log": pos, "log2": pos, "log10": pos,
    "log1p": lambda *s, seed=None: rand(*s, low=-0.7, high=2.0, seed=seed),
    "expm1": rand, "sqrt": pos, "rsqrt": pos, "sin": rand, "cos": rand,
    "tan": lambda *s, seed=None: rand(*s, low=-1.2, high=1.2, seed=seed),
    "tanh": rand, "sigmoid": rand, "relu": rand, "square": rand, "reciprocal": away,
    "arctan": rand, "atan": rand, "sinh": rand, "cosh": rand,
    # piecewise constant: zero gradients (random points are never within eps of a jump)
    "sign": rand, "floor": rand, "ceil": rand, "round": rand, "trunc": rand,
}


@pytest.mark.parametrize("shape", [(3, 4), (), (2, 1, 3)], ids=str)
@pytest.mark.parametrize("form", ["method", "function"])
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_matches_torch(name, form, shape):
    x = UNARY[name](*shape, seed=11)
    if form == "method":
        run(lambda m, t: getattr(t, name)(), x)
    else:
        run(lambda m, t: getattr(m, name)(t), x)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_noncontiguous(name):
    mk = UNARY[name]
    run(lambda m, t: getattr(m, name)(t), noncontig(mk(3, 4, seed=12)))
    run(lambda m, t: getattr(m, name)(t.T), mk(4, 3, seed=13))


def test_round_decimals():
    run(lambda m, x: m.round(x * 10, decimals=1), rand(3, 4, seed=14))


def test_piecewise_constant_gradients_are_zero():
    for name in ["sign", "floor", "ceil", "round", "trunc"]:
        x = L.tensor(rand(5, seed=15), requires_grad=True)
        getattr(L, name)(x).sum().backward()
        assert x.grad is not None and np.all(x.grad.numpy() == 0), name


# ---------------------------------------------------------------- edge cases
def test_kinks_at_exactly_zero_follow_torch():
    # abs'(0) = 0 (sgn), relu'(0) = 0, sign' = 0; finite differences are meaningless here
    x = np.array([-1.5, 0.0, 0.0, 2.0])
    for name in ["abs", "relu", "sign"]:
        run(lambda m, t: getattr(m, name)(t), x, check_grad=False)
    t = L.tensor(x, requires_grad=True)
    (t.abs() + t.relu()).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [-1.0, 0.0, 0.0, 2.0])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "exp"])
def test_saturating_ops_at_large_magnitudes(name):
    x = np.array([-50.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning here would mean a wrong path
        out = run(lambda m, t: getattr(m, name)(t), x, check_grad=False)
        # one value at a time: exp(50) in a summed projection would swamp exp(-50)'s nudge
        for v in x:
            run(lambda m, t: getattr(m, name)(t), np.array([v]))
    assert np.all(np.isfinite(out[0].numpy()))


def test_sigmoid_far_tails_float32():
    x = np.array([-200.0, -100.0, -88.0, 88.0, 100.0, 200.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run(lambda m, t: m.sigmoid(t), x, check_grad=False)
    y = out[0].numpy()
    assert y.dtype == np.float32 and np.all((y >= 0) & (y <= 1))
    assert y[-1] == 1.0 and y[0] == 0.0


def test_sqrt_and_rsqrt_at_zero():
    x = np.array([0.0, 0.25, 4.0])
    with np.errstate(divide="ignore"):
        # value 0 (inf for rsqrt) and an infinite slope at 0, as in PyTorch
        out = run(lambda m, t: m.sqrt(t), x, check_grad=False)
        run(lambda m, t: m.rsqrt(t), x, check_grad=False)
    assert out[0].numpy()[0] == 0.0
    t = L.tensor(x, requires_grad=True)
    with np.errstate(divide="ignore"):
        t.sqrt().sum().backward()
    assert np.isposinf(t.grad.numpy()[0]) and t.grad.numpy()[2] == 0.25


def test_logs_of_tiny_positive_values():
    x = np.array([1e-38, 1e-30, 1e-20, 1e-8, 1.0])
    # gradients ~1/x are huge but finite in float32; the float64 gradcheck can't step by eps
    # below 1e-8, so parity with torch only
    for name in ["log", "log2", "log10", "log1p"]:
        out = run(lambda m, t: getattr(m, name)(t), x, check_grad=False)
        assert np.all(np.isfinite(out[0].numpy())), name
    run(lambda m, t: m.log(t), np.array([1e-4, 3e-3, 0.5]), eps=1e-8)


def test_expm1_and_log1p_keep_precision_near_zero():
    run(lambda m, t: m.expm1(t) + m.log1p(t), np.array([1e-9, -1e-7, 3e-5]), atol=1e-12,
        rtol=1e-5, check_grad=False)


# ---------------------------------------------------------------- clamp / maximum / minimum
CLAMPS = {
    "min_only": lambda m, x: x.clamp(min=-0.5),
    "max_only": lambda m, x: x.clamp(max=0.7),
    "both": lambda m, x: x.clamp(-0.5, 0.7),
    "clip": lambda m, x: x.clip(-0.5, 0.7),
    "fn_clamp": lambda m, x: m.clamp(x, min=-1.0, max=1.0),
    "fn_clip": lambda m, x: m.clip(x, -1.0),
    "min_gt_max": lambda m, x: m.clamp(x, 0.5, -0.5),
    "int_bounds": lambda m, x: x.clamp(-1, 1),
}


@pytest.mark.parametrize("shape", [(3, 4), ()], ids=str)
@pytest.mark.parametrize("name", list(CLAMPS))
def test_clamp_scalar_bounds(name, shape):
    run(CLAMPS[name], rand(*shape, seed=16))


def test_clamp_gradient_at_bounds_is_inclusive():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    run(lambda m, t: t.clamp(0.0, 1.0), x, check_grad=False)
    t = L.tensor(x, requires_grad=True)
    t.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 1, 1, 0])


TENSOR_CLAMPS = {
    "min": (lambda m, x, lo, hi: m.clamp(x, min=lo), ),
    "max": (lambda m, x, lo, hi: m.clamp(x, max=hi), ),
    "both": (lambda m, x, lo, hi: m.clamp(x, lo, hi), ),
    "method": (lambda m, x, lo, hi: x.clamp(min=lo, max=hi), ),
    "crossed": (lambda m, x, lo, hi: m.clamp(x, hi, lo), ),  # min > max: max wins
}


@pytest.mark.parametrize("name", list(TENSOR_CLAMPS))
def test_clamp_tensor_bounds(name):
    f = TENSOR_CLAMPS[name][0]
    x, lo, hi = rand(3, 4, seed=17), rand(4, low=-1.0, high=0.0, seed=18), \
        rand(3, 1, low=0.0, high=1.0, seed=19)
    run(f, x, lo, hi)
    # the bounds broadcast the output up (PyTorch's backward only allows that with one bound)
    if name in ("min", "max"):
        run(f, rand(3, 1, seed=20), lo, hi)
    else:
        assert gradcheck(lambda *t: f(L, *t), gradcheck_inputs(rand(3, 1, seed=20), lo, hi))


def test_clamp_tensor_bounds_ties():
    # x == bound passes the gradient to x (PyTorch), no split as in maximum/minimum
    x = np.array([0.0, 1.0, 0.5, -1.0, 2.0])
    lo = np.array([0.0, 0.0, 0.5, 0.0, 0.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    run(lambda m, a, b, c: m.clamp(a, b, c), x, lo, hi, check_grad=False)


def test_clamp_mixed_scalar_and_tensor_bound():
    x, lo = L.tensor(rand(3, 4, seed=21), requires_grad=True), L.tensor(rand(4, seed=22))
    y = L.clamp(x, lo, 0.5)
    ref = torch.clamp(torch.tensor(x.numpy()), torch.tensor(lo.numpy()), torch.tensor(0.5))
    np.testing.assert_allclose(y.numpy(), ref.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() >= lo.numpy()) & (x.numpy() <= 0.5))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_gradient(name):
    x = np.array([[1.0, 2.0, -0.5, 3.0], [0.0, 0.0, 1.5, -2.0]])
    y = np.array([[1.0, 1.0, -0.5, 4.0], [0.0, 1.0, 1.5, -2.0]])
    run(lambda m, a, b: getattr(m, name)(a, b), x, y, check_grad=False)
    a, b = L.tensor(x, requires_grad=True), L.tensor(y, requires_grad=True)
    getattr(L, name)(a, b).sum().backward()
    tie = x == y
    np.testing.assert_array_equal(a.grad.numpy()[tie], 0.5)
    np.testing.assert_array_equal(b.grad.numpy()[tie], 0.5)
    # broadcast ties: the halves of one b element add up over the rows
    run(lambda m, a, b: getattr(m, name)(a, b), x, np.array([1.0, 0.0, 1.5, -2.0]),
        check_grad=False)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_propagate_nan(name):
    x = np.array([1.0, np.nan, 3.0, np.nan])
    y = np.array([np.nan, 2.0, 1.0, np.nan])
    run(lambda m, a, b: getattr(m, name)(a, b), x, y, check_grad=False)


def test_maximum_with_scalar_and_relu_composition():
    x = L.tensor(rand(3, 4, seed=23).astype(np.float32), requires_grad=True)
    y = L.maximum(x, 0.0)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), x.relu().numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x.numpy() > 0)


# ---------------------------------------------------------------- where
WHERES = {
    "same": ((3, 4), (3, 4), (3, 4)),
    "cond_col": ((3, 1), (1, 4), (3, 4)),
    "cond_row": ((4,), (2, 3, 4), (3, 1)),
    "cond_0d": ((), (3, 4), (4,)),
    "out_bigger": ((2, 1, 4), (3, 1), (4,)),
}


@pytest.mark.parametrize("name", list(WHERES))
def test_where_broadcasts_condition_and_branches(name):
    sc, sx, sy = WHERES[name]
    cond = np.random.default_rng(24).random(sc) > 0.5
    x, y = rand(*sx, seed=25), rand(*sy, seed=26)
    run(lambda m, c, a, b: m.where(c, a, b), cond, x, y)
    run(lambda m, c, a, b: a.where(c, b), cond, x, y)


def test_where_with_scalar_branches_and_condition_tensor():
    cond = np.array([[True, False, True], [False, False, True]])
    x = rand(2, 3, seed=27)
    run(lambda m, c, a: m.where(c, a, 0.0), cond, x)
    run(lambda m, c, a: m.where(c, 2.5, a), cond, x)
    run(lambda m, c, a: m.where(a > 0, a, a * 0.1), cond, x)
    out = L.where(L.tensor(cond), 1.0, 0.0)
    assert out.dtype == np.float32 and out.shape == (2, 3)


# ---------------------------------------------------------------- the remaining ops
def test_remainder_and_floor_divide():
    a, b = rand(3, 4, seed=28), away(4, seed=29)
    run(lambda m, x, y: m.remainder(x, y), a, b)
    run(lambda m, x, y: x.remainder(y), a, b)
    # PyTorch defines no derivative for floor_divide; lamina's is zero, like
    # div(rounding_mode='floor'), which PyTorch does differentiate (to zero)
    run(lambda m, x, y: x // y, a, b, grad=False)
    run(lambda m, x, y: m.floor_divide(x, y), a, b, grad=False)
    run(lambda m, x: 7.0 // x, b, grad=False)
    for mode in ["floor", "trunc"]:
        run(lambda m, x, y: m.div(x, y, rounding_mode=mode), a, b)
    x = L.tensor(a, requires_grad=True)
    (x // 0.7).sum().backward()
    assert np.all(x.grad.numpy() == 0)
    # scalar % tensor: PyTorch has no derivative; lamina's is -floor(5 / x)
    run(lambda m, x: 5.0 % x, b, grad=False)
    assert gradcheck(lambda x: 5.0 % x, gradcheck_inputs(b))


def test_integer_floor_and_trunc_division():
    a, b = np.array([7, -7, 5, -5]), np.array([2, 2, -3, -3])
    for f in [lambda m, x, y: x // y, lambda m, x, y: m.div(x, y, rounding_mode="trunc"),
              lambda m, x, y: x % y, lambda m, x, y: m.div(x, y, rounding_mode="floor")]:
        lo, to = f(L, L.tensor(a), L.tensor(b)), f(torch, torch.tensor(a), torch.tensor(b))
        assert dtype_name(lo) == dtype_name(to)
        np.testing.assert_array_equal(lo.numpy(), to.numpy())


@pytest.mark.parametrize("form", ["method", "function"])
def test_lerp(form):
    a, b, w = rand(3, 4, seed=30), rand(3, 4, seed=31), rand(4, low=0.0, high=1.0, seed=32)
    if form == "method":
        run(lambda m, x, y: x.lerp(y, 0.3), a, b)
        run(lambda m, x, y, z: x.lerp(y, z), a, b, w)
    else:
        run(lambda m, x, y: m.lerp(x, y, 0.75), a, b)
        run(lambda m, x, y, z: m.lerp(x, y, z), a, b, w)


CASTS = {
    "double": (lambda x: x.double(), lambda x: x.double()),
    "to_float64": (lambda x: x.to(L.float64), lambda x: x.to(torch.float64)),
    "to_str": (lambda x: x.to("cpu"), lambda x: x.to("cpu")),
    "float": (lambda x: x.float(), lambda x: x.float()),
    "half": (lambda x: x.half(), lambda x: x.half()),
    "to_f16_back": (lambda x: x.to(L.float16).float(), lambda x: x.to(torch.float16).float()),
}


@pytest.mark.parametrize("name", list(CASTS))
def test_casts_pass_gradients_back_in_the_input_dtype(name):
    lf, tf = CASTS[name]
    tol = dict(atol=2e-3, rtol=2e-3) if "f16" in name or name == "half" else {}
    # (float16 keeps 11 significant bits: 1e-3 relative is its resolution). Casts down from
    # float64 can't pass a float64 gradcheck (the nudges are rounded away), so only parity.
    down = name in ("float", "half", "to_f16_back")
    out = check_op(lambda x: lf(x) * 2, lambda x: tf(x) * 2, rand(3, 4, seed=33),
                   check_grad=not down, **tol)
    x = L.tensor(rand(3, seed=34).astype(np.float32), requires_grad=True)
    (lf(x) * 3).sum().backward()
    assert x.grad.dtype == np.float32
    assert out[0].dtype == tf(torch.zeros(1)).numpy().dtype


def test_cast_to_integer_is_not_differentiable():
    x = L.tensor([1.5, -2.7], requires_grad=True)
    for y, t in [(x.long(), torch.int64), (x.int(), torch.int32), (x.to(L.int64), torch.int64),
                 (x.bool(), torch.bool)]:
        assert not y.requires_grad and dtype_name(y) == str(t).replace("torch.", "")
    np.testing.assert_array_equal(x.long().numpy(), torch.tensor([1.5, -2.7]).long().numpy())
    assert x.to(L.float32) is x and x.float() is x


def test_clone_and_contiguous():
    run(lambda m, x: x.clone() * x, rand(3, 4, seed=35))
    run(lambda m, x: x.T.contiguous() * 2, rand(3, 4, seed=36))
    x = L.tensor(rand(3, 4))
    c = x.clone()
    assert c.data is not x.data and not np.shares_memory(c.data, x.data)
    assert x.contiguous() is x
    v = x.T
    assert not v.data.flags.c_contiguous and v.contiguous().data.flags.c_contiguous


def test_ops_on_float16_tensors():
    # float16 resolution is ~1e-3 relative; gradients go through float16 products
    tol = dict(atol=2e-2, rtol=2e-2, dtype=np.float16)
    x, y = rand(3, 4, seed=37), away(4, seed=38)
    run(lambda m, a, b: (a * b + a / b).sigmoid() + (a - 1).tanh() * a.exp(), x, y, **tol)
    run(lambda m, a: a.clamp(-1, 1) + m.maximum(a, a * 0.5) + a ** 2, x, **tol)
    t = L.tensor(x, dtype=L.float16)
    assert (t * 2.5).dtype == np.float16 and t.sigmoid().dtype == np.float16


# ---------------------------------------------------------------- dtype promotion
INT = np.array([1, -2, 3])
PROMOTIONS = {
    "f32*pyfloat": (lambda x: x * 2.5, [np.float32]),
    "f32+pyint": (lambda x: x + 3, [np.float32]),
    "f16*pyfloat": (lambda x: x * 2.5, [np.float16]),
    "f32+f64": (lambda x, y: x + y, [np.float32, np.float64]),
    "f32+0d_f64": (lambda x, y: x + y, [np.float32, "0d64"]),
    "int/int": (lambda x, y: x / y, [np.int64, np.int64]),
    "int32/int32": (lambda x, y: x / y, [np.int32, np.int32]),
    "int/pyint": (lambda x: x / 2, [np.int64]),
    "int/pyfloat": (lambda x: x / 1.5, [np.int64]),
    "pyint/int": (lambda x: 3 / x, [np.int64]),
    "int+pyfloat": (lambda x: x + 1.5, [np.int64]),
    "int*f32": (lambda x, y: x * y, [np.int64, np.float32]),
    "int32+f16": (lambda x, y: x + y, [np.int32, np.float16]),
    "int32+0d_int64": (lambda x, y: x + y, [np.int32, "0di64"]),
    "int+int": (lambda x, y: x + y, [np.int64, np.int64]),
    "int8+uint8": (lambda x, y: x + y, [np.int8, np.uint8]),
    "bool+pyint": (lambda x: x + 1, [np.bool_]),
    "bool+pyfloat": (lambda x: x + 1.5, [np.bool_]),
    "int**pyfloat": (lambda x: x.abs() ** 2.5, [np.int64]),
    "pyfloat**int": (lambda x: 2.5 ** x, [np.int64]),
    "int**pyint": (lambda x: x ** 2, [np.int64]),
    "int%pyfloat": (lambda x: x % 2.5, [np.int64]),
    "int//pyfloat": (lambda x: x // 2.5, [np.int64]),
    "max_int_f32": (lambda x, y: x.maximum(y), [np.int64, np.float32]),
    "clamp_int_float": (lambda x: x.clamp(min=0.5), [np.int64]),
    "clamp_int_int": (lambda x: x.clamp(0, 2), [np.int64]),
    "exp_int": (lambda x: x.exp(), [np.int64]),
    "sqrt_int": (lambda x: x.abs().sqrt(), [np.int64]),
    "sigmoid_int": (lambda x: x.sigmoid(), [np.int32]),
    "reciprocal_int": (lambda x: x.reciprocal(), [np.int64]),
    "abs_int32": (lambda x: x.abs(), [np.int32]),
    "square_int": (lambda x: x.square(), [np.int64]),
    "neg_int32": (lambda x: -x, [np.int32]),
    "relu_int": (lambda x: x.relu(), [np.int64]),
    "round_int": (lambda x: x.round(), [np.int64]),
    "sign_int": (lambda x: x.sign(), [np.int64]),
    "lt_f32_0d_f64": (lambda x, y: x < y, [np.float32, "0d64"]),
}


def _make(kind):
    if kind == "0d64":
        return np.array(0.25)
    if kind == "0di64":
        return np.array(2)
    if np.dtype(kind).kind == "f":
        return np.array([0.5, -1.25, 2.0], dtype=kind)
    if np.dtype(kind).kind == "b":
        return np.array([True, False, True])
    return INT.astype(kind)


@pytest.mark.parametrize("name", list(PROMOTIONS))
def test_result_dtype_matches_torch(name):
    f, kinds = PROMOTIONS[name]
    arrays = [_make(k) for k in kinds]
    lo = f(*[L.tensor(a) for a in arrays])
    to = f(*[torch.tensor(a) for a in arrays])
    assert dtype_name(lo) == dtype_name(to)
    np.testing.assert_allclose(lo.numpy().astype(np.float64), to.numpy().astype(np.float64),
                               rtol=1e-6, equal_nan=True)


def test_mixed_precision_gradients_arrive_in_each_inputs_dtype():
    a = L.tensor(rand(3, 4, seed=39).astype(np.float32), requires_grad=True)
    b = L.tensor(rand(4, seed=40), requires_grad=True)  # float64
    y = (a * b + a / (b * b + 1) - L.maximum(a, b)) ** 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    ta = torch.tensor(a.numpy(), requires_grad=True)
    tb = torch.tensor(b.numpy(), requires_grad=True)
    ((ta * tb + ta / (tb * tb + 1) - torch.maximum(ta, tb)) ** 2).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5)
    # a 0-d float64 tensor does not promote a float32 tensor
    s = L.tensor(np.array(2.0), requires_grad=True)
    z = a * s
    assert z.dtype == np.float32
    z.sum().backward()
    assert s.grad.dtype == np.float64
    np.testing.assert_allclose(s.grad.item(), a.numpy().sum(), rtol=1e-5)


def test_numpy_scalars_act_like_python_scalars():
    x = L.tensor(rand(3, seed=41).astype(np.float32), requires_grad=True)
    for y in [x * np.float64(2.0), np.float64(2.0) * x, x + np.float32(1), np.int64(3) - x,
              L.clamp(x, np.float64(-0.5), np.float64(0.5))]:
        assert isinstance(y, L.Tensor) and y.dtype == np.float32 and y.requires_grad


# ---------------------------------------------------------------- comparisons and logic
COMPARES = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__",
            "ge": "__ge__"}


def _compare_both(f, *arrays):
    lt = [L.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    tt = [torch.tensor(a) for a in arrays]
    lo, to = f(L, *lt), f(torch, *tt)
    assert isinstance(lo, L.Tensor) and lo.dtype == np.bool_ and to.dtype == torch.bool
    assert not lo.requires_grad
    np.testing.assert_array_equal(lo.numpy(), to.numpy())


@pytest.mark.parametrize("form", ["operator", "method", "function"])
@pytest.mark.parametrize("name", list(COMPARES))
def test_comparisons_return_bool_and_match_torch(name, form):
    a = np.array([[1.0, 2.0, 3.0, np.nan], [0.0, -1.0, 2.0, 5.0], [3.0, 3.0, 3.0, 3.0]])
    b = np.array([1.0, 3.0, 2.0, np.nan])
    if form == "operator":
        f = lambda m, x, y: getattr(x, COMPARES[name])(y)  # noqa: E731
    elif form == "method":
        f = lambda m, x, y: getattr(x, name)(y)  # noqa: E731
    else:
        f = lambda m, x, y: getattr(m, name)(x, y)  # noqa: E731
    _compare_both(f, a, b)
    _compare_both(f, a, np.array(3.0))
    _compare_both(lambda m, x: f(m, x, 2.0), a)
    _compare_both(lambda m, x: f(m, x, 2), INT)
    _compare_both(lambda m, x: f(m, x, 1.5), INT)
    _compare_both(f, np.array([0.1], np.float32), np.array(0.1))  # compared in float32
    _compare_both(f, INT, np.array([1.0, -2.5, 3.0], np.float32))


def test_reflected_comparisons_with_scalars():
    a = np.array([0.5, 1.0, 2.0])
    _compare_both(lambda m, x: 1.0 < x, a)
    _compare_both(lambda m, x: 1.0 >= x, a)
    _compare_both(lambda m, x: 1.0 == x, a)


def test_nan_inf_checks_and_logic():
    a = np.array([0.0, np.nan, np.inf, -np.inf, -2.5])
    for name in ["isnan", "isinf", "isfinite"]:
        _compare_both(lambda m, x: getattr(m, name)(x), a)
        _compare_both(lambda m, x: getattr(x, name)(), a)
    p, q = np.array([[True, False, True]]), np.array([[True], [False]])
    _compare_both(lambda m, x, y: x & y, p, q)
    _compare_both(lambda m, x, y: x | y, p, q)
    _compare_both(lambda m, x: ~x, p)
    _compare_both(lambda m, x, y: m.logical_and(x, y), p, q)
    _compare_both(lambda m, x, y: m.logical_or(x, y), p, q)
    _compare_both(lambda m, x: m.logical_not(x), p)
    _compare_both(lambda m, x: x.logical_not(), p)
    _compare_both(lambda m, x: (x > 0) & (x < 3), np.array([-1.0, 1.0, 2.0, 4.0]))


def test_equality_with_none_is_false_like_torch():
    t = L.tensor([1.0, 2.0])
    assert (t == None) is False and (t != None) is True  # noqa: E711
    assert None not in [t] and t in [t]


def test_comparison_masks_feed_differentiable_ops():
    x = L.tensor(rand(3, 4, seed=42), requires_grad=True)
    y = (x * (x > 0)).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() > 0).astype(np.float32))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("expr,op", [
    (lambda x, y: x + y, "add"), (lambda x, y: x - y, "sub"), (lambda x, y: x * y, "mul"),
    (lambda x, y: x / y, "div"), (lambda x, y: x ** y, "pow"), (lambda x, y: x % y, "remainder"),
    (lambda x, y: L.maximum(x, y), "maximum"), (lambda x, y: L.minimum(x, y), "minimum"),
    (lambda x, y: x == y, "eq"), (lambda x, y: x < y, "lt"),
    (lambda x, y: x // y, "floor_divide"), (lambda x, y: L.div(x, y, rounding_mode="trunc"), "div"),
])
def test_incompatible_shapes_name_op_shapes_and_dimension(expr, op):
    x, y = L.tensor(rand(3, 4), requires_grad=True), L.tensor(rand(5))
    with pytest.raises(ValueError, match=rf"{op}: shapes \(3, 4\) and \(5,\) cannot be "
                                         rf"broadcast: sizes 4 vs 5 at dimension -1"):
        expr(x, y)


def test_broadcast_error_in_a_leading_dimension():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3, 4\) and \(5, 1, 4\) .* "
                                         r"sizes 2 vs 5 at dimension -3"):
        L.tensor(rand(2, 3, 4)) + L.tensor(rand(5, 1, 4))


def test_where_and_clamp_shape_errors():
    with pytest.raises(ValueError, match=r"where: shapes condition \(3,\), input \(4,\), "
                                         r"other \(1,\) .* dimension -1"):
        L.where(L.tensor([True, False, True]), L.tensor(rand(4)), L.tensor(rand(1)))
    with pytest.raises(ValueError, match=r"clamp: shapes input \(3, 4\), min \(2,\)"):
        L.clamp(L.tensor(rand(3, 4)), L.tensor(rand(2)))


def test_bad_arguments_raise_clear_errors():
    x = L.tensor(rand(3))
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        x.clamp()
    with pytest.raises(ValueError, match="rounding_mode"):
        L.div(x, x, rounding_mode="nearest")
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        L.tensor([1, 2]) ** -1


# ---------------------------------------------------------------- in-place updates
@pytest.mark.parametrize("op", [operator.iadd, operator.isub, operator.imul,
                                operator.itruediv], ids=lambda f: f.__name__)
def test_augmented_assignment_is_in_place_without_grad(op):
    # op(x, y) is what `x += y` (and friends) calls; Python then rebinds x to its result
    a, b = rand(3, 4, seed=43).astype(np.float32), away(4, seed=44).astype(np.float32)
    x, ref = L.tensor(a), torch.tensor(a)
    buf = x.data
    for other, tother in [(L.tensor(b), torch.tensor(b)), (2, 2), (L.tensor(np.array(1.5)),
                                                                  torch.tensor(1.5))]:
        assert op(x, other) is x
        ref = op(ref, tother)
    assert x.data is buf
    np.testing.assert_allclose(x.numpy(), ref.numpy(), rtol=1e-6)


def test_augmented_assignment_errors_and_graph_nodes():
    x = L.tensor(rand(3))
    with pytest.raises(ValueError, match="__iadd__"):
        x += L.tensor(rand(2, 3))
    i = L.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="__iadd__: result type float32 can't be cast"):
        i += 1.5
    i += 2  # int stays int, in place
    np.testing.assert_array_equal(i.numpy(), [3, 4, 5])
    p = L.tensor(rand(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf.*no_grad"):
        p += 1
    # inside a graph `y += 1` records a new node and the gradient stays right
    y = p * 2
    y += 1
    y.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2, 2, 2])


INPLACE = {
    "add_": (lambda t, o: t.add_(o), lambda t, o: t.add_(o)),
    "add_alpha": (lambda t, o: t.add_(o, alpha=-0.5), lambda t, o: t.add_(o, alpha=-0.5)),
    "sub_": (lambda t, o: t.sub_(o), lambda t, o: t.sub_(o)),
    "mul_": (lambda t, o: t.mul_(o), lambda t, o: t.mul_(o)),
    "div_": (lambda t, o: t.div_(o), lambda t, o: t.div_(o)),
    "mul_scalar": (lambda t, o: t.mul_(0.9), lambda t, o: t.mul_(0.9)),
    "zero_": (lambda t, o: t.zero_(), lambda t, o: t.zero_()),
    "copy_": (lambda t, o: t.copy_(o), lambda t, o: t.copy_(o)),
    "fill_": (lambda t, o: t.fill_(0.25), lambda t, o: t.fill_(0.25)),
    "clamp_": (lambda t, o: t.clamp_(-0.5, 0.5), lambda t, o: t.clamp_(-0.5, 0.5)),
    "clamp_min": (lambda t, o: t.clamp_(min=0.0), lambda t, o: t.clamp_(min=0.0)),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_methods_on_leaves_under_no_grad(name):
    lf, tf = INPLACE[name]
    a, b = rand(3, 4, seed=45).astype(np.float32), away(4, seed=46).astype(np.float32)
    p = L.tensor(a, requires_grad=True)
    tp = torch.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match=rf"{name.split('_')[0]}.*leaf.*no_grad"):
        lf(p, L.tensor(b))
    buf = p.data
    with L.no_grad():
        out = lf(p, L.tensor(b))
    with torch.no_grad():
        tf(tp, torch.tensor(b))
    assert out is p and p.data is buf and p.requires_grad and p.is_leaf
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6)
    # still a working leaf afterwards
    (p * 2).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), np.full((3, 4), 2.0))


def test_sgd_step_on_numpy_data_is_in_place():
    p = L.tensor(rand(3, 4, seed=47), requires_grad=True)
    (p * p).sum().backward()
    before = p.numpy().copy()
    arr = p.data
    arr -= 0.1 * p.grad
    assert p.data is arr and isinstance(arr, np.ndarray)
    np.testing.assert_allclose(p.numpy(), before - 0.1 * 2 * before, rtol=1e-6)
    with L.no_grad():
        p -= 0.1 * p.grad
    np.testing.assert_allclose(p.numpy(), before * 0.8 - 0.1 * 2 * before, rtol=1e-5)


def test_numpy_arrays_with_tensors_give_tensors():
    arr = rand(3, 4, seed=48).astype(np.float32)
    x = L.tensor(rand(4, seed=49), requires_grad=True)
    for y in [arr + x, arr * x, arr - x, arr / (x * x + 1), np.maximum(arr, x)]:
        assert isinstance(y, L.Tensor) and y.shape == (3, 4) and y.requires_grad
    y = arr * x + np.exp(x)
    assert isinstance(y, L.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), arr.sum(0) + 3 * np.exp(x.numpy()), rtol=1e-5)
    c = arr > L.tensor(rand(4, seed=50))
    assert isinstance(c, L.Tensor) and c.dtype == np.bool_
