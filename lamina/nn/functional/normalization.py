"""Normalization functions (see lamina/nn/layers/normalization.py for the modules)."""

__all__ = []
