"""Matrix products: matmul (batched, broadcasting), linear (fused x W^T + b), einsum."""
import math

from .. import backend as B
from .. import grad_mode
from ..parallel import matmul as _mm
from ..tensor import Tensor, plain, result
from .elementwise import unbroadcast
from .stacked_grad import weight_and_bias_grads


def _mm_error(op, a, b):
    """The ValueError for operands that ``op`` cannot multiply: the contracted sizes when
    they differ, else the first pair of batch sizes that cannot be broadcast."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    ka, kb = sa[-1], sb[-2] if len(sb) > 1 else sb[0]
    what = f"{op}: shapes {sa} and {sb} cannot be multiplied"
    if ka != kb:
        return ValueError(f"{what} ({ka} vs {kb} in the contracted dimension)")
    ba, bb = sa[:-2], sb[:-2]
    nd = max(len(ba), len(bb))
    ba, bb = (1,) * (nd - len(ba)) + ba, (1,) * (nd - len(bb)) + bb
    for d in range(nd):
        if ba[d] != bb[d] and 1 not in (ba[d], bb[d]):
            return ValueError(f"{what}: batch sizes {ba[d]} vs {bb[d]} at dimension "
                              f"{d - nd - 2}")
    return ValueError(what)


def matmul(a, b):
    """``a @ b`` with NumPy semantics: 1-D operands are promoted, batch dims broadcast."""
    return _matmul("matmul", a, b)


def _matmul(op, a, b):
    if not isinstance(a, Tensor):
        a = plain(B.xp.asarray(a))
    if not isinstance(b, Tensor):
        b = plain(B.xp.asarray(b))
    ad, bd = a.data, b.data
    if ad.ndim == 0 or bd.ndim == 0:
        raise ValueError(f"{op}: both arguments need at least 1 dimension, got shapes "
                         f"{tuple(ad.shape)} and {tuple(bd.shape)}")
    if bd.ndim == 2 and ad.ndim > 2 and ad.flags.c_contiguous:
        return _matmul_nd_2d(op, a, b)
    try:
        out = _mm(ad, bd)
    except ValueError:
        raise _mm_error(op, ad, bd) from None
    ga = a.requires_grad and grad_mode.enabled
    gb = b.requires_grad and grad_mode.enabled
    if not (ga or gb):
        return plain(out)
    if ad.ndim == 2 and bd.ndim == 2:
        return result(out, (a if ga else None, b if gb else None), lambda g: (
            _mm(g, bd.T) if ga else None, _mm(ad.T, g) if gb else None))
    if ad.ndim == 1 and bd.ndim == 1:  # dot product: g is 0-d
        return result(out, (a if ga else None, b if gb else None), lambda g: (
            g * bd if ga else None, g * ad if gb else None))

    def backward(g):
        a2 = ad[None, :] if ad.ndim == 1 else ad
        b2 = bd[:, None] if bd.ndim == 1 else bd
        g2 = g
        if ad.ndim == 1:
            g2 = B.xp.expand_dims(g2, -2)
        if bd.ndim == 1:
            g2 = B.xp.expand_dims(g2, -1)
        da = db = None
        if ga:
            da = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape)
            da = da.reshape(ad.shape)
        if gb:
            db = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape)
            db = db.reshape(bd.shape)
        return da, db
    return result(out, (a if ga else None, b if gb else None), backward)


def _matmul_nd_2d(op, a, b):
    """(..., m, k) @ (k, n) as one (M, k) @ (k, n) GEMM: NumPy would loop over the batch,
    and the weight gradient becomes one GEMM instead of a batch of them plus a sum
    (2-3x faster at transformer sizes)."""
    ad, bd = a.data, b.data
    a2 = ad.reshape(math.prod(ad.shape[:-1]), ad.shape[-1])
    try:
        out = _mm(a2, bd)
    except ValueError:
        raise _mm_error(op, ad, bd) from None
    out = out.reshape(ad.shape[:-1] + out.shape[-1:])
    ga = a.requires_grad and grad_mode.enabled
    gb = b.requires_grad and grad_mode.enabled
    if not (ga or gb):
        return plain(out)
    a_shape, n = ad.shape, bd.shape[1]

    def backward(g):
        g2 = g.reshape(a2.shape[0], n)
        return (_mm(g2, bd.T).reshape(a_shape) if ga else None, _mm(a2.T, g2) if gb else None)
    return result(out, (a if ga else None, b if gb else None), backward)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expects 2-D tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return _matmul("mm", a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expects 3-D tensors with equal batch size, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return _matmul("bmm", a, b)


def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"dot: expects 1-D tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return _matmul("dot", a, b)


def outer(a, b):
    from .shape import reshape
    return matmul(reshape(a, -1, 1), reshape(b, 1, -1))


def linear(x, weight, bias=None):
    """y = x W^T + b, one node. x: (*, in), weight: (out, in), bias: (out,) -> (*, out)."""
    xd, wd = x.data, weight.data
    if xd.ndim == 0 or xd.shape[-1] != wd.shape[-1] or wd.ndim != 2:
        raise ValueError(f"linear: input of shape {tuple(xd.shape)} does not match weight of "
                         f"shape {tuple(wd.shape)} (expected last input dimension "
                         f"{wd.shape[-1] if wd.ndim else '?'})")
    x2 = xd if xd.ndim == 2 else xd.reshape(-1, xd.shape[-1])
    out = _mm(x2, wd.T)
    if xd.ndim != 2:
        out = out.reshape(xd.shape[:-1] + out.shape[-1:])
    if bias is not None:
        out += bias.data
    gx = x.requires_grad and grad_mode.enabled
    gw = weight.requires_grad and grad_mode.enabled
    gb = bias is not None and bias.requires_grad and grad_mode.enabled
    if not (gx or gw or gb):
        return plain(out)
    # leaf parameters get lazy gradients that stack over uses (see stacked_grad)
    lazy_w = gw and weight._fn is None
    lazy_b = gb and bias._fn is None

    def backward(g):
        g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
        lw, lb = weight_and_bias_grads(g2, x2, wd.shape, bias.shape if lazy_b else None)
        dw = lw if lazy_w else (_mm(g2.T, x2) if gw else None)
        db = lb if lazy_b else (g2.sum(0) if gb else None)
        dx = _mm(g2, wd).reshape(xd.shape) if gx else None
        return (dx, dw, db)
    return result(out, (x if gx else None, weight if gw else None, bias if gb else None),
                  backward)


# ---------------------------------------------------------------- einsum
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _parse_einsum(eq, shapes):
    """Explicit subscripts (ellipsis expanded) for each operand and the output."""
    eq = eq.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: equation {eq!r} has {len(ins)} operands, got {len(shapes)}")
    used = set(c for c in eq if c.isalpha())
    free = [c for c in _LETTERS if c not in used]
    ell_nd = 0
    for s, shape in zip(ins, shapes):
        if "..." in s:
            ell_nd = max(ell_nd, len(shape) - (len(s) - 3))
    ell = "".join(free[:ell_nd])
    subs = []
    for s, shape in zip(ins, shapes):
        if "..." in s:
            n = len(shape) - (len(s) - 3)
            s = s.replace("...", ell[ell_nd - n:] if n else "")
        if len(s) != len(shape):
            raise ValueError(f"einsum: operand subscripts {s!r} do not match shape "
                             f"{tuple(shape)}")
        subs.append(s)
    if rhs is None:
        counts = {}
        for s in subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        rhs = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        rhs = rhs.replace("...", ell)
    return subs, rhs


def einsum(equation, *operands):
    """Einstein summation, e.g. ``einsum('bij,bjk->bik', a, b)``; differentiable in every
    operand (ellipsis, broadcasting and repeated subscripts included)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ops = [o if isinstance(o, Tensor) else plain(B.xp.asarray(o)) for o in operands]
    subs, out_sub = _parse_einsum(equation, [o.shape for o in ops])
    sizes = {}
    for s, o in zip(subs, ops):
        for c, n in zip(s, o.shape):
            if sizes.get(c, 1) == 1:
                sizes[c] = n
            elif n != 1 and n != sizes[c]:
                raise ValueError(f"einsum: subscript {c!r} has size {n} in one operand and "
                                 f"{sizes[c]} in another ({equation!r} with shapes "
                                 f"{' and '.join(str(tuple(p.shape)) for p in ops)})")
    # broadcast size-1 dims so every letter has one size (grads are summed back)
    arrays = []
    for s, o in zip(subs, ops):
        target = tuple(sizes[c] for c in s)
        arrays.append(o.data if o.shape == target else B.xp.broadcast_to(o.data, target))
    expr = ",".join(subs) + "->" + out_sub
    out = _contract2(subs[0], arrays[0], subs[1], arrays[1], out_sub) \
        if len(arrays) == 2 else None
    if out is None:
        out = B.xp.einsum(expr, *arrays, optimize=len(arrays) > 2)
    need = [o.requires_grad and grad_mode.enabled for o in ops]
    if not any(need):
        return plain(out)

    def backward(g):
        grads = []
        for i, (s, o) in enumerate(zip(subs, ops)):
            if not need[i]:
                grads.append(None)
                continue
            gi = _einsum_operand_grad(g, out_sub, subs, arrays, i, sizes)
            grads.append(unbroadcast(gi, o.shape) if gi.shape != o.shape else gi)
        return tuple(grads)
    return result(out, tuple(o if n else None for o, n in zip(ops, need)), backward)


