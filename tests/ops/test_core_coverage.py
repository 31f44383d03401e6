"""Coverage of issue 2 ("Core"): every listed op against PyTorch in float32 and, with tight
tolerances, in float64 (values and gradients, plus lamina's float64 gradcheck), on
broadcasting operands and on genuinely strided (non-contiguous) inputs; empty dimensions,
domain edges, dtypes, NumPy spellings, in-place updates and error messages.

Each case is ``f(m, *xs)`` written once for both frameworks (``m`` is ``lamina`` or
``torch``), or a pair ``(lamina_f, torch_f)`` where the spellings differ.
"""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import lamina as L
from helpers import check_op, rand

F64 = dict(dtype=np.float64, atol=1e-12, rtol=1e-9)  # gradients: atol 1e-11, rtol 1e-8


def pos(*shape, seed=None):
    return rand(*shape, low=0.3, high=2.0, seed=seed)


def away(*shape, seed=None):
    """|v| in [0.5, 2] with random signs: safe divisors."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float64)


def mask(*shape, seed=None):
    return np.random.default_rng(seed).random(shape) > 0.5


def pad_of(m):
    return L.pad if m is L else TF.pad


def const_like(m, a, like):
    """A constant tensor of ``like``'s dtype in framework ``m``."""
    return m.tensor(a).to(like.dtype)


W43 = rand(4, 3, seed=90)
IDX_DUP = np.array([2, 0, 2, -1, 2])
GATHER_IDX = np.array([[[0, 3, 3], [1, 1, 0]], [[2, 2, 2], [3, 0, 3]]])     # (2, 2, 3), dim 2
SCATTER_IDX = np.array([[0, 0, 2, 0], [1, 1, 1, 3]])                         # (2, 4), dim 1

