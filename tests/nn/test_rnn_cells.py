"""Single-step recurrent cells: RNNCell (tanh/relu), LSTMCell, GRUCell against torch.nn's
cells; PeepholeLSTMCell and LeakyRNNCell against references built from torch primitives;
float64 gradcheck of every cell; errors; lazy weight-gradient accumulation paths."""
import math

import numpy as np
import pytest
import torch

import lamina
from lamina import nn
from lamina.autograd import gradcheck

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru", "peephole", "leaky", "leaky_learn"]
TORCH_CELLS = {"rnn_tanh": lambda i, h, b: torch.nn.RNNCell(i, h, b, "tanh"),
               "rnn_relu": lambda i, h, b: torch.nn.RNNCell(i, h, b, "relu"),
               "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def lam_cell(kind, i, h, bias):
    if kind.startswith("rnn"):
        return nn.RNNCell(i, h, bias, nonlinearity=kind[4:])
    if kind == "lstm":
        return nn.LSTMCell(i, h, bias)
    if kind == "gru":
        return nn.GRUCell(i, h, bias)
    if kind == "peephole":
        return nn.PeepholeLSTMCell(i, h, bias)
    return nn.LeakyRNNCell(i, h, bias, alpha=np.linspace(0.2, 0.9, h),
                           learn_alpha=kind == "leaky_learn")


def has_c(kind):
    return kind in ("lstm", "peephole")


class TorchRef:
    """The same cell in torch: torch.nn's module, or the documented equations written with
    torch primitives (peephole, leaky). ``params`` maps lamina's names to torch tensors."""

    def __init__(self, kind, cell, dtype):
        self.kind = kind
        tdt = torch.float64 if dtype == np.float64 else torch.float32
        sd = {k: v.numpy().copy() for k, v in cell.state_dict().items()}
        if kind in TORCH_CELLS:
            self.mod = TORCH_CELLS[kind](cell.input_size, cell.hidden_size,
                                         cell.bias).to(tdt)
            self.mod.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
            self.params = dict(self.mod.named_parameters())
        else:
            self.params = {k: torch.tensor(v, requires_grad=(k != "alpha" or
                                                             kind == "leaky_learn"))
                           for k, v in sd.items()}

    def __call__(self, x, state):
        if self.kind in TORCH_CELLS:
            return self.mod(x, state)
        p = self.params
        unb = x.dim() == 1
        if unb:
            x = x[None]
            state = None if state is None else (tuple(s[None] for s in state)
                                                if isinstance(state, tuple) else state[None])
        H = p["weight_hh"].shape[1]
        gates = x @ p["weight_ih"].T
        if self.kind == "peephole":
            h, c = state if state is not None else (x.new_zeros(x.shape[0], H),) * 2
        else:
            h = state if state is not None else x.new_zeros(x.shape[0], H)
        gates = gates + h @ p["weight_hh"].T
        if "bias_ih" in p:
            gates = gates + p["bias_ih"] + p["bias_hh"]
        if self.kind == "peephole":
            i, f, g, o = gates.chunk(4, 1)
            i = torch.sigmoid(i + p["weight_ci"] * c)
            f = torch.sigmoid(f + p["weight_cf"] * c)
            c2 = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + p["weight_co"] * c2)
            out = (o * torch.tanh(c2), c2)
            return tuple(t[0] for t in out) if unb else out
        a = p["alpha"]
        out = (1 - a) * h + a * torch.tanh(gates)
        return out[0] if unb else out


