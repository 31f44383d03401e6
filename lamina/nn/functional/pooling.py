"""Pooling functions (see lamina/nn/layers/pooling.py for the modules)."""

__all__ = []
