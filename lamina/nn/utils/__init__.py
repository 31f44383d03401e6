"""Utilities on parameters: flat buffers (Torch7's getParameters)."""
from .flat import flat_parameters, flatten_parameters, FlatBuffer
from .regularization import l1_penalty, l2_penalty, max_norm_
from .weight_norm import weight_norm, remove_weight_norm
from .clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm, clip_grads_with_norm_
from . import rnn

__all__ = ["flat_parameters", "flatten_parameters", "FlatBuffer", "weight_norm",
           "remove_weight_norm", "l1_penalty", "l2_penalty", "max_norm_", "clip_grad_norm_",
           "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "rnn"]
