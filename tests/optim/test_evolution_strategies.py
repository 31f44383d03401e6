"""EvolutionStrategies trains from the loss alone (no backward)."""
import numpy as np
import pytest

import lamina
from lamina import nn
import lamina.nn.functional as F
from lamina.data import synthetic
from lamina.optim.es import EvolutionStrategies, centered_ranks


def test_centered_ranks():
    np.testing.assert_allclose(centered_ranks(np.array([3.0, -1.0, 10.0])), [0.0, -0.5, 0.5])


def test_es_solves_a_quadratic_and_a_small_classifier():
    w = nn.Parameter(lamina.tensor([3.0, -2.0, 1.0]))
    opt = EvolutionStrategies([w], lr=0.1, sigma=0.1, population=20, seed=0)
    for _ in range(200):
        opt.step(lambda: (w * w).sum())
    assert float((w * w).sum().item()) < 1e-2

    lamina.manual_seed(0)
    x, y = synthetic.moons(200, noise=0.1, seed=0)
    xt, yt = lamina.from_numpy(x), lamina.from_numpy(y)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = EvolutionStrategies(net.parameters(), lr=0.05, sigma=0.05, population=40, seed=1)
    first = opt.step(lambda: F.cross_entropy(net(xt), yt))
    for _ in range(150):
        last = opt.step(lambda: F.cross_entropy(net(xt), yt))
    acc = (net(xt).argmax(1).numpy() == y).mean()
    assert last < first / 2 and acc > 0.85
    assert all(p.grad is None or float(p.grad.abs().sum().item()) == 0 for p in net.parameters())


def test_es_state_round_trip_and_errors():
    w = nn.Parameter(lamina.tensor([1.0, 1.0]))
    a = EvolutionStrategies([w], population=4, seed=3)
    a.step(lambda: (w * w).sum())
    b_w = nn.Parameter(lamina.tensor(w.numpy().copy()))
    b = EvolutionStrategies([b_w], population=4, seed=99)
    b.load_state_dict(a.state_dict())
    a.step(lambda: (w * w).sum())
    b.step(lambda: (b_w * b_w).sum())
    np.testing.assert_array_equal(w.numpy(), b_w.numpy())
    with pytest.raises(ValueError, match="even"):
        EvolutionStrategies([w], population=5)
    with pytest.raises(ValueError, match="closure"):
        a.step()


def test_exported_from_lamina_optim():
    import lamina
    assert lamina.optim.EvolutionStrategies is EvolutionStrategies