def _prod(sizes):
    n = 1
    for k in sizes:
        n *= k
    return n


def _contract2(sa, a, sb, b, so):
    """``einsum(sa + ',' + sb + '->' + so, a, b)`` as one (batched) matmul, which uses BLAS
    where NumPy's einsum loops in C (7-12x slower for 'bij,bjk->bik' and 'ij,jk->ik').
    None when einsum itself is the better tool: a repeated letter (a diagonal), nothing
    contracted (outer products), or nothing but a batched dot product."""
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb) or len(set(so)) != len(so):
        return None
    size = dict(zip(sa, a.shape))
    size.update(zip(sb, b.shape))
    # letters only in one operand and not in the output are summed out first
    only_a = tuple(k for k, c in enumerate(sa) if c not in sb and c not in so)
    if only_a:
        a = a.sum(axis=only_a)
        sa = "".join(c for c in sa if c in sb or c in so)
    only_b = tuple(k for k, c in enumerate(sb) if c not in sa and c not in so)
    if only_b:
        b = b.sum(axis=only_b)
        sb = "".join(c for c in sb if c in sa or c in so)
    batch = [c for c in so if c in sa and c in sb]
    contr = [c for c in sa if c in sb and c not in so]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]
    k = _prod(size[c] for c in contr)
    m, n = _prod(size[c] for c in free_a), _prod(size[c] for c in free_b)
    if len(batch) + len(free_a) + len(free_b) != len(so) or k <= 1 or m * n <= 1:
        return None
    nb = _prod(size[c] for c in batch)
    am = a.transpose([sa.index(c) for c in batch + free_a + contr]).reshape(nb, m, k)
    bm = b.transpose([sb.index(c) for c in batch + contr + free_b]).reshape(nb, k, n)
    out = am[0] @ bm[0] if not batch else am @ bm
    have = batch + free_a + free_b
    out = out.reshape([size[c] for c in have])
    return out.transpose([have.index(c) for c in so])


