"""Reductions: values and gradients against PyTorch, float64 gradcheck, tie and zero
semantics, dim/axis spellings and errors."""
import numpy as np
import pytest
import torch

import lamina
from helpers import check_op, noncontig, rand

DIMS = [None, 0, -1, (0, 2), (-1, -3), [1]]
X = rand(2, 3, 4, seed=0)


def _kw(dim, keepdim):
    return {} if dim is None else {"dim": dim, "keepdim": keepdim}


def _tdim(dim):
    return tuple(dim) if isinstance(dim, list) else dim


# name -> (lamina fn, torch fn); each takes (x, **kw)
SMOOTH = {
    "sum": (lambda x, **k: x.sum(**k), lambda x, **k: x.sum(**k)),
    "mean": (lambda x, **k: x.mean(**k), lambda x, **k: x.mean(**k)),
    "var": (lambda x, **k: x.var(**k), lambda x, **k: x.var(**k)),
    "std": (lambda x, **k: x.std(**k), lambda x, **k: x.std(**k)),
    "amax": (lambda x, **k: x.amax(**k), lambda x, **k: x.amax(**k)),
    "amin": (lambda x, **k: x.amin(**k), lambda x, **k: x.amin(**k)),
    "logsumexp": (lambda x, **k: x.logsumexp(**k),
                  lambda x, **k: x.logsumexp(**k) if "dim" in k else x.logsumexp(dim=(0, 1, 2))),
    "norm": (lambda x, **k: x.norm(**k), lambda x, **k: x.norm(**k)),
}


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", list(SMOOTH))
def test_reduction_matches_torch(name, dim, keepdim):
    lf, tf = SMOOTH[name]
    check_op(lambda x: lf(x, **_kw(dim, keepdim)),
             lambda x: tf(x, **_kw(_tdim(dim), keepdim)), X)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "logsumexp", "norm"])
def test_reduction_noncontiguous_input(name):
    lf, tf = SMOOTH[name]
    a = noncontig(rand(3, 4, seed=1))
    assert not a.flags.c_contiguous
    check_op(lambda x: lf(x, dim=1), lambda x: tf(x, dim=1), a)
    # a strided lamina view (not a copy) reduces to the same values
    base = rand(4, 6, seed=2)
    v = lamina.tensor(base)[:, ::2]
    np.testing.assert_allclose(lf(v, dim=0).numpy(), tf(torch.tensor(base)[:, ::2], dim=0).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "amin", "logsumexp",
                                  "norm", "prod"])
def test_functions_and_numpy_spelling(name):
    a = rand(3, 4, seed=3)
    t = lamina.tensor(a)
    fn = getattr(lamina, name)
    ref = getattr(t, name)(dim=-1, keepdim=True).numpy()
    np.testing.assert_array_equal(fn(t, axis=-1, keepdims=True).numpy(), ref)
    np.testing.assert_array_equal(fn(t, dim=-1, keepdim=True).numpy(), ref)
    assert fn(t, dim=()).shape == () if name != "prod" else True
    with pytest.raises(TypeError, match="dim or axis"):
        fn(t, dim=0, axis=0)


def test_sum_dtype_and_empty_dims():
    t = lamina.tensor(np.array([[True, False], [True, True]]))
    assert t.sum().dtype == np.int64 and t.sum().item() == 3
    assert lamina.tensor(np.array([1, 2], np.int32)).sum().dtype == np.int64
    x = rand(2, 3, seed=4)
    check_op(lambda x: x.sum(dim=()), lambda x: x.sum(dim=()), x)
    check_op(lambda x: x.mean(dim=[]), lambda x: x.mean(dim=[]), x)
    check_op(lambda x: x.sum(dtype=lamina.float64), lambda x: x.sum(dtype=torch.float64), x)
    with pytest.raises(TypeError, match="mean"):
        lamina.tensor([1, 2]).mean()


