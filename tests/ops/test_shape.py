"""Shape ops against PyTorch: values, gradients and float64 gradchecks.

Each case is a function ``f(m, *xs)`` written once for both frameworks: ``m`` is the
``lamina`` or ``torch`` module, so module-level calls (``m.cat``) and methods both work.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import lamina as L
from helpers import check_op, noncontig, rand


def run(f, *arrays, **kw):
    return check_op(lambda *xs: f(L, *xs), lambda *xs: f(torch, *xs), *arrays, **kw)


def pad_of(m):
    return L.pad if m is L else TF.pad


def const(m, a, like):
    """A constant (no grad) tensor of ``like``'s dtype in framework ``m``."""
    return m.tensor(a).to(like.dtype)


X234 = rand(2, 3, 4, seed=1)
X34 = rand(3, 4, seed=2)

# ---------------------------------------------------------------- views and rearrangements
CASES = {
    "reshape": (lambda m, x: x.reshape(4, 6), X234),
    "reshape_neg1": (lambda m, x: x.reshape(-1, 3), X234),
    "reshape_tuple": (lambda m, x: x.reshape((2, -1)), X234),
    "reshape_scalar": (lambda m, x: x.reshape(()), rand(1, 1, seed=3)),
    "m_reshape": (lambda m, x: m.reshape(x, (12, 2)), X234),
    "view_neg1": (lambda m, x: x.view(2, -1, 2), X234),
    "flatten": (lambda m, x: x.flatten(), X234),
    "flatten_0d": (lambda m, x: x.flatten(), np.asarray(0.3)),
    "reshape_0d": (lambda m, x: x.reshape(-1), np.asarray(0.3)),
    "flatten_1": (lambda m, x: x.flatten(1), X234),
    "flatten_0_1": (lambda m, x: x.flatten(0, 1), X234),
    "flatten_neg": (lambda m, x: x.flatten(-2, -1), rand(2, 3, 2, 2, seed=4)),
    "flatten_same": (lambda m, x: x.flatten(1, 1), X234),
    "unflatten": (lambda m, x: x.unflatten(2, (2, 2)), X234),
    "unflatten_neg": (lambda m, x: x.unflatten(-1, (2, -1)), X234),
    "transpose": (lambda m, x: x.transpose(0, 2), X234),
    "transpose_neg": (lambda m, x: x.transpose(-1, -2), X234),
    "m_transpose": (lambda m, x: m.transpose(x, 1, 0), X34),
    "T_2d": (lambda m, x: x.T, X34),
    "mT": (lambda m, x: x.mT, X234),
    "t": (lambda m, x: x.t(), X34),
    "permute": (lambda m, x: x.permute(2, 0, 1), X234),
    "permute_tuple_neg": (lambda m, x: x.permute((-1, 1, 0)), X234),
    "m_permute": (lambda m, x: m.permute(x, (1, 2, 0)), X234),
    "swapaxes": (lambda m, x: x.swapaxes(0, -1), X234),
    "movedim": (lambda m, x: x.movedim(0, -1), X234),
    "movedim_multi": (lambda m, x: m.movedim(x, (0, 1), (2, 0)), X234),
    "squeeze_all": (lambda m, x: x.squeeze(), rand(1, 3, 1, 2, seed=6)),
    "squeeze_dim": (lambda m, x: x.squeeze(2), rand(1, 3, 1, 2, seed=6)),
    "squeeze_neg": (lambda m, x: x.squeeze(-2), rand(1, 3, 1, 2, seed=6)),
    "squeeze_not1": (lambda m, x: x.squeeze(1), rand(1, 3, 1, 2, seed=6)),
    "squeeze_tuple": (lambda m, x: x.squeeze((0, 1, 2)), rand(1, 3, 1, 2, seed=6)),
    "squeeze_to_0d": (lambda m, x: x.squeeze(), rand(1, 1, seed=6)),
    "squeeze_0d_dim": (lambda m, x: x.squeeze(0), np.asarray(0.3)),
    "squeeze_0d_neg": (lambda m, x: x.squeeze(-1), np.asarray(0.3)),
    "unsqueeze0": (lambda m, x: x.unsqueeze(0), X34),
    "unsqueeze_last": (lambda m, x: x.unsqueeze(2), X34),
    "unsqueeze_neg": (lambda m, x: x.unsqueeze(-1), X34),
    "unsqueeze_neg2": (lambda m, x: x.unsqueeze(-2), X34),
    "unsqueeze_0d": (lambda m, x: m.unsqueeze(x, 0), np.asarray(1.5)),
    "expand": (lambda m, x: x.expand(2, 3, 4), rand(3, 1, seed=7)),
    "expand_neg1": (lambda m, x: x.expand(5, -1, 4), rand(3, 1, seed=7)),
    "expand_tuple": (lambda m, x: x.expand((2, 3, 1)), rand(3, 1, seed=7)),
    "expand_scalar": (lambda m, x: x.expand(2, 3), np.asarray(0.7)),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 4, 3)), rand(4, 1, seed=8)),
    "broadcast_to_meth": (lambda m, x: x.broadcast_to((3, 4)), rand(4, seed=8)),
    "repeat": (lambda m, x: x.repeat(2, 3), X34),
    "repeat_lead": (lambda m, x: x.repeat(2, 1, 3), X34),
    "repeat_tuple": (lambda m, x: x.repeat((1, 2, 2, 1)), X234),
    "repeat_1d": (lambda m, x: x.repeat(3), rand(4, seed=9)),
    "tile": (lambda m, x: x.tile((2, 2)), X34),
    "tile_fewer": (lambda m, x: x.tile((2,)), X234),
    "tile_more": (lambda m, x: m.tile(x, (2, 1, 2)), X34),
    "flip0": (lambda m, x: x.flip(0), X234),
    "flip_multi": (lambda m, x: m.flip(x, (0, 2)), X234),
    "flip_neg": (lambda m, x: x.flip(-1), X234),
    "roll": (lambda m, x: x.roll(1, 1), X234),
    "roll_neg": (lambda m, x: x.roll(-2, -1), X234),
    "roll_multi": (lambda m, x: m.roll(x, (1, -1), (0, 2)), X234),
    "roll_big": (lambda m, x: x.roll(7, 2), X234),
    "roll_flat": (lambda m, x: x.roll(5), X234),
    "roll_flat_neg": (lambda m, x: m.roll(x, -3), X34),
}


