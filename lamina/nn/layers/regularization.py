"""Regularization layers."""

__all__ = []
