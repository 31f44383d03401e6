"""The backward pass: an iterative walk over the graph in reverse topological order.

Two sweeps, both with explicit stacks (no recursion, so a 100,000-node chain is fine):
1. from the root, count for every tensor that needs a gradient how many recorded
   consumers it has inside this graph;
2. starting at the root, call each node's backward once all its consumers have sent
   their contribution; contributions are summed (fan-out gets both), leaves accumulate
   into ``.grad``.
Time and memory are linear in the size of the graph.
"""
from .. import backend as B
from ..tensor import _GRAD_SLOT, Parameter, Tensor, freed_fn, plain


def _check_root(root, gradient):
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root.requires_grad:
        raise RuntimeError("backward: element 0 of tensors does not require grad and does not "
                           "have a grad_fn (the tensor was not computed from anything that "
                           "requires grad, or grad mode was off)")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar "
                               f"outputs; this tensor has shape {tuple(root.shape)}, pass "
                               f"gradient= of that shape")
        return B.xp.ones_like(root.data)
    g = gradient.data if isinstance(gradient, Tensor) else B.xp.asarray(gradient,
                                                                          dtype=root.dtype)
    if g.shape != root.shape:
        raise RuntimeError(f"backward: gradient has shape {tuple(g.shape)} but the tensor has "
                           f"shape {tuple(root.shape)}")
    return g


def _count_consumers(roots):
    """{tensor: number of recorded consumers} over the tensors that require grad.

    Tensors are dict keys by identity (``Tensor.__hash__`` is ``object.__hash__``, and
    distinct live objects never share a hash, so the elementwise ``==`` is never called).
    """
    deps = {}
    stack = []
    for r in roots:
        if r not in deps:
            deps[r] = 0
            stack.append(r)
    pop, push = stack.pop, stack.append
    while stack:
        t = pop()
        fn = t._fn
        if fn is None:
            continue
        if fn is freed_fn:
            freed_fn(None)
        for p in t._parents:
            if p is None or not p.requires_grad:
                continue
            if p in deps:
                deps[p] += 1
            else:
                deps[p] = 1
                push(p)
    return deps


class LazyGrad:
    """A gradient not computed yet: an op may return one for a leaf parameter so that the
    engine can compute it straight into the parameter's (flat) gradient storage with
    ``write_into(out)``, saving a temporary and an addition. Anywhere else it is
    ``materialize()``d into an array. Subclasses define both plus ``shape`` and ``dtype``."""

    __slots__ = ()
    __array_ufunc__ = None  # so ``ndarray + lazy`` defers to __radd__ (not an object array)

    def __add__(self, other):
        return self.materialize() + _array(other)

    __radd__ = __add__


def _array(g):
    return g.materialize() if isinstance(g, LazyGrad) else g


def _accumulate_leaf(t, g):
    if g.dtype != t.data.dtype:
        g = _array(g).astype(t.data.dtype)
    grad = _GRAD_SLOT.__get__(t)
    if grad is None:
        if g.shape != t.data.shape:
            raise RuntimeError(f"backward: gradient of shape {tuple(g.shape)} arrived for a "
                               f"tensor of shape {tuple(t.data.shape)} (a bug in an op's "
                               f"backward or in a hook)")
        # a materialized LazyGrad is a fresh array; anything else may be shared
        t.grad = plain(g.materialize() if isinstance(g, LazyGrad) else g.copy())
    elif isinstance(t, Parameter) and t._gzero:
        # the grad storage is logically zero (lazy zero_grad): overwrite instead of add
        if g.__class__ is not B.xp.ndarray and isinstance(g, LazyGrad):
            g.write_into(grad.data)
        else:
            grad.data[...] = g
        t._gzero = False
    else:
        grad.data += _array(g)


def _run_hooks(t, g):
    g = _array(g)
    for hook in t._hooks:
        out = hook(plain(g))
        if out is not None:
            g = out.data if isinstance(out, Tensor) else B.xp.asarray(out)
    return g


# counts backward passes: within one pass no parameter can change, so an op may cache
# something derived from a weight (e.g. a contiguous transpose) for the rest of the pass
passes = 0


def execute(roots, root_grads, retain_graph=False, capture=None):
    """Backpropagate ``root_grads`` from ``roots``.

    With ``capture`` (a list of tensors) nothing is accumulated into ``.grad``; the
    gradients reaching those tensors are returned instead, in order (None where none
    arrives). Otherwise leaves accumulate and None is returned.
    """
    global passes
    passes += 1
    deps = _count_consumers(roots)
    grads = {}
    for r, g in zip(roots, root_grads):
        grads[r] = grads[r] + g if r in grads else g
    captured = None if capture is None else {t: None for t in capture}
    ready = []
    for r in roots:
        if deps[r] == 0 and all(r is not q for q in ready):
            ready.append(r)
    ndarray = B.xp.ndarray
    pop, push = ready.pop, ready.append
    while ready:
        t = pop()
        g = grads.pop(t, None)
        fn = t._fn
        if g is not None:
            if t._hooks:
                g = _run_hooks(t, g)
            if captured is not None:
                if t in captured:
                    captured[t] = _array(g)
            elif fn is None or t._retain:
                _accumulate_leaf(t, g)
        if fn is None:
            continue
        parents = t._parents
        if g is None:
            pgrads = (None,) * len(parents)
        else:
            pgrads = fn(g if g.__class__ is ndarray else _array(g))
        for p, pg in zip(parents, pgrads):
            if p is None or not p.requires_grad:
                continue
            if pg is not None:
                prev = grads.get(p)
                grads[p] = pg if prev is None else prev + pg
            n = deps[p] - 1
            deps[p] = n
            if n == 0:
                push(p)
        if not retain_graph:
            t._fn = freed_fn
            t._parents = ()
    if captured is not None:
        return [captured[t] for t in capture]
    return None


def run_backward(root, gradient=None, retain_graph=False, inputs=None):
    """``root.backward(gradient)``: accumulate gradients into the leaves' ``.grad``."""
    g = _check_root(root, gradient)
    if inputs is None:
        execute((root,), (g,), retain_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for t, gi in zip(inputs, execute((root,), (g,), retain_graph, capture=inputs)):
        if gi is not None:
            _accumulate_leaf(t, gi)