@pytest.mark.parametrize("name", list(CASES))
def test_shape_op(name):
    f, x = CASES[name]
    run(f, x)


def test_expand_as():
    run(lambda m, x, y: x.expand_as(y) * y, rand(3, 1, seed=1), rand(2, 3, 4, seed=2))
    run(lambda m, x: x.expand_as(m.zeros(4, 3)), rand(3, seed=1))


# non-contiguous inputs (transposed storage) and non-contiguous intermediates
NONCONTIG = {
    "reshape": lambda m, x: x.reshape(-1),
    "flatten": lambda m, x: x.flatten(1),
    "permute": lambda m, x: x.permute(1, 2, 0),
    "squeeze_unsqueeze": lambda m, x: x.unsqueeze(1).squeeze(1),
    "expand": lambda m, x: x[:, :1].expand(2, 5, 4),
    "repeat": lambda m, x: x.repeat(1, 2, 1),
    "cat": lambda m, x: m.cat([x, x.flip(1)], 1),
    "stack": lambda m, x: m.stack([x, x * 2], -1),
    "split": lambda m, x: x.split(2, 2),
    "pad": lambda m, x: pad_of(m)(x, (1, 2)),
    "pad_reflect": lambda m, x: pad_of(m)(x, (2, 1), mode="reflect"),
    "roll": lambda m, x: x.roll(1, -1),
    "view_of_T": lambda m, x: x.mT.reshape(2, -1).flip(0),
}


