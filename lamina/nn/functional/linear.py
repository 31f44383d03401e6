"""Fully connected and multiplicative layers as functions."""
from ...ops import linear

__all__ = ["linear"]
