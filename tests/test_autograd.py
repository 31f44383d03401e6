"""The autograd machinery: backward, graph lifetime, grad modes, hooks, functional
transforms, custom Functions and gradcheck, compared with PyTorch where it has the feature."""
import gc
import os
import sys
import time
import weakref

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np
import pytest
import torch

import lamina
from lamina.autograd import Function, GradcheckError, gradcheck
from helpers import rand


def pair(a, requires_grad=True):
    """The same float32 values as a lamina leaf and a torch leaf."""
    a = np.asarray(a, dtype=np.float32)
    return (lamina.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def close(lt, tt, atol=1e-5, rtol=1e-4):
    np.testing.assert_allclose(lt.numpy(), tt.detach().numpy(), atol=atol, rtol=rtol)


# ---------------------------------------------------------------- backward basics
def test_scalar_backward_matches_torch():
    (x, tx), (w, tw) = pair(rand(3, 4, seed=0)), pair(rand(4, 2, seed=1))
    loss = ((x @ w).tanh() * (x.sum(1, keepdim=True))).mean()
    tloss = ((tx @ tw).tanh() * (tx.sum(1, keepdim=True))).mean()
    loss.backward()
    tloss.backward()
    close(loss, tloss)
    close(x.grad, tx.grad)
    close(w.grad, tw.grad)
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


@pytest.mark.parametrize("as_type", [np.asarray, lamina.tensor])
def test_nonscalar_backward_with_gradient_matches_torch(as_type):
    (x, tx) = pair(rand(2, 3, seed=2))
    v = rand(2, 3, seed=3).astype(np.float32)
    y, ty = x.exp() * x, tx.exp() * tx
    y.backward(as_type(v))
    ty.backward(torch.tensor(v))
    close(x.grad, tx.grad)


def test_one_element_nonscalar_backward_without_gradient():
    x, tx = pair([[2.0]])
    (x * x).backward()
    (tx * tx).backward()
    close(x.grad, tx.grad)


def test_backward_nonscalar_without_gradient_raises():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar "
                                           r"outputs.*shape \(2,\)"):
        (x * 2).backward()


def test_backward_wrong_gradient_shape_raises():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\).*shape \(2,\)"):
        (x * 2).backward(np.ones(3, np.float32))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lamina.tensor([1.0]).sum().backward()
    x = lamina.tensor([1.0], requires_grad=True)
    with lamina.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_second_backward_through_freed_graph_raises():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    # also when only part of the graph was freed: a new op on top of a freed intermediate
    h = x.tanh()
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        (h * 3).sum().backward()


def test_retain_graph_second_backward_accumulates_like_torch():
    (x, tx) = pair(rand(3, seed=4))
    y, ty = (x.sin() * x).sum(), (tx.sin() * tx).sum()
    y.backward(retain_graph=True)
    ty.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    ty.backward()
    close(x.grad, tx.grad)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_leaf_gradients_accumulate_across_calls():
    (x, tx) = pair(rand(2, 2, seed=5))
    for k in range(3):
        (x * x * (k + 1)).sum().backward()
        (tx * tx * (k + 1)).sum().backward()
    close(x.grad, tx.grad)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 3, np.float32))


def test_grad_is_not_aliased_to_upstream_buffers():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    g = np.ones(2, np.float32)
    (x + 0).backward(g)
    x.grad.data += 5
    assert g.tolist() == [1.0, 1.0]


def test_fanout_and_diamond_match_torch():
    (x, tx) = pair(rand(4, seed=6))
    # x used twice directly and through two branches that meet again (diamond)
    a, ta = x.exp(), tx.exp()
    b, tb = a * 2, ta * 2
    c, tc = a.sin(), ta.sin()
    d, td = b * c + a + x * x, tb * tc + ta + tx * tx
    d.sum().backward()
    td.sum().backward()
    close(x.grad, tx.grad)


def test_same_tensor_both_operands():
    x = lamina.tensor([3.0], requires_grad=True)
    (x * x * x).backward()
    assert x.grad.item() == pytest.approx(27.0)
    y = lamina.tensor([2.0], requires_grad=True)
    (y + y + y).sum().backward()
    assert y.grad.item() == 3.0


