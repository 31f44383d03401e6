"""Map-style datasets: anything with ``__len__`` and ``__getitem__``, as in PyTorch.

A dataset may also define ``__getitems__(indices)`` returning a whole batch at once;
:class:`DataLoader` uses it when present, so array-backed datasets batch with one fancy
index instead of a Python loop over samples.
"""
import bisect
import math

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Base class: subclasses implement ``__len__`` and ``__getitem__(i)``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


def _as_array(a):
    if isinstance(a, Tensor):
        return a.data
    return np.asarray(a)


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long arrays (or Tensors): ``ds[i] -> (x[i],
    y[i], ...)``. ``transform`` (optional) maps the first array's rows — one sample
    ``(C, H, W)`` from ``ds[i]``, a batch ``(N, C, H, W)`` from ``__getitems__``; the
    transforms in :mod:`lamina.data.transforms` accept both."""

    def __init__(self, *arrays, transform=None):
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        self.arrays = [_as_array(a) for a in arrays]
        n = len(self.arrays[0]) if self.arrays[0].ndim else -1
        if any(a.ndim == 0 or len(a) != n for a in self.arrays):
            raise ValueError(f"TensorDataset: all arrays need the same first dimension, got "
                             f"shapes {[tuple(a.shape) for a in self.arrays]}")
        self.transform = transform

    def __len__(self):
        return len(self.arrays[0])

    def _get(self, index):
        out = [a[index] for a in self.arrays]
        if self.transform is not None:
            out[0] = self.transform(out[0])
        return tuple(out)

    def __getitem__(self, index):
        return self._get(index)

    def __getitems__(self, indices):
        return self._get(np.asarray(indices, dtype=np.int64))


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def __getitems__(self, indices):
        picked = self.indices[np.asarray(indices, dtype=np.int64)]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(picked)
        return [self.dataset[int(i)] for i in picked]


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.ends = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.ends[-1]) if self.ends else 0

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"ConcatDataset: index {i} out of range for length {len(self)}")
        k = bisect.bisect_right(self.ends, i)
        start = self.ends[k - 1] if k else 0
        return self.datasets[k][i - start]


def random_split(dataset, lengths, generator=None, seed=None):
    """Split into non-overlapping :class:`Subset`s of the given lengths (ints summing to
    ``len(dataset)``, or fractions summing to 1, the remainder spread round-robin as in
    PyTorch). ``generator``: a ``numpy.random.Generator``; else one seeded with ``seed``."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(f, float) and 0 <= f <= 1 for f in lengths) \
            and math.isclose(sum(lengths), 1.0, abs_tol=1e-9):
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n or any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative integers "
                         f"summing to the dataset's length {n} (or fractions summing to 1)")
    rng = generator if generator is not None else np.random.default_rng(seed)
    order = rng.permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, order[start:start + int(k)]))
        start += int(k)
    return out
