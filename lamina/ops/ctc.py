"""Connectionist Temporal Classification loss (Graves et al. 2006) as one primitive.

A target l of length S is extended with blanks to l' = (b, l1, b, l2, ..., lS, b) of length
L = 2S + 1. In log space, with y_t(k) = log_probs[t, k]:

    alpha_0(0) = y_0(b),  alpha_0(1) = y_0(l1)
    alpha_t(s) = logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), [alpha_{t-1}(s-2)]) + y_t(l'_s)
    loss = -logsumexp(alpha_{T-1}(L-1), alpha_{T-1}(L-2))

where the skip from s-2 is allowed when l'_s != l'_{s-2} (so never onto a blank, and
not between two equal labels, which need a blank in between). The backward variable
beta_t(s) is kept *without* y_t (the log-probability of completing the target from (t, s)
given that (t, s) is occupied), so alpha_t(s) + beta_t(s) + loss is the log posterior
occupancy of position s at time t, and

    d loss / d log_probs[t, k] = -sum_{s: l'_s = k} exp(alpha_t(s) + beta_t(s) + loss),

the negative posterior probability that label k is emitted at time t. No y is subtracted,
so log-probabilities of -inf give zero gradients (PyTorch gives nan there).

Both recursions are vectorized over the batch and the L positions; the loop runs over time
up to the longest input only. log(0) is held as a finite stand-in (-sqrt(max float)), so
the log-sum-exps never meet inf - inf and need no masking; a final log-likelihood below
half the stand-in means "no alignment" and becomes an infinite loss. (Log-probabilities
below the stand-in, about -1.8e19 in float32, count as log(0).)

Gradient convention: this is the true derivative of the loss w.r.t. its input. PyTorch's
ctc_loss backward returns exp(log_probs) minus the same posterior, i.e. the derivative one
would get for normalized inputs w.r.t. the logits of a log_softmax. The two differ only on
inputs that are not log-softmax outputs; through ``log_softmax`` (the usual use) the
gradients w.r.t. the logits are identical, because each valid time step's posterior sums to
one and so does exp(log_probs).
"""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain, result

_REDUCTIONS = ("mean", "sum", "none")


def _int_array(name, what, v):
    a = v.data if isinstance(v, Tensor) else B.xp.asarray(v)
    if a.dtype.kind == "f":
        if a.size and not (a == B.xp.floor(a)).all():
            raise ValueError(f"{name}: {what} must be integers, got non-integral values")
        a = a.astype(B.int64)
    elif a.dtype.kind not in "iub" and a.size:
        raise TypeError(f"{name}: {what} must be integers, got dtype {a.dtype}")
    return a.astype(B.int64, copy=False)


def _lengths(name, what, v, n, limit, limit_desc, shape=None):
    a = _int_array(name, what, v).reshape(-1)
    where = "" if shape is None else f" (log_probs of shape {shape})"
    if a.shape != (n,):
        raise ValueError(f"{name}: {what} must have one entry per batch element ({n}), got "
                         f"shape {tuple(B.xp.shape(getattr(v, 'data', v)))}{where}")
    if n:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0:
            raise ValueError(f"{name}: {what} must be >= 0, got {lo}{where}")
        if limit is not None and hi > limit:
            raise ValueError(f"{name}: {what} {hi} exceeds {limit_desc} {limit}{where}")
    return a