# name -> (f or (lamina_f, torch_f), input arrays)
CORE = {
    # ---- arithmetic, broadcasting operands
    "add_bcast": (lambda m, x, y: x + y, [rand(2, 3, 4, seed=1), rand(3, 1, seed=2)]),
    "sub_bcast": (lambda m, x, y: x - y, [rand(3, 1, seed=1), rand(2, 1, 4, seed=2)]),
    "mul_bcast": (lambda m, x, y: x * y, [rand(4, seed=1), rand(3, 4, seed=2)]),
    "div_bcast": (lambda m, x, y: x / y, [rand(3, 4, seed=1), away(3, 1, seed=2)]),
    "pow_bcast": (lambda m, x, y: x ** y, [pos(3, 4, seed=1), rand(4, seed=2)]),
    "matmul_op": (lambda m, x, y: x @ y, [rand(3, 4, seed=1), rand(4, 2, seed=2)]),
    "matmul_batch_bcast": (lambda m, x, y: x @ y, [rand(2, 1, 3, 4, seed=1),
                                                   rand(3, 4, 2, seed=2)]),
    "matmul_vec_batch": (lambda m, x, y: m.matmul(x, y), [rand(4, seed=1), rand(2, 4, 3, seed=2)]),
    # ---- reflected forms (a Python number or array on the left)
    "radd": (lambda m, x: 2.5 + x, [rand(3, 4, seed=3)]),
    "rsub": (lambda m, x: 1.5 - x, [rand(3, 4, seed=3)]),
    "rmul": (lambda m, x: -3 * x, [rand(3, 4, seed=3)]),
    "rdiv": (lambda m, x: 2.0 / x, [away(3, 4, seed=3)]),
    "rpow": (lambda m, x: 1.7 ** x, [rand(3, 4, seed=3)]),
    "rmatmul_array": ((lambda m, x: W43.astype(x.dtype) @ x,
                       lambda m, x: torch.tensor(W43).to(x.dtype) @ x), [rand(3, 5, seed=3)]),
    # ---- unary
    "neg": (lambda m, x: -x, [rand(3, 4, seed=4)]),
    "abs": (lambda m, x: m.abs(x), [rand(3, 4, seed=4)]),
    "sign": (lambda m, x: x.sign() * x, [rand(3, 4, seed=4)]),
    "exp": (lambda m, x: x.exp(), [rand(3, 4, seed=4)]),
    "log": (lambda m, x: m.log(x), [pos(3, 4, seed=4)]),
    "log1p": (lambda m, x: x.log1p(), [rand(3, 4, low=-0.6, high=2.0, seed=4)]),
    "expm1": (lambda m, x: m.expm1(x), [rand(3, 4, seed=4)]),
    "sqrt": (lambda m, x: x.sqrt(), [pos(3, 4, seed=4)]),
    "rsqrt": (lambda m, x: m.rsqrt(x), [pos(3, 4, seed=4)]),
    "sin": (lambda m, x: x.sin(), [rand(3, 4, seed=4)]),
    "cos": (lambda m, x: m.cos(x), [rand(3, 4, seed=4)]),
    "tanh": (lambda m, x: x.tanh(), [rand(3, 4, seed=4)]),
    "sigmoid": (lambda m, x: m.sigmoid(x), [rand(3, 4, seed=4)]),
    "relu": (lambda m, x: x.relu(), [rand(3, 4, seed=4)]),
    # ---- clamp / maximum / minimum / where
    "clamp_scalars": (lambda m, x: x.clamp(-0.5, 0.8), [rand(3, 4, seed=5)]),
    "clip_min": (lambda m, x: m.clip(x, min=0.1), [rand(3, 4, seed=5)]),
    "clamp_tensor_bounds_bcast": (lambda m, x, lo, hi: m.clamp(x, lo, hi),
                                  [rand(3, 4, seed=5), rand(4, low=-1.0, high=0.0, seed=6),
                                   rand(3, 1, low=0.0, high=1.0, seed=7)]),
    "maximum_bcast": (lambda m, x, y: m.maximum(x, y), [rand(3, 4, seed=5), rand(4, seed=6)]),
    "minimum_bcast": (lambda m, x, y: m.minimum(x, y), [rand(2, 1, 4, seed=5),
                                                        rand(3, 1, seed=6)]),
    "where_bcast": (lambda m, c, x, y: m.where(c, x, y), [mask(3, 1, seed=5), rand(1, 4, seed=6),
                                                          rand(2, 3, 4, seed=7)]),
    # ---- reductions over assorted axes
    "sum_dims_keep": (lambda m, x: x.sum(dim=(0, 2), keepdim=True), [rand(2, 3, 4, seed=8)]),
    "sum_all": (lambda m, x: m.sum(x), [rand(2, 3, 4, seed=8)]),
    "mean_neg_dim": (lambda m, x: x.mean(dim=-1), [rand(2, 3, 4, seed=8)]),
    "var_dims_corr0": (lambda m, x: x.var(dim=(0, 1), correction=0), [rand(2, 3, 4, seed=8)]),
    "var_all": (lambda m, x: m.var(x), [rand(2, 3, 4, seed=8)]),
    "std_keep": (lambda m, x: x.std(dim=1, keepdim=True), [rand(2, 3, 4, seed=8)]),
    "prod_dim": (lambda m, x: x.prod(dim=1), [rand(2, 3, 4, seed=8)]),
    "prod_all": (lambda m, x: m.prod(x), [rand(2, 3, seed=8, low=0.5, high=1.5)]),
    "max_dim_values": (lambda m, x: x.max(dim=2).values, [rand(2, 3, 4, seed=8)]),
    "max_dim_keep": (lambda m, x: m.max(x, 0, keepdim=True)[0], [rand(2, 3, 4, seed=8)]),
    "max_all": (lambda m, x: x.max(), [rand(2, 3, 4, seed=8)]),
    "min_dim": (lambda m, x: x.min(-2)[0], [rand(2, 3, 4, seed=8)]),
    "min_all": (lambda m, x: m.min(x), [rand(2, 3, 4, seed=8)]),
    "amax_dims": (lambda m, x: x.amax(dim=(1, 2)), [rand(2, 3, 4, seed=8)]),
    "amin_keep": (lambda m, x: m.amin(x, dim=0, keepdim=True), [rand(2, 3, 4, seed=8)]),
    "logsumexp_dims": (lambda m, x: x.logsumexp(dim=(0, 2)), [rand(2, 3, 4, seed=8)]),
    "norm_2_dim": (lambda m, x: x.norm(dim=-1), [rand(2, 3, 4, seed=8)]),
    "norm_1_all": (lambda m, x: m.norm(x, 1), [rand(2, 3, 4, seed=8)]),
    "norm_inf_dim": (lambda m, x: x.norm(float("inf"), dim=1), [rand(2, 3, 4, seed=8)]),
    "norm_3_dims_keep": (lambda m, x: m.norm(x, 3, dim=(0, 1), keepdim=True),
                         [rand(2, 3, 4, seed=8)]),
    # NumPy's axis/keepdims spelling on methods and functions, against torch's dim/keepdim
    "np_sum": ((lambda m, x: x.sum(axis=(0, 2), keepdims=True),
                lambda m, x: x.sum(dim=(0, 2), keepdim=True)), [rand(2, 3, 4, seed=9)]),
    "np_mean": ((lambda m, x: L.mean(x, axis=1), lambda m, x: x.mean(dim=1)),
                [rand(2, 3, 4, seed=9)]),
    "np_var": ((lambda m, x: x.var(axis=-1, keepdims=True),
                lambda m, x: x.var(dim=-1, keepdim=True)), [rand(2, 3, 4, seed=9)]),
    "np_std": ((lambda m, x: L.std(x, axis=(0, 1)), lambda m, x: x.std(dim=(0, 1))),
               [rand(2, 3, 4, seed=9)]),
    "np_prod": ((lambda m, x: x.prod(axis=0, keepdims=True),
                 lambda m, x: x.prod(dim=0, keepdim=True)), [rand(2, 3, 4, seed=9)]),
    "np_max": ((lambda m, x: L.max(x, axis=1, keepdims=True).values,
                lambda m, x: x.max(dim=1, keepdim=True).values), [rand(2, 3, 4, seed=9)]),
    "np_min": ((lambda m, x: x.min(axis=-1)[0], lambda m, x: x.min(dim=-1)[0]),
               [rand(2, 3, 4, seed=9)]),
    "np_amax": ((lambda m, x: x.amax(axis=(0, 2)), lambda m, x: x.amax(dim=(0, 2))),
                [rand(2, 3, 4, seed=9)]),
    "np_amin": ((lambda m, x: L.amin(x, axis=1, keepdims=True),
                 lambda m, x: x.amin(dim=1, keepdim=True)), [rand(2, 3, 4, seed=9)]),
    "np_logsumexp": ((lambda m, x: x.logsumexp(axis=-1, keepdims=True),
                      lambda m, x: x.logsumexp(dim=-1, keepdim=True)), [rand(2, 3, 4, seed=9)]),
    "np_norm": ((lambda m, x: L.norm(x, axis=(1, 2)), lambda m, x: x.norm(dim=(1, 2))),
                [rand(2, 3, 4, seed=9)]),
    # ---- matmul / einsum
    "einsum_batched": (lambda m, x, y: m.einsum("bij,bjk->bik", x, y),
                       [rand(2, 3, 4, seed=10), rand(2, 4, 2, seed=11)]),
    "einsum_ellipsis_bcast": (lambda m, x, y: m.einsum("...ij,jk->...ik", x, y),
                              [rand(2, 3, 4, seed=10), rand(4, 5, seed=11)]),
    "einsum_trace_outer": (lambda m, x, y: m.einsum("ii,j->j", x, y),
                           [rand(3, 3, seed=10), rand(4, seed=11)]),
    # ---- shape ops
    "reshape": (lambda m, x: x.reshape(4, -1), [rand(2, 3, 4, seed=12)]),
    "view": ((lambda m, x: x.view(6, 4), lambda m, x: x.reshape(6, 4)), [rand(2, 3, 4, seed=12)]),
    "flatten": (lambda m, x: x.flatten(1), [rand(2, 3, 4, seed=12)]),
    "transpose": (lambda m, x: x.transpose(0, 2), [rand(2, 3, 4, seed=12)]),
    "permute": (lambda m, x: x.permute(1, 2, 0), [rand(2, 3, 4, seed=12)]),
    "swapaxes": (lambda m, x: m.swapaxes(x, 0, -1), [rand(2, 3, 4, seed=12)]),
    "squeeze": (lambda m, x: x.squeeze(1), [rand(3, 1, 4, seed=12)]),
    "unsqueeze": (lambda m, x: m.unsqueeze(x, -2), [rand(3, 4, seed=12)]),
    "expand": (lambda m, x: x.expand(2, 3, 4), [rand(3, 1, seed=12)]),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3, 4)), [rand(1, 4, seed=12)]),
    "repeat": (lambda m, x: x.repeat(2, 1, 3), [rand(3, 4, seed=12)]),
    "tile": (lambda m, x: m.tile(x, (2, 1)), [rand(2, 3, 4, seed=12)]),
    "cat": (lambda m, x, y: m.cat([x, y, x], dim=1), [rand(2, 3, 4, seed=12),
                                                     rand(2, 1, 4, seed=13)]),
    "concatenate": (lambda m, x, y: m.concatenate((x, y), -1), [rand(3, 2, seed=12),
                                                                rand(3, 4, seed=13)]),
    "stack": (lambda m, x, y: m.stack([x, y], dim=1), [rand(3, 4, seed=12), rand(3, 4, seed=13)]),
    "split": (lambda m, x: x.split([1, 3], dim=-1), [rand(3, 4, seed=12)]),
    "chunk": (lambda m, x: m.chunk(x, 3, 1), [rand(2, 5, 4, seed=12)]),
    "pad_constant": (lambda m, x: pad_of(m)(x, (1, 2, 0, 1), value=0.5), [rand(2, 3, 4, seed=12)]),
    "pad_reflect": (lambda m, x: pad_of(m)(x, (2, 1), mode="reflect"), [rand(2, 3, 4, seed=12)]),
    "flip": (lambda m, x: x.flip(0, 2), [rand(2, 3, 4, seed=12)]),
    "roll": (lambda m, x: m.roll(x, (1, -2), (0, 2)), [rand(2, 3, 4, seed=12)]),
    # ---- indexing (repeated indices must scatter-add in the backward)
    "getitem_slices": (lambda m, x: x[1:, ::2, -3:-1], [rand(3, 4, 5, seed=14)]),
    "getitem_none": (lambda m, x: x[None, :, None, 1], [rand(3, 4, 5, seed=14)]),
    "getitem_int_array_dup": (lambda m, x: x[IDX_DUP], [rand(3, 4, 5, seed=14)]),
    "getitem_tensor_dup": (lambda m, x: x[:, m.tensor([3, 3, -1, 0])], [rand(3, 4, 5, seed=14)]),
    "getitem_two_arrays_dup": (lambda m, x: x[[0, 2, 0], :, [4, 1, 4]], [rand(3, 4, 5, seed=14)]),
    "getitem_bool_mask": (lambda m, x, k: x[k], [rand(3, 4, 5, seed=14), mask(3, 4, seed=15)]),
    "getitem_mask_none": (lambda m, x, k: x[None, k, 2], [rand(3, 4, 5, seed=14),
                                                        mask(3, 4, seed=15)]),
    "getitem_mask_and_array": (lambda m, x: x[np.array([True, False, True]), :, [1, 1]],
                               [rand(3, 4, 5, seed=14)]),
    "gather": (lambda m, x, i: x.gather(2, i), [rand(2, 3, 4, seed=16), GATHER_IDX]),
    "gather_fn": (lambda m, x, i: m.gather(x, -1, i), [rand(2, 3, 4, seed=16), GATHER_IDX]),
    "scatter_add": (lambda m, x, i, s: x.scatter_add(1, i, s),
                    [rand(2, 5, seed=17), SCATTER_IDX, rand(2, 4, seed=18)]),
    "index_select_dup": (lambda m, x, i: x.index_select(1, i),
                         [rand(2, 3, 4, seed=19), np.array([2, 0, 2, 2])]),
    "masked_fill_bcast": (lambda m, x, k: x.masked_fill(k, -0.25), [rand(2, 3, 4, seed=20),
                                                                    mask(3, 1, seed=21)]),
}