def test_integer_and_constant_parents_get_no_grad():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    c = lamina.tensor([3.0, 4.0])
    i = lamina.tensor([1, 2])
    (x * c + i).sum().backward()
    assert c.grad is None and i.grad is None
    assert x.grad.tolist() == [3.0, 4.0]


def _timed_chain_backward(n, op):
    """Build an n-node chain from a leaf and time its backward (the GC paused, so that a
    collection of the other 10^5 objects does not land inside one measurement)."""
    gc.collect()
    gc.disable()
    try:
        x = lamina.tensor([1.0], requires_grad=True)
        y = x
        for _ in range(n):
            y = op(y)
        t0 = time.perf_counter()
        y.backward()
        return x, time.perf_counter() - t0
    finally:
        gc.enable()


def test_long_chain_is_iterative_and_linear():
    op = lambda y: y * 1.0001  # noqa: E731
    best = {}
    for n in (25_000, 100_000):
        runs = []
        for _ in range(2):  # best of 2: this VM's timings are noisy from run to run
            x, dt = _timed_chain_backward(n, op)
            runs.append(dt)
        best[n] = min(runs)
        # float32 rounds at every one of the n steps, hence the loose relative tolerance
        assert x.grad.item() == pytest.approx(1.0001 ** n, rel=1e-2)
    # linear: 4x the nodes should cost about 4x; a quadratic walk would be ~16x
    assert best[100_000] < 8 * best[25_000], best


def test_long_chain_retained_then_dropped():
    # with retain_graph the 100k nested nodes stay linked; deallocating them afterwards
    # must not overflow the C stack or recurse in Python
    x = lamina.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0
    y.backward(retain_graph=True)
    assert x.grad.item() == 1.0
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None


def test_unrolled_tanh_recurrence_1000_steps_matches_torch():
    rng = np.random.default_rng(7)
    H, D, T = 6, 3, 1000
    W0 = (rng.standard_normal((H, H)) * 0.4).astype(np.float32)
    U0 = (rng.standard_normal((H, D)) * 0.4).astype(np.float32)
    xs = rng.standard_normal((T, D)).astype(np.float32)
    (W, tW), (U, tU) = pair(W0), pair(U0)
    h, th = lamina.zeros(H), torch.zeros(H)
    for t in range(T):
        h = (W @ h + U @ lamina.tensor(xs[t])).tanh()
        th = (tW @ th + tU @ torch.tensor(xs[t])).tanh()
    (h * h).sum().backward()
    (th * th).sum().backward()
    close(h, th)
    close(W.grad, tW.grad)
    close(U.grad, tU.grad)


# ---------------------------------------------------------------- graph memory
def test_saved_buffers_freed_after_backward():
    x = lamina.tensor(np.ones(100_000, np.float32), requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h.data)  # mul saves both operands' arrays in its closure
    loss = (h * h).sum()
    del h
    gc.collect()
    assert ref() is not None  # kept alive by the graph until backward
    loss.backward()
    # no gc.collect(): reference counting alone must free it (no cycles through closures)
    assert ref() is None, "the backward closure still holds the saved array"
    assert loss.grad_fn is not None  # the root keeps a marker so a 2nd backward can complain


def test_saved_buffers_kept_with_retain_graph():
    x = lamina.tensor(np.ones(1000, np.float32), requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h.data)
    loss = (h * h).sum()
    del h
    loss.backward(retain_graph=True)
    gc.collect()
    assert ref() is not None
    loss.backward()
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------- grad mode
def test_no_grad_context_and_decorators():
    x = lamina.tensor([1.0], requires_grad=True)
    with lamina.no_grad():
        y = x * 2
        assert not lamina.is_grad_enabled()
    assert lamina.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf

    @lamina.no_grad()
    def f(t):
        return t * 2

    @lamina.no_grad
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert f.__name__ == "f" and g.__name__ == "g"
    assert (x * 2).requires_grad


def test_no_grad_restores_on_exception():
    with pytest.raises(ValueError):
        with lamina.no_grad():
            raise ValueError
    assert lamina.is_grad_enabled()