@pytest.mark.parametrize("name", list(NONCONTIG))
def test_shape_op_noncontiguous(name):
    x = noncontig(X234)
    assert not x.flags.c_contiguous
    run(NONCONTIG[name], x)


def test_noncontiguous_input_stays_strided():
    x = L.tensor(noncontig(X234).astype(np.float32), requires_grad=True)
    assert not x.data.flags.c_contiguous
    y = x.reshape(-1)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), X234.astype(np.float32).reshape(-1))
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3, 4), np.float32))


# ---------------------------------------------------------------- joining
JOIN = {
    "cat0": (lambda m, a, b: m.cat([a, b], 0), (rand(2, 3, seed=1), rand(4, 3, seed=2))),
    "cat1": (lambda m, a, b: m.cat((a, b), 1), (rand(2, 3, seed=1), rand(2, 1, seed=2))),
    "cat_neg": (lambda m, a, b: m.cat([a, b, a], -1), (rand(2, 2, 3, seed=1),
                                                      rand(2, 2, 2, seed=2))),
    "cat_one": (lambda m, a: m.cat([a], 0), (rand(2, 3, seed=1),)),
    "cat_same_twice": (lambda m, a: m.cat([a, a], 0), (rand(2, 3, seed=1),)),
    "concatenate": (lambda m, a, b: m.concatenate([a, b], -2),
                    (rand(1, 3, seed=1), rand(2, 3, seed=2))),
    "concat": (lambda m, a, b: m.concat([a, b]), (rand(1, 3, seed=1), rand(2, 3, seed=2))),
    "stack0": (lambda m, a, b: m.stack([a, b]), (rand(2, 3, seed=1), rand(2, 3, seed=2))),
    "stack1": (lambda m, a, b: m.stack((a, b, a), 1), (rand(2, 3, seed=1), rand(2, 3, seed=2))),
    "stack_neg": (lambda m, a, b: m.stack([a, b], -1), (rand(2, 3, seed=1), rand(2, 3, seed=2))),
    "stack_0d": (lambda m, a, b: m.stack([a, b]), (np.asarray(1.0), np.asarray(-2.0))),
    "stack_neg2": (lambda m, a, b: m.stack([a, b], -2), (rand(4, seed=1), rand(4, seed=2))),
}


@pytest.mark.parametrize("name", list(JOIN))
def test_join(name):
    f, xs = JOIN[name]
    run(f, *xs)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_mixed_requires_grad(dim):
    c = rand(2, 3, seed=5)
    run(lambda m, a: m.cat([const(m, c, a), a, const(m, c, a)], dim), rand(2, 3, seed=4))
    run(lambda m, a: m.stack([a, const(m, c, a)], dim), rand(2, 3, seed=4))


def test_cat_mixed_requires_grad_leaves():
    a = L.tensor(rand(2, 3, seed=1).astype(np.float32), requires_grad=True)
    b = L.tensor(rand(1, 3, seed=2).astype(np.float32))
    y = L.cat([a, b, a])
    y.backward(L.ones(5, 3))
    assert b.grad is None
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 2.0, np.float32))


def test_cat_no_grad_records_nothing():
    a = L.tensor(rand(2, 3).astype(np.float32), requires_grad=True)
    with L.no_grad():
        y = L.cat([a, a], 1)
    assert not y.requires_grad and y.is_leaf


