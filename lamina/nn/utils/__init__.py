"""Utilities on parameters: flat buffers (Torch7's getParameters)."""
from .flat import flat_parameters, flatten_parameters, FlatBuffer

__all__ = ["flat_parameters", "flatten_parameters", "FlatBuffer"]
