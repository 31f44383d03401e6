"""Loss primitives: softmax cross-entropy, negative log-likelihood, sigmoid binary
cross-entropy on logits, and binary cross-entropy on probabilities.

Fusing saves the intermediate softmax/sigmoid node and gives the short, stable gradients
(softmax - onehot) and (sigmoid - target); nll_loss and binary_cross_entropy are primitives
for PyTorch's exact semantics (no renormalisation; logs clamped at -100); kl_div is one
for x log x at x = 0 and a single pass over large distillation targets, multi_margin_loss
for one (N, C) pass instead of ~10 ops. The other losses are compositions in
:mod:`lamina.nn.functional`.

Class-index losses work on a (M, C) view: logits (N, C, d1, ...) have their class axis
moved last and are flattened, so every case is one 2-D gather.
"""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain, result
from .elementwise import unbroadcast

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _raw(a, dtype=None):
    if a is None:
        return None
    a = a.data if isinstance(a, Tensor) else B.xp.asarray(a)
    return a if dtype is None else a.astype(dtype, copy=False)


def _to_rows(op, xd):
    """(N, C, d1, ...) -> (N*d1*..., C); (C,) -> (1, C)."""
    if xd.ndim == 2:
        return xd
    if xd.ndim == 1:
        return xd[None]
    if xd.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    return B.xp.moveaxis(xd, 1, -1).reshape(-1, xd.shape[1])


def _from_rows(g, shape):
    """Inverse of :func:`_to_rows` for a gradient of the (M, C) view."""
    if len(shape) <= 2:
        return g.reshape(shape)
    return B.xp.moveaxis(g.reshape((shape[0],) + shape[2:] + (shape[1],)), -1, 1)


def _softmax_rows(x):
    """(shifted, e, s) for (M, C) logits: shifted = x - shift, e = exp(shifted), s (M,) the
    row sums of e, so log_softmax = shifted - log(s)[:, None].

    One shift for the whole batch (a scalar max and a gemv for the row sums are several
    times cheaper than row-wise reductions over a short class axis); if some row lies so
    far below the batch max that its sum leaves the normal float range, or the max is not
    finite, it falls back to a per-row shift."""
    m = x.max() if x.size else None
    if m is not None and B.xp.isfinite(m):
        shifted = x - m
        e = B.xp.exp(shifted)
        s = e @ B.xp.ones(x.shape[1], dtype=e.dtype)
        if s.min() >= 1e-30:
            return shifted, e, s
    m = x.max(axis=1, keepdims=True)
    shifted = x - B.xp.where(B.xp.isfinite(m), m, 0)
    e = B.xp.exp(shifted)
    return shifted, e, e.sum(axis=1)


def _index_target(op, xd, td, wd, ignore_index):
    """Validate class-index targets; returns (t (M,), valid (M,) bool or None when every
    target counts, coef (M,) per-row weight or None when all are 1, out_shape)."""
    if td.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices (an integer tensor) or class "
                        f"probabilities (a float tensor shaped like the input "
                        f"{tuple(xd.shape)}), got dtype {td.dtype}")
    out_shape = (xd.shape[0],) + xd.shape[2:] if xd.ndim > 1 else ()
    if td.shape != out_shape:
        raise ValueError(f"{op}: target shape {tuple(td.shape)} does not match input shape "
                         f"{tuple(xd.shape)} (expected target shape {out_shape})")
    n_class = xd.shape[1] if xd.ndim > 1 else xd.shape[0]
    t = td.reshape(-1)
    valid = None
    if t.size:
        lo, hi = t.min(), t.max()
        if lo < 0 or hi >= n_class or 0 <= ignore_index < n_class:
            valid = t != ignore_index
            if valid.all():
                valid = None
            else:
                t = B.xp.where(valid, t, 0)
                lo, hi = t.min(), t.max()
            if lo < 0 or hi >= n_class:
                bad = int(lo) if lo < 0 else int(hi)
                raise IndexError(f"{op}: target class {bad} is out of range for {n_class} "
                                 f"classes (valid: 0..{n_class - 1}, or ignore_index="
                                 f"{ignore_index})")
    if wd is not None:
        if wd.shape != (n_class,):
            raise ValueError(f"{op}: weight must have shape ({n_class},) (one per class), got "
                             f"{tuple(wd.shape)}")
        coef = wd[t] if valid is None else wd[t] * valid
    else:
        coef = None if valid is None else valid.astype(xd.dtype)
    return t, valid, coef, out_shape


