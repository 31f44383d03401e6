"""lamina: a readable deep-learning framework on NumPy.

Tensors record the operations applied to them; ``loss.backward()`` differentiates any graph
of them; ``lamina.nn`` assembles networks from modules; ``lamina.optim`` fits them.
"""
from . import allocator  # noqa: F401  (malloc settings: see lamina/allocator.py)
from . import backend
from .backend import (float16, float32, float64, int8, int16, int32, int64, uint8, bool_,
                      manual_seed, get_default_dtype, set_default_dtype, set_backend)
from .tensor import (Tensor, Parameter, tensor, as_tensor, from_numpy, zeros, ones, empty, full,
                     arange, linspace, eye, rand, randn, randint, randperm, zeros_like,
                     ones_like, empty_like, full_like, rand_like, randn_like, randint_like)
from . import tensor_methods  # noqa: F401  (attaches operators and methods to Tensor)
from .grad_mode import no_grad, enable_grad, set_grad_enabled, is_grad_enabled
from .ops import *  # noqa: F401,F403
from .ops import max, min, sum, abs, round, all, any, pow  # noqa: F401  (shadow builtins here)
from . import autograd
from .autograd import value_and_grad
from .autograd.functional import grad_of as grad
from . import nn, optim, data
from .io import save, load

bool = bool_
float = float32
double = float64
half = float16
long = int64
__version__ = "0.1.0"