def _tol(dtype):
    return dict(rtol=1e-8, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


def run_parity(kind, dtype, bias=True, with_hx=True, batched=True, steps=1, seed=0,
               B=4, I=5, H=6):
    rng = np.random.default_rng(seed)
    cell = lam_cell(kind, I, H, bias).to(lamina.float64 if dtype == np.float64
                                        else lamina.float32)
    with lamina.no_grad():
        for name, p in cell.named_parameters():
            if name != "alpha":
                p.data[...] = rng.standard_normal(p.shape) * 0.5
    ref = TorchRef(kind, cell, dtype)
    lead = (B,) if batched else ()
    xs = [rng.standard_normal(lead + (I,)).astype(dtype) for _ in range(steps)]
    n_state = 2 if has_c(kind) else 1
    s0 = [rng.standard_normal(lead + (H,)).astype(dtype) for _ in range(n_state)] \
        if with_hx else None
    lx = [lamina.tensor(a, requires_grad=True) for a in xs]
    tx = [torch.tensor(a, requires_grad=True) for a in xs]
    ls = [lamina.tensor(a, requires_grad=True) for a in s0] if with_hx else None
    ts = [torch.tensor(a, requires_grad=True) for a in s0] if with_hx else None
    lstate = None if ls is None else (tuple(ls) if n_state == 2 else ls[0])
    tstate = None if ts is None else (tuple(ts) if n_state == 2 else ts[0])
    lloss = tloss = 0
    tol = _tol(dtype)
    for t in range(steps):
        lstate, tstate = cell(lx[t], lstate), ref(tx[t], tstate)
        lo = lstate if n_state == 2 else (lstate,)
        to = tstate if n_state == 2 else (tstate,)
        for k, (a, b) in enumerate(zip(lo, to)):
            assert a.shape == tuple(b.shape) and a.dtype == dtype
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol,
                                       err_msg=f"{kind} step {t} output {k}")
            v = rng.standard_normal(a.shape).astype(dtype)
            lloss = lloss + (a * lamina.tensor(v)).sum()
            tloss = tloss + (b * torch.tensor(v)).sum()
    lloss.backward()
    tloss.backward()
    for t, (a, b) in enumerate(zip(lx, tx)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol,
                                   err_msg=f"{kind}: input grad at step {t}")
    if with_hx:
        for k, (a, b) in enumerate(zip(ls, ts)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol,
                                       err_msg=f"{kind}: initial state {k} grad")
    names = [n for n, _ in cell.named_parameters()]
    assert set(names) == {n for n, p in ref.params.items() if p.requires_grad}
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), ref.params[name].grad.numpy(), **tol,
                                   err_msg=f"{kind}: {name} grad")
    return cell


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_single_step_parity(kind, dtype, bias, with_hx, batched):
    run_parity(kind, dtype, bias, with_hx, batched)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_hx", [True, False])
def test_unrolled_loop_parity(kind, dtype, with_hx):
    """5 steps, loss on every step's outputs: gradients accumulate through time and the
    lazy weight gradients of all steps are merged."""
    run_parity(kind, dtype, with_hx=with_hx, steps=5, B=3, I=4, H=5, seed=1)


