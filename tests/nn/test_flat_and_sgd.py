"""Flat parameter buffers (Torch7's getParameters) and SGD against torch.optim.SGD."""
import numpy as np
import pytest
import torch
import torch.nn as tnn

import lamina
import lamina.nn as nn
from lamina.nn.utils import flat_parameters
from helpers import rand


def mlp_pair(seed=0, bias=True):
    torch.manual_seed(seed)
    tnet = tnn.Sequential(tnn.Linear(4, 8, bias=bias), tnn.Tanh(), tnn.Linear(8, 3, bias=bias))
    net = nn.Sequential(nn.Linear(4, 8, bias=bias), nn.Tanh(), nn.Linear(8, 3, bias=bias))
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    return net, tnet


X = rand(16, 4, seed=1).astype(np.float32)
Y = rand(16, 3, seed=2).astype(np.float32)


def lamina_loss(net, i=0):
    x, y = X[i % 4 * 4:(i % 4 + 1) * 4], Y[i % 4 * 4:(i % 4 + 1) * 4]
    return nn.MSELoss()(net(lamina.tensor(x)), lamina.tensor(y))


def torch_loss(tnet, i=0):
    x, y = X[i % 4 * 4:(i % 4 + 1) * 4], Y[i % 4 * 4:(i % 4 + 1) * 4]
    return tnn.MSELoss()(tnet(torch.tensor(x)), torch.tensor(y))


def assert_params_equal(net, tnet, atol=1e-6, msg=""):
    for (n, p), tp in zip(net.named_parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), atol=atol, rtol=0,
                                   err_msg=f"{msg} {n}")


# ---------------------------------------------------------------- flat parameters
def test_flat_parameters_are_views():
    net, tnet = mlp_pair()
    params, grads = flat_parameters(net)
    n = sum(p.numel() for p in tnet.parameters())
    for a in (params, grads):
        assert a.ndim == 1 and a.size == n and a.flags.c_contiguous and a.dtype == np.float32
    np.testing.assert_array_equal(
        params, np.concatenate([p.detach().numpy().ravel() for p in tnet.parameters()]))
    off = 0
    for p in net.parameters():
        assert np.shares_memory(p.data, params) and np.shares_memory(p.grad.data, grads)
        np.testing.assert_array_equal(params[off:off + p.numel()], p.numpy().ravel())
        off += p.numel()
    params[0] = 42.0
    assert net[0].weight.numpy()[0, 0] == 42.0


def test_backward_writes_into_flat_grad():
    net, tnet = mlp_pair()
    params, grads = flat_parameters(net)
    assert not grads.any()
    lamina_loss(net).backward()
    torch_loss(tnet).backward()
    np.testing.assert_allclose(
        grads, np.concatenate([p.grad.numpy().ravel() for p in tnet.parameters()]),
        rtol=1e-5, atol=1e-7)
    net.zero_grad()                 # zeroes in place: the views survive
    assert not grads.any() and all(np.shares_memory(p.grad.data, grads)
                                   for p in net.parameters())
    lamina_loss(net).backward()
    assert grads.any()


def test_flat_keeps_existing_grads_and_values():
    net, _ = mlp_pair()
    lamina_loss(net).backward()
    before = [(p.numpy().copy(), p.grad.numpy().copy()) for p in net.parameters()]
    params, grads = flat_parameters(net)
    for p, (d, g) in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), d)
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_flat_twice_returns_same_storage():
    net, _ = mlp_pair()
    p1, g1 = flat_parameters(net)
    p2, g2 = flat_parameters(net)
    assert np.shares_memory(p1, p2) and np.shares_memory(g1, g2) and p1.size == p2.size
    p1[3] = -5.0
    assert p2[3] == -5.0


def test_flat_shared_parameters_counted_once():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.Tanh(), lin, nn.Linear(3, 2))
    params, grads = flat_parameters(net)
    assert params.size == 12 + 8
    tlin = tnn.Linear(3, 3)
    tnet = tnn.Sequential(tlin, tnn.Tanh(), tlin, tnn.Linear(3, 2))
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = rand(4, 3, seed=3).astype(np.float32)
    net(lamina.tensor(x)).sum().backward()
    tnet(torch.tensor(x)).sum().backward()
    np.testing.assert_allclose(
        grads, np.concatenate([p.grad.numpy().ravel() for p in tnet.parameters()]),
        rtol=1e-5, atol=1e-6)


def test_optimizer_after_flat_shares_storage():
    net, _ = mlp_pair()
    params, grads = flat_parameters(net)
    opt = lamina.optim.SGD(net.parameters(), lr=0.1)
    lamina_loss(net).backward()
    expected = params - 0.1 * grads
    opt.step()
    np.testing.assert_allclose(params, expected, rtol=1e-6)
    assert all(np.shares_memory(p.data, params) for p in net.parameters())
    opt.zero_grad(set_to_none=False)
    assert not grads.any()
    lamina_loss(net).backward()
    opt.zero_grad()  # lazy: the parameters read as zero, the raw storage is not filled
    assert all(not p.grad.numpy().any() for p in net.parameters())


