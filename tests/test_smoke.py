import numpy as np
import torch

import lamina
from helpers import check_op, rand


def test_chain_of_ops_matches_torch():
    a, b = rand(3, 4, seed=1), rand(4, seed=2)
    check_op(lambda x, y: ((x * y + 1).tanh() / (y.abs() + 1)).sum(dim=1),
             lambda x, y: ((x * y + 1).tanh() / (y.abs() + 1)).sum(dim=1), a, b)


def test_fanout_gets_both_contributions():
    x = lamina.tensor([2.0], requires_grad=True)
    y = x * x + x
    y.backward()
    assert x.grad.item() == 5.0
