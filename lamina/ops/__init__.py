"""Differentiable primitives, one family a file. Each op works on Tensors and records a
backward closure next to its forward."""
from .elementwise import (add, sub, rsub, mul, div, rdiv, floor_divide, remainder, pow, rpow,
                          neg, exp, log, log2, log10, log1p, expm1, sqrt, rsqrt, sin, cos, tan,
                          tanh, sigmoid, abs, square, reciprocal, arctan, atan, sinh, cosh, relu,
                          sign, floor, ceil, round, trunc, clamp, clip, maximum, minimum, where,
                          lerp, cast, clone, contiguous, unbroadcast)
from .reduce import (sum, mean, var, std, var_mean, std_mean, prod, amax, amin, max, min,
                     argmax, argmin, logsumexp, norm, cumsum, all, any, count_nonzero)
from .shape import (reshape, view, flatten, unflatten, permute, transpose, swapaxes, swapdims,
                    t, movedim, squeeze, unsqueeze, expand, broadcast_to, expand_as, repeat,
                    tile, cat, concatenate, concat, stack, split, chunk, unbind, flip, roll, pad)
from .indexing import getitem, gather, scatter_add, index_select, masked_fill, take
from .linalg import matmul, mm, bmm, dot, outer, linear, einsum
from .softmax import softmax, log_softmax
from .loss import cross_entropy, binary_cross_entropy_with_logits
from .compare import eq, ne, lt, le, gt, ge, isnan, isinf, isfinite, logical_not, \
    logical_and, logical_or, equal, allclose, isclose
