"""Fully connected and multiplicative layers as functions: linear, bilinear, embedding."""
from ... import backend as B
from ... import grad_mode, ops
from ...ops import linear
from ...ops.indexing import index_add_zeros
from ...tensor import Tensor, plain, result

__all__ = ["linear", "bilinear", "embedding"]


def bilinear(input1, input2, weight, bias=None):
    """y_o = x1^T W_o x2 + b_o. input1: (*, in1), input2: (*, in2) with the same leading
    dims, weight: (out, in1, in2), bias: (out,) -> (*, out).

    Composed of ops: one GEMM x2 @ W^T viewed as (out * in1, in2), then a product with x1
    and a sum over in1 (no backward code of its own).
    """
    s1, s2, ws = tuple(input1.shape), tuple(input2.shape), tuple(weight.shape)
    if len(ws) != 3 or not s1 or not s2 or s1[-1] != ws[1] or s2[-1] != ws[2] \
            or s1[:-1] != s2[:-1]:
        raise ValueError(f"bilinear: inputs of shapes {s1} and {s2} do not match weight of "
                         f"shape {ws} (expected (*, {ws[1] if len(ws) == 3 else 'in1'}) and "
                         f"(*, {ws[2] if len(ws) == 3 else 'in2'}) with equal leading dims)")
    if bias is not None and tuple(bias.shape) != ws[:1]:
        raise ValueError(f"bilinear: bias of shape {tuple(bias.shape)} does not match weight "
                         f"of shape {ws} (expected ({ws[0]},))")
    out, in1, in2 = ws
    lead = s1[:-1]
    x1 = ops.reshape(input1, (-1, in1))
    x2 = ops.reshape(input2, (-1, in2))
    t = ops.linear(x2, ops.reshape(weight, (out * in1, in2)))        # (M, out * in1)
    y = ops.sum(ops.reshape(t, (-1, out, in1)) * ops.unsqueeze(x1, 1), -1)
    if bias is not None:
        y = y + bias
    return ops.reshape(y, lead + (out,))


def _indices(op, input, num_embeddings):
    idx = input.data if isinstance(input, Tensor) else B.xp.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer tensor (int64 or int32), got dtype "
                        f"{idx.dtype}")
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= num_embeddings:
            bad = int(lo) if lo < 0 else int(hi)
            raise IndexError(f"{op}: index {bad} is out of range for {num_embeddings} "
                             f"embeddings (valid: 0 .. {num_embeddings - 1})")
    return idx


def _padding(op, padding_idx, n):
    if padding_idx is None:
        return None
    if not -n <= padding_idx < n:
        raise ValueError(f"{op}: padding_idx {padding_idx} must be within num_embeddings "
                         f"({n})")
    return padding_idx % n


def embedding_renorm_(weight, idx, max_norm, norm_type=2.0):
    """Rescale, in place, the rows of ``weight`` referenced by ``idx`` whose ``norm_type``
    norm exceeds ``max_norm`` to norm max_norm (as PyTorch: by max_norm / (norm + 1e-7))."""
    rows = B.xp.unique(idx.reshape(-1))
    w = weight.data[rows]
    norms = B.xp.linalg.norm(w, ord=norm_type, axis=1) if norm_type != 2 else \
        B.xp.sqrt((w * w).sum(1))
    big = norms > max_norm
    if big.any():
        scale = max_norm / (norms[big] + 1e-7)
        weight.data[rows[big]] = w[big] * scale[:, None].astype(w.dtype, copy=False)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` (num_embeddings, dim) at integer ``input`` (any shape) ->
    input.shape + (dim,).

    The weight gradient scatter-adds the rows of the output gradient (repeated indices
    sum); the row ``padding_idx`` gets no gradient. ``max_norm`` renormalises the looked-up
    rows in place first; ``scale_grad_by_freq`` divides each row's gradient by its count in
    the batch. ``sparse`` gradients are not supported (dense ones are computed).
    """
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use "
                                  "sparse=False")
    wd = weight.data
    if wd.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(wd.shape)}")
    n = wd.shape[0]
    idx = _indices("embedding", input, n)
    pad = _padding("embedding", padding_idx, n)
    if max_norm is not None:
        embedding_renorm_(weight, idx, max_norm, norm_type)
    out = wd[idx]
    if not (weight.requires_grad and grad_mode.enabled):
        return plain(out)
    shape = wd.shape

    def backward(g):
        if scale_grad_by_freq:
            counts = B.xp.bincount(idx.reshape(-1), minlength=n)
            g = g / counts[idx][..., None].astype(g.dtype)
        dw = index_add_zeros(shape, 0, idx, g)
        if pad is not None:
            dw[pad] = 0
        return (dw,)
    return result(out, (weight,), backward)
