"""Conv functions (see lamina/nn/layers/conv.py for the modules)."""

__all__ = []