@pytest.mark.parametrize("kw", [{"correction": 0}, {"correction": 2}, {"unbiased": False},
                                {"unbiased": True}, {"dim": 1, "correction": 0},
                                {"dim": (0, 1), "unbiased": False, "keepdim": True}], ids=str)
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_correction(name, kw):
    x = rand(3, 4, seed=5)
    check_op(lambda x: getattr(x, name)(**kw), lambda x: getattr(x, name)(**kw), x)


def test_var_positional_unbiased_and_mean_pairs():
    x = rand(3, 4, seed=6)
    check_op(lambda x: lamina.var(x, False), lambda x: torch.var(x, False), x)
    check_op(lambda x: lamina.std(x, 0), lambda x: torch.std(x, 0), x)
    check_op(lambda x: lamina.var_mean(x, 1), lambda x: torch.var_mean(x, 1), x)
    check_op(lambda x: lamina.std_mean(x, 1, keepdim=True),
             lambda x: torch.std_mean(x, 1, keepdim=True), x)


def test_std_of_constant_has_zero_gradient():
    # torch masks the 1/(2 std) factor where std == 0; finite differences are not
    # defined there (|x| kink), so this is torch parity only
    a = np.array([[1.5, 1.5, 1.5], [0.0, 1.0, 2.0]])
    out = check_op(lambda x: x.std(dim=1), lambda x: x.std(dim=1), a, check_grad=False)
    assert out[0].numpy()[0] == 0


def test_var_single_element_is_nan_like_torch():
    with pytest.warns(UserWarning):  # torch warns on correction >= n
        check_op(lambda x: x.var(), lambda x: x.var(), np.array([2.0]), check_grad=False)


@pytest.mark.parametrize("a", [
    np.array([[2.0, 0.0, 3.0], [1.5, -1.0, 0.5]]),       # one zero in a row
    np.array([[0.0, 0.0, 3.0], [0.0, 1.0, 2.0]]),        # two zeros in a row
    np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    rand(2, 3, seed=7, low=0.5, high=1.5)], ids=["one_zero", "two_zeros", "all_zero", "rand"])
@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": -1}],
                         ids=str)
def test_prod_with_zeros(a, kw):
    check_op(lambda x: x.prod(**kw), lambda x: x.prod(**kw), a)


def test_prod_rejects_several_dims_and_promotes_ints():
    with pytest.raises(TypeError, match="prod"):
        lamina.tensor(rand(2, 3)).prod(dim=(0, 1))
    assert lamina.tensor(np.array([2, 3], np.int32)).prod().dtype == np.int64


TIES = np.array([[1.0, 3.0, 3.0, -2.0],
                 [2.0, 2.0, 0.0, 0.0],
                 [-2.0, -1.0, -2.0, -1.0]])


# Gradients at ties are not differentiable, so finite differences cannot judge them:
# these compare with torch only (check_grad=False).
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_without_dim_share_ties_evenly(name):
    out = check_op(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), TIES,
                   check_grad=False)
    assert out[0].shape == ()
    x = lamina.tensor(TIES, requires_grad=True)
    getattr(lamina, name)(x).backward()
    g = x.grad.numpy()
    extreme = TIES.max() if name == "max" else TIES.min()
    np.testing.assert_allclose(g, (TIES == extreme) / np.sum(TIES == extreme))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1, -2])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_with_dim_gives_index_and_grad_like_torch(name, dim, keepdim):
    out = check_op(lambda x: getattr(x, name)(dim, keepdim),
                   lambda x: getattr(x, name)(dim, keepdim), TIES, check_grad=False)
    tv, ti = getattr(torch.tensor(TIES), name)(dim, keepdim)
    np.testing.assert_array_equal(out[1].numpy(), ti.numpy())
    assert out[1].dtype == np.int64
    res = getattr(lamina, name)(lamina.tensor(TIES), dim=dim, keepdim=keepdim)
    assert res.values is res[0] and res.indices is res[1]


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_with_dim_random_inputs_gradcheck(name):
    check_op(lambda x: getattr(x, name)(dim=1).values, lambda x: getattr(x, name)(dim=1).values,
             rand(3, 5, seed=8))
    check_op(lambda x: getattr(lamina, name)(x, axis=0, keepdims=True)[0],
             lambda x: getattr(torch, name)(x, dim=0, keepdim=True)[0], noncontig(rand(3, 4)))


