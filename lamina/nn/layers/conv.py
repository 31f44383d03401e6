"""Conv layers."""

__all__ = []
