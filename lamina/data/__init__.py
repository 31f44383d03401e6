"""Data: datasets, the DataLoader, transforms, and the data sets lamina knows.

- ``Dataset, TensorDataset, Subset, ConcatDataset, random_split`` (dataset.py)
- ``DataLoader``, ``default_collate`` (loader.py)
- ``transforms``: Standardize, RandomCrop, RandomHorizontalFlip, RandomShift, GaussianNoise
- shipped: ``load_digits`` (UCI 8×8 digits), ``load_shakespeare`` + ``Vocab``
- found offline or downloaded: ``load_fashion_mnist``, ``load_mnist`` (IDX files)
- ``synthetic``: XOR, spirals, moons, polynomial regression, sequence tasks, aⁿbⁿ
"""
from . import synthetic, transforms
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .digits import load_digits
from .loader import DataLoader, default_collate
from .mnist import FASHION_CLASSES, DataNotFoundError, load_fashion_mnist, load_mnist, read_idx
from .text import NextTokenWindows, Vocab, load_shakespeare

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
           "DataLoader", "default_collate", "transforms", "synthetic", "load_digits",
           "load_fashion_mnist", "load_mnist", "read_idx", "DataNotFoundError",
           "FASHION_CLASSES", "load_shakespeare", "Vocab", "NextTokenWindows"]