def _einsum_operand_grad(g, out_sub, subs, arrays, i, sizes):
    target = subs[i]
    uniq = "".join(dict.fromkeys(target))
    others = [(s, a) for j, (s, a) in enumerate(zip(subs, arrays)) if j != i]
    present = set(out_sub) | set("".join(s for s, _ in others))
    # letters only in this operand were summed away: the gradient is constant along them
    reduced = "".join(c for c in uniq if c in present)
    expr = ",".join([out_sub] + [s for s, _ in others]) + "->" + reduced
    gi = _contract2(out_sub, g, others[0][0], others[0][1], reduced) \
        if len(others) == 1 else None
    if gi is None:
        gi = B.xp.einsum(expr, g, *[a for _, a in others], optimize=len(others) > 1)
    full_shape = tuple(sizes[c] for c in uniq)
    gi = B.xp.broadcast_to(B.xp.expand_dims(gi, tuple(k for k, c in enumerate(uniq)
                                                       if c not in present)), full_shape)
    if uniq == target:
        return B.xp.ascontiguousarray(gi)
    # repeated subscripts (a diagonal): write the gradient onto that diagonal through an
    # integer index (not through einsum's diagonal view, whose writability is backend-specific)
    z = B.xp.zeros(tuple(sizes[c] for c in target), dtype=g.dtype)
    nu = len(uniq)
    ar = [B.xp.arange(sizes[c]).reshape((-1,) + (1,) * (nu - 1 - k)) for k, c in enumerate(uniq)]
    z[tuple(ar[uniq.index(c)] for c in target)] = gi
    return z
