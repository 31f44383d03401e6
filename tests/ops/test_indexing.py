"""Indexing ops against PyTorch: ``x[...]``, gather, scatter_add, index_select, masked_fill,
take. Each case ``f(m, *xs)`` is written once; ``m`` is ``lamina`` or ``torch``.
Repeated indices must scatter-add in the backward (torch's gradients check that)."""
import numpy as np
import pytest
import torch

import lamina as L
from lamina.autograd.gradcheck import gradcheck, gradcheck_inputs
from helpers import check_op, noncontig, rand


def run(f, *arrays, **kw):
    return check_op(lambda *xs: f(L, *xs), lambda *xs: f(torch, *xs), *arrays, **kw)


X = rand(4, 3, 5, seed=1)
MASK = rand(4, 3, 5, seed=2) > 0
MASK2 = np.array([[True, False, True], [False, False, False], [True, True, True],
                  [False, True, False]])
IDX = np.array([3, 0, 3, 3])

GETITEM = {
    # basic indexing (views)
    "int": lambda m, x: x[1],
    "neg_int": lambda m, x: x[-1],
    "two_ints": lambda m, x: x[1, -2],
    "scalar": lambda m, x: x[-1, 0, -3],
    "slice": lambda m, x: x[1:3],
    "slice_step": lambda m, x: x[::2, :, 1::3],
    "slice_neg_bounds": lambda m, x: x[-3:-1, -2:],
    "slice_empty": lambda m, x: x[3:1],
    "none": lambda m, x: x[None],
    "none_mid": lambda m, x: x[:, None, 1],
    "ellipsis": lambda m, x: x[..., 2],
    "ellipsis_none": lambda m, x: x[1, ..., None],
    "ellipsis_only": lambda m, x: x[...],
    "int_ellipsis_slice": lambda m, x: x[-1, ..., 1:4:2],
    # integer arrays, lists and tensors, with duplicates
    "list_dup": lambda m, x: x[[0, 2, 2]],
    "array_dup": lambda m, x: x[IDX],
    "tensor_dup": lambda m, x: x[m.tensor(IDX)],
    "tensor_neg": lambda m, x: x[m.tensor([-1, 0, -1])],
    "tensor_0d": lambda m, x: x[m.tensor(2)],
    "array_2d": lambda m, x: x[np.array([[0, 1], [1, 1]])],
    "two_arrays_dup": lambda m, x: x[[0, 1, 1], [2, 0, 0]],
    "three_arrays_bcast": lambda m, x: x[np.array([[0], [3]]), np.array([1, 1]), 4],
    "arrays_apart": lambda m, x: x[[0, 0], :, [1, 1]],
    # mixed
    "idx_slice_none": lambda m, x: x[m.tensor(IDX), :, None],
    "slice_list_dup": lambda m, x: x[:, [0, 2, 2]],
    "slice_list_slice": lambda m, x: x[1:, [0, 0], ::2],
    "ellipsis_list": lambda m, x: x[..., [4, 0, 4]],
    "none_list_slice": lambda m, x: x[None, [1, 1], 1:],
    "int_slice_list": lambda m, x: x[1, :, [0, 2, 2]],  # torch: int applied first -> (3, 3)
    "int_list_apart": lambda m, x: x[[0, 1], :, 2],
    "list_int_list": lambda m, x: x[[0, 1], 1, [0, 2]],
    "int_ellipsis_list": lambda m, x: x[1, ..., [0, 0]],
    # boolean masks
    "mask_full": lambda m, x: x[MASK],
    "mask_tensor": lambda m, x: x[m.tensor(MASK)],
    "mask_2d": lambda m, x: x[MASK2],
    "mask_dim1": lambda m, x: x[:, np.array([True, False, True])],
    "mask_list": lambda m, x: x[[True, False, True, True]],
    "mask_int_slice": lambda m, x: x[1, np.array([True, False, True]), 2:],
    "mask_with_list": lambda m, x: x[[True, False, True, True], 1, [0, 2, 3]],
    "mask_from_compare": lambda m, x: x[x > 0.5],
    "mask_all_false": lambda m, x: x[m.tensor(np.zeros(4, bool))],
}


@pytest.mark.parametrize("name", list(GETITEM))
def test_getitem(name):
    run(GETITEM[name], X)


