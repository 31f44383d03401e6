"""Normalization layers: BatchNorm1d/2d/3d, LayerNorm, GroupNorm, LocalResponseNorm,
LocalContrastNorm."""
from ... import backend as B
from ...tensor import Parameter, plain
from .. import functional as F
from ..module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
           "LocalResponseNorm", "LocalContrastNorm"]


def _dtype(dtype):
    return B.get_default_dtype() if dtype is None else B.to_dtype(dtype)


class _BatchNorm(Module):
    """Shared code of BatchNorm1d/2d/3d (PyTorch's ``_BatchNorm``).

    Training: normalise with the batch statistics (per channel, over the batch and all
    positions) and update ``running_mean``/``running_var`` (unbiased) with ``momentum``
    (``None``: cumulative average over ``num_batches_tracked`` batches). Eval: use the
    running statistics, or the batch statistics when ``track_running_stats=False``.
    Initialised as in PyTorch: weight = 1, bias = 0, running_mean = 0, running_var = 1,
    num_batches_tracked = 0 (int64).
    """

    _ranks = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = _dtype(dtype)
        if affine:
            self.weight = Parameter(B.xp.empty(num_features, dtype=dt))
            if bias:
                self.bias = Parameter(B.xp.empty(num_features, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", plain(B.xp.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", plain(B.xp.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", plain(B.xp.zeros((), dtype=B.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def _check_input(self, input):
        shape = input.shape
        if len(shape) not in self._ranks or shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected an input "
                             f"of shape {self._layout.format(C=self.num_features)}, got "
                             f"shape {tuple(shape)}")

    def forward(self, input):
        self._check_input(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.data)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, statistics per channel over N
    (and L). See ``_BatchNorm`` for the running statistics and initialisation."""
    _ranks = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, statistics per channel over N, H, W.
    See ``_BatchNorm`` for the running statistics and initialisation."""
    _ranks = (4,)
    _layout = "(N, {C}, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) inputs, statistics per channel over N, D, H,
    W. See ``_BatchNorm`` for the running statistics and initialisation."""
    _ranks = (5,)
    _layout = "(N, {C}, D, H, W)"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims of x (*, *normalized_shape)
    (biased variance), then an elementwise affine map. Initialised as in PyTorch: weight =
    1, bias = 0 (shape normalized_shape)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dt = _dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(B.xp.ones(self.normalized_shape, dtype=dt))
            if bias:
                self.bias = Parameter(B.xp.zeros(self.normalized_shape, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.elementwise_affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def forward(self, input):
        ns = self.normalized_shape
        shape = tuple(input.shape)
        if shape[len(shape) - len(ns):] != ns or len(shape) < len(ns):
            raise ValueError(f"LayerNorm({ns}): expected an input of shape "
                             f"(*, {', '.join(map(str, ns))}), got shape {shape}")
        return F.layer_norm(input, ns, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Split the C channels of x (N, C, *) into ``num_groups`` groups, normalise each
    sample's group over its channels and positions, then a per-channel affine map.
    Initialised as in PyTorch: weight = 1, bias = 0 (shape (C,))."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        dt = _dtype(dtype)
        if affine:
            self.weight = Parameter(B.xp.ones(num_channels, dtype=dt))
            if bias:
                self.bias = Parameter(B.xp.zeros(num_channels, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def forward(self, input):
        shape = input.shape
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected an "
                             f"input of shape (N, {self.num_channels}, *), got shape "
                             f"{tuple(shape)}")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Across-channel local response normalization (PyTorch's formula, see
    ``F.local_response_norm``). x: (N, C, *) with at least 3 dims. No parameters."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        if input.ndim < 3:
            raise ValueError(f"LocalResponseNorm({self.size}): expected an input of shape "
                             f"(N, C, *) with 3 or more dimensions, got shape "
                             f"{tuple(input.shape)}")
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LocalContrastNorm(Module):
    """Local contrast normalization (Jarrett et al. 2009): subtract the Gaussian-weighted
    mean over a channel-and-space neighbourhood, then divide by the local weighted std
    (floored at its mean over the map). x: (N, C, H, W) or (C, H, W). No parameters; see
    ``F.local_contrast_norm``. No PyTorch equivalent."""

    def __init__(self, kernel_size=9, sigma=None, eps=1e-5):
        super().__init__()
        self.kernel_size, self.sigma, self.eps = kernel_size, sigma, eps

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"LocalContrastNorm(kernel_size={self.kernel_size}): expected an "
                             f"input of shape (N, C, H, W) or (C, H, W), got shape "
                             f"{tuple(input.shape)}")
        return F.local_contrast_norm(input, self.kernel_size, self.sigma, self.eps)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, eps={self.eps}"
