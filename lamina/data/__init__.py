"""Data sets that ship with lamina (more loaders arrive with the training-system issue)."""
from .digits import load_digits

__all__ = ["load_digits"]