# ---------------------------------------------------------------- splitting
SPLIT = {
    "split_int_even": lambda m, x: x.split(2, 0),
    "split_int_smaller_last": lambda m, x: x.split(2),
    "split_int_big": lambda m, x: m.split(x, 7),
    "split_list": lambda m, x: x.split([1, 3, 1]),
    "split_list_zero": lambda m, x: x.split([2, 0, 3], 0),
    "split_dim_neg": lambda m, x: m.split(x, 2, dim=-1),
    "split_list_dim1": lambda m, x: x.split([1, 2], 1),
    "chunk_5_3": lambda m, x: x.chunk(3),
    "chunk_5_2": lambda m, x: x.chunk(2, 0),
    "chunk_5_5": lambda m, x: m.chunk(x, 5),
    "chunk_more_than_size": lambda m, x: x.chunk(8),
    "chunk_dim": lambda m, x: x.chunk(2, -1),
    "unbind": lambda m, x: x.unbind(),
    "unbind_neg": lambda m, x: m.unbind(x, -1),
    "unbind_1": lambda m, x: x.unbind(1),
}


@pytest.mark.parametrize("name", list(SPLIT))
def test_split(name):
    f = SPLIT[name]
    x = rand(5, 3, 4, seed=11)
    out_l, out_t = f(L, L.tensor(x)), f(torch, torch.tensor(x))
    assert [tuple(o.shape) for o in out_l] == [tuple(o.shape) for o in out_t]
    run(f, x)


def test_chunk_sizes_like_torch():
    for n in range(0, 9):
        for chunks in range(1, 10):
            x = np.arange(float(n))
            got = [o.shape[0] for o in L.tensor(x).chunk(chunks)]
            want = [o.shape[0] for o in torch.tensor(x).chunk(chunks)]
            assert got == want, (n, chunks)


def test_split_pieces_only_some_used():
    # a piece that does not reach the loss gets no gradient contribution
    run(lambda m, x: x.split(2, 1)[1] * 3, rand(3, 5, seed=12))


# ---------------------------------------------------------------- pad
PAD = [
    # (input shape, pad, mode, value)
    ((2, 3, 4), (1, 2), "constant", 0.0),
    ((2, 3, 4), (0, 0, 2, 1), "constant", 0.5),
    ((2, 3, 4), (1, 1, 1, 1, 1, 0), "constant", -1.0),
    ((2, 3, 4), (-1, 2), "constant", 0.0),
    ((2, 3, 4), (-1, -2), "constant", 0.0),
    ((1, 2, 3, 4), (1, -1, -1, 2), "constant", 3.0),
    ((1, 2, 3, 4), (-1, -1, -1, -1), "constant", 0.0),
    ((2, 3, 4), (2, 3), "reflect", None),
    ((2, 3, 4), (0, 1), "reflect", None),
    ((1, 2, 3, 4), (1, 2, 2, 1), "reflect", None),
    ((1, 2, 3, 4), (3, 3, 0, 0), "reflect", None),
    ((2, 3, 4), (2, 3), "replicate", None),
    ((1, 2, 3, 4), (1, 2, 3, 0), "replicate", None),
    ((2, 3, 4), (2, 1), "circular", None),
    ((1, 2, 3, 4), (1, 2, 3, 1), "circular", None),
    ((1, 2, 3, 4), (4, 0, 0, 3), "circular", None),
]


@pytest.mark.parametrize("shape,p,mode,value", PAD)
def test_pad(shape, p, mode, value):
    kw = {"mode": mode} if value is None else {"mode": mode, "value": value}
    run(lambda m, x: pad_of(m)(x, p, **kw), rand(*shape, seed=13))


def test_pad_default_value_and_int_dtype():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    got = L.pad(L.tensor(x), (1, 1), value=7)
    want = TF.pad(torch.tensor(x), (1, 1), value=7)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# ---------------------------------------------------------------- errors
def test_reshape_wrong_size():
    x = L.zeros(2, 3)
    with pytest.raises(ValueError, match=r"reshape: shape \(4, 4\) is invalid for input of "
                                         r"shape \(2, 3\)"):
        x.reshape(4, 4)
    with pytest.raises(ValueError, match=r"reshape.*\(-1, 4\).*\(2, 3\)"):
        x.view(-1, 4)


