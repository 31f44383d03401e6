"""Normalization functions (see lamina/nn/layers/normalization.py for the modules).

batch_norm, layer_norm and group_norm are fused primitives (lamina/ops/normalization.py);
local_response_norm and local_contrast_norm are compositions of ops.
"""
import math

from ... import backend as B
from ... import ops
from ...ops.normalization import batch_norm, group_norm, layer_norm, symmetric_blur2d
from ...tensor import plain

__all__ = ["batch_norm", "layer_norm", "group_norm", "local_response_norm",
           "local_contrast_norm"]


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise each value by its neighbours across channels (PyTorch's formula):

        y_c = x_c / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} x_c'^2) ^ beta

    (channels outside 0..C-1 count as zeros). x: (N, C, *) with at least 3 dims."""
    shape = tuple(input.shape)
    if len(shape) < 3:
        raise ValueError(f"local_response_norm: expected an input of shape (N, C, *) with 3 "
                         f"or more dimensions, got shape {shape}")
    if int(size) != size or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive integer, got {size!r}")
    if input.numel() == 0:
        return input
    size = int(size)
    c = shape[1]
    sq = input * input
    p = ops.pad(sq, (0, 0) * (len(shape) - 2) + (size // 2, (size - 1) // 2))
    s = p[:, 0:c]
    for i in range(1, size):
        s = s + p[:, i:i + c]
    return input / (s * (alpha / size) + k) ** beta


def _gaussian_taps(kernel_size, sigma):
    r = kernel_size // 2
    w = [math.exp(-(i - r) ** 2 / (2.0 * sigma * sigma)) for i in range(kernel_size)]
    s = math.fsum(w)
    return [v / s for v in w]


def local_contrast_norm(input, kernel_size=9, sigma=None, eps=1e-5):
    """Local contrast normalization (Jarrett et al. 2009): subtractive, then divisive.

    x: (N, C, H, W) or (C, H, W). With a Gaussian window w over a kernel_size x
    kernel_size neighbourhood (std ``sigma``, default (kernel_size - 1) / 4) weighting all
    C channels equally (weights summing to 1; at the borders renormalised over the part of
    the window inside the image):

        v = x - sum_{c, p, q} w_pq x[c, i+p, j+q]          (local weighted mean removed)
        s[i, j] = sqrt(sum_{c, p, q} w_pq v[c, i+p, j+q]^2)  (local weighted std)
        y = v / max(s[i, j], mean_ij(s), eps)               (mean over each sample's map)

    The mean, std and divisor are shared by all channels at a position."""
    shape = tuple(input.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"local_contrast_norm: expected an input of shape (N, C, H, W) or "
                         f"(C, H, W), got shape {shape}")
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"local_contrast_norm: kernel_size must be a positive odd integer, "
                         f"got {kernel_size!r}")
    kernel_size = int(kernel_size)
    if sigma is None:
        sigma = (kernel_size - 1) / 4.0
    if kernel_size == 1:
        taps = [1.0]
    elif not sigma > 0:
        raise ValueError(f"local_contrast_norm: sigma must be positive, got {sigma!r}")
    else:
        taps = _gaussian_taps(kernel_size, float(sigma))
    x = input if len(shape) == 4 else ops.unsqueeze(input, 0)
    c, h, w = x.shape[1:]
    dt = x.dtype
    # the share of the window inside the image, times C: turns window sums into means
    inside = symmetric_blur2d(plain(B.xp.ones((h, w), dtype=dt)), taps).data
    inv = plain((1.0 / (c * inside)).astype(dt, copy=False))
    mean = symmetric_blur2d(ops.sum(x, dim=1), taps) * inv
    v = x - ops.unsqueeze(mean, 1)
    std = ops.sqrt(symmetric_blur2d(ops.sum(v * v, dim=1), taps) * inv)
    floor = ops.mean(std, dim=(1, 2), keepdim=True)
    den = ops.maximum(ops.maximum(std, floor), eps)
    y = v / ops.unsqueeze(den, 1)
    return y if len(shape) == 4 else ops.squeeze(y, 0)