def test_enable_grad_inside_no_grad_and_nesting():
    x = lamina.tensor([1.0], requires_grad=True)
    with lamina.no_grad():
        with lamina.enable_grad():
            y = x * 2
        z = x * 2

        @lamina.enable_grad()
        def f():
            return x * 3

        w = f()
        with lamina.no_grad():
            pass
        assert not lamina.is_grad_enabled()
    assert y.requires_grad and not z.requires_grad and w.requires_grad


def test_set_grad_enabled_function_and_context():
    x = lamina.tensor([1.0], requires_grad=True)
    with lamina.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    try:
        lamina.set_grad_enabled(False)  # as a plain call it switches the mode, like torch
        assert not lamina.is_grad_enabled() and not (x * 2).requires_grad
        lamina.set_grad_enabled(True)
        assert lamina.is_grad_enabled()
    finally:
        lamina.set_grad_enabled(True)
    with lamina.no_grad():
        with lamina.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not lamina.is_grad_enabled()


def test_autograd_namespace_reexports_grad_modes():
    assert lamina.autograd.no_grad is lamina.no_grad
    assert lamina.autograd.set_grad_enabled is lamina.set_grad_enabled


# ---------------------------------------------------------------- leaves, detach, hooks
def test_leaf_properties():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    c = lamina.tensor([1.0])
    y = x * 2
    assert x.is_leaf and x.grad_fn is None and c.is_leaf and c.grad_fn is None
    assert not y.is_leaf and y.grad_fn is not None and y.requires_grad
    y.sum().backward()
    assert y.grad is None  # non-leaf grads are not kept unless retain_grad()


def test_detach_shares_data_and_records_nothing():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    d.data[0] = 10.0
    assert y.tolist()[0] == 10.0
    out = (d * x).sum()
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), d.numpy())


def test_requires_grad_():
    x = lamina.tensor([1.0, 2.0])
    assert not (x * 2).requires_grad
    assert x.requires_grad_() is x
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    y = x * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.requires_grad_(False)


def test_retain_grad_on_nonleaf_matches_torch():
    (x, tx) = pair(rand(3, seed=8))
    h, th = x.exp(), tx.exp()
    h.retain_grad()
    th.retain_grad()
    (h * h).sum().backward()
    (th * th).sum().backward()
    close(h.grad, th.grad)
    close(x.grad, tx.grad)
    with pytest.raises(RuntimeError, match="retain_grad"):
        lamina.tensor([1.0]).retain_grad()


def test_hooks_on_leaf_and_nonleaf():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    hx = x.register_hook(lambda g: seen.append(("x", g.tolist())))
    h = x * 3
    hh = h.register_hook(lambda g: g * 10)  # replaces the gradient flowing into h's graph
    (h * 1.0).sum().backward()
    assert seen == [("x", [30.0, 30.0])]
    assert x.grad.tolist() == [30.0, 30.0]
    # same behaviour in torch
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    th = tx * 3
    th.register_hook(lambda g: g * 10)
    (th * 1.0).sum().backward()
    close(x.grad, tx.grad)
    # removal
    hx.remove()
    hh.remove()
    x.grad = None
    h2 = x * 3
    (h2 * 1.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0] and len(seen) == 1


def test_hook_replacing_leaf_grad_and_removal():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    handle = x.register_hook(lambda g: g * 0 + 7)
    (x * x).sum().backward()
    assert x.grad.tolist() == [7.0, 7.0]
    handle.remove()
    handle.remove()  # a second remove is harmless
    (x * x).sum().backward()
    assert x.grad.tolist() == [9.0, 11.0]


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        lamina.tensor([1.0]).register_hook(lambda g: g)


def test_backward_inputs_argument():
    x = lamina.tensor([1.0], requires_grad=True)
    w = lamina.tensor([2.0], requires_grad=True)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None and w.grad.tolist() == [1.0]


