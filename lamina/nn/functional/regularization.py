"""Regularization functions (see lamina/nn/layers/regularization.py for the modules)."""

__all__ = []