def _padded_targets(name, targets, lp_shape, batched, n, tl):
    """Targets as an (N, Smax) int64 array (Smax = max target length), entries past each
    target's length set to 0 (they are never read)."""
    td = _int_array(name, "targets", targets)
    smax = int(tl.max()) if n else 0
    if td.ndim == 1:  # concatenated (also unbatched, as PyTorch)
        total = int(tl.sum())
        if td.shape[0] != total:
            raise ValueError(f"{name}: concatenated 1-D targets must hold sum(target_lengths) "
                             f"= {total} labels, got shape {tuple(td.shape)} (log_probs "
                             f"{lp_shape})")
        start = B.xp.cumsum(tl) - tl
        j = B.xp.arange(smax)
        valid = j[None, :] < tl[:, None]
        pos = B.xp.where(valid, start[:, None] + j[None, :], 0)
        lab = td[pos] if total else B.xp.zeros((n, smax), B.int64)
    else:
        if td.ndim != 2 or td.shape[0] != n:
            want = "(N, S) or concatenated 1-D" if batched else "(S,) or (1, S)"
            raise ValueError(f"{name}: targets must be {want} for log_probs of shape "
                             f"{lp_shape}, got shape {tuple(td.shape)}")
        if smax > td.shape[1]:
            raise ValueError(f"{name}: target_lengths {smax} exceeds the targets' length "
                             f"S = {td.shape[1]} (targets {tuple(td.shape)})")
        lab = td[:, :smax]
        valid = B.xp.arange(smax)[None, :] < tl[:, None]
    if lab.size:
        lab = B.xp.where(valid, lab, 0)
        n_class = lp_shape[-1]
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0 or hi >= n_class:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}: target label {bad} is out of range for {n_class} classes "
                             f"(log_probs {lp_shape})")
    return lab


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """CTC loss, as ``torch.nn.functional.ctc_loss``.

    log_probs (T, N, C) (or unbatched (T, C)): log-probabilities over C classes, usually
    ``log_softmax`` outputs. targets: padded (N, S) (unbatched (1, S)) or the N targets
    concatenated into one 1-D tensor of sum(target_lengths) labels; as in PyTorch a 1-D
    target is always the concatenated layout, also unbatched. input_lengths and
    target_lengths: (N,) tensors, lists or tuples of ints (unbatched also an int or a 0-d
    tensor). ``blank``: the blank class. reduction 'none' -> (N,) (a scalar unbatched),
    'sum', or 'mean': each loss divided by its target length (at least 1), averaged over
    the batch. A target that needs more steps than its input has (counting a blank
    between repeated labels) raises ValueError, where PyTorch would return inf; with
    ``zero_infinity=True`` its loss and gradient are zero, as in PyTorch. A target made
    impossible by -inf log-probabilities has loss inf and nan gradients, as in PyTorch
    (zero with ``zero_infinity``). Labels equal
    to ``blank`` inside a target are treated as PyTorch does (no error); labels outside
    [0, C) raise.
    The gradient is the true derivative w.r.t. log_probs; see the module docstring for how
    it relates to PyTorch's.
    """
    name = "ctc_loss"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")
    if not isinstance(log_probs, Tensor):
        raise TypeError(f"{name}: log_probs must be a Tensor, got {type(log_probs).__name__}")
    lp = log_probs.data
    shape = tuple(lp.shape)
    if lp.dtype not in (B.float32, B.float64):
        raise TypeError(f"{name}: log_probs must be float32 or float64, got dtype {lp.dtype}")
    lp, batched = _time_batch_classes(name, lp, blank)
    T, n, C = lp.shape
    il = _lengths(name, "input_lengths", input_lengths, n, T, "the input length T =", shape)
    tl = _lengths(name, "target_lengths", target_lengths, n, None, None, shape)
    lab = _padded_targets(name, targets, shape, batched, n, tl)
    if not zero_infinity:
        _check_feasible(name, lab, il, tl, shape)

    nll, saved = _forward(lp, lab, il, tl, blank)
    dtype = lp.dtype
    inf = B.xp.isinf(nll)
    has_inf = bool(inf.any())
    if zero_infinity and has_inf:
        nll = B.xp.where(inf, dtype.type(0), nll)
    if reduction == "none":
        out = nll if batched else nll.reshape(())
    elif reduction == "sum":
        out = nll.sum()
    else:
        div = B.xp.maximum(tl, 1).astype(dtype)
        out = (nll / div).mean() if n else nll.sum() * dtype.type(B.xp.nan)
    out = B.xp.asarray(out, dtype=dtype)
    if not (log_probs.requires_grad and grad_mode.enabled):
        return plain(out)

    def backward(g):
        g = B.xp.asarray(g, dtype=dtype)
        if reduction == "none":
            w = g.reshape(n)
        elif reduction == "sum":
            w = B.xp.broadcast_to(g, (n,))
        else:
            w = g / (B.xp.maximum(tl, 1).astype(dtype) * dtype.type(n))
        total = saved[-1]
        if has_inf:  # no alignment: zero gradient (zero_infinity) or nan, as PyTorch
            w = B.xp.where(inf, dtype.type(0), w)
            total = B.xp.where(inf, dtype.type(0), total)
        grad = _backward(lp, lab, il, tl, blank, saved[:-1] + (total,), w)
        if has_inf and not zero_infinity:
            steps = B.xp.arange(T)[:, None] < il[None, :]
            grad[steps & inf[None, :]] = B.xp.nan
        return (grad if batched else grad[:, 0],)
    return result(out, (log_probs,), backward)


def _time_batch_classes(name, lp, blank):
    """log_probs as (T, N, C) (unbatched (T, C) gets N = 1) and whether it was batched,
    after checking its rank and that ``blank`` is one of its classes."""
    shape = tuple(lp.shape)
    if lp.ndim not in (2, 3):
        raise ValueError(f"{name}: log_probs must be (T, N, C) or unbatched (T, C), got shape "
                         f"{shape}")
    batched = lp.ndim == 3
    if not batched:
        lp = lp[:, None, :]
    if not 0 <= blank < lp.shape[2]:
        raise ValueError(f"{name}: blank {blank} is out of range for {lp.shape[2]} classes "
                         f"(log_probs {shape})")
    return lp, batched


