"""matmul / mm / bmm / dot / outer / einsum against PyTorch, with float64 gradchecks.
Each case ``f(m, *xs)`` is written once; ``m`` is ``lamina`` or ``torch``."""
import numpy as np
import pytest
import torch

import lamina as L
from helpers import check_op, noncontig, rand


def run(f, *arrays, **kw):
    return check_op(lambda *xs: f(L, *xs), lambda *xs: f(torch, *xs), *arrays, **kw)


def shapes(*ss):
    return tuple(rand(*s, seed=i + 1) for i, s in enumerate(ss))


MATMUL = {
    "1d_1d": (lambda m, a, b: a @ b, shapes((4,), (4,))),
    "1d_2d": (lambda m, a, b: a @ b, shapes((4,), (4, 3))),
    "2d_1d": (lambda m, a, b: m.matmul(a, b), shapes((3, 4), (4,))),
    "2d_2d": (lambda m, a, b: a @ b, shapes((3, 4), (4, 2))),
    "2d_2d_inner1": (lambda m, a, b: a @ b, shapes((3, 1), (1, 2))),
    "3d_3d": (lambda m, a, b: a @ b, shapes((2, 3, 4), (2, 4, 5))),
    "bcast_batch": (lambda m, a, b: a @ b, shapes((2, 1, 3, 4), (5, 4, 2))),
    "bcast_batch_b1": (lambda m, a, b: a.matmul(b), shapes((2, 3, 4), (1, 4, 5))),
    "3d_2d": (lambda m, a, b: a @ b, shapes((2, 3, 4), (4, 5))),
    "4d_2d": (lambda m, a, b: a @ b, shapes((2, 1, 3, 4), (4, 2))),
    "3d_2d_inner1": (lambda m, a, b: a @ b, shapes((2, 3, 1), (1, 2))),
    "3d_2d_empty_rows": (lambda m, a, b: a @ b, shapes((2, 0, 3), (3, 4))),
    "3d_2d_empty_inner": (lambda m, a, b: a @ b, shapes((2, 3, 0), (0, 4))),
    "3d_2d_empty_cols": (lambda m, a, b: a @ b, shapes((2, 3, 5), (5, 0))),
    "2d_3d": (lambda m, a, b: a @ b, shapes((3, 4), (2, 4, 5))),
    "1d_3d": (lambda m, a, b: a @ b, shapes((4,), (2, 4, 5))),
    "3d_1d": (lambda m, a, b: a @ b, shapes((2, 3, 4), (4,))),
    "4d_1d": (lambda m, a, b: a @ b, shapes((2, 1, 3, 4), (4,))),
    "mm": (lambda m, a, b: m.mm(a, b), shapes((3, 4), (4, 2))),
    "mm_method": (lambda m, a, b: a.mm(b), shapes((1, 4), (4, 1))),
    "bmm": (lambda m, a, b: m.bmm(a, b), shapes((3, 2, 4), (3, 4, 2))),
    "bmm_method": (lambda m, a, b: a.bmm(b), shapes((1, 2, 3), (1, 3, 3))),
    "dot": (lambda m, a, b: m.dot(a, b), shapes((5,), (5,))),
    "dot_method": (lambda m, a, b: a.dot(b), shapes((1,), (1,))),
    "outer": (lambda m, a, b: m.outer(a, b), shapes((3,), (4,))),
    "same_operand": (lambda m, a: a @ a, shapes((3, 3))),
    "transposed": (lambda m, a, b: a.mT @ b.mT, shapes((2, 4, 3), (2, 5, 4))),
    "chain": (lambda m, a, b, c: (a @ b) @ c, shapes((2, 3), (3, 4), (4, 2))),
}


@pytest.mark.parametrize("name", list(MATMUL))
def test_matmul(name):
    f, xs = MATMUL[name]
    run(f, *xs)


@pytest.mark.parametrize("name", ["2d_2d", "3d_3d", "bcast_batch", "3d_2d", "mm", "bmm"])
def test_matmul_noncontiguous(name):
    f, xs = MATMUL[name]
    xs = [noncontig(x) for x in xs]
    assert not any(x.flags.c_contiguous for x in xs)
    run(f, *xs)


@pytest.mark.parametrize("name", ["2d_2d", "1d_2d", "bcast_batch", "3d_1d"])
def test_matmul_one_side_constant(name):
    f, (a, b) = MATMUL[name]
    run(lambda m, a: f(m, a, m.tensor(b).to(a.dtype)), a)
    run(lambda m, b: f(m, m.tensor(a).to(b.dtype), b), b)


def test_matmul_dtype_and_no_grad():
    a = L.tensor(rand(3, 4).astype(np.float32), requires_grad=True)
    b = L.tensor(rand(4, 2).astype(np.float32))
    assert (a @ b).dtype == np.float32
    with L.no_grad():
        assert not (a @ b).requires_grad
    assert (a[0] @ a[1]).shape == ()


