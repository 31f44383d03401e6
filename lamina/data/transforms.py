"""Input transforms on NumPy arrays: one sample ``(C, H, W)`` / ``(D,)`` or a whole batch
``(N, C, H, W)`` / ``(N, D)``; random ones draw independent parameters per sample,
vectorized over the batch. Pass them as a dataset's ``transform`` or a DataLoader's
``batch_transform``.
"""
import numpy as np

from .. import backend as B


def _rng(rng):
    return rng if rng is not None else np.random.default_rng(int(B.rng().integers(2 ** 63)))


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return f"Compose({self.transforms})"


class Standardize:
    """(x - mean) / std with statistics from the training data, never the test data.

    ``Standardize.fit(train_x, axis=...)`` computes them: ``axis=None`` one scalar mean
    and std (images), ``axis=0`` per feature (tabular data), ``axis=(0, 2, 3)`` per
    channel of (N, C, H, W) images. ``eps`` keeps constant features finite. Output float32.
    """

    def __init__(self, mean, std, eps=1e-8):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.eps = eps

    @classmethod
    def fit(cls, x, axis=None, eps=1e-8):
        x = np.asarray(x, dtype=np.float64)
        keep = axis is not None and axis != 0 and axis != (0,)
        mean = x.mean(axis=axis, keepdims=keep)
        std = x.std(axis=axis, keepdims=keep)
        if keep:  # per channel: drop the batch axis so samples and batches both broadcast
            mean, std = mean[0], std[0]
        return cls(mean, std, eps)

    def __call__(self, x):
        out = np.asarray(x, dtype=np.float32) - self.mean
        out /= self.std + np.float32(self.eps)
        return out

    def state_dict(self):
        return {"mean": self.mean, "std": self.std, "eps": self.eps}

    def __repr__(self):
        return f"Standardize(mean={self.mean.round(4).tolist()}, std={self.std.round(4).tolist()})"


def _as_batch(x, sample_ndim, name):
    """(x as (N, C, H, W), how to restore the caller's shape)."""
    x = np.asarray(x)
    if sample_ndim not in (2, 3) or x.ndim not in (sample_ndim, sample_ndim + 1):
        raise ValueError(f"{name}: expected a sample of {sample_ndim} dims or a batch of "
                         f"{sample_ndim + 1} (sample_ndim={sample_ndim}), got shape {x.shape}")
    shape = x.shape
    if x.ndim == sample_ndim:
        x = x[None]
    if sample_ndim == 2:
        x = x[:, None]
    return x, shape


def _crop_per_sample(x, th, tw, pad, fill, rng):
    """A random (th, tw) window of each (zero-)padded sample in x (N, C, H, W)."""
    n, c, h, w = x.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    hp, wp = x.shape[-2:]
    if hp < th or wp < tw:
        raise ValueError(f"RandomCrop: crop {(th, tw)} is larger than the padded image "
                         f"{(hp, wp)}")
    top = rng.integers(0, hp - th + 1, n)
    left = rng.integers(0, wp - tw + 1, n)
    windows = np.lib.stride_tricks.sliding_window_view(x, (th, tw), axis=(2, 3))
    return windows[np.arange(n), :, top, left]          # (N, C, th, tw)


class RandomCrop:
    """Pad every side by ``padding`` (with ``fill``) and crop a random ``size`` window,
    one offset per sample (the classic MNIST/CIFAR augmentation).

    Input: one sample of ``sample_ndim`` dims ((C, H, W) by default, or (H, W) with
    ``sample_ndim=2``) or a batch with one more leading axis."""

    def __init__(self, size, padding=0, fill=0, sample_ndim=3, rng=None):
        self.size = (size, size) if np.isscalar(size) else tuple(size)
        self.padding = padding
        self.fill = fill
        self.sample_ndim = sample_ndim
        self.rng = _rng(rng)

    def __call__(self, x):
        xb, shape = _as_batch(x, self.sample_ndim, "RandomCrop")
        out = _crop_per_sample(xb, *self.size, self.padding, self.fill, self.rng)
        return out.reshape(shape[:-2] + self.size)


class RandomHorizontalFlip:
    """Mirror each sample left-right with probability ``p`` (input as for RandomCrop)."""

    def __init__(self, p=0.5, sample_ndim=3, rng=None):
        self.p = p
        self.sample_ndim = sample_ndim
        self.rng = _rng(rng)

    def __call__(self, x):
        xb, shape = _as_batch(x, self.sample_ndim, "RandomHorizontalFlip")
        flip = self.rng.random(len(xb)) < self.p
        out = xb.copy()
        out[flip] = xb[flip][..., ::-1]
        return out.reshape(shape)


class RandomShift:
    """Translate each sample by up to ``max_shift`` pixels along each axis, filling the
    uncovered border with ``fill`` (input as for RandomCrop)."""

    def __init__(self, max_shift=2, fill=0, sample_ndim=3, rng=None):
        self.max_shift = max_shift
        self.fill = fill
        self.sample_ndim = sample_ndim
        self.rng = _rng(rng)

    def __call__(self, x):
        xb, shape = _as_batch(x, self.sample_ndim, "RandomShift")
        out = _crop_per_sample(xb, *xb.shape[-2:], self.max_shift, self.fill, self.rng)
        return out.reshape(shape)


class GaussianNoise:
    """x + N(0, std²) (input corruption, e.g. for a denoising autoencoder's inputs)."""

    def __init__(self, std=0.1, rng=None):
        self.std = std
        self.rng = _rng(rng)

    def __call__(self, x):
        x = np.asarray(x)
        noise = self.rng.standard_normal(x.shape, dtype=np.float32) * np.float32(self.std)
        return (x + noise).astype(x.dtype if x.dtype.kind == "f" else np.float32, copy=False)
