"""The 8x8 handwritten digits (UCI optdigits, 1,797 images) shipped inside the package."""
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), "digits.npz")


def load_digits(split="all", test_fraction=0.2, seed=0, flatten=True):
    """Images scaled to [0, 1] and integer labels, as NumPy arrays.

    ``split``: 'all', 'train' or 'test'; the train/test split is a fixed stratified-by-
    shuffle permutation given ``seed``, so every caller sees the same test images.
    Returns ``(x, y)`` with x float32 (N, 64) (or (N, 8, 8) if not ``flatten``), y int64 (N,).
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"load_digits: split must be 'all', 'train' or 'test', got {split!r}")
    with np.load(_PATH, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    x = images.astype(np.float32) / 16.0
    y = labels.astype(np.int64)
    if flatten:
        x = x.reshape(len(x), -1)
    if split == "all":
        return x, y
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    idx = order[:n_test] if split == "test" else order[n_test:]
    return x[idx], y[idx]