def test_cat_mismatched_shapes():
    with pytest.raises(ValueError, match=r"cat: sizes of tensors must match except in "
                                         r"dimension 0.*\(2, 3\).*\(2, 4\)"):
        L.cat([L.zeros(2, 3), L.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"cat.*\(2, 3\).*\(3,\)"):
        L.cat([L.zeros(2, 3), L.zeros(3)], 1)
    with pytest.raises(ValueError, match="cat: expected a non-empty"):
        L.cat([])
    with pytest.raises(ValueError, match="cat: zero-dimensional tensors cannot be concatenated"):
        L.cat([L.tensor(1.0), L.tensor(2.0)])


def test_stack_mismatched_shapes():
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        L.stack([L.zeros(2, 3), L.zeros(3, 2)])


def test_shape_errors_name_the_op():
    x = L.zeros(2, 3)
    with pytest.raises(IndexError, match=r"transpose: dimension 2 is out of range"):
        x.transpose(0, 2)
    with pytest.raises(ValueError, match=r"permute.*\(2, 3\)"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"expand: shape \(2, 3\) cannot be expanded to "
                                         r"\(2, 4\)"):
        x.expand(2, 4)
    with pytest.raises(ValueError, match=r"expand.*\(-1, 2, 3\)"):
        x.expand(-1, 2, 3)  # -1 is not allowed for a new leading dimension
    with pytest.raises(ValueError, match=r"repeat.*\(2, 3\)"):
        x.repeat(2)
    with pytest.raises(ValueError, match=r"split: sections \[1, 2\] do not sum to the size 2"):
        x.split([1, 2])
    with pytest.raises(ValueError, match=r"pad: negative padding"):
        L.pad(x, (-1, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: reflect padding \(3, 0\)"):
        L.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: unknown mode"):
        L.pad(x, (1, 0), mode="mirror")
    with pytest.raises(ValueError, match=r"roll: shifts"):
        x.roll((1, 2), 0)
    with pytest.raises(ValueError, match=r"movedim: .*3.*\(2, 3\)"):
        x.movedim(3, 0)
    with pytest.raises(ValueError, match=r"movedim: .*\(2, 3\)"):
        x.movedim((0, 1), 0)
    with pytest.raises(ValueError, match=r"chunk: number of chunks must be positive"):
        x.chunk(0)
    with pytest.raises(IndexError, match=r"squeeze: dimension 2 is out of range"):
        x.squeeze(2)
    with pytest.raises(IndexError, match=r"unsqueeze: dimension -4 is out of range"):
        x.unsqueeze(-4)


@pytest.mark.parametrize("join", ["cat", "stack"])
def test_join_mixed_int_and_float_promotes_like_torch(join):
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    b = rand(2, 3, seed=5).astype(np.float32)
    out = getattr(L, join)([L.tensor(a), L.tensor(b, requires_grad=True)])
    ref = getattr(torch, join)([torch.tensor(a), torch.tensor(b)])
    assert out.dtype == L.float32 and str(ref.dtype) == "torch.float32"
    np.testing.assert_allclose(out.numpy(), ref.numpy())
    out.sum().backward()


def test_view_refuses_to_copy_like_torch():
    a = np.arange(12.0).reshape(3, 4)
    x, t = L.tensor(a), torch.tensor(a)
    for shape in [(12,), (2, 6), (4, 3)]:
        np.testing.assert_array_equal(x.view(*shape).numpy(), t.view(*shape).numpy())
    np.testing.assert_array_equal(x.T.view(4, 3, 1).numpy(), t.T.view(4, 3, 1).numpy())
    with pytest.raises(RuntimeError):
        t.T.view(12)
    with pytest.raises(RuntimeError, match=r"view: shape \(12,\) is not compatible with the "
                       r"strides of the input of shape \(4, 3\).*use reshape"):
        x.T.view(12)
    np.testing.assert_array_equal(x.T.reshape(12).numpy(), t.T.reshape(12).numpy())
    assert L.zeros(0, 3).T.view(0).shape == (0,)