def test_max_of_two_tensors_is_elementwise():
    check_op(lambda x, y: lamina.max(x, y), lambda x, y: torch.max(x, y),
             rand(2, 3, seed=9), rand(2, 3, seed=10))


def test_max_zero_dim_tensor():
    check_op(lambda x: x.max(0)[0], lambda x: x.max(0)[0], np.array(1.5))


@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": (0, 1)}],
                         ids=str)
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_ties_share_evenly(name, kw):
    check_op(lambda x: getattr(x, name)(**kw), lambda x: getattr(x, name)(**kw), TIES,
             check_grad=False)


def test_amax_two_way_tie_gradcheck():
    # with exactly two tied maxima the central difference is 1/2 each, the even split
    check_op(lambda x: x.amax(dim=1), lambda x: x.amax(dim=1),
             np.array([[1.0, 3.0, 3.0], [0.5, 0.25, 0.5]]))


@pytest.mark.parametrize("a", [
    np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, -np.inf]]),
    np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -999.5]]),
    np.array([[88.0, 89.0, 90.0], [-90.0, -100.0, -103.0]])],
    ids=["neg_inf", "huge", "exp_overflow"])
@pytest.mark.parametrize("dim", [1, -1, (0, 1)], ids=str)
def test_logsumexp_stable(a, dim):
    out = check_op(lambda x: x.logsumexp(dim=dim), lambda x: x.logsumexp(dim=dim), a)
    assert np.all(np.isfinite(out[0].numpy()))


def test_logsumexp_all_neg_inf_and_pos_inf_like_torch():
    a = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1e30, 1e30]])
    # values -inf, inf, 1e30: non-finite or beyond float precision, so torch parity only
    out = check_op(lambda x: x.logsumexp(1), lambda x: x.logsumexp(1), a, check_grad=False)
    np.testing.assert_array_equal(out[0].numpy()[:2], [-np.inf, np.inf])


NORM_P = ["fro", 2, 1, float("inf"), float("-inf"), 3, 0.5]


@pytest.mark.parametrize("dim", [None, 1, -1, (0, 2), (-1, -2)], ids=str)
@pytest.mark.parametrize("p", NORM_P, ids=str)
def test_norm_matches_torch(p, dim):
    a = rand(2, 3, 4, seed=11)
    check_op(lambda x: x.norm(p, dim), lambda x: torch.norm(x, p, dim), a)
    check_op(lambda x: lamina.norm(x, p=p, axis=dim, keepdims=True),
             lambda x: torch.norm(x, p=p, dim=dim, keepdim=True), a, check_grad=False)


@pytest.mark.parametrize("p", NORM_P + [0], ids=str)
def test_norm_of_zero_vector_has_zero_gradient(p):
    a = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    for kw in ({"dim": 1}, {}):
        lam_x = lamina.tensor(a[:1] if not kw else a, requires_grad=True)
        tor_x = torch.tensor(a[:1] if not kw else a, requires_grad=True)
        lamina.norm(lam_x, p, **kw).sum().backward()
        torch.norm(tor_x, p, **kw).sum().backward()
        tg = np.zeros(a.shape if kw else (1, 3)) if tor_x.grad is None else tor_x.grad.numpy()
        np.testing.assert_allclose(lam_x.grad.numpy(), tg, rtol=1e-6, atol=1e-7)
        assert not np.any(np.isnan(lam_x.grad.numpy()))


def test_norm_inf_ties_and_errors():
    a = np.array([3.0, -3.0, 1.0, 0.0])
    for p in (float("inf"), float("-inf")):
        check_op(lambda x: x.norm(p), lambda x: x.norm(p), a, check_grad=False)
    with pytest.raises(ValueError, match="nuc"):
        lamina.tensor(rand(2, 2)).norm("nuc")