def _pair(f):
    lf, tf = (f, f) if callable(f) else f
    return (lambda *xs: lf(L, *xs)), (lambda *xs: tf(torch, *xs))


@pytest.mark.parametrize("name", list(CORE))
def test_core_op_float32_matches_torch(name):
    f, arrays = CORE[name]
    check_op(*_pair(f), *arrays, check_grad=False)


@pytest.mark.parametrize("name", list(CORE))
def test_core_op_float64_matches_torch_and_gradchecks(name):
    f, arrays = CORE[name]
    check_op(*_pair(f), *arrays, **F64)


# ---------------------------------------------------------------- genuinely strided inputs
def spread(a):
    """A contiguous array from which :func:`unspread` cuts a strided view with ``a``'s values
    (its other elements are junk, which must get zero gradient)."""
    core = np.swapaxes(a, -1, -2) if a.ndim >= 2 else a
    base = rand(*core.shape[:-1], 2 * core.shape[-1], seed=99)
    base[..., ::2] = core
    return base


def unspread(x):
    v = x[..., ::2]
    return v.mT if v.ndim >= 2 else v


def _strided(fn, where):
    def g(*xs):
        xs = [unspread(x) if i in where else x for i, x in enumerate(xs)]
        if isinstance(xs[where[0]], L.Tensor):
            assert not any(xs[i].data.flags.c_contiguous for i in where)
        return fn(*xs)
    return g


