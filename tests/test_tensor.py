"""Tensor creation, dtypes, conversion, repr, seeding, NumPy interop, index dtype checks."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import pytest
import torch

import lamina


def _tdtype(t):
    """The numpy dtype of a torch tensor."""
    return torch.empty(0, dtype=t.dtype).numpy().dtype


# ---------------------------------------------------------------- lamina.tensor
@pytest.mark.parametrize("data", [
    1.5, 3, True, [1.0, 2.0], [1, 2], [True, False], [1, 2.5], [[1, 2], [3, 4]],
    [[0.5], [1.5]], np.float64(2.0), np.float32(2.0), np.int32(4),
    np.arange(3, dtype=np.int32), np.arange(3, dtype=np.float64), np.ones(2, np.float16),
    np.array([True, False]), np.arange(4, dtype=np.uint8), [],
])
def test_tensor_dtype_inference_matches_torch(data):
    lt, tt = lamina.tensor(data), torch.tensor(data)
    assert lt.dtype == _tdtype(tt)
    assert lt.shape == tuple(tt.shape)
    np.testing.assert_array_equal(lt.numpy(), tt.numpy())


@pytest.mark.parametrize("dtype", [lamina.float16, lamina.float32, lamina.float64, lamina.int32,
                                   lamina.int64, lamina.bool_, lamina.uint8])
def test_tensor_explicit_dtype(dtype):
    t = lamina.tensor([0, 1, 2], dtype=dtype)
    assert t.dtype == dtype
    assert t.tolist() == np.array([0, 1, 2]).astype(dtype).tolist()


def test_dtype_aliases():
    assert lamina.tensor([1], dtype=lamina.float).dtype == np.float32
    assert lamina.tensor([1], dtype=lamina.double).dtype == np.float64
    assert lamina.tensor([1], dtype=lamina.half).dtype == np.float16
    assert lamina.tensor([1.7], dtype=lamina.long).dtype == np.int64
    assert lamina.tensor([1], dtype="float64").dtype == np.float64
    assert lamina.tensor([0, 2], dtype=lamina.bool).tolist() == [False, True]


def test_tensor_copies_but_from_numpy_shares():
    a = np.arange(4.0)
    t = lamina.tensor(a)
    s = lamina.from_numpy(a)
    a[0] = 10.0
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert s.tolist() == [10.0, 1.0, 2.0, 3.0]
    assert s.dtype == np.float64  # from_numpy keeps the dtype like torch
    s.data[1] = -1.0
    assert a[1] == -1.0
    assert np.shares_memory(s.numpy(), a)
    with pytest.raises(TypeError, match="from_numpy"):
        lamina.from_numpy([1.0, 2.0])


def test_tensor_of_tensor_copies():
    a = lamina.tensor([1.0, 2.0])
    b = lamina.tensor(a)
    b.data[0] = 5.0
    assert a.tolist() == [1.0, 2.0]
    assert lamina.tensor(a, dtype=lamina.float64).dtype == np.float64


def test_default_dtype_switch():
    old = lamina.get_default_dtype()
    try:
        lamina.set_default_dtype(lamina.float64)
        assert lamina.tensor(1.5).dtype == np.float64
        assert lamina.zeros(2).dtype == np.float64
        assert lamina.tensor(2).dtype == np.int64
        with pytest.raises(TypeError, match="floating"):
            lamina.set_default_dtype(lamina.int32)
    finally:
        lamina.set_default_dtype(old)
    assert lamina.tensor(1.5).dtype == np.float32


# ---------------------------------------------------------------- conversion and properties
def test_conversions_and_properties():
    t = lamina.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == (2, 3) and t.ndim == 2 and t.dim() == 2 and t.numel() == 6
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-1) == 3
    assert t.dtype == lamina.float32
    assert isinstance(t.numpy(), np.ndarray)
    assert np.shares_memory(t.numpy(), t.data)
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert t.T.shape == (3, 2) and t.T.tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert len(t) == 2
    assert [r.tolist() for r in t] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    s = lamina.tensor(2.5)
    assert s.item() == 2.5 and isinstance(s.item(), float)
    assert lamina.tensor([7]).item() == 7 and isinstance(lamina.tensor([7]).item(), int)
    assert float(s) == 2.5 and int(lamina.tensor(3)) == 3
    assert s.tolist() == 2.5
    assert np.asarray(t).shape == (2, 3)
    with pytest.raises(ValueError, match=r"item.*shape \(2, 3\)"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(TypeError, match="0-d"):
        len(s)


def test_numpy_conversion_copy_semantics():
    t = lamina.tensor([1.0, 2.0])
    a = np.array(t)  # np.array copies (copy=True), as for a torch tensor
    a[0] = 99.0
    assert t.tolist() == [1.0, 2.0]
    b = np.asarray(t)  # asarray shares
    b[1] = 5.0
    assert t.tolist() == [1.0, 5.0]
    assert np.array(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_format_spec_of_scalar_tensors():
    loss = lamina.tensor(0.123456)
    assert f"{loss:.3f}" == "0.123" == f"{torch.tensor(0.123456):.3f}"
    assert f"{lamina.tensor(7):>3}" == "  7"
    assert f"{loss}" == f"{torch.tensor(0.123456)}"  # the number, as torch
    with pytest.raises(TypeError):
        f"{lamina.tensor([1.0, 2.0]):.3f}"


def test_T_on_3d_reverses_dims_like_numpy():
    # torch deprecates .T on ndim != 2 but still reverses all dims
    a = np.arange(24.0).reshape(2, 3, 4)
    assert lamina.tensor(a).T.shape == (4, 3, 2)
    np.testing.assert_array_equal(lamina.tensor(a).T.numpy(), a.T)


# ---------------------------------------------------------------- creation functions
@pytest.mark.parametrize("fn", ["zeros", "ones", "empty", "rand", "randn"])
@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([2, 3],), (4,), ((),)])
def test_sized_creation_shape_and_default_dtype(fn, size):
    t = getattr(lamina, fn)(*size)
    r = getattr(torch, fn)(*size)
    assert t.shape == tuple(r.shape)
    assert t.dtype == lamina.float32 == _tdtype(r)
    assert not t.requires_grad


@pytest.mark.parametrize("fn", ["zeros", "ones", "empty", "rand", "randn"])
@pytest.mark.parametrize("dtype", [lamina.float16, lamina.float32, lamina.float64])
def test_sized_creation_float_dtypes(fn, dtype):
    t = getattr(lamina, fn)(3, 2, dtype=dtype, requires_grad=True)
    assert t.dtype == dtype and t.requires_grad and t.is_leaf


@pytest.mark.parametrize("dtype", [lamina.int32, lamina.int64, lamina.bool_])
def test_zeros_ones_int_bool(dtype):
    assert lamina.zeros(2, 2, dtype=dtype).dtype == dtype
    np.testing.assert_array_equal(lamina.ones(3, dtype=dtype).numpy(), np.ones(3, dtype))


def test_values_of_simple_creators():
    assert lamina.zeros(2).tolist() == [0.0, 0.0]
    assert lamina.ones(1, 2).tolist() == [[1.0, 1.0]]
    np.testing.assert_array_equal(lamina.eye(3).numpy(), torch.eye(3).numpy())
    np.testing.assert_array_equal(lamina.eye(2, 4).numpy(), torch.eye(2, 4).numpy())
    assert lamina.eye(2).dtype == np.float32 and lamina.eye(2, dtype=lamina.int64).dtype == np.int64


@pytest.mark.parametrize("size,fill", [((2, 2), 1.5), ((3,), 7), ((2,), True), (3, -2.0),
                                       ((1, 2), np.float64(0.5))])
def test_full_matches_torch(size, fill):
    t, r = lamina.full(size, fill), torch.full(size if isinstance(size, tuple) else (size,), fill)
    assert t.dtype == _tdtype(r)
    np.testing.assert_array_equal(t.numpy(), r.numpy())
    assert lamina.full(size, fill, dtype=lamina.float64).dtype == np.float64


@pytest.mark.parametrize("args,kw", [
    ((5,), {}), ((2, 9), {}), ((2, 9, 3), {}), ((5.0,), {}), ((0, 1, 0.25), {}),
    ((-1.0, 1.0, 0.1), {}), ((1, 2.5), {}), ((10, 0, -3), {}), ((0.5, 3), {}),
    ((5,), {"dtype": torch.float64}), ((0, 1, 0.1), {"dtype": torch.float64}),
    ((4,), {"dtype": torch.int32}), ((1.0, 4.0), {"dtype": torch.int64}), ((0,), {}),
])
def test_arange_matches_torch(args, kw):
    r = torch.arange(*args, **kw)
    lkw = {"dtype": _tdtype(r)} if kw else {}
    t = lamina.arange(*args, **lkw)
    assert t.dtype == _tdtype(r), (t.dtype, r.dtype)
    assert t.shape == tuple(r.shape)
    np.testing.assert_allclose(t.numpy(), r.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args", [(1, 2, 1e-4), (0, 1000, 0.1), (-3.3, 7.7, 0.013)])
def test_long_float_arange_does_not_drift(args):
    # within one float32 rounding at the range's largest magnitude of torch's values (a float32
    # accumulation drifts by many of those); and within half a rounding of the exact values
    t, r = lamina.arange(*args).numpy(), torch.arange(*args).numpy()
    assert t.shape == r.shape
    one_ulp = np.spacing(np.abs(r).max())
    np.testing.assert_allclose(t, r, rtol=0, atol=one_ulp)
    exact = args[0] + np.arange(len(t)) * args[2]
    assert np.all(np.abs(t - exact) <= np.spacing(np.abs(t)) / 2 + 1e-12)


def test_arange_numpy_integer_arguments_give_int64():
    assert lamina.arange(np.int64(5)).dtype == np.int64
    assert lamina.arange(np.int32(1), 4).tolist() == [1, 2, 3]


def test_arange_requires_grad_and_errors():
    t = lamina.arange(0.0, 3.0, requires_grad=True)
    assert t.requires_grad and t.dtype == np.float32
    with pytest.raises(RuntimeError, match="floating point"):
        lamina.arange(3, requires_grad=True)


@pytest.mark.parametrize("args,kw", [((0, 1, 5), {}), ((-2.0, 3.0, 7), {}), ((0, 10, 1), {}),
                                     ((1, 0, 4), {}), ((0, 1, 5), {"dtype": torch.float64})])
def test_linspace_matches_torch(args, kw):
    r = torch.linspace(*args, **kw)
    t = lamina.linspace(*args, **({"dtype": _tdtype(r)} if kw else {}))
    assert t.dtype == _tdtype(r)
    np.testing.assert_allclose(t.numpy(), r.numpy(), rtol=1e-6, atol=1e-6)


def test_rand_randn_randint_ranges_and_dtypes():
    lamina.manual_seed(0)
    u = lamina.rand(1000)
    assert u.dtype == np.float32 and 0.0 <= u.numpy().min() and u.numpy().max() < 1.0
    n = lamina.randn(20000, dtype=lamina.float64)
    assert n.dtype == np.float64
    assert abs(n.numpy().mean()) < 0.05 and abs(n.numpy().std() - 1) < 0.05
    assert lamina.randn(4, dtype=lamina.float16).dtype == np.float16
    i = lamina.randint(3, 7, (500,))
    assert i.dtype == np.int64 and i.shape == (500,)
    assert set(i.tolist()) == {3, 4, 5, 6}
    j = lamina.randint(5, (2, 3))  # torch's randint(high, size)
    assert j.shape == (2, 3) and j.dtype == np.int64
    assert 0 <= j.numpy().min() and j.numpy().max() < 5
    k = lamina.randint(0, 4, size=(3,), dtype=lamina.int32)
    assert k.dtype == np.int32
    p = lamina.randperm(6)
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(6))


def test_like_forms():
    x = lamina.tensor([[1, 2, 3]], dtype=lamina.int32)
    f = lamina.tensor([[1.0], [2.0]], dtype=lamina.float64)
    assert lamina.zeros_like(x).dtype == np.int32 and lamina.zeros_like(x).tolist() == [[0, 0, 0]]
    assert lamina.ones_like(f).dtype == np.float64 and lamina.ones_like(f).shape == (2, 1)
    assert lamina.empty_like(f).shape == (2, 1)
    assert lamina.full_like(x, 4).tolist() == [[4, 4, 4]]
    assert lamina.full_like(x, 4).dtype == np.int32
    assert lamina.rand_like(f).dtype == np.float64 and lamina.rand_like(f).shape == (2, 1)
    assert lamina.randn_like(f, dtype=lamina.float32).dtype == np.float32
    r = lamina.randint_like(x, 10)
    assert r.dtype == np.int32 and r.shape == (1, 3) and r.numpy().max() < 10
    r2 = lamina.randint_like(x, 5, 8)
    assert 5 <= r2.numpy().min() and r2.numpy().max() < 8
    g = lamina.zeros_like(f, requires_grad=True)
    assert g.requires_grad and g.is_leaf
    assert lamina.ones_like(x, dtype=lamina.float32).dtype == np.float32


# ---------------------------------------------------------------- seeding
def _draws():
    lin = lamina.nn.Linear(4, 3)
    return [lamina.rand(5).numpy(), lamina.randn(2, 3).numpy(),
            lamina.randint(0, 100, (6,)).numpy(), lamina.randperm(8).numpy(),
            lin.weight.numpy().copy(), lamina.rand_like(lamina.zeros(3)).numpy()]


def test_manual_seed_reproducible():
    lamina.manual_seed(123)
    a = _draws()
    lamina.manual_seed(123)
    b = _draws()
    lamina.manual_seed(124)
    c = _draws()
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


def test_manual_seed_init_functions():
    w = lamina.empty(5, 4)
    lamina.manual_seed(7)
    with lamina.no_grad():
        lamina.nn.init.xavier_uniform_(w)
    first = w.numpy().copy()
    lamina.manual_seed(7)
    with lamina.no_grad():
        lamina.nn.init.xavier_uniform_(w)
    np.testing.assert_array_equal(w.numpy(), first)


# ---------------------------------------------------------------- requires_grad rules
@pytest.mark.parametrize("make", [
    lambda: lamina.tensor([1, 2], requires_grad=True),
    lambda: lamina.tensor([True], requires_grad=True),
    lambda: lamina.zeros(2, dtype=lamina.int64, requires_grad=True),
    lambda: lamina.tensor([1, 2]).requires_grad_(),
    lambda: lamina.full((2,), 3, requires_grad=True),
])
def test_requires_grad_on_int_raises(make):
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        make()


def test_requires_grad_float16_and_flags():
    t = lamina.tensor([1.0], dtype=lamina.float16, requires_grad=True)
    assert t.requires_grad
    t.requires_grad_(False)
    assert not t.requires_grad
    assert t.requires_grad_() is t and t.requires_grad


# ---------------------------------------------------------------- repr
@pytest.mark.parametrize("data,kw", [
    ([1.0, 2.0, 3.0], {}),
    ([0.5, -1.25], {}),
    ([[1.0, 2.0], [3.0, 4.0]], {}),
    ([0.12345678, 2.5], {}),
    ([1, 2, 3], {}),
    ([True, False], {}),
    (2.5, {}),
    ([1.0, 2.0], {"requires_grad": True}),
    ([1.0, 2.0], {"dtype": torch.float64}),
    ([1, 2], {"dtype": torch.int32}),
    ([], {}),
    ([1e-8, 1.0], {}),
    ([123456.0, 1.0], {}),
])
def test_repr_like_torch(data, kw):
    lkw = dict(kw)
    if "dtype" in lkw:
        lkw["dtype"] = _tdtype(torch.empty(0, dtype=kw["dtype"]))
    got = repr(lamina.tensor(data, **lkw))
    want = repr(torch.tensor(data, **kw)).replace("torch.", "lamina.")
    assert got == want


def test_repr_of_nonleaf_and_readable_random_values():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    r = repr(x * 2)
    assert r.startswith("tensor([2., 4.], grad_fn=<") and "Backward" in r
    lamina.manual_seed(0)
    s = repr(lamina.randn(3, 3))
    assert "e+" not in s and "e-" not in s
    p = lamina.nn.Parameter(lamina.zeros(1).data)
    assert repr(p).startswith("Parameter containing:\ntensor(")


# ---------------------------------------------------------------- NumPy interop
def test_array_ufunc_returns_tensor_and_differentiates():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = lamina.tensor([3.0, 4.0], requires_grad=True)
    out = a + t
    assert isinstance(out, lamina.Tensor) and out.tolist() == [4.0, 6.0]
    out2 = np.multiply(a, t)
    assert isinstance(out2, lamina.Tensor) and out2.requires_grad
    (out * out2).sum().backward()
    # d/dt sum((a+t)*(a*t)) = a*t + (a+t)*a
    np.testing.assert_allclose(t.grad.numpy(), a * t.data + (a + t.data) * a)
    assert isinstance(np.exp(t), lamina.Tensor) and np.exp(t).requires_grad


def test_array_ufunc_inplace_on_ndarray():
    arr = np.ones(3, dtype=np.float32)
    before = arr
    g = lamina.tensor([1.0, 2.0, 3.0])
    arr -= 0.5 * g
    assert arr is before and isinstance(arr, np.ndarray)
    np.testing.assert_allclose(arr, [0.5, 0.0, -0.5])
    np.add(arr, g, out=arr)
    np.testing.assert_allclose(arr, [1.5, 2.0, 2.5])


def test_array_ufunc_unmapped_on_grad_tensor_raises():
    t = lamina.tensor([0.5], requires_grad=True)
    with pytest.raises(TypeError, match="numpy.cbrt on a tensor that requires grad"):
        np.cbrt(t)
    with pytest.raises(TypeError, match="numpy.add.reduce on a tensor that requires grad"):
        np.add.reduce(t)
    with pytest.raises(TypeError, match="numpy.add on a tensor that requires grad"):
        np.add(t, 1, dtype=np.float64)  # extra arguments: not mapped onto lamina.add
    r = np.cbrt(lamina.tensor([8.0]))  # fine without grad: a constant tensor
    assert isinstance(r, lamina.Tensor) and not r.requires_grad
    np.testing.assert_allclose(r.numpy(), [2.0])
    with lamina.no_grad():
        assert np.cbrt(t).tolist() == pytest.approx([0.5 ** (1 / 3)])
    m, e = np.modf(lamina.tensor([1.5, -2.25]))  # several outputs: a tuple of tensors
    assert isinstance(m, lamina.Tensor) and m.tolist() == [0.5, -0.25] and e.tolist() == [1.0, -2.0]


def test_array_ufunc_out_tensor_checks_inplace():
    c = lamina.tensor([1.0, 2.0])
    assert np.add(c, 1, out=c) is c and c.tolist() == [2.0, 3.0]
    t = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        np.add(t, 1, out=t)
    with lamina.no_grad():
        np.multiply(t, 2, out=t)
    assert t.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("name,ufunc", [("square", np.square), ("arctan", np.arctan),
                                        ("log1p", np.log1p), ("reciprocal", np.reciprocal)])
def test_array_ufunc_mapped_unary_differentiates(name, ufunc):
    t = lamina.tensor([0.5, 1.5], requires_grad=True)
    out = ufunc(t)
    assert isinstance(out, lamina.Tensor) and out.requires_grad
    out.sum().backward()
    tt = torch.tensor([0.5, 1.5], requires_grad=True)
    getattr(torch, name)(tt).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6)


# ---------------------------------------------------------------- index dtype checks
@pytest.mark.parametrize("index", [
    lambda: lamina.tensor([0.0, 1.0]),
    lambda: np.array([0.0, 1.0]),
    lambda: [0.0, 1.0],
    lambda: (slice(None), lamina.tensor([1.0])),
])
def test_float_index_raises(index):
    x = lamina.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with pytest.raises(IndexError, match="integer|long|bool"):
        x[index()]


def test_int_and_bool_tensor_index_ok():
    x = lamina.tensor([1.0, 2.0, 3.0])
    assert x[lamina.tensor([2, 0])].tolist() == [3.0, 1.0]
    assert x[lamina.tensor([True, False, True])].tolist() == [1.0, 3.0]
    assert x[lamina.tensor(1)].item() == 2.0


@pytest.mark.parametrize("make", [
    lambda r: np.arange(2000.0, dtype=np.float32) * 1.5,          # summarized, scientific
    lambda r: r.standard_normal((40, 40)).astype(np.float32),     # summarized rows and columns
    lambda r: r.standard_normal((20, 30, 5)),                     # 3-d, float64 suffix
    lambda r: np.arange(3000, dtype=np.int32).reshape(30, 100),   # ints
    lambda r: r.standard_normal(30).astype(np.float16),           # suffix wraps to a new line
    lambda r: np.array([True, False] * 600),
])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_repr_layout_of_larger_tensors_like_torch(make, requires_grad):
    a = make(np.random.default_rng(1))
    requires_grad = requires_grad and a.dtype.kind == "f"
    got = repr(lamina.tensor(a, requires_grad=requires_grad))
    want = repr(torch.tensor(a, requires_grad=requires_grad)).replace("torch.", "lamina.")
    assert got == want
    assert len(got) < 4000  # summarized: a 3000-element tensor prints only its edges


@pytest.mark.parametrize("data", [[float("nan"), 1.0, 0.0], [float("inf"), 1.5], [0.0, 0.0],
                                  [1e10, 1.0], [-0.0, 2.0], [[1.5, 2], [3, 4]]])
def test_repr_special_values_like_torch(data):
    assert repr(lamina.tensor(data)) == repr(torch.tensor(data))


def test_repr_empty_tensors_like_torch():
    assert repr(lamina.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(lamina.tensor([], dtype=lamina.int64)) == "tensor([], dtype=lamina.int64)"