# ---------------------------------------------------------------- functional transforms
def test_autograd_grad_matches_torch_and_leaves_grad_untouched():
    (x, tx), (w, tw) = pair(rand(3, 2, seed=9)), pair(rand(2, seed=10))
    y, ty = (x * w).tanh(), (tx * tw).tanh()
    v = rand(3, 2, seed=11).astype(np.float32)
    gx, gw = lamina.autograd.grad(y, [x, w], grad_outputs=lamina.tensor(v))
    tgx, tgw = torch.autograd.grad(ty, [tx, tw], grad_outputs=torch.tensor(v))
    close(gx, tgx)
    close(gw, tgw)
    assert x.grad is None and w.grad is None
    assert isinstance(gx, lamina.Tensor) and not gx.requires_grad


def test_autograd_grad_scalar_single_input_and_retain_graph():
    (x, tx) = pair(rand(4, seed=12))
    y, ty = (x ** 3).sum(), (tx ** 3).sum()
    (g1,) = lamina.autograd.grad(y, x, retain_graph=True)
    (g2,) = lamina.autograd.grad(y, x)
    (tg,) = torch.autograd.grad(ty, tx)
    close(g1, tg)
    close(g2, tg)
    with pytest.raises(RuntimeError, match="second time"):
        lamina.autograd.grad(y, x)


def test_autograd_grad_wrt_intermediate_and_multiple_outputs():
    (x, tx) = pair(rand(3, seed=13))
    h, th = x.exp(), tx.exp()
    a, ta = (h * 2).sum(), (th * 2).sum()
    b, tb = (h * x).sum(), (th * tx).sum()
    gh, gx = lamina.autograd.grad([a, b], [h, x])
    tgh, tgx = torch.autograd.grad([ta, tb], [th, tx])
    close(gh, tgh)
    close(gx, tgx)
    assert x.grad is None and h.grad is None


def test_autograd_grad_allow_unused():
    x = lamina.tensor([1.0], requires_grad=True)
    z = lamina.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        lamina.autograd.grad((x * 2).sum(), [x, z], retain_graph=True)
    gx, gz = lamina.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gx.tolist() == [2.0] and gz is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        lamina.autograd.grad((x * 2).sum(), [lamina.tensor([1.0])])
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        lamina.autograd.grad(x * 2, [x], grad_outputs=[lamina.ones(1), lamina.ones(1)])


def test_lamina_grad_argnums_and_has_aux():
    def f(a, b, c):
        return (a * b.exp()).sum() + c

    a, b = rand(3, seed=14).astype(np.float32), rand(3, seed=15).astype(np.float32)
    ga = lamina.grad(f)(a, b, 1.0)
    assert isinstance(ga, np.ndarray)  # arrays in, arrays out
    np.testing.assert_allclose(ga, np.exp(b), rtol=1e-6)
    gb = lamina.grad(f, argnums=1)(lamina.tensor(a), lamina.tensor(b), 1.0)
    assert isinstance(gb, lamina.Tensor)
    np.testing.assert_allclose(gb.numpy(), a * np.exp(b), rtol=1e-6)
    ga2, gb2 = lamina.grad(f, argnums=(0, 1))(a, b, 1.0)
    np.testing.assert_allclose(ga2, np.exp(b), rtol=1e-6)
    np.testing.assert_allclose(gb2, a * np.exp(b), rtol=1e-6)

    def g(a):
        loss = (a * a).sum()
        return loss, {"loss": loss.item()}

    grad, aux = lamina.grad(g, has_aux=True)(a)
    np.testing.assert_allclose(grad, 2 * a, rtol=1e-6)
    assert aux["loss"] == pytest.approx(float((a * a).sum()), rel=1e-6)


def test_lamina_grad_does_not_touch_leaf_grads_and_errors():
    w = lamina.tensor([1.0, 2.0], requires_grad=True)
    g = lamina.grad(lambda x: (x * w).sum())(lamina.tensor([3.0, 4.0]))
    assert g.tolist() == [1.0, 2.0] and w.grad is None
    with pytest.raises(TypeError, match="one-element"):
        lamina.grad(lambda x: x * 2)(np.ones(2, np.float32))
    with pytest.raises(ValueError, match="argnums"):
        lamina.grad(lambda x: x.sum(), argnums=2)(np.ones(2, np.float32))
    # an argument the function ignores gets a zero gradient (as in JAX)
    z = lamina.grad(lambda x, y: x.sum(), argnums=1)(np.ones(2, np.float32), np.ones(3))
    assert z.tolist() == [0.0, 0.0, 0.0]