# ---------------------------------------------------------------- einsum
EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ii->", [(4, 4)]),
    ("bii->bi", [(2, 3, 3)]),
    ("iij->j", [(2, 2, 3)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->", [(3, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("ij,kj->ik", [(3, 4), (2, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...ij,jk->...ik", [(3, 4), (4, 2)]),
    ("i...->...", [(3, 2, 2)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("ba,ac", [(3, 4), (4, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,jk,ki->", [(2, 3), (3, 4), (4, 2)]),
    ("ij,j->", [(3, 4), (4,)]),
    ("ij,j->j", [(3, 4), (4,)]),
    ("ijk,k->", [(2, 3, 2), (2,)]),
    ("iJ,Jk->ik", [(3, 4), (4, 2)]),
    ("ij, jk -> ik", [(3, 4), (4, 2)]),
    ("ij,ij->ij", [(3, 1), (3, 4)]),  # size-1 letter broadcasts
    # two-operand contractions that go through one batched matmul, in assorted layouts
    ("ij,jk->ki", [(3, 4), (4, 2)]),
    ("abc,cd->dba", [(2, 3, 4), (4, 2)]),
    ("ijk,jl->il", [(2, 3, 2), (3, 4)]),  # k summed in operand 0 only
    ("bij,bkj->kbi", [(2, 3, 4), (2, 2, 4)]),
    ("bi,bij->bj", [(2, 3), (2, 3, 4)]),
    ("ij,jk->ik", [(1, 4), (4, 1)]),
]


@pytest.mark.parametrize("eq,ss", EINSUM, ids=[e.replace(" ", "_") for e, _ in EINSUM])
def test_einsum(eq, ss):
    run(lambda m, *xs: m.einsum(eq, *xs), *shapes(*ss))


def test_einsum_list_operands_and_noncontiguous():
    a, b = shapes((3, 4), (4, 2))
    run(lambda m, a, b: m.einsum("ij,jk->ik", [a, b]), a, b)
    run(lambda m, a, b: m.einsum("bij,bjk->bik", a, b), noncontig(rand(2, 3, 4, seed=1)),
        noncontig(rand(2, 4, 2, seed=2)))
    run(lambda m, a: m.einsum("ii->i", a.mT), noncontig(rand(3, 3, seed=3)))


def test_einsum_one_operand_constant():
    a, b = shapes((3, 3), (3,))
    run(lambda m, a: m.einsum("ii,i->i", a, m.tensor(b).to(a.dtype)), a)
    run(lambda m, b: m.einsum("ii,i->i", m.tensor(a).to(b.dtype), b), b)


def test_einsum_diagonal_backward():
    x = L.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    L.einsum("ii->i", x).backward(L.tensor([1.0, 2.0, 3.0], dtype=L.float64))
    np.testing.assert_array_equal(x.grad.numpy(), np.diag([1.0, 2.0, 3.0]))
    x.grad = None
    L.einsum("ii", x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.eye(3))


# ---------------------------------------------------------------- errors
def test_matmul_errors():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\) cannot be "
                                         r"multiplied \(4 vs 5"):
        L.zeros(3, 4) @ L.zeros(5, 6)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3, 4\) and \(3, 5, 2\)"):
        L.matmul(L.zeros(2, 3, 4), L.zeros(3, 5, 2))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3, 4\) and \(5, 6\) cannot be "
                                         r"multiplied \(4 vs 5"):
        L.zeros(2, 3, 4) @ L.zeros(5, 6)
    with pytest.raises(ValueError, match=r"matmul: shapes \(4,\) and \(3,\)"):
        L.zeros(4) @ L.zeros(3)
    with pytest.raises(ValueError, match=r"matmul: both arguments need at least 1 dimension"):
        L.matmul(L.tensor(2.0), L.zeros(3))
    with pytest.raises(ValueError, match=r"mm: expects 2-D tensors, got shapes \(2, 3, 4\)"):
        L.mm(L.zeros(2, 3, 4), L.zeros(4, 2))
    with pytest.raises(ValueError, match=r"bmm: .*\(2, 3, 4\) and \(3, 4, 2\)"):
        L.bmm(L.zeros(2, 3, 4), L.zeros(3, 4, 2))
    with pytest.raises(ValueError, match=r"dot: expects 1-D tensors, got shapes \(2, 2\)"):
        L.dot(L.zeros(2, 2), L.zeros(4))


def test_einsum_errors():
    with pytest.raises(ValueError, match=r"einsum: equation 'ij,jk->ik' has 2 operands, got 1"):
        L.einsum("ij,jk->ik", L.zeros(2, 3))
    with pytest.raises(ValueError, match=r"einsum: subscript 'j' has size 4"):
        L.einsum("ij,jk->ik", L.zeros(2, 3), L.zeros(4, 2))
    with pytest.raises(ValueError, match=r"einsum: operand subscripts 'ijk' do not match shape "
                                         r"\(2, 3\)"):
        L.einsum("ijk->i", L.zeros(2, 3))