def _elementwise_target(op, xd, target):
    """The target array of an elementwise loss: same shape as the input, floating point."""
    if isinstance(target, Tensor):
        td = target.data
        if td.dtype.kind != "f":
            raise TypeError(f"{op}: target must be a floating-point tensor (like the input, "
                            f"{xd.dtype}), got dtype {td.dtype}")
    else:
        td = B.xp.asarray(target, dtype=xd.dtype)
    if td.shape != xd.shape:
        raise ValueError(f"{op}: target shape {tuple(td.shape)} must match input shape "
                         f"{tuple(xd.shape)}")
    return td


def _broadcast_weight(op, name, wd, shape):
    """Check that ``wd`` (None or an array) broadcasts to ``shape`` without growing it."""
    if wd is not None and wd.shape != shape:
        try:
            ok = B.xp.broadcast_shapes(wd.shape, shape) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{op}: {name} of shape {tuple(wd.shape)} does not broadcast to "
                             f"the input shape {tuple(shape)}")
    return wd


def _reduce(losses, reduction, denom):
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    return total / denom if denom else total * B.xp.nan  # all ignored: nan, as PyTorch


def _grad_scale(g, reduction, denom, m):
    """The upstream gradient of each of the m per-row losses, as an (m, 1) column or scalar."""
    if reduction == "none":
        return g.reshape(m, 1)
    if reduction == "sum":
        return g
    # everything ignored: the loss is nan (0/0) but no logit gets a gradient, as PyTorch
    return g / denom if denom else g * 0


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy, as ``torch.nn.functional.cross_entropy``.

    logits: (N, C), (N, C, d1, ...) or (C,). target: class indices (N, d1, ...) (or a
    scalar for (C,) logits), or class probabilities shaped like logits (differentiable).
    ``weight`` (C,) rescales classes; with reduction='mean' and index targets the sum is
    divided by the total weight of the non-ignored targets, otherwise by N*d1*....
    """
    _check_reduction("cross_entropy", reduction)
    xd = logits.data
    td = _raw(target)
    wd = _raw(weight, xd.dtype)
    eps = label_smoothing
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {eps}")
    x = _to_rows("cross_entropy", xd)
    m_rows, n_class = x.shape
    if td.dtype.kind == "f":
        return _cross_entropy_probs(logits, target, x, td, wd, reduction, eps)
    t, valid, coef, out_shape = _index_target("cross_entropy", xd, td, wd, ignore_index)
    rows = B.xp.arange(m_rows)

    shifted, e, s = _softmax_rows(x)
    lse = B.xp.log(s)
    nll = lse - shifted[rows, t]
    losses = nll if coef is None else nll * coef
    if eps:
        # the uniform part: -sum_c w_c log p_c / C
        logp_sum = lse * n_class - shifted.sum(1) if wd is None else \
            lse * wd.sum() - shifted @ wd
        smooth = logp_sum / n_class
        losses = (1 - eps) * losses + eps * (smooth if valid is None else smooth * valid)
    denom = m_rows if coef is None else coef.sum()
    out = _reduce(losses, reduction, denom)
    if reduction == "none":
        out = losses.reshape(out_shape)
    out = B.xp.asarray(out, dtype=xd.dtype)
    if not (logits.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape

    def backward(g):
        p = e / s[:, None]
        if eps:
            # d/dx of sum_c w_c (lse - x_c) / C = (p * sum(w) - w) / C
            sm = (p - 1.0 / n_class) if wd is None else (p * wd.sum() - wd) * (1.0 / n_class)
            if valid is not None:
                sm *= valid[:, None]
        if coef is None:
            p[rows, t] -= 1
            grad = p
        else:
            grad = p * coef[:, None]
            grad[rows, t] -= coef
        if eps:
            grad *= 1 - eps
            sm *= eps
            grad += sm
        grad *= _grad_scale(g, reduction, denom, m_rows)
        return (_from_rows(grad, shape).astype(xd.dtype, copy=False),)
    return result(out, (logits,), backward)


def _cross_entropy_probs(logits, target, x, td, wd, reduction, eps):
    """cross_entropy with class-probability targets q: -sum_c w_c q_c log p_c per row."""
    xd = logits.data
    if td.shape != xd.shape:
        raise ValueError(f"cross_entropy: probability targets must have the input's shape "
                         f"{tuple(xd.shape)}, got {tuple(td.shape)}")
    m_rows, n_class = x.shape
    if wd is not None and wd.shape != (n_class,):
        raise ValueError(f"cross_entropy: weight must have shape ({n_class},) (one per class), "
                         f"got {tuple(wd.shape)}")
    q = _to_rows("cross_entropy", td)
    if eps:
        q = q * (1 - eps) + eps / n_class
    wq = q if wd is None else q * wd
    shifted, e, s = _softmax_rows(x)
    s = s[:, None]
    logp = shifted - B.xp.log(s)
    losses = -(wq * logp).sum(1)
    out = _reduce(losses, reduction, m_rows)
    if reduction == "none":
        out = losses.reshape((xd.shape[0],) + xd.shape[2:] if xd.ndim > 1 else ())
    out = B.xp.asarray(out, dtype=xd.dtype)
    gx = logits.requires_grad and grad_mode.enabled
    gt = isinstance(target, Tensor) and target.requires_grad and grad_mode.enabled
    if not (gx or gt):
        return plain(out)

    def backward(g):
        gs = _grad_scale(g, reduction, m_rows, m_rows)
        gxv = gtv = None
        if gx:
            # d/dx of -sum_c wq_c log p_c = p * sum_c wq_c - wq
            gxv = _from_rows((e / s * wq.sum(1, keepdims=True) - wq) * gs, xd.shape)
            gxv = gxv.astype(xd.dtype, copy=False)
        if gt:
            d = -logp if wd is None else -(logp * wd)
            gtv = _from_rows(d * ((1 - eps) * gs), td.shape).astype(td.dtype, copy=False)
        return gxv, gtv
    return result(out, (logits if gx else None, target if gt else None), backward)


def nll_loss(log_probs, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood -w[t] * input[t], as ``torch.nn.functional.nll_loss``.

    log_probs: (N, C), (N, C, d1, ...) or (C,) (usually a log_softmax output; it is not
    normalised here); target: class indices (N, d1, ...). Mean divides by the total
    weight of the non-ignored targets.
    """
    _check_reduction("nll_loss", reduction)
    xd = log_probs.data
    td = _raw(target)
    x = _to_rows("nll_loss", xd)
    m_rows = x.shape[0]
    t, valid, coef, out_shape = _index_target("nll_loss", xd, td, _raw(weight, xd.dtype),
                                              ignore_index)
    rows = B.xp.arange(m_rows)
    losses = -x[rows, t]
    if coef is not None:
        losses = losses * coef
    denom = m_rows if coef is None else coef.sum()
    out = losses.reshape(out_shape) if reduction == "none" else \
        _reduce(losses, reduction, denom)
    out = B.xp.asarray(out, dtype=xd.dtype)
    if not (log_probs.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = xd.shape

    def backward(g):
        grad = B.xp.zeros(x.shape, dtype=xd.dtype)
        gs = _grad_scale(g, reduction, denom, m_rows)
        col = -gs[:, 0] if reduction == "none" else -gs
        grad[rows, t] = col if coef is None else col * coef
        return (_from_rows(grad, shape),)
    return result(out, (log_probs,), backward)


def binary_cross_entropy_with_logits(logits, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """-w [pw t log s(x) + (1 - t) log(1 - s(x))] elementwise, stable for any logit x.

    logits and target share a shape; ``weight`` broadcasts to it and ``pos_weight`` (the
    weight of positives, e.g. one per class) broadcasts over the last dimension.
    Differentiable in logits and target.
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    xd = logits.data
    t_is_tensor = isinstance(target, Tensor)
    td = _elementwise_target(op, xd, target)
    wd = _broadcast_weight(op, "weight", _raw(weight, xd.dtype), xd.shape)
    pw = _broadcast_weight(op, "pos_weight", _raw(pos_weight, xd.dtype), xd.shape)
    # softplus(-x) = log(1 + exp(-x)) = -log s(x), computed without overflow
    sp = B.xp.log1p(B.xp.exp(-B.xp.abs(xd)))
    sp += B.xp.maximum(-xd, 0)
    if pw is None:
        losses = (1 - td) * xd + sp
    else:  # (1 - t) x + (1 + (pw - 1) t) softplus(-x)
        lw = (pw - 1) * td + 1
        losses = (1 - td) * xd + lw * sp
    if wd is not None:
        losses = losses * wd
    out = B.xp.asarray(_reduce(losses, reduction, losses.size), dtype=xd.dtype)
    gx = logits.requires_grad and grad_mode.enabled
    gt = t_is_tensor and target.requires_grad and grad_mode.enabled
    if not (gx or gt):
        return plain(out)
    n = losses.size
    shape = xd.shape

    def backward(g):
        gl = g / n if reduction == "mean" else g
        if wd is not None:
            gl = gl * wd
        gxv = gtv = None
        if gx:
            sig = B.xp.exp(-sp)
            d = sig - td if pw is None else lw * sig - pw * td
            d *= gl
            gxv = unbroadcast(d, shape).astype(xd.dtype, copy=False)
        if gt:
            d = -xd if pw is None else (pw - 1) * sp - xd
            gtv = unbroadcast(d * gl, td.shape).astype(td.dtype, copy=False)
        return gxv, gtv
    return result(out, (logits if gx else None, target if gt else None), backward)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w [t log p + (1 - t) log(1 - p)] on probabilities p in [0, 1], as
    ``torch.nn.functional.binary_cross_entropy``: each log is clamped at -100, and the
    gradient is (p - t) / max(p (1 - p), 1e-12), finite at p = 0 and 1."""
    _check_reduction("binary_cross_entropy", reduction)
    xd = input.data
    t_is_tensor = isinstance(target, Tensor)
    td = _elementwise_target("binary_cross_entropy", xd, target)
    if xd.size and (xd.min() < 0 or xd.max() > 1):
        raise ValueError("binary_cross_entropy: all elements of input must be between 0 and 1 "
                         "(use binary_cross_entropy_with_logits for logits)")
    wd = _broadcast_weight("binary_cross_entropy", "weight", _raw(weight, xd.dtype), xd.shape)
    with B.xp.errstate(divide="ignore"):
        log_p = B.xp.log(xd)
        log_1mp = B.xp.log1p(-xd)
    losses = -(td * B.xp.maximum(log_p, -100) + (1 - td) * B.xp.maximum(log_1mp, -100))
    if wd is not None:
        losses = losses * wd
    out = B.xp.asarray(_reduce(losses, reduction, losses.size), dtype=xd.dtype)
    gx = input.requires_grad and grad_mode.enabled
    gt = t_is_tensor and target.requires_grad and grad_mode.enabled
    if not (gx or gt):
        return plain(out)
    n = losses.size
    shape = xd.shape

    def backward(g):
        gl = g / n if reduction == "mean" else g
        if wd is not None:
            gl = gl * wd
        gxv = gtv = None
        if gx:
            d = (xd - td) / B.xp.maximum((1 - xd) * xd, 1e-12)
            gxv = unbroadcast(d * gl, shape).astype(xd.dtype, copy=False)
        if gt:
            with B.xp.errstate(invalid="ignore"):
                d = log_1mp - log_p  # -logit(p), unclamped as in PyTorch
            gtv = unbroadcast(d * gl, td.shape).astype(td.dtype, copy=False)
        return gxv, gtv
    return result(out, (input if gx else None, target if gt else None), backward)


def kl_div(input, target, reduction="mean", log_target=False):
    """Pointwise KL divergence t (log t - x) (or e^t (t - x) with ``log_target``), as
    ``torch.nn.functional.kl_div``: ``input`` holds log-probabilities, ``target`` is
    shaped like it. 'batchmean' divides the sum by input.shape[0] (the true KL divergence
    per sample); 'mean' divides by the element count. Terms with t = 0 are 0. Both inputs
    are differentiable; as in PyTorch the target gradient is nan where t = 0 (the slope
    log t + 1 diverges there)."""
    op = "kl_div"
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(f"kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', "
                         f"got {reduction!r}")
    xd = input.data
    td = _elementwise_target(op, xd, target)
    if log_target:
        et = B.xp.exp(td)
        losses = et * (td - xd)
    else:
        with B.xp.errstate(divide="ignore", invalid="ignore"):
            log_t = B.xp.log(td)
            losses = B.xp.where(td == 0, 0, td * log_t) - td * xd
    if reduction == "none":
        out, denom = losses, 1
    else:
        out = losses.sum()
        denom = losses.size if reduction == "mean" else \
            (xd.shape[0] if reduction == "batchmean" and xd.ndim else 1)
        if denom != 1:
            with B.xp.errstate(invalid="ignore", divide="ignore"):
                out = out / denom  # empty input, 'mean': nan, as PyTorch
    out = B.xp.asarray(out, dtype=xd.dtype)
    gx = input.requires_grad and grad_mode.enabled
    gt = isinstance(target, Tensor) and target.requires_grad and grad_mode.enabled
    if not (gx or gt):
        return plain(out)

    def backward(g):
        gl = g / denom if denom > 1 else g
        gxv = gtv = None
        if gx:
            gxv = (-(et if log_target else td) * gl).astype(xd.dtype, copy=False)
        if gt:
            if log_target:
                d = et * (td - xd + 1)
            else:
                with B.xp.errstate(divide="ignore", invalid="ignore"):
                    d = B.xp.where(td == 0, 0, log_t) + td / td - xd
            gtv = (d * gl).astype(td.dtype, copy=False)
        return gxv, gtv
    return result(out, (input if gx else None, target if gt else None), backward)


def clamp_min_pass_through(x, min):
    """max(x, min) whose gradient reaches x unchanged everywhere, clamped or not (PyTorch's
    gaussian_nll_loss clamps the variance in place under no_grad, which does exactly this)."""
    out = B.xp.maximum(x.data, min)
    if x.requires_grad and grad_mode.enabled:
        return result(out, (x,), lambda g: (g,))
    return plain(out)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """Multi-class hinge (SVM) loss, as ``torch.nn.functional.multi_margin_loss``:
    sum_{j != y} max(0, margin - x_y + x_j)^p / C per sample, each term times weight[y].

    input (N, C) or (C,); target class indices (N,) or (); p is 1 or 2. Fused: one
    (N, C) pass forward and one backward (a composition costs ~10 ops).
    """
    op = "multi_margin_loss"
    _check_reduction(op, reduction)
    if p not in (1, 2):
        raise ValueError(f"{op}: only p == 1 and p == 2 are supported, got {p}")
    xd = input.data
    if xd.ndim not in (1, 2) or xd.shape[-1] == 0:
        raise ValueError(f"{op}: input must be (N, C) or (C,) with C > 0, got shape "
                         f"{tuple(xd.shape)}")
    td = _raw(target)
    if td.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices (an integer tensor), got "
                        f"dtype {td.dtype}")
    if td.shape != xd.shape[:-1]:
        raise ValueError(f"{op}: target shape {tuple(td.shape)} does not match input shape "
                         f"{tuple(xd.shape)} (expected {tuple(xd.shape[:-1])})")
    n_class = xd.shape[-1]
    if td.size and (td.min() < 0 or td.max() >= n_class):
        bad = int(td.min()) if td.min() < 0 else int(td.max())
        raise IndexError(f"{op}: target class {bad} is out of range for {n_class} classes")
    wd = _raw(weight, xd.dtype)
    if wd is not None and wd.shape != (n_class,):
        raise ValueError(f"{op}: weight must have shape ({n_class},) (one per class), got "
                         f"{tuple(wd.shape)}")
    x = xd.reshape(-1, n_class)
    t = td.reshape(-1)
    rows = B.xp.arange(x.shape[0])
    z = x - x[rows, t][:, None]
    z += margin
    z[rows, t] = 0  # the j == y term is left out
    h = B.xp.maximum(z, 0)
    terms = h * h if p == 2 else h
    # each sample's scale: weight[y] / C
    scale = (1.0 / n_class) if wd is None else wd[t] * (1.0 / n_class)
    losses = terms.sum(1) * scale
    m = losses.shape[0]
    out = losses.reshape(td.shape) if reduction == "none" else \
        _reduce(losses, reduction, m)
    out = B.xp.asarray(out, dtype=xd.dtype)
    if not (input.requires_grad and grad_mode.enabled):
        return plain(out)

    def backward(g):
        gs = _grad_scale(g, reduction, m, m)  # (m, 1) or a scalar
        coef = gs * scale if wd is None else gs * scale[:, None]
        d = (2 * h if p == 2 else (z > 0).astype(xd.dtype)) * coef
        d[rows, t] = -d.sum(1)
        return (d.reshape(xd.shape).astype(xd.dtype, copy=False),)
    return result(out, (input,), backward)