def test_value_and_grad_matches_torch():
    a = rand(2, 3, seed=16).astype(np.float32)

    def f(x):
        return (x.tanh() ** 2).mean()

    value, g = lamina.value_and_grad(f)(a)
    ta = torch.tensor(a, requires_grad=True)
    tv = f(ta)
    tv.backward()
    assert value.item() == pytest.approx(tv.item(), rel=1e-6)
    np.testing.assert_allclose(g, ta.grad.numpy(), rtol=1e-5, atol=1e-7)
    (value2, aux), g2 = lamina.value_and_grad(lambda x: (f(x), 5), has_aux=True)(a)
    assert aux == 5 and value2.item() == value.item()
    np.testing.assert_array_equal(g2, g)


# ---------------------------------------------------------------- custom Functions
class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


class Scale(Function):
    """y = x * k with a Python-number argument k."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


class MulAdd(Function):
    """Two outputs from two inputs: (a*b, a+b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.flags = ctx.needs_input_grad
        return a * b, a + b

    @staticmethod
    def backward(ctx, gp, gs):
        a, b = ctx.saved_tensors
        return gp * b + gs, gp * a + gs


def test_custom_function_cube_matches_torch_and_gradchecks():
    (x, tx) = pair(rand(2, 3, seed=17))
    y = Cube.apply(x)
    assert isinstance(y, lamina.Tensor) and y.requires_grad and not y.is_leaf
    assert "CubeBackward" in repr(y)
    (y * y).sum().backward()
    ((tx ** 3) ** 2).sum().backward()
    close(x.grad, tx.grad)
    xs = lamina.tensor(rand(2, 3, seed=18), dtype=lamina.float64, requires_grad=True)
    assert gradcheck(Cube.apply, (xs,))


def test_custom_function_without_grad_returns_plain():
    y = Cube.apply(lamina.tensor([2.0]))
    assert not y.requires_grad and y.tolist() == [8.0]
    with lamina.no_grad():
        z = Cube.apply(lamina.tensor([2.0], requires_grad=True))
    assert not z.requires_grad


def test_custom_function_non_tensor_args():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = Scale.apply(x, 2.5)
    y.sum().backward()
    assert y.tolist() == [2.5, 5.0] and x.grad.tolist() == [2.5, 2.5]
    xs = lamina.tensor([0.3, -0.7], dtype=lamina.float64, requires_grad=True)
    assert gradcheck(lambda t: Scale.apply(t, -1.5), (xs,))


def test_custom_function_multiple_outputs_and_needs_input_grad():
    a = lamina.tensor(rand(3, seed=19), dtype=lamina.float64, requires_grad=True)
    b = lamina.tensor(rand(3, seed=20), dtype=lamina.float64)
    p, s = MulAdd.apply(a, b)
    assert p.requires_grad and s.requires_grad
    (p * 2 + s.exp()).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * b.numpy() + np.exp(a.numpy() + b.numpy()))
    assert b.grad is None
    # only one output used: the other receives zeros
    a.grad = None
    p, s = MulAdd.apply(a, b)
    s.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.ones(3))
    # needs_input_grad as torch: one flag per forward argument
    ctxs = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, u, k, v):
            ctxs.append(ctx.needs_input_grad)
            return u * k + v

        @staticmethod
        def backward(ctx, g):
            return g, None, g

    Probe.apply(a, 2.0, b)
    assert ctxs == [(True, False, False)]
    b.requires_grad_()
    assert gradcheck(lambda u, v: MulAdd.apply(u, v), (a, b))


def test_custom_function_wrong_number_of_grads_raises():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g  # should be (g * k, None)

    x = lamina.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Bad\.backward returned 1 gradients?, expected 2"):
        Bad.apply(x, 2.0).sum().backward()