def _check_feasible(name, lab, il, tl, shape):
    """Raise if a target needs more input steps than it has: its labels plus one blank
    between each pair of equal neighbours."""
    xp = B.xp
    steps = tl.copy()
    if lab.shape[1] > 1:
        inside = xp.arange(1, lab.shape[1])[None, :] < tl[:, None]
        steps += ((lab[:, 1:] == lab[:, :-1]) & inside).sum(1)
    bad = xp.nonzero(steps > il)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: target {i} (length {int(tl[i])}, {int(steps[i] - tl[i])} repeated "
            f"neighbours) needs at least {int(steps[i])} input steps but its input length "
            f"is {int(il[i])} (log_probs {shape}; {bad.size} such sample(s)); pass "
            f"zero_infinity=True to give such samples zero loss instead")


def _logaddexp(a, b, out, tmp):
    """out = log(exp(a) + exp(b)) = max + log(1 + exp(-|a - b|)) for finite a, b; out may
    be a. Five fast ufunc passes: numpy's logaddexp goes through a scalar log1p and is
    several times slower, and log(1 + e) loses only terms below the rounding of max."""
    xp = B.xp
    xp.subtract(a, b, out=tmp)
    xp.abs(tmp, out=tmp)
    xp.negative(tmp, out=tmp)
    xp.exp(tmp, out=tmp)
    tmp += 1
    xp.log(tmp, out=tmp)
    xp.maximum(a, b, out=out)
    out += tmp


def _neg(dtype):
    """The finite stand-in for log(0): sums of a few stay finite, exp() of it is 0."""
    return -dtype.type(B.xp.finfo(dtype).max) ** dtype.type(0.5)


def _extended(lab, blank):
    """l' (N, L) and the skip mask (N, L): may position s be entered from s - 2, i.e.
    l'_s != l'_{s-2} (PyTorch's rule; on blank positions both are blank)."""
    n, smax = lab.shape
    ext = B.xp.full((n, 2 * smax + 1), blank, dtype=B.int64)
    ext[:, 1::2] = lab
    skip = B.xp.zeros(ext.shape, dtype=B.bool_)
    skip[:, 3::2] = lab[:, 1:] != lab[:, :-1]
    return ext, skip


def _forward(lp, lab, il, tl, blank):
    """Per-sample losses (N,) and what the backward needs."""
    xp = B.xp
    T, n, C = lp.shape
    dtype = lp.dtype
    neg = _neg(dtype)
    ext, skip = _extended(lab, blank)
    L = ext.shape[1]
    tmax = int(il.max()) if n else 0
    nll = xp.full(n, xp.inf, dtype=dtype)
    if tmax == 0:  # no input steps at all: only empty targets are possible
        nll[tl == 0] = 0
        return nll, (ext, skip, None, None, None, nll.astype(B.float64))
    # y_t(l'_s) for all t, n, s: one gather along the flattened (N*C) axis; log(0) = -inf
    # becomes the finite stand-in so that the recursions never meet inf - inf
    flat = (xp.arange(n)[:, None] * C + ext).reshape(-1)
    lpe = xp.take(lp[:tmax].reshape(tmax, n * C), flat, axis=1).reshape(tmax, n, L)
    xp.maximum(lpe, neg, out=lpe)
    alphas = xp.empty((tmax, n, L), dtype=dtype)
    scale = xp.empty((tmax, n), dtype=B.float64)  # alpha_t = alphas[t] + scale[t]
    a = alphas[0]
    a.fill(neg)
    a[:, 0] = lpe[0, :, 0]
    if L > 1:
        a[:, 1] = xp.where(tl > 0, lpe[0, :, 1], neg)
    m = a.max(1)
    a -= m[:, None]
    scale[0] = m
    # skips only enter label (odd) positions 3, 5, ...: their source s - 2, where allowed
    sk = skip[:, 3::2]
    src2 = xp.full(sk.shape, neg, dtype=dtype)
    tmp1 = xp.empty((n, L - 1), dtype=dtype)
    tmp2 = xp.empty(sk.shape, dtype=dtype)
    for t in range(1, tmax):
        prev = alphas[t - 1]
        cur = alphas[t]
        cur[:, 0] = prev[:, 0]
        _logaddexp(prev[:, 1:], prev[:, :-1], cur[:, 1:], tmp1)
        if L > 3:
            xp.copyto(src2, prev[:, 1:-2:2], where=sk)
            odd = cur[:, 3::2]
            _logaddexp(odd, src2, odd, tmp2)
        cur += lpe[t]
        # keep each row's max at 0: float32 then rounds values of size ~1, not ~t
        m = cur.max(1)
        cur -= m[:, None]
        xp.add(scale[t - 1], m, out=scale[t])
    rows = xp.arange(n)
    last = alphas[xp.maximum(il - 1, 0), rows]  # (N, L) at each sample's final step
    end = 2 * tl
    ll = xp.empty(n, dtype=dtype)
    _logaddexp(last[rows, end], xp.where(tl > 0, last[rows, end - 1], neg), ll,
               xp.empty(n, dtype=dtype))
    ll = ll + scale[xp.maximum(il - 1, 0), rows]  # float64
    nll64 = -ll
    nll64[(ll < neg / 2) | ((il == 0) & (tl > 0))] = xp.inf  # no alignment
    nll64[(il == 0) & (tl == 0)] = 0
    return nll64.astype(dtype), (ext, skip, lpe, alphas, scale, nll64)


