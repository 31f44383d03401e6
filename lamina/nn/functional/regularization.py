"""Stochastic regularizers as functions: dropout (element, channel and per-sample "drop
path"), DropConnect and Gaussian input noise.

All draw from lamina's generator (``lamina.backend.rng()``), so ``lamina.manual_seed``
makes them reproducible. Masks are in the input's dtype and already carry the inverted
scaling 1 / (1 - p), so the expected output equals the input and evaluation
(``training=False``) is the identity. Each is a product with a constant mask (or a sum
with constant noise): the gradient is mask * scale, with no backward code here.
"""
from ... import backend as B
from ... import ops
from ...tensor import plain

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "feature_dropout", "drop_path",
           "drop_connect", "gaussian_noise"]


def _check_p(op, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def _random_dtype(dtype):
    return dtype if dtype in (B.float32, B.float64) else B.float32


def keep_mask(shape, p, dtype):
    """An array of ``shape`` in ``dtype``: 1/(1-p) with probability 1-p, else 0."""
    if p >= 1.0:
        return B.xp.zeros(shape, dtype=dtype)
    u = B.rng().random(shape, dtype=_random_dtype(dtype))
    keep = u >= p
    if u.dtype == dtype:
        return B.xp.multiply(keep, dtype.type(1.0 / (1.0 - p)), out=u)
    return (keep * (1.0 / (1.0 - p))).astype(dtype)


def _masked(x, mask_shape, p):
    return ops.mul(x, plain(keep_mask(mask_shape, p, x.dtype)))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training);
    identity when ``training`` is False or p == 0. Any shape."""
    _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    return _masked(input, input.shape, p)


def feature_dropout(input, p=0.5, training=True, op="feature_dropout", batched=True):
    """Zero whole feature maps: one draw per (sample, channel) of an (N, C, *) input (or
    per channel of an unbatched (C, *) one with ``batched=False``), scaled by 1/(1-p)."""
    _check_p(op, p)
    if not training or p == 0.0:
        return input
    shape = input.shape
    keep = 2 if batched else 1
    return _masked(input, shape[:keep] + (1,) * (len(shape) - keep), p)


def _channel_dropout(op, input, p, training, spatial):
    nd = input.ndim
    if nd not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: expected a {spatial + 2}-D input (N, C, ...) or a "
                         f"{spatial + 1}-D unbatched one (C, ...), got shape "
                         f"{tuple(input.shape)}")
    # as PyTorch, dropout2d treats a 3-D input as batched (N, C, L)
    batched = nd == spatial + 2 or spatial == 2
    return feature_dropout(input, p, training, op, batched)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, L) or (C, L) inputs."""
    return _channel_dropout("dropout1d", input, p, training, 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, H, W) inputs (a 3-D input is read as (N, C, L), as in
    PyTorch)."""
    return _channel_dropout("dropout2d", input, p, training, 2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) inputs."""
    return _channel_dropout("dropout3d", input, p, training, 3)


def drop_path(input, p=0.0, training=True, scale_by_keep=True):
    """Stochastic depth (Huang et al., 2016): drop the whole residual branch ``input``
    (N, *) of each sample with probability p, scaling kept samples by 1/(1-p) (unless
    ``scale_by_keep`` is False). Identity when not training or p == 0."""
    _check_p("drop_path", p)
    if not training or p == 0.0:
        return input
    shape = (input.shape[0],) + (1,) * (input.ndim - 1) if input.ndim else ()
    if scale_by_keep:
        return _masked(input, shape, p)
    mask = (B.rng().random(shape) >= p).astype(input.dtype)
    return ops.mul(input, plain(mask))


def drop_connect(input, weight, bias=None, p=0.5, training=True):
    """DropConnect (Wan et al., 2013): ``linear(input, dropout(weight, p), bias)``. One
    weight mask per call, shared by the mini-batch, with inverted scaling 1/(1-p); in
    evaluation the plain linear map (instead of the paper's Gaussian moment matching)."""
    _check_p("drop_connect", p)
    if training and p != 0.0:
        weight = _masked(weight, weight.shape, p)
    return ops.linear(input, weight, bias)


def gaussian_noise(input, std=0.1, training=True):
    """input + N(0, std^2) noise while training (input corruption of denoising
    autoencoders); identity otherwise. The noise is a constant: gradient 1 to the input."""
    if std < 0:
        raise ValueError(f"gaussian_noise: std must be non-negative, got {std}")
    if not training or std == 0:
        return input
    dtype = input.dtype
    noise = B.rng().standard_normal(input.shape, dtype=_random_dtype(dtype))
    noise *= std
    return ops.add(input, plain(noise.astype(dtype, copy=False)))
