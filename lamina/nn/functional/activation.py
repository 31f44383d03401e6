"""Activation functions."""
from ...ops import relu, sigmoid, softmax, log_softmax, tanh

__all__ = ["relu", "tanh", "sigmoid", "softmax", "log_softmax"]