def test_unrolled_loop_unbatched():
    for kind in KINDS:
        run_parity(kind, np.float64, batched=False, steps=4, seed=2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_hx", [True, False])
def test_gradcheck(kind, with_hx):
    rng = np.random.default_rng(3)
    cell = lam_cell(kind, 3, 2, True).double()
    x = [lamina.tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(2)]
    n_state = 2 if has_c(kind) else 1
    s = [lamina.tensor(rng.standard_normal((2, 2)), requires_grad=True)
         for _ in range(n_state if with_hx else 0)]
    params = list(cell.parameters())

    def f(*args):
        x0, x1 = args[:2]
        st = args[2:2 + len(s)]
        state = None if not st else (tuple(st) if n_state == 2 else st[0])
        outs = []
        for xt in (x0, x1):
            state = cell(xt, state)
            outs.extend(state if n_state == 2 else (state,))
        return lamina.stack(outs)
    assert gradcheck(f, x + s + params)


def test_peephole_zero_equals_lstm():
    torch.manual_seed(0)
    t = torch.nn.LSTMCell(4, 3).double()
    p = nn.PeepholeLSTMCell(4, 3).double()
    sd = {k: v.numpy() for k, v in t.state_dict().items()}
    sd.update({k: np.zeros(3) for k in ("weight_ci", "weight_cf", "weight_co")})
    p.load_state_dict(sd)
    x, h, c = (np.random.default_rng(0).standard_normal((2, k)) for k in (4, 3, 3))
    th, tc = t(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
    ph, pc = p(lamina.tensor(x), (lamina.tensor(h), lamina.tensor(c)))
    np.testing.assert_allclose(ph.numpy(), th.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pc.numpy(), tc.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_leaky_alpha_one_is_rnn_cell_and_alpha_registration():
    torch.manual_seed(0)
    t = torch.nn.RNNCell(4, 3).double()
    cell = nn.LeakyRNNCell(4, 3, alpha=1.0).double()
    cell.load_state_dict({**{k: v.numpy() for k, v in t.state_dict().items()},
                          "alpha": np.ones(3)})
    x, h = (np.random.default_rng(0).standard_normal((2, k)) for k in (4, 3))
    np.testing.assert_allclose(cell(lamina.tensor(x), lamina.tensor(h)).numpy(),
                               t(torch.tensor(x), torch.tensor(h)).detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    assert "alpha" in dict(cell.named_buffers()) and "alpha" not in \
        dict(cell.named_parameters())
    learn = nn.LeakyRNNCell(4, 3, alpha=[0.1, 0.5, 1.0], learn_alpha=True)
    assert "alpha" in dict(learn.named_parameters())
    np.testing.assert_allclose(learn.alpha.numpy(), [0.1, 0.5, 1.0], rtol=1e-6)
    learn.reset_parameters()
    np.testing.assert_allclose(learn.alpha.numpy(), [0.1, 0.5, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="LeakyRNNCell"):
        nn.LeakyRNNCell(4, 3, alpha=[0.1, 0.5])


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_state_dict_names_and_default_init(kind):
    t = TORCH_CELLS[kind](7, 16, True)
    lamina.manual_seed(0)
    cell = lam_cell(kind, 7, 16, True)
    sd = cell.state_dict()
    assert list(sd) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert sd[k].shape == tuple(v.shape), k
    bound = 1 / math.sqrt(16)
    for name, p in cell.named_parameters():
        a = p.numpy()
        assert a.dtype == np.float32
        assert a.max() <= bound and a.min() >= -bound, name
        assert a.max() > 0.6 * bound and a.min() < -0.6 * bound, name  # U(-k, k), not U(0, k)
    nb = lam_cell(kind, 7, 16, False)
    assert nb.bias_ih is None and list(nb.state_dict()) == ["weight_ih", "weight_hh"]


def test_peephole_and_leaky_param_shapes():
    p = nn.PeepholeLSTMCell(5, 4)
    shapes = {k: tuple(v.shape) for k, v in p.state_dict().items()}
    assert shapes == {"weight_ih": (16, 5), "weight_hh": (16, 4), "bias_ih": (16,),
                      "bias_hh": (16,), "weight_ci": (4,), "weight_cf": (4,),
                      "weight_co": (4,)}
    assert all(np.abs(v.numpy()).max() <= 0.5 for v in p.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_errors_name_cell_and_shapes(kind):
    cell = lam_cell(kind, 5, 4, True)
    name = type(cell).__name__
    good_state = lambda b: (lamina.zeros(b, 4), lamina.zeros(b, 4)) if has_c(kind) \
        else lamina.zeros(b, 4)  # noqa: E731
    with pytest.raises(ValueError, match=rf"{name}.*\(3, 6\)"):
        cell(lamina.zeros(3, 6))
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3, 5\)"):
        cell(lamina.zeros(2, 3, 5))
    bad = (lamina.zeros(3, 5), lamina.zeros(3, 4)) if has_c(kind) else lamina.zeros(3, 5)
    with pytest.raises(ValueError, match=rf"{name}.*\(3, 4\).*\(3, 5\)"):
        cell(lamina.zeros(3, 5), bad)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 4\)"):
        cell(lamina.zeros(3, 5), good_state(2))
    with pytest.raises(ValueError, match=name):  # batched input, unbatched state
        cell(lamina.zeros(3, 5), (lamina.zeros(4), lamina.zeros(4)) if has_c(kind)
             else lamina.zeros(4))
    if has_c(kind):
        with pytest.raises(ValueError, match=name):
            cell(lamina.zeros(3, 5), lamina.zeros(3, 4))
        with pytest.raises(ValueError, match=rf"{name}.*cell state.*\(3, 4\).*\(3, 2\)"):
            cell(lamina.zeros(3, 5), (lamina.zeros(3, 4), lamina.zeros(3, 2)))
    out = cell(lamina.zeros(3, 5), good_state(3))  # and the good case works
    assert (out[0] if has_c(kind) else out).shape == (3, 4)


def test_rnn_cell_bad_nonlinearity():
    with pytest.raises(ValueError, match="RNNCell.*sigmoid"):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")


def _torch_pair(kind, seed=0):
    torch.manual_seed(seed)
    t = TORCH_CELLS[kind](5, 6, True)
    cell = lam_cell(kind, 5, 6, True)
    cell.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})
    return cell, t


def _seq_loss(cell, xs, tensor):
    state, loss = None, 0
    for x in xs:
        state = cell(tensor(x), state)
        h = state[0] if isinstance(state, tuple) else state
        loss = loss + (h * h).sum()
    return loss


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_sgd_steps_with_flat_buffer_match_torch(kind):
    """The optimizer's lazily-zeroed flat gradients take the write_into path."""
    cell, t = _torch_pair(kind)
    xs = [np.random.default_rng(k).standard_normal((3, 5)).astype(np.float32)
          for k in range(6)]
    lopt = lamina.optim.SGD(cell.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        lopt.zero_grad()
        topt.zero_grad()
        ll = _seq_loss(cell, xs, lamina.tensor)
        tl = _seq_loss(t, xs, torch.tensor)
        ll.backward()
        tl.backward()
        lopt.step()
        topt.step()
        np.testing.assert_allclose(ll.item(), tl.item(), rtol=1e-4)
    for name, p in t.named_parameters():
        np.testing.assert_allclose(getattr(cell, name).numpy(), p.detach().numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


def test_grads_accumulate_over_backward_calls_and_mixed_uses():
    """Existing .grad (+= path), retain_graph (backward twice), and a weight used by the
    cell and by another op in one graph (lazy + array)."""
    cell, t = _torch_pair("lstm")
    cell.double()
    t.double()
    xs = [np.random.default_rng(k).standard_normal((3, 5)) for k in range(4)]
    ll = _seq_loss(cell, xs, lamina.tensor) + (cell.weight_hh * cell.weight_hh).sum()
    tl = _seq_loss(t, xs, torch.tensor) + (t.weight_hh * t.weight_hh).sum()
    ll.backward(retain_graph=True)
    ll.backward()
    tl.backward(retain_graph=True)
    tl.backward()
    for name, p in t.named_parameters():
        np.testing.assert_allclose(getattr(cell, name).grad.numpy(), p.grad.numpy(),
                                   rtol=1e-8, atol=1e-10, err_msg=name)


def test_weight_shared_by_lstm_cell_and_linear():
    """The LSTM cell's lazy weight gradients are feature-major (gates, batch) pieces,
    Linear's batch-major: one weight and bias used by both, over several steps, must
    still sum to PyTorch's gradients."""
    cell, t = _torch_pair("lstm")
    cell.double()
    t.double()
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((3, 5)) for _ in range(3)]
    side = rng.standard_normal((4, 5))
    lf, tf = lamina.nn.functional.linear, torch.nn.functional.linear
    ll = _seq_loss(cell, xs, lamina.tensor) + \
        (lf(lamina.tensor(side), cell.weight_ih, cell.bias_ih) ** 2).sum()
    tl = _seq_loss(t, xs, torch.tensor) + \
        (tf(torch.tensor(side), t.weight_ih, t.bias_ih) ** 2).sum()
    ll.backward()
    tl.backward()
    for name, p in t.named_parameters():
        np.testing.assert_allclose(getattr(cell, name).grad.numpy(), p.grad.numpy(),
                                   rtol=1e-8, atol=1e-10, err_msg=name)


def test_autograd_grad_and_no_grad():
    cell, t = _torch_pair("gru")
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    lx, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lw, tw = lamina.autograd.grad(cell(lx).sum(), [cell.weight_hh, lx]), \
        torch.autograd.grad(t(tx).sum(), [t.weight_hh, tx])
    for a, b in zip(lw, tw):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    assert cell.weight_hh.grad is None
    with lamina.no_grad():
        h = cell(lx)
        lh, lc = nn.LSTMCell(5, 6)(lx)
    assert not h.requires_grad and not lh.requires_grad and not lc.requires_grad


def test_long_chain_backprops():
    """1,000 steps of an LSTMCell loop: no recursion, finite gradients."""
    cell = nn.LSTMCell(3, 4)
    x = lamina.randn(2, 3)
    state = None
    for _ in range(1000):
        state = cell(x, state)
    state[0].sum().backward()
    assert np.isfinite(cell.weight_hh.grad.numpy()).all()


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_rejects_a_dtype_other_than_its_parameters(cls):
    """torch raises on float64 input to a float32 cell; so does lamina, naming the cell."""
    cell = getattr(nn, cls)(3, 4)
    with pytest.raises(ValueError, match=rf"{cls}: input dtype float64 does not match the "
                                         r"parameters' dtype float32"):
        cell(lamina.randn(2, 3, dtype=lamina.float64))
    with pytest.raises(ValueError, match=rf"{cls}: hidden state dtype float64"):
        h = lamina.zeros(2, 4, dtype=lamina.float64)
        cell(lamina.randn(2, 3), (h, lamina.zeros(2, 4)) if cls == "LSTMCell" else h)
    assert cell.double()(lamina.randn(2, 3, dtype=lamina.float64))[0].dtype == lamina.float64


def test_lstm_cell_backward_sees_weights_changed_in_place_between_passes():
    """The cell caches W^T for the rest of one backward pass; a weight edited in place
    (same array) before the next pass must be used there, as torch does."""
    cell, t = _torch_pair("lstm")
    cell.double()
    t.double()
    xs = [np.random.default_rng(k).standard_normal((3, 5)) for k in range(4)]
    for scale in (1.0, -0.5):
        cell.weight_hh.numpy()[...] *= scale       # in place: the same array object
        cell.weight_ih.numpy()[...] *= scale
        with torch.no_grad():
            t.weight_hh.mul_(scale)
            t.weight_ih.mul_(scale)
        cell.zero_grad()
        t.zero_grad()
        _seq_loss(cell, xs, lamina.tensor).backward()
        _seq_loss(t, xs, torch.tensor).backward()
        for name, p in t.named_parameters():
            np.testing.assert_allclose(getattr(cell, name).grad.numpy(), p.grad.numpy(),
                                       rtol=1e-8, atol=1e-10, err_msg=f"{name} x{scale}")