def test_flat_rejects_mixed_dtypes_and_non_parameters():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=lamina.float64))
    with pytest.raises(TypeError, match="several dtypes"):
        flat_parameters(net)
    with pytest.raises(TypeError, match="expected Parameters, got Tensor"):
        nn.utils.flatten_parameters([lamina.zeros(2)])


def test_module_to_after_flat_rebinds_in_optimizer():
    net, tnet = mlp_pair()
    flat_parameters(net)
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    opt = lamina.optim.SGD(net.parameters(), lr=0.1)
    params, _ = flat_parameters(net)
    assert params.dtype == np.float64
    lamina_loss(net).backward()
    opt.step()
    assert all(np.shares_memory(p.data, params) for p in net.parameters())


# ---------------------------------------------------------------- SGD
def run_both(opt_kwargs, steps=6, groups=None, seed=0):
    net, tnet = mlp_pair(seed)
    if groups is None:
        opt = lamina.optim.SGD(net.parameters(), **opt_kwargs)
        topt = torch.optim.SGD(tnet.parameters(), **opt_kwargs)
    else:
        opt = lamina.optim.SGD(groups(net), **opt_kwargs)
        topt = torch.optim.SGD(groups(tnet), **opt_kwargs)
    for i in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        lamina_loss(net, i).backward()
        torch_loss(tnet, i).backward()
        opt.step()
        topt.step()
        assert_params_equal(net, tnet, msg=f"step {i}")
    return net, tnet, opt, topt


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.1, momentum=0.8, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(lr=0.1, maximize=True),
    dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, maximize=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.02),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch(kw):
    run_both(kw)


def _decay_groups(net):
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    return [{"params": weights, "weight_decay": 0.1},
            {"params": biases, "weight_decay": 0.0, "lr": 0.2}]


def test_sgd_param_groups_match_torch():
    net, tnet, opt, topt = run_both(dict(lr=0.05, momentum=0.9), groups=_decay_groups)
    assert opt.param_groups[1]["lr"] == 0.2 and opt.param_groups[0]["weight_decay"] == 0.1
    assert opt.param_groups[0]["momentum"] == 0.9     # defaults fill the groups


def test_sgd_lr_change_in_param_groups_is_used():
    net, tnet = mlp_pair()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.5)
    for i in range(4):
        for o in (opt, topt):
            o.param_groups[0]["lr"] = 0.1 / (i + 1)
            o.zero_grad()
        lamina_loss(net, i).backward()
        torch_loss(tnet, i).backward()
        opt.step()
        topt.step()
    assert_params_equal(net, tnet)


def test_sgd_zero_grad():
    net, _ = mlp_pair()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1)
    lamina_loss(net).backward()
    assert any(p.grad.numpy().any() for p in net.parameters())
    opt.zero_grad()
    assert all(not p.grad.numpy().any() for p in net.parameters())


def test_sgd_zero_grad_after_grads_set_to_none():
    """A user resetting grads PyTorch-style (p.grad = None) must not break the optimizer."""
    net, tnet = mlp_pair()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    for i in range(3):
        for p in net.parameters():
            p.grad = None
        topt.zero_grad()
        lamina_loss(net, i).backward()
        torch_loss(tnet, i).backward()
        opt.step()
        topt.step()
        assert_params_equal(net, tnet, msg=f"step {i}")


def test_sgd_closure():
    net, tnet = mlp_pair()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1)

    def closure():
        opt.zero_grad()
        loss = lamina_loss(net)
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = torch_loss(tnet)
        loss.backward()
        return loss

    loss, tloss = opt.step(closure), topt.step(tclosure)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
    assert_params_equal(net, tnet)


@pytest.mark.parametrize("groups", [None, _decay_groups])
def test_sgd_state_dict_round_trip_continues_identically(groups):
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    net, tnet, opt, topt = run_both(kw, steps=3, groups=groups)
    sd = opt.state_dict()
    # a fresh model and optimizer restored from the state dicts
    net2, _ = mlp_pair(seed=5)
    net2.load_state_dict(net.state_dict())
    opt2 = lamina.optim.SGD(net2.parameters() if groups is None else groups(net2), lr=1.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05
    for i in range(3, 6):
        opt2.zero_grad()
        topt.zero_grad()
        lamina_loss(net2, i).backward()
        torch_loss(tnet, i).backward()
        opt2.step()
        topt.step()
        assert_params_equal(net2, tnet, msg=f"step {i}")
    # the saved state is a copy: stepping did not change it
    buf = sd["state"][0]["momentum_buffer"]
    assert not np.shares_memory(buf, opt2.state[0]["momentum_buffer"])


def test_sgd_load_state_dict_mismatch():
    net, _ = mlp_pair()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1)
    other = lamina.optim.SGD(_decay_groups(mlp_pair()[0]), lr=0.1)
    with pytest.raises(ValueError, match="2 parameter groups in the state, 1 in the optimizer"):
        opt.load_state_dict(other.state_dict())