def test_custom_function_wrong_grad_shape_raises():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g  # should be broadcast to x's shape

    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape\.backward: gradient 0 has shape \(\), "
                                           r"input has \(2,\)"):
        BadShape.apply(x).backward()


def test_custom_function_backward_may_return_tensor():
    class Twice(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return lamina.tensor(2 * g)

    x = lamina.tensor([1.0], requires_grad=True)
    Twice.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0]


def test_custom_function_forward_gets_arrays():
    seen = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, x):
            seen.append((type(x), lamina.is_grad_enabled()))
            return x.copy()

        @staticmethod
        def backward(ctx, g):
            return g

    Spy.apply(lamina.tensor([1.0], requires_grad=True))
    assert seen == [(np.ndarray, False)]


# ---------------------------------------------------------------- gradcheck itself
class WrongCube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x ** 2 * g  # deliberately wrong: should be 3 x^2


def test_gradcheck_detects_wrong_backward():
    x = lamina.tensor(rand(4, seed=21), dtype=lamina.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="analytic and numerical gradients differ"):
        gradcheck(WrongCube.apply, (x,))
    assert gradcheck(WrongCube.apply, (x,), raise_exception=False) is False
    assert gradcheck(Cube.apply, (x,))


def test_gradcheck_rejects_float32_and_no_grad_inputs():
    x32 = lamina.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(Cube.apply, (x32,))
    with pytest.raises(ValueError, match="requires grad"):
        gradcheck(Cube.apply, (lamina.tensor([1.0], dtype=lamina.float64),))


def test_gradcheck_multiple_inputs_and_outputs_and_noncontiguous():
    a = lamina.tensor(rand(3, 2, seed=22).T, dtype=lamina.float64, requires_grad=True)
    b = lamina.tensor(rand(2, 3, seed=23), dtype=lamina.float64, requires_grad=True)
    assert gradcheck(lambda u, v: ((u * v).tanh(), u.exp() + v), (a, b))
    noncontig = lamina.from_numpy(np.asfortranarray(rand(3, 3, seed=24))).requires_grad_()
    assert gradcheck(lambda u: (u @ u).sin(), (noncontig,))
    # a leaf that the function does not use gets a zero analytic gradient, which must match
    c = lamina.tensor(rand(2, seed=25), dtype=lamina.float64, requires_grad=True)
    assert gradcheck(lambda u, w: u.sum() * 2, (a, c))


def test_gradcheck_does_not_touch_grad_or_values():
    x = lamina.tensor(rand(3, seed=26), dtype=lamina.float64, requires_grad=True)
    before = x.numpy().copy()
    gradcheck(Cube.apply, (x,))
    assert x.grad is None
    np.testing.assert_array_equal(x.numpy(), before)


# ---------------------------------------------------------------- regressions found while testing
@pytest.mark.parametrize("terms", [("linear", "decay"), ("decay", "linear"),
                                   ("linear", "linear2")])
def test_shared_weight_lazy_and_plain_gradients_sum_like_torch(terms):
    """A Linear weight also used elsewhere (weight decay, a second linear): the engine sums a
    deferred (lazy) weight gradient with ordinary ones in either order."""
    rng = np.random.default_rng(27)
    x0 = rng.standard_normal((4, 3)).astype(np.float32)
    w0 = rng.standard_normal((2, 3)).astype(np.float32)

    def loss(F, x, w):
        parts = {"linear": lambda: F.linear(x, w).sum(), "decay": lambda: (w * w).sum(),
                 "linear2": lambda: F.linear(x * 2, w).sum()}
        return parts[terms[0]]() + parts[terms[1]]()

    W = lamina.nn.Parameter(w0.copy())
    tW = torch.tensor(w0, requires_grad=True)
    loss(lamina.nn.functional, lamina.tensor(x0), W).backward()
    loss(torch.nn.functional, torch.tensor(x0), tW).backward()
    close(W.grad, tW.grad)


def test_tensor_constructor_dtype():
    assert lamina.Tensor([1.0, 2.0]).dtype == np.float32  # Python floats -> default dtype
    assert lamina.Tensor([1, 2]).dtype == np.int64
    assert lamina.Tensor(np.ones(2)).dtype == np.float64  # arrays keep theirs
    assert lamina.Tensor([1.0], dtype=lamina.float64).dtype == np.float64


