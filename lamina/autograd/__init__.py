"""Reverse-mode automatic differentiation: engine, grad mode, custom functions, checks."""
from ..grad_mode import no_grad, enable_grad, set_grad_enabled, is_grad_enabled
from .function import Function, Context
from .functional import grad, value_and_grad, grad_of
from .gradcheck import gradcheck, GradcheckError

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "Function",
           "Context", "grad", "value_and_grad", "grad_of", "gradcheck", "GradcheckError"]