def test_sgd_errors():
    net, _ = mlp_pair()
    with pytest.raises(ValueError, match="empty parameter list"):
        lamina.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        ps = list(net.parameters())
        lamina.optim.SGD([{"params": ps[:2]}, {"params": ps[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="lr=-0.1"):
        lamina.optim.SGD(net.parameters(), lr=-0.1)
    with pytest.raises(ValueError, match="momentum=-0.5"):
        lamina.optim.SGD(net.parameters(), lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        lamina.optim.SGD(net.parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="zero dampening"):
        lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(TypeError, match="iterable of Parameters or dicts, got a single "
                                        "Parameter"):
        lamina.optim.SGD(net[0].weight, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Parameters"):
        lamina.optim.SGD([lamina.zeros(2, requires_grad=True)], lr=0.1)


def test_sgd_add_param_group():
    net, tnet = mlp_pair()
    ps, tps = list(net.parameters()), list(tnet.parameters())
    opt = lamina.optim.SGD(ps[:2], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tps[:2], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": ps[2:], "lr": 0.01})
    topt.add_param_group({"params": tps[2:], "lr": 0.01})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": ps[:1]})
    for i in range(3):
        opt.zero_grad()
        topt.zero_grad()
        lamina_loss(net, i).backward()
        torch_loss(tnet, i).backward()
        opt.step()
        topt.step()
    assert_params_equal(net, tnet)


def test_sgd_trains_digits_style_mlp_float64():
    net, tnet = mlp_pair(seed=2)
    net.double()
    tnet.double()
    opt = lamina.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    for i in range(5):
        opt.zero_grad()
        topt.zero_grad()
        x, y = X.astype(np.float64), Y.astype(np.float64)
        nn.MSELoss()(net(lamina.tensor(x)), lamina.tensor(y)).backward()
        tnn.MSELoss()(tnet(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        topt.step()
    assert_params_equal(net, tnet, atol=1e-12)


@pytest.mark.parametrize("frozen_steps", [(2, 3), (0, 1, 2)])
def test_sgd_skips_frozen_parameters_like_torch(frozen_steps):
    """requires_grad=False parameters passed to the optimizer are left alone (torch skips
    them since their grad is None), also under weight decay and momentum; unfrozen again,
    they continue with their old momentum buffer, or (frozen from the start) a fresh one,
    as in torch. (A fresh buffer after zero-filled state equals torch's only for
    dampening=0, hence no dampening here.)"""
    net, tnet = mlp_pair(seed=4)
    kw = dict(lr=0.1, momentum=0.9, weight_decay=0.1)
    opt = lamina.optim.SGD(net.parameters(), **kw)
    topt = torch.optim.SGD(tnet.parameters(), **kw)
    for i in range(6):
        trainable = i not in frozen_steps
        net[0].requires_grad_(trainable)
        tnet[0].requires_grad_(trainable)
        before = net[0].weight.numpy().copy()
        opt.zero_grad()
        topt.zero_grad(set_to_none=True)
        lamina_loss(net, i).backward()
        torch_loss(tnet, i).backward()
        opt.step()
        topt.step()
        if not trainable:
            np.testing.assert_array_equal(net[0].weight.numpy(), before)
        assert_params_equal(net, tnet, msg=f"step {i}")


def test_lazy_zero_grad_accumulates_like_eager_zero():
    """zero_grad() only marks grads zero; the first backward overwrites, the next adds."""
    net_a, _ = mlp_pair()
    net_b, _ = mlp_pair()
    opt_a = lamina.optim.SGD(net_a.parameters(), lr=0.1)
    opt_b = lamina.optim.SGD(net_b.parameters(), lr=0.1)
    for _ in range(2):  # twice, so the second round starts from stale storage
        opt_a.zero_grad()                      # lazy
        opt_b.zero_grad(set_to_none=False)     # eager fill
        for i in range(2):                     # gradient accumulation over two batches
            lamina_loss(net_a, i).backward()
            lamina_loss(net_b, i).backward()
        for pa, pb in zip(net_a.parameters(), net_b.parameters()):
            np.testing.assert_array_equal(pa.grad.numpy(), pb.grad.numpy())
        opt_a.step()
        opt_b.step()
        for pa, pb in zip(net_a.parameters(), net_b.parameters()):
            np.testing.assert_array_equal(pa.numpy(), pb.numpy())


def test_lazy_zero_grad_unused_parameter_reads_zero_and_is_not_moved():
    lin, unused = nn.Linear(3, 2), nn.Linear(3, 2)
    opt = lamina.optim.SGD(list(lin.parameters()) + list(unused.parameters()), lr=0.5)
    x = lamina.randn(4, 3)
    lin(x).sum().backward()
    unused(x).sum().backward()       # leaves stale values in the storage
    before = unused.weight.numpy().copy()
    opt.zero_grad()
    lin(x).sum().backward()          # `unused` gets no gradient this time
    opt.step()
    np.testing.assert_array_equal(unused.weight.numpy(), before)
    assert not unused.weight.grad.numpy().any()