# view refuses strided inputs it cannot view without a copy, as torch does
# (tests/ops/test_shape.py::test_view_refuses_to_copy_like_torch)
@pytest.mark.parametrize("name", [n for n in CORE if n != "view"])
def test_core_op_strided_inputs_float64(name):
    f, arrays = CORE[name]
    where = [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and a.ndim >= 1]
    lf, tf = _pair(f)
    spread_arrays = [spread(a) if i in where else a for i, a in enumerate(arrays)]
    check_op(_strided(lf, where), _strided(tf, where), *spread_arrays, **F64)


def test_spread_round_trips_and_is_strided():
    a = rand(2, 3, 4, seed=0)
    v = unspread(L.tensor(spread(a)))
    np.testing.assert_array_equal(v.numpy(), a)
    assert not v.data.flags.c_contiguous and not v.data.flags.f_contiguous
    np.testing.assert_array_equal(unspread(L.tensor(spread(a[0, 0]))).numpy(), a[0, 0])


def test_strided_leaf_from_numpy_keeps_strides_and_gets_dense_grad():
    base = rand(4, 6, seed=1)
    x = L.from_numpy(base[:, ::2]).requires_grad_()
    tx = torch.from_numpy(base[:, ::2]).requires_grad_()
    assert not x.data.flags.c_contiguous
    (x.exp() * x.sum(0)).sum().backward()
    (tx.exp() * tx.sum(0)).sum().backward()
    assert x.grad.shape == (4, 3)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


STRIDED_INDEX = {
    "getitem": lambda m, x, i: x[i],
    "getitem_second_dim": lambda m, x, i: x[:, i],
    "gather": lambda m, x, i: x.gather(0, i),
    "scatter_add": lambda m, x, i: m.zeros(4, 4, dtype=x.dtype).scatter_add(0, i, x[:2, :3]),
    "index_select": lambda m, x, i: x.index_select(0, i.reshape(-1)),
}


@pytest.mark.parametrize("name", list(STRIDED_INDEX))
def test_strided_index_tensors(name):
    # a transposed integer index with duplicates (repeated rows must scatter-add)
    idx = np.ascontiguousarray(np.array([[0, 3, 3], [2, 0, 3]]).T).T
    assert not idx.flags.c_contiguous
    f = STRIDED_INDEX[name]
    lf = lambda x: f(L, x, L.from_numpy(idx))  # noqa: E731  (from_numpy keeps the strides)
    tf = lambda x: f(torch, x, torch.from_numpy(idx))  # noqa: E731
    check_op(lf, tf, rand(4, 4, seed=3), **F64)


def test_flip_spellings_agree():
    x = rand(2, 3, 4, seed=2)
    want = torch.flip(torch.tensor(x), (0, 2)).numpy()
    for got in [L.flip(L.tensor(x), (0, 2)), L.tensor(x).flip(0, 2), L.tensor(x).flip([0, 2]),
                L.flip(L.tensor(x), dims=(0, 2))]:
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(L.flip(L.tensor(x), dims=1).numpy(),
                                  torch.tensor(x).flip(1).numpy())