@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_cumsum(dim):
    check_op(lambda x: x.cumsum(dim), lambda x: x.cumsum(dim), rand(2, 3, 4, seed=12))
    check_op(lambda x: lamina.cumsum(x, axis=dim), lambda x: torch.cumsum(x, dim=dim),
             noncontig(rand(2, 3, 4, seed=13)))


def test_cumsum_dtypes_and_scalar():
    a = np.array([[1, 2], [3, 4]], np.int32)
    assert lamina.tensor(a).cumsum(0).dtype == np.int64
    assert lamina.tensor(a > 1).cumsum(1).tolist() == [[0, 1], [1, 2]]
    check_op(lambda x: x.cumsum(0), lambda x: x.cumsum(0), np.array(2.5))
    with pytest.raises(TypeError, match="cumsum"):
        lamina.cumsum(lamina.tensor(a))


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": -1}, {"dim": 1, "keepdim": True},
                                {"keepdim": True}], ids=str)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, kw):
    for a in (TIES, rand(3, 4, seed=14), noncontig(rand(3, 4, seed=15))):
        t = lamina.tensor(a, requires_grad=True)
        out = getattr(t, name)(**kw)
        ref = getattr(torch.tensor(a), name)(**kw)
        assert out.dtype == np.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_array_equal(
        getattr(lamina, name)(lamina.tensor(TIES), axis=1, keepdims=True).numpy(),
        getattr(torch, name)(torch.tensor(TIES), dim=1, keepdim=True).numpy())


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": -1, "keepdim": True}, {"dim": (0, 2)},
                                {"dim": (-1, 0), "keepdim": True}], ids=str)
@pytest.mark.parametrize("name", ["all", "any"])
def test_all_any(name, kw):
    a = np.array([[[1.0, 0.0], [2.0, 3.0]], [[0.0, 0.0], [1.0, 1.0]]])
    for arr in (a, a > 0, noncontig(a)):
        out = getattr(lamina.tensor(arr), name)(**kw)
        ref = getattr(torch.tensor(arr), name)(**kw)
        assert out.dtype == np.bool_ and out.shape == tuple(ref.shape)
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_array_equal(getattr(lamina, name)(lamina.tensor(a), axis=1).numpy(),
                                  getattr(torch, name)(torch.tensor(a), dim=1).numpy())


@pytest.mark.parametrize("call", [
    lambda t: t.sum(dim=3), lambda t: t.mean(dim=-4), lambda t: t.amax(dim=(0, 5)),
    lambda t: t.max(dim=3), lambda t: t.argmax(dim=-4), lambda t: t.cumsum(3),
    lambda t: t.norm(dim=7), lambda t: t.all(dim=3), lambda t: t.logsumexp(3),
    lambda t: t.var(3)])
def test_out_of_range_dim_is_clear(call):
    with pytest.raises(IndexError, match=r"dimension -?\d+ is out of range .*\(2, 3, 4\)"):
        call(lamina.tensor(rand(2, 3, 4)))


def test_repeated_dim_and_bad_dim_types():
    t = lamina.tensor(rand(2, 3))
    with pytest.raises(ValueError, match="repeated"):
        t.sum(dim=(0, -2))
    with pytest.raises(TypeError, match="max: dim must be a single int"):
        t.max(dim=(0, 1))
    with pytest.raises(RuntimeError, match="amax: expected a non-empty"):
        lamina.tensor(np.zeros((0, 3))).amax()


def test_numpy_integer_dims():
    t = lamina.tensor(rand(2, 3))
    np.testing.assert_array_equal(t.sum(dim=np.int64(1)).numpy(), t.sum(dim=1).numpy())
    np.testing.assert_array_equal(t.max(np.int64(1)).indices.numpy(), t.max(1).indices.numpy())