def _backward(lp, lab, il, tl, blank, saved, w):
    """d(sum_n w_n loss_n) / d log_probs, (T, N, C)."""
    xp = B.xp
    ext, skip, lpe, alphas, ascale, nll = saved
    T, n, C = lp.shape
    dtype = lp.dtype
    if alphas is None:
        return xp.zeros((T, n, C), dtype=dtype)
    tmax, _, L = alphas.shape
    neg = _neg(dtype)
    rows = xp.arange(n)
    # beta_t(s) (without y_t) starts at 0 on the two final positions at a sample's last step
    init = xp.full((n, L), neg, dtype=dtype)
    init[rows, 2 * tl] = 0
    init[rows[tl > 0], 2 * tl[tl > 0] - 1] = 0
    last = il - 1
    order = xp.argsort(last, kind="stable")
    steps = xp.arange(tmax)
    starts = xp.searchsorted(last[order], steps, side="left").tolist()
    stops = xp.searchsorted(last[order], steps, side="right").tolist()
    betas = xp.empty((tmax, n, L), dtype=dtype)
    # log posterior occupancy = alphas + betas + expo, expo = the removed scales + loss
    expo = ascale + nll[None, :]  # (tmax, N) float64
    run = xp.zeros(n, dtype=B.float64)  # beta scale removed so far
    c = xp.empty((n, L), dtype=dtype)  # beta_{t+1} + y_{t+1}
    # skips leave label positions 1, 3, ... for s + 2 where allowed
    sk = skip[:, 3::2]
    src2 = xp.full(sk.shape, neg, dtype=dtype)
    tmp1 = xp.empty((n, L - 1), dtype=dtype)
    tmp2 = xp.empty(sk.shape, dtype=dtype)
    for t in range(tmax - 1, -1, -1):
        cur = betas[t]
        if t == tmax - 1:
            cur.fill(neg)
        else:
            cur[:, -1] = c[:, -1]
            _logaddexp(c[:, :-1], c[:, 1:], cur[:, :-1], tmp1)
            if L > 3:
                xp.copyto(src2, c[:, 3::2], where=sk)
                odd = cur[:, 1:-2:2]
                _logaddexp(odd, src2, odd, tmp2)
        lo, hi = starts[t], stops[t]
        if hi > lo:  # the samples whose last step is t start here
            r = order[lo:hi]
            cur[r] = init[r]
            run[r] = 0
        m = cur.max(1)
        cur -= m[:, None]
        run += m
        expo[t] += run
        if t:
            xp.add(cur, lpe[t], out=c)
    occ = betas  # betas are not needed again (the saved alphas must stay intact)
    occ += alphas
    occ += expo.astype(dtype)[:, :, None]
    xp.exp(occ, out=occ)
    occ[steps[:, None] >= il[None, :]] = 0  # steps past an input's length (nan-safe)
    occ *= w[None, :, None]
    smax = lab.shape[1]
    grad = xp.zeros((T, n, C), dtype=dtype)
    g = grad[:tmax]
    if smax:
        # sum the label positions' occupancy per (sample, class): group the N*Smax
        # positions by key n*C + label, add each group with one reduceat, assign by key
        key = (rows[:, None] * C + lab).reshape(-1)
        perm = xp.argsort(key, kind="stable")
        skey = key[perm]
        first = xp.flatnonzero(xp.concatenate([xp.ones(1, B.bool_), skey[1:] != skey[:-1]]))
        pos = (rows[:, None] * L + xp.arange(1, L, 2)).reshape(-1)[perm]
        lab_occ = xp.take(occ.reshape(tmax, n * L), pos, axis=1)
        g.reshape(tmax, n * C)[:, skey[first]] = xp.add.reduceat(lab_occ, first, axis=1)
    g[:, :, blank] += occ[:, :, 0::2].sum(-1)
    xp.negative(g, out=g)
    return grad