@pytest.mark.parametrize("name", ["slice_step", "list_dup", "two_arrays_dup", "mask_full",
                                  "idx_slice_none", "int_slice_list", "mask_2d"])
def test_getitem_noncontiguous(name):
    x = noncontig(X)
    assert not x.flags.c_contiguous
    run(GETITEM[name], x)


def test_getitem_duplicates_accumulate():
    x = L.tensor(np.arange(4.0, dtype=np.float32), requires_grad=True)
    x[[1, 1, 1, 3]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 3, 0, 1])


def test_getitem_of_getitem_and_int_dtypes():
    for dtype in (np.int32, np.int64, np.uint8):
        idx = np.array([2, 0, 2], dtype=dtype)
        run(lambda m, x: x[1:][m.tensor(idx.astype(np.int64))][:, 1], X)
        got = L.tensor(X)[L.tensor(idx)]
        np.testing.assert_array_equal(got.numpy(), X[idx.astype(np.int64)])


def test_getitem_embedding_lookup():
    # weight[idx] with a 2-D index of repeated rows (the Embedding pattern)
    idx = np.random.default_rng(0).integers(-10, 10, (3, 6))
    run(lambda m, w: w[m.tensor(idx)], rand(10, 4, seed=3))
    run(lambda m, w: w.index_select(0, m.tensor(idx.reshape(-1) % 10)).reshape(3, 6, 4),
        rand(10, 4, seed=3))


def test_getitem_no_grad():
    x = L.tensor(X, requires_grad=True)
    with L.no_grad():
        y = x[[0, 0]]
    assert not y.requires_grad


# ---------------------------------------------------------------- gather and friends
I = np.int64
OPS = {
    "gather_dim1": (lambda m, x, i: x.gather(1, i),
                    (rand(3, 4, seed=1), np.array([[0, 0], [3, 1], [2, 2]], I))),
    "gather_dim0": (lambda m, x, i: m.gather(x, 0, i),
                    (rand(3, 4, seed=1), np.array([[2, 2, 0, 1], [0, 0, 0, 0]], I))),
    "gather_neg_dim_3d": (lambda m, x, i: x.gather(-1, i),
                          (rand(2, 3, 4, seed=1), np.array([[[1, 1, 3]], [[0, 3, 3]]], I))),
    "gather_smaller_index": (lambda m, x, i: x.gather(1, i),
                             (rand(3, 4, seed=2), np.array([[3, 3, 3, 0, 1]], I))),
    "scatter_add_dim1": (lambda m, x, i, s: x.scatter_add(1, i, s),
                         (rand(3, 5, seed=1), np.array([[0, 0], [4, 1], [2, 2]], I),
                          rand(3, 2, seed=2))),
    "scatter_add_3d_neg": (lambda m, x, i, s: x.scatter_add(-2, i, s),
                           (rand(2, 3, 2, seed=1), np.array([[[0, 2], [0, 0]],
                                                             [[1, 1], [2, 2]]], I),
                            rand(2, 2, 2, seed=2))),
    "index_select_dup": (lambda m, x, i: x.index_select(0, i),
                         (rand(4, 3, seed=1), np.array([3, 0, 3, 3, 1], I))),
    "index_select_neg_dim": (lambda m, x, i: m.index_select(x, -1, i),
                             (rand(2, 3, 4, seed=1), np.array([1, 1], I))),
    "index_select_dim1": (lambda m, x, i: x.index_select(1, i),
                          (rand(2, 3, 4, seed=1), np.array([2, 0, 2], np.int32))),
    "index_select_0d": (lambda m, x, i: x.index_select(0, i), (rand(4, 3, seed=1), np.array(2))),
    "take_dup": (lambda m, x, i: x.take(i), (rand(3, 4, seed=1), np.array([[0, 11], [11, 5]], I))),
    "take_neg": (lambda m, x, i: m.take(x, i), (rand(2, 3, seed=1), np.array([-1, 0, -1], I))),
    "masked_fill": (lambda m, x, k: x.masked_fill(k, 2.5),
                    (rand(3, 4, seed=1), rand(3, 4, seed=2) > 0)),
    "masked_fill_bcast_row": (lambda m, x, k: x.masked_fill(k, -1.0),
                              (rand(3, 4, seed=1), np.array([True, False, False, True]))),
    "masked_fill_bcast_col": (lambda m, x, k: m.masked_fill(x, k, 0.0),
                              (rand(2, 3, 4, seed=1), np.array([[True], [False], [True]]))),
    "masked_fill_tensor_value": (lambda m, x, k, v: x.masked_fill(k, v),
                                 (rand(3, 4, seed=1), rand(3, 4, seed=2) > 0,
                                  np.asarray(0.75))),
    "masked_fill_tensor_value_bcast": (lambda m, x, k, v: x.masked_fill(k, v * 2),
                                       (rand(2, 3, seed=1), np.array([[False], [True]]),
                                        np.asarray(-0.5))),
    "masked_fill_mask_tensor": (lambda m, x: x.masked_fill(x > 0, -9.0), (rand(3, 4, seed=1),)),
}


