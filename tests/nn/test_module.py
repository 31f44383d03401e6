"""Module system: registration, traversal, modes, dtypes, repr, state_dict, containers,
weight sharing and Torch7's explicit forward/backward, compared with torch.nn."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn

import lamina
import lamina.nn as nn
from helpers import rand


# ---------------------------------------------------------------- twin architectures
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("count", lamina.zeros(3))
        self.register_buffer("scratch", lamina.zeros(2), persistent=False)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.fc(x))


class TBlock(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc = tnn.Linear(4, 3)
        self.register_buffer("count", torch.zeros(3))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.act = tnn.Tanh()

    def forward(self, x):
        return self.act(self.fc(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(lamina.ones(2))
        self.block = Block()
        self.heads = nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2, bias=False)])
        self.named = nn.ModuleDict({"out": nn.Sequential(nn.ReLU(), nn.Linear(2, 2))})

    def forward(self, x):
        h = self.block(x)
        h = self.heads[0](h) + self.heads[1](h)
        return self.named["out"](h) * self.scale


class TNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.scale = tnn.Parameter(torch.ones(2))
        self.block = TBlock()
        self.heads = tnn.ModuleList([tnn.Linear(3, 2), tnn.Linear(3, 2, bias=False)])
        self.named = tnn.ModuleDict({"out": tnn.Sequential(tnn.ReLU(), tnn.Linear(2, 2))})

    def forward(self, x):
        h = self.block(x)
        h = self.heads[0](h) + self.heads[1](h)
        return self.named["out"](h) * self.scale


def torch_sd_numpy(tmodel):
    return {k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()}


def randomize(tmodel, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tmodel.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        for b in tmodel.buffers():
            b.copy_(torch.randn(b.shape, generator=g))


# ---------------------------------------------------------------- registration
def test_names_and_order_match_torch():
    net, tnet = Net(), TNet()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in tnet.named_children()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert "block.scratch" not in net.state_dict()
    assert "block.scratch" in dict(net.named_buffers())
    assert [tuple(p.shape) for p in net.parameters()] == \
        [tuple(p.shape) for p in tnet.parameters()]
    tname = {"TNet": "Net", "TBlock": "Block"}
    assert [type(m).__name__ for m in net.modules()] == \
        [tname.get(type(m).__name__, type(m).__name__) for m in tnet.modules()]
    assert [type(m).__name__ for m in net.children()] == \
        [tname.get(type(m).__name__, type(m).__name__) for m in tnet.children()]
    assert len(list(net.buffers())) == 2


def test_named_parameters_prefix_and_recurse():
    net, tnet = Net(), TNet()
    assert [n for n, _ in net.named_parameters(prefix="m")] == \
        [n for n, _ in tnet.named_parameters(prefix="m")]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert list(net.block.state_dict(prefix="b.")) == list(tnet.block.state_dict(prefix="b."))


def test_parameter_is_leaf_requiring_grad():
    p = nn.Parameter(lamina.zeros(2, 3))
    assert p.requires_grad and p.is_leaf and p.shape == (2, 3)
    q = nn.Parameter(np.ones(3, dtype=np.float32), requires_grad=False)
    assert not q.requires_grad
    assert repr(p).startswith("Parameter containing:")


def test_plain_attributes_are_not_registered():
    m = nn.Module()
    m.t = lamina.zeros(2)          # a Tensor that is not a Parameter: plain attribute
    m.k = 3
    m.w = nn.Parameter(lamina.zeros(2))
    assert [n for n, _ in m.named_parameters()] == ["w"]
    assert list(m.state_dict()) == ["w"]


def test_reassign_and_delete():
    m = nn.Module()
    m.w = nn.Parameter(lamina.zeros(2))
    with pytest.raises(TypeError, match="Module: cannot assign Tensor as parameter 'w'"):
        m.w = lamina.zeros(2)
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = np.zeros(2)
    m.w = None                     # allowed, as in torch: stays registered, skipped
    assert list(m.parameters()) == []
    m.w = nn.Parameter(lamina.ones(1))
    assert [n for n, _ in m.named_parameters()] == ["w"]
    m.sub = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = 3
    del m.sub
    assert list(m.children()) == []
    m.register_buffer("b", np.zeros(2), persistent=False)
    m.b = nn.Linear(1, 1)          # a module replaces the buffer registration
    assert "b" not in dict(m.named_buffers()) and "b" in dict(m.named_children())


def test_buffer_assignment_converts_arrays():
    m = nn.Module()
    m.register_buffer("running", lamina.zeros(3))
    m.running = np.arange(3.0)
    assert isinstance(m.running, lamina.Tensor)
    np.testing.assert_array_equal(m.state_dict()["running"].numpy(), [0, 1, 2])


@pytest.mark.parametrize("name", ["a.b", ""])
def test_bad_names(name):
    m = nn.Module()
    with pytest.raises(KeyError, match="no '.'"):
        m.add_module(name, nn.ReLU())
    with pytest.raises(KeyError, match="register_buffer"):
        m.register_buffer(name, lamina.zeros(1))


def test_attributes_before_init_give_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Bad()

    class Forgot(nn.Module):
        def __init__(self):
            self.k = 3            # plain attributes are fine, as in torch

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        list(Forgot().parameters())
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        nn.ReLU().nope


# ---------------------------------------------------------------- apply, modes, grads, dtypes
def test_apply_order_matches_torch():
    net, tnet = Net(), TNet()
    seen, tseen = [], []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    tnet.apply(lambda m: tseen.append(type(m).__name__.replace("TNet", "Net")
                                      .replace("TBlock", "Block")))
    assert seen == tseen


def test_apply_init():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)

    net.apply(init)
    assert all(np.all(p.numpy() == (0.5 if p.ndim == 2 else 0.0)) for p in net.parameters())


def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.block.train(False)
    assert not net.block.fc.training and net.heads.training
    with pytest.raises(ValueError, match="bool"):
        net.train("yes")


def test_train_calls_overridden_train_of_children():
    calls = []

    class Frozen(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(False)

    net = nn.Sequential(nn.Linear(1, 1), Frozen())
    net.train()
    assert calls == [True] and not net[1].training and net[0].training


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    net = Net()
    net(lamina.tensor(rand(5, 4, seed=0), dtype="float32")).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        assert (p.grad is None) if set_to_none else np.all(p.grad.numpy() == 0)


def test_to_double_float():
    net = Net()
    net(lamina.tensor(rand(2, 4, seed=0), dtype="float32")).sum().backward()
    assert net.double() is net
    assert all(t.dtype == np.float64 for t in list(net.parameters()) + list(net.buffers()))
    assert all(p.grad.dtype == np.float64 for p in net.parameters())
    out = net(lamina.tensor(rand(2, 4, seed=1)))
    assert out.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.to(lamina.float64)
    assert net.block.fc.weight.dtype == np.float64
    net.to("cpu", dtype="float32")
    assert net.block.fc.weight.dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        net.to(lamina.int64)


def test_requires_grad_():
    net = Net()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


# ---------------------------------------------------------------- repr
def test_repr_matches_torch():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False), nn.Tanh(),
                        nn.Sigmoid(), nn.Identity(), nn.Flatten(), nn.Unflatten(1, (1, 2)),
                        nn.Softmax(dim=1), nn.LogSoftmax(dim=1), nn.ReLU(inplace=True),
                        nn.Sequential(nn.CrossEntropyLoss(), nn.MSELoss(), nn.BCEWithLogitsLoss()))
    tnet = tnn.Sequential(tnn.Linear(4, 3), tnn.ReLU(), tnn.Linear(3, 2, bias=False), tnn.Tanh(),
                          tnn.Sigmoid(), tnn.Identity(), tnn.Flatten(), tnn.Unflatten(1, (1, 2)),
                          tnn.Softmax(dim=1), tnn.LogSoftmax(dim=1), tnn.ReLU(inplace=True),
                          tnn.Sequential(tnn.CrossEntropyLoss(), tnn.MSELoss(),
                                         tnn.BCEWithLogitsLoss()))
    assert repr(net) == repr(tnet)
    assert repr(Net()) == repr(TNet()).replace("TBlock", "Block").replace("TNet", "Net")


def test_repr_with_extra_and_children_matches_torch():
    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 1)

        def extra_repr(self):
            return "k=1\nj=2"

    class TA(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tnn.Linear(1, 1)

        def extra_repr(self):
            return "k=1\nj=2"

    assert repr(A()) == repr(TA()).replace("TA(", "A(")


# ---------------------------------------------------------------- state_dict
def test_load_torch_weights_gives_torch_forward():
    net, tnet = Net(), TNet()
    randomize(tnet, 1)
    res = net.load_state_dict(torch_sd_numpy(tnet))
    assert res.missing_keys == [] and res.unexpected_keys == []
    x = rand(6, 4, seed=2).astype(np.float32)
    out = net(lamina.tensor(x))
    np.testing.assert_allclose(out.numpy(), tnet(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(net.block.count.numpy(), tnet.block.count.numpy())


def test_load_from_torch_tensors_and_lamina_state_dict():
    tnet = TNet()
    randomize(tnet, 3)
    a = Net()
    a.load_state_dict(tnet.state_dict())       # torch tensors go through __array__
    b = Net()
    b.load_state_dict(a.state_dict())
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va.numpy(), tnet.state_dict()[k].numpy())
        np.testing.assert_array_equal(vb.numpy(), va.numpy())
    # loading copies: the source is not aliased
    a.block.fc.weight.data[...] = 7
    assert not np.any(b.block.fc.weight.numpy() == 7)


def test_state_dict_shares_memory_and_keep_vars():
    net = Net()
    sd = net.state_dict()
    assert np.shares_memory(sd["block.fc.weight"].numpy(), net.block.fc.weight.numpy())
    assert not sd["block.fc.weight"].requires_grad
    assert net.state_dict(keep_vars=True)["block.fc.weight"] is net.block.fc.weight


def _snapshot(net):
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def _assert_unchanged(net, snap):
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), snap[k], err_msg=k)


def test_load_missing_and_unexpected_raise_and_change_nothing():
    net, tnet = Net(), TNet()
    randomize(tnet, 4)
    sd = torch_sd_numpy(tnet)
    del sd["heads.1.weight"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    snap = _snapshot(net)
    with pytest.raises(RuntimeError, match=r"(?s)missing keys: heads\.1\.weight.*"
                                            r"unexpected keys: extra\.weight"):
        net.load_state_dict(sd)
    _assert_unchanged(net, snap)


def test_load_shape_mismatch_raises_names_and_changes_nothing():
    net, tnet = Net(), TNet()
    randomize(tnet, 5)
    sd = torch_sd_numpy(tnet)
    sd["block.fc.weight"] = np.zeros((3, 5), np.float32)
    snap = _snapshot(net)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch: block\.fc\.weight: checkpoint "
                                               r"shape \(3, 5\), model shape \(3, 4\)"):
            net.load_state_dict(sd, strict=strict)
        _assert_unchanged(net, snap)


def test_load_non_strict_reports_and_loads_the_rest():
    net, tnet = Net(), TNet()
    randomize(tnet, 6)
    sd = torch_sd_numpy(tnet)
    del sd["scale"]
    sd["bogus"] = np.ones(1, np.float32)
    before = net.scale.numpy().copy()
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["scale"] and unexpected == ["bogus"]
    np.testing.assert_array_equal(net.scale.numpy(), before)
    np.testing.assert_array_equal(net.block.fc.weight.numpy(), sd["block.fc.weight"])


def test_load_into_flat_bound_model_keeps_views():
    net, tnet = Net(), TNet()
    randomize(tnet, 7)
    flat, gflat = nn.utils.flat_parameters(net)
    views = [(p.data, p.grad) for p in net.parameters()]
    net.load_state_dict(torch_sd_numpy(tnet))
    for p, (d, g) in zip(net.parameters(), views):
        assert p.data is d and p.grad is g and np.shares_memory(p.numpy(), flat)
    np.testing.assert_array_equal(
        flat, np.concatenate([p.detach().numpy().ravel() for p in tnet.parameters()]))


def test_load_converts_dtype():
    net = nn.Linear(2, 2).double()
    net.load_state_dict({"weight": np.ones((2, 2), np.float32), "bias": np.zeros(2, np.float32)})
    assert net.weight.dtype == np.float64 and np.all(net.weight.numpy() == 1)


# ---------------------------------------------------------------- containers
def test_sequential_construction_styles_and_indexing():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s1 = nn.Sequential(a, b, c)
    s2 = nn.Sequential(OrderedDict([("fc1", a), ("act", b), ("fc2", c)]))
    s3 = nn.Sequential().add(a).add(b).add(c)
    assert [n for n, _ in s1.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in s2.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                     "fc2.bias"]
    assert list(s3.state_dict()) == list(s1.state_dict())
    for s in (s1, s2, s3):
        assert len(s) == 3 and s[0] is a and s[-1] is c and s[-3] is a
        assert list(s) == [a, b, c]
        sub = s[1:]
        assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
        x = lamina.tensor(rand(4, 2, seed=0), dtype="float32")
        np.testing.assert_array_equal(s(x).numpy(), c(b(a(x))).numpy())
    assert list(s2[1:].named_children())[0][0] == "act"     # slicing keeps names, as torch
    with pytest.raises(IndexError, match="out of range"):
        s1[3]


def test_modulelist_and_moduledict():
    ml = nn.ModuleList([nn.Linear(1, 1), nn.ReLU()])
    ml.append(nn.Tanh()).extend([nn.Sigmoid()])
    assert len(ml) == 4 and isinstance(ml[-1], nn.Sigmoid)
    assert [type(m).__name__ for m in ml[1:3]] == ["ReLU", "Tanh"]
    ml[1] = nn.Identity()
    assert isinstance(ml[1], nn.Identity)
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    md = nn.ModuleDict({"a": nn.Linear(1, 2)})
    md["b"] = nn.Linear(2, 1)
    md.update([("c", nn.ReLU())])
    assert list(md) == ["a", "b", "c"] and md.keys() == ["a", "b", "c"] and "b" in md
    assert len(md) == 3 and md["b"] is md.values()[1] and md.items()[2][0] == "c"
    assert list(md.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    with pytest.raises(KeyError):
        md["zz"]
    with pytest.raises(IndexError, match="ModuleList: index 9 is out of range for 4"):
        ml[9]


# ---------------------------------------------------------------- weight sharing
def test_shared_module_counted_once_and_grads_summed():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.Tanh(), lin)
    tlin = tnn.Linear(3, 3)
    tnet = tnn.Sequential(tlin, tnn.Tanh(), tlin)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    # like torch, a shared tensor is listed under each name in state_dict (so torch
    # checkpoints load), while parameters() lists it once
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert [n for n, _ in net.named_modules(remove_duplicate=False)] == \
        [n for n, _ in tnet.named_modules(remove_duplicate=False)]
    assert [n for n, _ in net.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in tnet.named_parameters(remove_duplicate=False)]
    assert len(list(net.parameters())) == 2 and len(list(net.modules())) == 3
    net.load_state_dict(torch_sd_numpy(tnet))
    x = rand(5, 3, seed=1).astype(np.float32)
    net(lamina.tensor(x)).sum().backward()
    tnet(torch.tensor(x)).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), tlin.weight.grad.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), tlin.bias.grad.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_shared_parameter_counted_once_and_grads_summed():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 3)
            self.dec = nn.Linear(3, 3)
            self.dec.weight = self.enc2 = nn.Parameter(lamina.zeros(3, 3))
            self.out = nn.Linear(3, 3)
            self.out.weight = self.dec.weight

        def forward(self, x):
            return self.out(self.dec(self.enc(x)).tanh())

    class TTied(tnn.Module):
        def __init__(self):
            super().__init__()
            self.enc = tnn.Linear(4, 3)
            self.dec = tnn.Linear(3, 3)
            self.dec.weight = self.enc2 = tnn.Parameter(torch.zeros(3, 3))
            self.out = tnn.Linear(3, 3)
            self.out.weight = self.dec.weight

        def forward(self, x):
            return self.out(self.dec(self.enc(x)).tanh())

    net, tnet = Tied(), TTied()
    randomize(tnet, 8)
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in tnet.named_parameters()]
    assert len(names) == len({id(p) for p in net.parameters()})
    assert list(net.state_dict()) == list(tnet.state_dict())
    net.load_state_dict(torch_sd_numpy(tnet))
    x = rand(2, 4, seed=3).astype(np.float32)
    net(lamina.tensor(x)).sum().backward()
    tnet(torch.tensor(x)).sum().backward()
    for (n, p), (_, tp) in zip(net.named_parameters(), tnet.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=n)


# ---------------------------------------------------------------- Torch7 forward/backward
def _mlp_pair(seed=0):
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    tnet = tnn.Sequential(tnn.Linear(4, 5), tnn.Tanh(), tnn.Linear(5, 3))
    randomize(tnet, seed)
    net.load_state_dict(torch_sd_numpy(tnet))
    return net, tnet


@pytest.mark.parametrize("as_tensor", [False, True])
def test_torch7_forward_backward_matches_autograd(as_tensor):
    net, tnet = _mlp_pair()
    x = rand(6, 4, seed=1).astype(np.float32)
    go = rand(6, 3, seed=2).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    tout = tnet(tx)
    tout.backward(torch.tensor(go))
    xin = lamina.tensor(x) if as_tensor else x
    out = net.forward(xin)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    gx = net.backward(xin, go if not as_tensor else lamina.tensor(go))
    assert isinstance(gx, lamina.Tensor) if as_tensor else type(gx) is np.ndarray
    np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    for p, tp in zip(net.parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6)
    if as_tensor:
        assert xin.grad is None and not xin.requires_grad   # the caller's input is untouched
    # a second forward/backward accumulates into parameter grads, like torch
    net.forward(xin)
    net.backward(xin, go)
    tnet(tx).backward(torch.tensor(go))
    for p, tp in zip(net.parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_torch7_single_layer_and_chained_modules():
    net, tnet = _mlp_pair(seed=3)
    x = rand(2, 4, seed=4).astype(np.float32)
    go = rand(2, 3, seed=5).astype(np.float32)
    # Torch7 style: backward through the layers one by one, chaining gradInput
    hs = [x]
    for m in net:
        hs.append(m.forward(hs[-1]).numpy())
    g = go
    for m, h in zip(reversed(list(net)), reversed(hs[:-1])):
        g = m.backward(h, g)
    tx = torch.tensor(x, requires_grad=True)
    tnet(tx).backward(torch.tensor(go))
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    for p, tp in zip(net.parameters(), tnet.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_torch7_backward_errors():
    net, _ = _mlp_pair()
    x = rand(2, 4, seed=0).astype(np.float32)
    with pytest.raises(RuntimeError, match=r"Sequential.backward: call forward\(input\) first"):
        net.backward(x, np.ones((2, 3), np.float32))
    net(x if False else lamina.tensor(x))                  # the __call__ path records nothing
    with pytest.raises(RuntimeError, match="call forward"):
        net.backward(x, np.ones((2, 3), np.float32))
    net.forward(x)
    with pytest.raises(RuntimeError, match="not the one given to the last forward"):
        net.backward(x.copy(), np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"grad_output of shape \(3,\) does not match the "
                                           r"output shape \(2, 3\)"):
        net.backward(x, np.ones(3, np.float32))
    net.backward(x, np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="call forward"):      # one backward per forward
        net.backward(x, np.ones((2, 3), np.float32))


def test_call_path_does_not_make_inputs_require_grad():
    net, _ = _mlp_pair()
    x = lamina.tensor(rand(2, 4, seed=0), dtype="float32")
    out = net(x)
    assert net._torch7 is None and not x.requires_grad
    # the only leaves of the graph that require grad are the parameters
    leaves, stack, seen = set(), [out], set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t._fn is None:
            leaves.add(id(t))
        stack.extend(p for p in t._parents if p is not None and p.requires_grad)
    assert leaves == {id(p) for p in net.parameters()}


def test_explicit_forward_keeps_upstream_graph_for_loss_backward():
    """``model.forward(h)`` used PyTorch-style: gradients still reach what produced h."""
    enc, dec = nn.Linear(3, 4), nn.Linear(4, 2)
    x = lamina.tensor(rand(5, 3, seed=0), dtype="float32")
    dec.forward(enc(x)).sum().backward()
    ref_w = enc.weight.grad.numpy().copy()
    enc.zero_grad()
    dec(enc(x)).sum().backward()
    np.testing.assert_allclose(ref_w, enc.weight.grad.numpy(), rtol=1e-6)


def test_torch7_backward_stops_at_connected_input():
    enc, dec = nn.Linear(3, 4), nn.Linear(4, 2)
    x = lamina.tensor(rand(5, 3, seed=0), dtype="float32")
    h = enc(x)
    dec.forward(h)
    gh = dec.backward(h, np.ones((5, 2), np.float32))
    np.testing.assert_allclose(gh.numpy(), np.ones((5, 2), np.float32) @ dec.weight.numpy(),
                               rtol=1e-6)
    assert enc.weight.grad is None and dec.weight.grad is not None


def test_torch7_multiple_inputs_and_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, a, b, k):
            return self.fc(a) * b * k, a.sum()

    m = Two()
    a, b = rand(3, 2, seed=1).astype(np.float32), rand(3, 2, seed=2).astype(np.float32)
    o1, o2 = m.forward(a, b, 2.0)
    g1 = rand(3, 2, seed=3).astype(np.float32)
    ga, gb = m.backward((a, b), (g1, np.float32(1.0)))
    w = m.fc.weight.numpy()
    y = a @ w.T + m.fc.bias.numpy()
    np.testing.assert_allclose(gb, g1 * y * 2, rtol=1e-5)
    np.testing.assert_allclose(ga, (g1 * b * 2) @ w + 1, rtol=1e-5)