# ---------------------------------------------------------------- empty dimensions
EMPTY = {
    "add_bcast": (lambda m, x, y: x + y, [np.zeros((0, 3)), rand(3, seed=1)]),
    "exp": (lambda m, x: x.exp(), [np.zeros((2, 0))]),
    "sum_dim0": (lambda m, x: x.sum(0), [np.zeros((0, 3))]),
    "sum_all": (lambda m, x: x.sum(), [np.zeros((0, 3))]),
    "mean_dim1": (lambda m, x: x.mean(1), [np.zeros((0, 3))]),
    "prod_dim0": (lambda m, x: x.prod(0), [np.zeros((0, 3))]),
    "norm_dim0": (lambda m, x: x.norm(dim=0), [np.zeros((0, 3))]),
    "amax_nonempty_dim": (lambda m, x: x.amax(dim=1), [np.zeros((0, 3))]),
    "amin_nonempty_dim": (lambda m, x: x.amin(dim=-1, keepdim=True), [np.zeros((0, 3))]),
    "max_nonempty_dim": (lambda m, x: x.max(dim=1)[0], [np.zeros((0, 3))]),
    "logsumexp_empty_dim": (lambda m, x: x.logsumexp(dim=0), [np.zeros((0, 3))]),
    "logsumexp_nonempty_dim": (lambda m, x: x.logsumexp(dim=1), [np.zeros((0, 3))]),
    "matmul_empty_inner": (lambda m, x, y: x @ y, [np.zeros((2, 0)), np.zeros((0, 3))]),
    "reshape": (lambda m, x: x.reshape(3, 0, 2).reshape(-1, 3), [np.zeros((0, 3, 2))]),
    "transpose": (lambda m, x: x.transpose(0, 1), [np.zeros((0, 3))]),
    "cat_empty_piece": (lambda m, x, y: m.cat([x, y]), [np.zeros((0, 3)), rand(2, 3, seed=2)]),
    "stack": (lambda m, x, y: m.stack([x, y], 1), [np.zeros((0, 3)), np.zeros((0, 3))]),
    "split_zero": (lambda m, x: x.split([0, 2]), [rand(2, 3, seed=3)]),
    "getitem_empty_slice": (lambda m, x: x[2:2], [rand(3, 4, seed=4)]),
    "getitem_false_mask": (lambda m, x, k: x[k], [rand(3, 4, seed=4), np.zeros((3, 4), bool)]),
    "index_select_empty": (lambda m, x, i: x.index_select(0, i),
                           [rand(3, 4, seed=4), np.zeros(0, np.int64)]),
    "where_empty": (lambda m, c, x, y: m.where(c, x, y), [np.zeros((0, 1), bool),
                                                         np.zeros((0, 3)), rand(3, seed=5)]),
}


