"""Macro modules (ResidualBlock, InceptionModule, Highway) against the same compositions
built from torch.nn with the same parameter names."""
import numpy as np
import pytest
import torch
import torch.nn as T

import lamina
import lamina.nn as nn
from helpers import check_module, rand


def _t_conv_bn(cin, cout, k, stride=1, padding=0, norm=True):
    conv = T.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=not norm)
    return T.Sequential(conv, T.BatchNorm2d(cout)) if norm else T.Sequential(conv)


class TorchResidual(T.Module):
    def __init__(self, cin, cout, stride=1, kind="basic", expansion=4, norm=True,
                 residual=True):
        super().__init__()
        self.residual = residual
        if kind == "basic":
            self.body = T.Sequential(_t_conv_bn(cin, cout, 3, stride, 1, norm), T.ReLU(),
                                     _t_conv_bn(cout, cout, 3, 1, 1, norm))
        else:
            w = max(1, cout // expansion)
            self.body = T.Sequential(_t_conv_bn(cin, w, 1, 1, 0, norm), T.ReLU(),
                                     _t_conv_bn(w, w, 3, stride, 1, norm), T.ReLU(),
                                     _t_conv_bn(w, cout, 1, 1, 0, norm))
        if residual and (stride != 1 or cin != cout):
            self.shortcut = _t_conv_bn(cin, cout, 1, stride, 0, norm)
        else:
            self.shortcut = T.Identity()

    def forward(self, x):
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return torch.relu(out)


class TorchInception(T.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp, norm=False):
        super().__init__()

        def unit(a, b, k):
            return [*_t_conv_bn(a, b, k, 1, k // 2, norm), T.ReLU()]
        self.branch1 = T.Sequential(*unit(cin, c1, 1))
        self.branch3 = T.Sequential(*unit(cin, c3r, 1), *unit(c3r, c3, 3))
        self.branch5 = T.Sequential(*unit(cin, c5r, 1), *unit(c5r, c5, 5))
        self.branch_pool = T.Sequential(T.MaxPool2d(3, stride=1, padding=1), *unit(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                          self.branch_pool(x)], 1)


class TorchHighway(T.Module):
    def __init__(self, f):
        super().__init__()
        self.transform, self.gate = T.Linear(f, f), T.Linear(f, f)

    def forward(self, x):
        h, t = torch.relu(self.transform(x)), torch.sigmoid(self.gate(x))
        return h * t + x * (1 - t)


@pytest.mark.parametrize("cin,cout,stride,kind", [(3, 3, 1, "basic"), (3, 4, 2, "basic"),
                                                  (4, 8, 1, "bottleneck"),
                                                  (4, 8, 2, "bottleneck")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_block_matches_torch(cin, cout, stride, kind, dtype):
    x = rand(2, cin, 5, 5, seed=1)
    check_module(nn.ResidualBlock(cin, cout, stride, kind), TorchResidual(cin, cout, stride, kind),
                 x, dtype=dtype, steps=2)


def test_plain_block_has_no_shortcut():
    blk = nn.ResidualBlock(3, 3, residual=False)
    assert isinstance(blk.shortcut, nn.Identity)
    check_module(blk, TorchResidual(3, 3, residual=False), rand(2, 3, 4, 4, seed=2),
                 dtype=np.float64)


def test_residual_block_eval_mode_uses_running_stats():
    blk, tblk = nn.ResidualBlock(2, 4, 2), TorchResidual(2, 4, 2)
    check_module(blk, tblk, rand(3, 2, 6, 6, seed=3), dtype=np.float64, steps=2)
    blk.eval()
    tblk.eval()
    check_module(blk, tblk, rand(3, 2, 6, 6, seed=4), dtype=np.float64, randomize=False)


@pytest.mark.parametrize("norm", [False, True])
def test_inception_module_matches_torch(norm):
    args = (3, 2, 2, 3, 1, 2, 2)
    m = nn.InceptionModule(*args, norm=norm)
    assert m.out_channels == 2 + 3 + 2 + 2
    check_module(m, TorchInception(*args, norm=norm), rand(2, 3, 5, 5, seed=5),
                 dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_highway_matches_torch(dtype):
    check_module(nn.Highway(5), TorchHighway(5), rand(4, 5, seed=6), dtype=dtype)


def test_highway_gate_bias_starts_negative_so_input_is_carried():
    lamina.manual_seed(0)
    hw = nn.Highway(6, gate_bias=-3.0)
    assert np.all(hw.gate.bias.numpy() == -3.0)
    x = lamina.randn(8, 6)
    y = hw(x)
    # the gate is mostly closed, so the output stays near the input
    assert np.abs(y.numpy() - x.numpy()).mean() < 0.5 * np.abs(x.numpy()).mean()