def test_functional_grad_works_inside_no_grad():
    with lamina.no_grad():
        g = lamina.grad(lambda x: (x * x).sum())(np.array([1.0, 2.0], np.float32))
        x = lamina.tensor(rand(3, seed=28), dtype=lamina.float64, requires_grad=True)
        assert gradcheck(Cube.apply, (x,))
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_grad_python_number_argument_uses_default_float():
    g = lamina.grad(lambda x: x * x)(3.0)
    assert g.dtype == np.float32 and float(g) == 6.0
    g2 = lamina.grad(lambda x: (x * x).sum())([1, 2])  # ints differentiate as floats
    assert g2.dtype == np.float32 and g2.tolist() == [2.0, 4.0]


def test_enable_grad_decorator_without_parentheses():
    x = lamina.tensor([1.0], requires_grad=True)

    @lamina.enable_grad
    def f():
        return x * 2

    with lamina.no_grad():
        assert f().requires_grad


def test_set_grad_enabled_as_decorator():
    x = lamina.tensor([1.0], requires_grad=True)

    @lamina.set_grad_enabled(False)
    def f():
        return x * 2

    assert lamina.is_grad_enabled()  # decorating does not switch the mode
    assert not f().requires_grad and lamina.is_grad_enabled()


def test_custom_function_list_grads_nondifferentiable_and_integer_outputs():
    class MaxIdx(Function):
        @staticmethod
        def forward(ctx, x):
            idx = x.argmax(-1)
            ctx.save_for_backward(idx)
            ctx.shape = x.shape
            return x.max(-1), idx

        @staticmethod
        def backward(ctx, g, g_idx):
            (idx,) = ctx.saved_tensors
            out = np.zeros(ctx.shape, g.dtype)
            np.put_along_axis(out, idx[..., None], g[..., None], -1)
            return [out]  # a list is accepted like a tuple

    x = lamina.tensor(rand(2, 4, seed=29), dtype=lamina.float64, requires_grad=True)
    val, idx = MaxIdx.apply(x)
    assert val.requires_grad and not idx.requires_grad and idx.dtype == np.int64
    val.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().argmax(-1), idx.numpy())
    assert gradcheck(MaxIdx.apply, (x,))  # the integer output is not part of the check

    class Marked(Function):
        @staticmethod
        def forward(ctx, x):
            y, z = x * 2, x * 3
            ctx.mark_non_differentiable(z)
            return y, z

        @staticmethod
        def backward(ctx, gy, gz):
            return 2 * gy

    y, z = Marked.apply(lamina.tensor([1.0], requires_grad=True))
    assert y.requires_grad and not z.requires_grad


def test_gradcheck_catches_wrong_gradient_shape():
    class Broadcasty(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum(0)

        @staticmethod
        def backward(ctx, g):
            return g  # shape (3,) for an input (2, 3): broadcastable but wrong

    x = lamina.tensor(rand(2, 3, seed=30), dtype=lamina.float64, requires_grad=True)
    with pytest.raises((GradcheckError, RuntimeError), match=r"shape \(3,\).*\(2, 3\)"):
        gradcheck(Broadcasty.apply, (x,))


def test_gradcheck_catches_op_that_forgets_the_graph():
    # an output that silently does not require grad while depending on the input
    x = lamina.tensor(rand(3, seed=31), dtype=lamina.float64, requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: (t * 2, lamina.tensor(t.numpy() ** 2)), (x,))


def test_backward_runs_inside_no_grad():
    x = lamina.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with lamina.no_grad():
        y.backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_custom_function_saved_arrays_freed_after_backward():
    x = lamina.tensor(np.ones(10_000), requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h.data)
    y = Cube.apply(h)  # ctx.save_for_backward(h's array)
    del h
    a, b = MulAdd.apply(y, y)
    loss = a.sum()  # the second output is unused: its gradient is zeros
    loss.backward()
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3 * np.exp(6.0) * np.ones(10_000))