@pytest.mark.parametrize("name", list(EMPTY))
def test_empty_dims_where_torch_allows(name):
    f, arrays = EMPTY[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of nothing is nan
        check_op(*_pair(f), *arrays, **F64)


@pytest.mark.parametrize("call", [
    lambda x: x.amax(dim=0), lambda x: x.amin(), lambda x: x.max(dim=0), lambda x: x.min(0),
    lambda x: x.argmax(dim=0), lambda x: x.argmin(), lambda x: x.norm(float("inf"), dim=0),
    lambda x: x.norm(float("-inf"))])
def test_reductions_without_identity_on_empty_dims_raise_naming_op(call):
    with pytest.raises((RuntimeError, IndexError)):
        call(torch.zeros(0, 3))
    with pytest.raises((RuntimeError, IndexError),
                       match=r"^(amax|amin|max|min|argmax|argmin|norm): .*empty"):
        call(L.zeros(0, 3))


def test_argmax_argmin_over_a_nonempty_dim_of_an_empty_tensor():
    for name in ("argmax", "argmin"):
        for kw in ({"dim": 1}, {"dim": -1, "keepdim": True}):
            got = getattr(L.zeros(0, 3), name)(**kw)
            want = getattr(torch.zeros(0, 3), name)(**kw)
            assert got.shape == tuple(want.shape) and got.dtype == np.int64


# ---------------------------------------------------------------- domain edges
def test_log_family_at_zero_and_negative_follow_torch():
    # log(0) = -inf with an infinite slope; log(<0), sqrt(<0) = nan; log1p(-1) = -inf
    x = np.array([0.0, -0.5, 0.25, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in ["log", "sqrt", "rsqrt"]:
            check_op(lambda t: getattr(L, name)(t), lambda t: getattr(torch, name)(t), x,
                     check_grad=False)
        check_op(lambda t: L.log1p(t), lambda t: torch.log1p(t), x - 1.0, check_grad=False)


def test_pow_at_zero_base_follows_torch():
    x = np.array([0.0, 0.0, 0.0, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for e in [2, 1, 0.5, 0, -1, 3.0]:
            check_op(lambda t: t ** e, lambda t: t ** e, x, check_grad=False)


def test_sqrt_rsqrt_just_above_zero_gradcheck():
    check_op(lambda t: t.sqrt() + t.rsqrt(), lambda t: t.sqrt() + t.rsqrt(),
             np.array([1e-3, 2e-3, 5e-2]), eps=1e-8, **F64)


def test_norm_of_zero_in_float64_matches_torch_gradients():
    a = np.zeros((2, 3))
    a[1] = [3.0, -4.0, 0.0]
    for p in [2, "fro", 3]:
        check_op(lambda t: L.norm(t, p, dim=1), lambda t: torch.norm(t, p, dim=1), a,
                 check_grad=False, **F64)


def test_prod_with_a_zero_gradcheck_float64():
    a = np.array([[2.0, 0.0, 3.0, -1.5], [0.5, 1.5, -2.0, 0.25]])
    for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
        check_op(lambda t: t.prod(**kw), lambda t: t.prod(**kw), a, **F64)


def test_max_min_ties_float64_match_torch():
    a = np.array([[1.0, 4.0, 4.0], [-2.0, -2.0, 0.5]])
    for lf in [lambda t: t.max(), lambda t: t.min(), lambda t: t.amax(dim=1),
               lambda t: t.amin(dim=0), lambda t: t.max(dim=1)[0], lambda t: t.min(dim=1)[0],
               lambda t: L.maximum(t, t.flip(1)) if isinstance(t, L.Tensor)
               else torch.maximum(t, t.flip(1))]:
        check_op(lf, lf, a, check_grad=False, **F64)


@pytest.mark.parametrize("name", ["amax", "amin", "max", "min", "logsumexp", "norm", "sum"])
def test_nan_propagates_through_reductions_like_torch(name):
    a = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 5.0]])

    def f(t):
        out = getattr(t, name)(dim=1)
        return out[0] if isinstance(out, tuple) else out
    with np.errstate(invalid="ignore"):
        check_op(f, f, a, check_grad=False, **F64)
    np.testing.assert_array_equal(L.tensor(a).argmax(1).numpy(), torch.tensor(a).argmax(1))


# ---------------------------------------------------------------- dtypes
DTYPES = [np.float16, np.float64, np.int32, np.int64, np.bool_]


def _values(dtype, shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    return rng.integers(-3, 4, shape).astype(dtype)


DTYPE_OPS = {
    "reshape": lambda m, x: x.reshape(2, 6),
    "transpose": lambda m, x: x.transpose(0, 1),
    "permute_flip": lambda m, x: x.permute(1, 0).flip(0),
    "expand_unsqueeze": lambda m, x: x.unsqueeze(0).expand(2, 3, 4),
    "repeat": lambda m, x: x.repeat(1, 2),
    "cat": lambda m, x: m.cat([x, x[:1]]),
    "stack": lambda m, x: m.stack([x, x], -1),
    "roll": lambda m, x: x.roll(1, 1),
    "getitem_array": lambda m, x: x[[2, 0, 2], 1:],
    "getitem_mask": lambda m, x: x[m.tensor(_values(np.bool_, (3, 4), 1))],
    "gather": lambda m, x: x.gather(1, m.tensor(np.array([[0, 3], [1, 1], [2, 0]]))),
    "index_select": lambda m, x: x.index_select(0, m.tensor(np.array([2, 2, 0]))),
    "where": lambda m, x: m.where(m.tensor(_values(np.bool_, (3, 4), 2)), x, x.flip(0)),
    "masked_fill": lambda m, x: x.masked_fill(m.tensor(_values(np.bool_, (4,), 3)), 1),
    "sum": lambda m, x: x.sum(dim=1),
    "amax": lambda m, x: x.amax(dim=0),
    "max_dim": lambda m, x: x.max(dim=1)[0],
    "argmax": lambda m, x: x.argmax(dim=1),
    "eq": lambda m, x: x == x.flip(1),
    "lt": lambda m, x: x < x.roll(1, 0),
    "split": lambda m, x: m.cat(x.split(1, 1), 0),
    "abs_neg": lambda m, x: (-x).abs() if x.dtype not in (m.bool,) else x,
    "add_self": lambda m, x: x + x if x.dtype not in (m.bool,) else x | x,
}


@pytest.mark.parametrize("name,dtype", [
    (n, d) for n in DTYPE_OPS for d in DTYPES
    if not (n == "argmax" and d == np.bool_)],  # torch's argmax takes no bool input
    ids=lambda v: v if isinstance(v, str) else np.dtype(v).name)
def test_ops_on_non_default_dtypes_match_torch(name, dtype):
    f = DTYPE_OPS[name]
    a = _values(dtype)
    got, want = f(L, L.tensor(a)), f(torch, torch.tensor(a))
    assert got.dtype == want.numpy().dtype, (got.dtype, want.dtype)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("name", ["add_bcast", "mul_bcast", "sigmoid", "exp", "sum_dims_keep",
                                  "mean_neg_dim", "amax_dims", "matmul_op", "cat",
                                  "getitem_int_array_dup", "gather", "where_bcast"])
def test_float16_values_and_gradients_match_torch(name):
    # float16 carries ~3 significant digits: 1e-2 is its resolution, not a loosened check
    f, arrays = CORE[name]
    out = check_op(*_pair(f), *arrays, dtype=np.float16, atol=1e-2, rtol=1e-2,
                   check_grad=False)
    assert all(o.dtype == np.float16 for o in out if o.dtype.kind == "f")


@pytest.mark.parametrize("fn,args", [("zeros", (2, 3)), ("ones", ((3,),)), ("empty", (2, 1)),
                                     ("rand", (4,)), ("randn", (2, 2))])
@pytest.mark.parametrize("dtype", [None, np.float64, np.float16])
def test_creation_dtype_and_shape_like_torch(fn, args, dtype):
    tdt = None if dtype is None else getattr(torch, np.dtype(dtype).name)
    got = getattr(L, fn)(*args, dtype=dtype)
    want = getattr(torch, fn)(*args, dtype=tdt)
    assert got.dtype == want.numpy().dtype and got.shape == tuple(want.shape)
    like = getattr(L, fn + "_like")(got)
    assert like.dtype == got.dtype and like.shape == got.shape


def test_full_arange_linspace_eye_randint_values_and_dtypes():
    pairs = [(L.full((2, 3), 1.5), torch.full((2, 3), 1.5)),
             (L.full((2,), 4), torch.full((2,), 4)),
             (L.full_like(L.zeros(2, dtype=L.float64), 7), torch.full_like(
                 torch.zeros(2, dtype=torch.float64), 7)),
             (L.arange(1, 7, 2), torch.arange(1, 7, 2)),
             (L.arange(0.0, 1.0, 0.25), torch.arange(0.0, 1.0, 0.25)),
             (L.linspace(-1, 1, 5), torch.linspace(-1, 1, 5)),
             (L.eye(3, 2), torch.eye(3, 2)),
             (L.zeros_like(L.tensor([1, 2])), torch.zeros_like(torch.tensor([1, 2]))),
             (L.ones_like(L.tensor([True])), torch.ones_like(torch.tensor([True])))]
    for got, want in pairs:
        assert got.dtype == want.numpy().dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    r = L.randint(-2, 3, (50,))
    assert r.dtype == torch.randint(-2, 3, (50,)).numpy().dtype
    assert set(r.tolist()) <= {-2, -1, 0, 1, 2}
    assert L.randint_like(L.zeros(3, 2), 5).shape == (3, 2)


# ---------------------------------------------------------------- in-place under no_grad
INPLACE = {
    "add_bcast": (lambda t, o: t.add_(o), (4,)),
    "add_alpha_col": (lambda t, o: t.add_(o, alpha=2.5), (3, 1)),
    "mul_bcast": (lambda t, o: t.mul_(o), (4,)),
    "mul_0d": (lambda t, o: t.mul_(o), ()),
    "copy_bcast": (lambda t, o: t.copy_(o), (4,)),
    "zero_": (lambda t, o: t.zero_(), (4,)),
}


@pytest.mark.parametrize("other_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_broadcasting_and_dtype_like_torch(name, other_dtype):
    f, oshape = INPLACE[name]
    a, b = rand(3, 4, seed=1).astype(np.float32), rand(*oshape, seed=2).astype(other_dtype)
    p, tp = L.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    buf = p.data
    with L.no_grad():
        assert f(p, L.tensor(b)) is p
    with torch.no_grad():
        f(tp, torch.tensor(b))
    assert p.data is buf and p.dtype == np.float32 and p.requires_grad and p.is_leaf
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6)


def test_inplace_on_a_strided_view_writes_through():
    base, tbase = L.zeros(3, 4), torch.zeros(3, 4)
    for b in (base, tbase):
        v = b.T[::2]
        v.add_(1.0)
        v.mul_(3.0)
        b[:, 1].copy_(b.new_tensor([1.0, 2.0, 3.0]) if b is tbase else L.tensor([1.0, 2.0, 3.0]))
        b[2:].zero_()
    np.testing.assert_array_equal(base.numpy(), tbase.numpy())


@pytest.mark.parametrize("op", ["add_", "sub_", "mul_", "div_"])
def test_inplace_incompatible_shapes_name_op_shapes_and_dimension(op):
    x = L.zeros(3, 4)
    with pytest.raises(ValueError, match=rf"{op}: shapes \(3, 4\) and \(5,\) cannot be "
                                         rf"broadcast: sizes 4 vs 5 at dimension -1"):
        getattr(x, op)(L.ones(5))
    with pytest.raises(ValueError, match=rf"{op}: .*\(4,\).*\(3, 4\)"):
        getattr(L.ones(4), op)(L.ones(3, 4))  # would need to grow the tensor


@pytest.mark.parametrize("op", ["add_", "mul_", "div_"])
def test_inplace_result_dtype_must_fit_like_torch(op):
    with pytest.raises(RuntimeError):
        getattr(torch.ones(3, dtype=torch.int64), op)(torch.tensor([1.5, 2.0, 3.0]))
    with pytest.raises(RuntimeError, match=rf"{op}: result type float\d+ can't be cast to "
                                           rf"the tensor's dtype int64"):
        getattr(L.ones(3, dtype=L.int64), op)(L.tensor([1.5, 2.0, 3.0]))


# ---------------------------------------------------------------- error messages
@pytest.mark.parametrize("call,pattern", [
    (lambda: L.zeros(2, 3, 4) @ L.zeros(3, 4, 2),
     r"matmul: shapes \(2, 3, 4\) and \(3, 4, 2\) cannot be multiplied: batch sizes 2 vs 3 "
     r"at dimension -3"),
    (lambda: L.matmul(L.zeros(5, 2, 2, 3), L.zeros(4, 3, 2)),
     r"matmul: shapes \(5, 2, 2, 3\) and \(4, 3, 2\) cannot be multiplied: batch sizes 2 vs 4 "
     r"at dimension -3"),
    (lambda: L.matmul(L.zeros(3, 2, 2, 3), L.zeros(4, 1, 3, 2)),
     r"matmul: shapes \(3, 2, 2, 3\) and \(4, 1, 3, 2\) cannot be multiplied: batch sizes "
     r"3 vs 4 at dimension -4"),
    (lambda: L.mm(L.zeros(3, 4), L.zeros(5, 6)),
     r"mm: shapes \(3, 4\) and \(5, 6\) cannot be multiplied \(4 vs 5"),
    (lambda: L.bmm(L.zeros(2, 3, 4), L.zeros(2, 5, 6)),
     r"bmm: shapes \(2, 3, 4\) and \(2, 5, 6\) cannot be multiplied \(4 vs 5"),
    (lambda: L.dot(L.zeros(3), L.zeros(4)), r"dot: shapes \(3,\) and \(4,\) cannot be multiplied"),
    (lambda: L.cat([L.zeros(2, 3), L.zeros(2, 4)]),
     r"cat: .*\(2, 3\).*\(2, 4\).*sizes 3 vs 4 at dimension 1"),
    (lambda: L.cat([L.zeros(2, 3, 4), L.zeros(5, 3, 1)], -1),
     r"cat: .*\(2, 3, 4\).*\(5, 3, 1\).*sizes 2 vs 5 at dimension 0"),
    (lambda: L.stack([L.zeros(2, 3), L.zeros(2, 4)]),
     r"stack: .*\(2, 3\).*\(2, 4\).*sizes 3 vs 4 at dimension 1"),
    (lambda: L.zeros(2, 3).expand(2, 4),
     r"expand: shape \(2, 3\) cannot be expanded to \(2, 4\): sizes 3 vs 4 at dimension 1"),
    (lambda: L.broadcast_to(L.zeros(3, 2), (4, 3, 5)),
     r"broadcast_to: shape \(3, 2\) cannot be expanded to \(4, 3, 5\): sizes 2 vs 5 at "
     r"dimension 2"),
    (lambda: L.zeros(3, 4).masked_fill(L.tensor([True, False, True]), 1.0),
     r"masked_fill: mask of shape \(3,\) cannot be broadcast to shape \(3, 4\): sizes 3 vs 4 "
     r"at dimension -1"),
    (lambda: L.einsum("ij,jk->ik", L.zeros(2, 3), L.zeros(4, 2)),
     r"einsum: subscript 'j' has size 4 in one operand and 3 in another.*shapes \(2, 3\) and "
     r"\(4, 2\)"),
    (lambda: L.where(L.zeros(3, dtype=L.bool_), L.zeros(2, 3), L.zeros(4, 1)),
     r"where: shapes .*\(2, 3\).*\(4, 1\).*sizes 2 vs 4 at dimension -2"),
    (lambda: L.minimum(L.zeros(2, 3), L.zeros(3, 3)),
     r"minimum: shapes \(2, 3\) and \(3, 3\) .*sizes 2 vs 3 at dimension -2"),
    (lambda: L.zeros(3, 4) >= L.zeros(2, 4),
     r"ge: shapes \(3, 4\) and \(2, 4\) .*sizes 3 vs 2 at dimension -2"),
])
def test_incompatible_shapes_name_op_shapes_and_failing_dimension(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("call", [
    lambda x: x.gather(2, L.zeros(3, 4, dtype=L.int64)),
    lambda x: x.gather(-3, L.zeros(3, 4, dtype=L.int64)),
    lambda x: x.scatter_add(2, L.zeros(3, 4, dtype=L.int64), L.zeros(3, 4)),
    lambda x: x.index_select(2, L.tensor([0])),
    lambda x: L.index_select(x, -3, L.tensor([0]))])
def test_index_ops_reject_out_of_range_dim_like_torch(call):
    x = L.zeros(3, 4)
    with pytest.raises(IndexError, match=r"(gather|scatter_add|index_select): dimension -?\d "
                                         r"is out of range"):
        call(x)


@pytest.mark.parametrize("call", [
    lambda x: x[L.tensor([0.0, 1.0])], lambda x: x[:, np.array([1.5])],
    lambda x: x.gather(1, L.zeros(3, 1)), lambda x: x.scatter_add(1, L.zeros(3, 1), x[:, :1]),
    lambda x: x.index_select(0, L.tensor([0.0])), lambda x: x.masked_fill(L.zeros(3, 4), 1.0)])
def test_wrong_index_dtype_says_so(call):
    x = L.zeros(3, 4, requires_grad=True)
    with pytest.raises((IndexError, TypeError), match=r"(long|integer|bool).*float"):
        call(x)


def test_backward_error_messages():
    x = L.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        L.tensor([1.0, 2.0]).mean().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.detach().sum().backward()
    y = (x @ x) * x.sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    z = x.exp()
    z.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.max().backward()


@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_on_strided_and_broadcast_inputs_are_bool_and_not_differentiable(name):
    a = rand(3, 4, seed=1)
    a[0, :2] = 0.5
    b = np.full((4, 1), 0.5)
    x = L.tensor(spread(a), requires_grad=True)
    tx = torch.tensor(spread(a))
    got = getattr(L, name)(unspread(x), L.tensor(b).mT)
    want = getattr(torch, name)(unspread(tx), torch.tensor(b).mT)
    assert got.dtype == np.bool_ and not got.requires_grad and got.is_leaf
    np.testing.assert_array_equal(got.numpy(), want.numpy())