@pytest.mark.parametrize("name", list(OPS))
def test_index_op(name):
    f, xs = OPS[name]
    run(f, *xs)


@pytest.mark.parametrize("name", ["gather_dim1", "scatter_add_dim1", "index_select_dup",
                                  "take_dup", "masked_fill_bcast_row"])
def test_index_op_noncontiguous(name):
    f, xs = OPS[name]
    x = noncontig(xs[0])
    assert not x.flags.c_contiguous
    run(f, x, *xs[1:])


def test_scatter_add_src_only_and_input_only():
    x, i, s = rand(3, 5, seed=1), np.array([[0, 0], [4, 1], [2, 2]], I), rand(3, 2, seed=2)
    # gradient only to src (x constant) and only to x (src constant)
    run(lambda m, s: m.tensor(x).to(s.dtype).scatter_add(1, m.tensor(i), s), s)
    run(lambda m, x: x.scatter_add(1, m.tensor(i), m.tensor(s).to(x.dtype)), x)


def test_scatter_add_src_bigger_than_index():
    # torch allows src larger than index (only index's extent is used) but its backward
    # returns a src gradient of index's shape there, so compare values with torch and
    # check lamina's gradients by finite differences only.
    x, i, s = rand(3, 4, seed=1), np.array([[2, 2, 0], [1, 2, 1]], I), rand(3, 5, seed=2)
    f = lambda m, x, s: m.scatter_add(x, 0, m.tensor(i), s)  # noqa: E731
    run(f, x, s, grad=False)
    assert gradcheck(lambda x, s: f(L, x, s), gradcheck_inputs(x, s))
    xs, ss = gradcheck_inputs(x, s)
    f(L, xs, ss).sum().backward()
    want = np.zeros((3, 5))
    want[:2, :3] = 1
    np.testing.assert_array_equal(ss.grad.numpy(), want)


def test_gather_matches_values_exactly():
    x = np.arange(12.0).reshape(3, 4)
    i = np.array([[3, 0], [1, 1], [0, 3]])
    got = L.tensor(x).gather(1, L.tensor(i)).numpy()
    np.testing.assert_array_equal(got, np.take_along_axis(x, i, 1))


# ---------------------------------------------------------------- errors
def test_index_out_of_range():
    x = L.zeros(4, 3)
    with pytest.raises(IndexError, match=r"index 4 is out of bounds.*\(4, 3\)"):
        x[4]
    with pytest.raises(IndexError, match=r"index.*out of bounds.*\(4, 3\)"):
        x[:, [0, 3]]
    with pytest.raises(IndexError, match=r"index.*\(4, 3\)"):
        x[L.tensor([-5])]
    with pytest.raises(IndexError, match=r"gather: index 3 is out of range for dimension 1 of "
                       r"size 3 \(input shape \(4, 3\)\)"):
        x.gather(1, L.tensor([[0], [3], [0], [0]]))
    # negative indices are out of range for gather and scatter_add, as in PyTorch
    with pytest.raises(IndexError, match=r"gather: index -1 is out of range"):
        x.gather(1, L.tensor([[0], [-1], [0], [0]]))
    with pytest.raises(IndexError, match=r"scatter_add: index -3 is out of range"):
        x.scatter_add(1, L.tensor([[-3], [0], [0], [0]]), L.ones(4, 1))
    with pytest.raises(IndexError, match=r"index_select: index out of range"):
        x.index_select(0, L.tensor([4]))
    with pytest.raises(IndexError, match=r"take: index out of range for a tensor of shape "
                                         r"\(4, 3\)"):
        x.take(L.tensor([12]))


def test_float_index_rejected():
    x = L.zeros(4, 3)
    with pytest.raises(IndexError, match=r"indices must be long, int or bool tensors.*float32"):
        x[L.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"indices must be long, int or bool.*float64"):
        x[np.array([0.0])]
    with pytest.raises(IndexError, match=r"indices must be long, int or bool"):
        x[:, [0.5, 1.0]]
    with pytest.raises(TypeError, match=r"gather: index must be an integer tensor.*float32"):
        x.gather(0, L.tensor([[0.0]]))
    with pytest.raises(TypeError, match=r"index_select: index must be an integer tensor"):
        x.index_select(0, L.tensor([1.0]))


def test_gather_index_wrong_rank():
    with pytest.raises(ValueError, match=r"gather: index of shape \(2,\) must have as many "
                                         r"dimensions as the input of shape \(3, 4\)"):
        L.zeros(3, 4).gather(1, L.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"gather: index size 5 exceeds input size 3"):
        L.zeros(3, 4).gather(1, L.zeros(5, 1, dtype=L.int64))
    with pytest.raises(ValueError, match=r"scatter_add: index shape \(1, 3\) exceeds src shape "
                                         r"\(1, 2\)"):
        L.zeros(3, 4).scatter_add(1, L.zeros(1, 3, dtype=L.int64), L.zeros(1, 2))
    with pytest.raises(ValueError, match=r"index_select: index must be 1-D"):
        L.zeros(3, 4).index_select(1, L.zeros(1, 3, dtype=L.int64))


def test_masked_fill_errors():
    x = L.zeros(3, 4)
    with pytest.raises(TypeError, match=r"masked_fill: mask must be a bool tensor, got dtype "
                                        r"float32"):
        x.masked_fill(L.ones(3, 4), 1.0)
    with pytest.raises(TypeError, match=r"masked_fill: mask must be a bool.*int64"):
        x.masked_fill(L.tensor([1, 0, 0, 1]), 1.0)
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(3,\) cannot be "
                                         r"broadcast to shape \(3, 4\)"):
        x.masked_fill(L.tensor([True, False, True]), 1.0)
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(2, 3, 4\)"):
        x.masked_fill(L.zeros(2, 3, 4, dtype=L.bool_), 1.0)


# ---------------------------------------------------------------- lazily merged view gradients
VIEWS = {
    "overlapping": lambda m, x: x[:3] * x[1:],
    "view_plus_dense": lambda m, x: x[0] + x.sum(0) + x[-1],
    "loop_over_time": lambda m, x: sum(x[:, t] * (t + 1) for t in range(x.shape[1])),
    "unbind_sum": lambda m, x: sum(p * p for p in x.unbind(1)),
    "split_and_whole": lambda m, x: x.split(1)[1] + x[2] * x.chunk(2, 0)[0][0],
    "none_and_ellipsis": lambda m, x: x[None] + x[..., None, :],
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_view_gradients_merge(name):
    run(VIEWS[name], rand(4, 3, seed=21))


def test_view_gradients_accumulate_across_passes():
    x = L.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    a, b = x.unbind(0)
    a.sum().backward()
    b.sum().backward()  # separate passes through pieces of one unbind
    (x[:, 1] * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 3, 1], [1, 3, 1]])


def test_view_gradients_into_parameters():
    lin = L.nn.Linear(3, 2)
    opt = L.optim.SGD(lin.parameters(), lr=0.1)
    for _ in range(2):  # the second step writes into zeroed flat-buffer storage
        opt.zero_grad()
        ((lin.weight[0] * 2).sum() + lin.weight[:, 1].sum() + lin.bias[1]).backward()
        np.testing.assert_array_equal(lin.weight.grad.numpy(), [[2, 3, 2], [0, 1, 0]])
        np.testing.assert_array_equal(lin.bias.grad.numpy(), [0, 1])


def test_empty_list_index_selects_nothing_like_torch():
    x = L.tensor(rand(4, 3, seed=3).astype(np.float32), requires_grad=True)
    t = torch.tensor(x.numpy())
    out = x[[]]
    assert out.shape == tuple(t[[]].shape) == (0, 3)
    out.sum().backward()
    assert not x.grad.numpy().any()
