"""RNN / LSTM / GRU layers and pad_sequence against PyTorch: outputs, final states and
every gradient (inputs, initial states, parameters), variable lengths, dropout,
gradcheck, state_dict interop, a 1000-step sequence and error messages."""

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as trnn

import lamina
from lamina import nn
from lamina.autograd import gradcheck
from lamina.nn.utils.rnn import pad_sequence

MODES = {  # name -> (lamina class, torch class, extra kwargs)
    "rnn_tanh": (nn.RNN, torch.nn.RNN, {}),
    "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}),
    "gru": (nn.GRU, torch.nn.GRU, {}),
}
T, BATCH, IN, HID = 5, 4, 3, 6
LENGTHS = [5, 2, 4, 1]          # unsorted, with a full-length and a length-1 sequence


def _pair(mode, dtype, **kw):
    lcls, tcls, extra = MODES[mode]
    kw = {**extra, **kw}
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    tm = tcls(IN, HID, **kw).to(tdt)
    lm = lcls(IN, HID, **kw, dtype=dtype)
    lm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    return lm, tm


def _flat(out, lstm):
    """(output, h_n[, c_n]) as a list."""
    return [out[0], *out[1]] if lstm else [out[0], out[1]]


def _run_both(mode, dtype=np.float64, num_layers=1, bidirectional=False, batch_first=False,
              init=False, lengths=None, seed=0, lm_tm=None):
    lstm = mode == "lstm"
    lm, tm = lm_tm or _pair(mode, dtype, num_layers=num_layers, bidirectional=bidirectional,
                             batch_first=batch_first)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((BATCH, T, IN) if batch_first else (T, BATCH, IN)).astype(dtype)
    lx, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lst, tst = [], []
    if init:
        for _ in range(2 if lstm else 1):
            s = rng.standard_normal((num_layers * D, BATCH, HID)).astype(dtype)
            lst.append(lamina.tensor(s, requires_grad=True))
            tst.append(torch.tensor(s, requires_grad=True))
    lhx = None if not init else (tuple(lst) if lstm else lst[0])
    thx = None if not init else (tuple(tst) if lstm else tst[0])
    lout = _flat(lm(lx, lhx, lengths=lengths), lstm)
    if lengths is None:
        tout = _flat(tm(tx, thx), lstm)
    else:
        packed = trnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first,
                                           enforce_sorted=False)
        po, hn = tm(packed, thx)
        o, _ = trnn.pad_packed_sequence(po, batch_first=batch_first, total_length=T)
        tout = _flat((o, hn), lstm)
    return lm, tm, (lx, lst, lout), (tx, tst, tout), rng


def _compare(mode, dtype, lm, tm, lam, tor, rng):
    f64 = dtype == np.float64
    rtol, atol = (1e-8, 1e-10) if f64 else (1e-4, 1e-5)
    lx, lst, lout = lam
    tx, tst, tout = tor
    names = ["output", "h_n", "c_n"]
    for name, a, b in zip(names, lout, tout):
        assert a.dtype == dtype, f"{name}: dtype {a.dtype}"
        assert a.shape == tuple(b.shape), f"{name}: shape {a.shape} vs torch {tuple(b.shape)}"
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{name} differs from torch")
    vs = [rng.standard_normal(a.shape).astype(dtype) for a in lout]
    sum(((a * lamina.tensor(v)).sum() for a, v in zip(lout, vs)), lamina.tensor(0.0, dtype=dtype)
        ).backward()
    sum((b * torch.tensor(v)).sum() for b, v in zip(tout, vs)).backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol * 10,
                               err_msg="input gradient")
    for i, (a, b) in enumerate(zip(lst, tst)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol * 10,
                                   err_msg=f"initial state {i} gradient")
    tp = dict(tm.named_parameters())
    lnames = [n for n, _ in lm.named_parameters()]
    assert lnames == list(tp), "parameter names/order differ from torch"
    for n, p in lm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=rtol,
                                   atol=atol * 10, err_msg=f"{n} gradient")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_parity_float64(mode, num_layers, bidirectional, batch_first, init, lengths):
    lm, tm, lam, tor, rng = _run_both(mode, np.float64, num_layers, bidirectional,
                                      batch_first, init, lengths)
    _compare(mode, np.float64, lm, tm, lam, tor, rng)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_parity_float32(mode, num_layers, bidirectional, batch_first, init, lengths):
    lm, tm, lam, tor, rng = _run_both(mode, np.float32, num_layers, bidirectional,
                                      batch_first, init, lengths, seed=1)
    _compare(mode, np.float32, lm, tm, lam, tor, rng)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_equal_running_each_sequence_alone(mode, bidirectional):
    """Padded batch with lengths == each sequence run on its own (values and gradients);
    padded outputs are zero; padding values do not matter."""
    lstm = mode == "lstm"
    lm, _ = _pair(mode, np.float64, num_layers=2, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(3)
    lens = [3, 5, 1, 4]
    seqs = [rng.standard_normal((n, IN)) for n in lens]
    h0 = rng.standard_normal((2 * D, len(lens), HID))
    c0 = rng.standard_normal((2 * D, len(lens), HID))
    ts = [lamina.tensor(s, requires_grad=True) for s in seqs]
    x = pad_sequence(ts, padding_value=7.0)        # garbage padding must not leak in
    lh0, lc0 = lamina.tensor(h0, requires_grad=True), lamina.tensor(c0, requires_grad=True)
    out = _flat(lm(x, (lh0, lc0) if lstm else lh0, lengths=lamina.tensor(lens)), lstm)
    gv = [rng.standard_normal(o.shape) for o in out]
    for b, n in enumerate(lens):
        assert not out[0].numpy()[n:, b].any(), "padded outputs must be zero"
    sum((o * lamina.tensor(v)).sum() for o, v in zip(out, gv)).backward()
    grads_batch = {k: p.grad.numpy().copy() for k, p in lm.named_parameters()}
    lm.zero_grad()
    for b, n in enumerate(lens):
        xb = lamina.tensor(seqs[b][:, None, :], requires_grad=True)
        hb = lamina.tensor(h0[:, b:b + 1], requires_grad=True)
        cb = lamina.tensor(c0[:, b:b + 1], requires_grad=True)
        ob = _flat(lm(xb, (hb, cb) if lstm else hb), lstm)
        np.testing.assert_allclose(ob[0].numpy()[:, 0], out[0].numpy()[:n, b], rtol=1e-10,
                                   atol=1e-12)
        for k in range(1, len(ob)):
            np.testing.assert_allclose(ob[k].numpy()[:, 0], out[k].numpy()[:, b], rtol=1e-10,
                                       atol=1e-12)
        loss = (ob[0] * lamina.tensor(gv[0][:n, b:b + 1])).sum()
        for k in range(1, len(ob)):
            loss = loss + (ob[k] * lamina.tensor(gv[k][:, b:b + 1])).sum()
        loss.backward()
        np.testing.assert_allclose(xb.grad.numpy()[:, 0], ts[b].grad.numpy(), rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(hb.grad.numpy()[:, 0], lh0.grad.numpy()[:, b], rtol=1e-9,
                                   atol=1e-12)
        if lstm:
            np.testing.assert_allclose(cb.grad.numpy()[:, 0], lc0.grad.numpy()[:, b],
                                       rtol=1e-9, atol=1e-12)
    for k, p in lm.named_parameters():  # accumulated over the separate runs
        np.testing.assert_allclose(p.grad.numpy(), grads_batch[k], rtol=1e-9, atol=1e-12,
                                   err_msg=k)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_lengths_all_full_and_sorted(mode):
    """lengths == T everywhere equals no lengths; sorted lengths match torch too."""
    lm, tm = _pair(mode, np.float64, bidirectional=True)
    rng = np.random.default_rng(5)
    x = lamina.tensor(rng.standard_normal((T, BATCH, IN)))
    a = lm(x)[0].numpy()
    b = lm(x, lengths=[T] * BATCH)[0].numpy()
    np.testing.assert_array_equal(a, b)
    lm2, tm2, lam, tor, rng = _run_both(mode, lengths=[5, 4, 4, 2], bidirectional=True)
    _compare(mode, np.float64, lm2, tm2, lam, tor, rng)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_all_shorter_than_input_match_torch(mode, batch_first):
    """No sequence uses the last padded steps (max(lengths) < T): those outputs are zero
    as after pad_packed_sequence(total_length=T), and states/gradients match torch."""
    lm, tm, lam, tor, rng = _run_both(mode, num_layers=2, bidirectional=True,
                                      batch_first=batch_first, init=True,
                                      lengths=[3, 1, 2, 3], lm_tm=_pair(
                                          mode, np.float64, num_layers=2, bidirectional=True,
                                          batch_first=batch_first))
    _compare(mode, np.float64, lm, tm, lam, tor, rng)
    out = lam[2][0].numpy()
    assert not (out[:, 3:] if batch_first else out[3:]).any()


@pytest.mark.parametrize("mode", list(MODES))
def test_unbatched_input(mode):
    lstm = mode == "lstm"
    lm, tm = _pair(mode, np.float64, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, IN))
    h0 = rng.standard_normal((4, HID))
    c0 = rng.standard_normal((4, HID))
    lh = (lamina.tensor(h0), lamina.tensor(c0)) if lstm else lamina.tensor(h0)
    th = (torch.tensor(h0), torch.tensor(c0)) if lstm else torch.tensor(h0)
    lo = _flat(lm(lamina.tensor(x), lh), lstm)
    to = _flat(tm(torch.tensor(x), th), lstm)
    for a, b in zip(lo, to):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("mode", list(MODES))
def test_gradcheck(mode):
    lstm = mode == "lstm"
    lcls, _, extra = MODES[mode]
    lamina.manual_seed(0)
    lm = lcls(2, 3, num_layers=2, bidirectional=True, dtype=np.float64, **extra)
    rng = np.random.default_rng(4)
    x = lamina.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h0 = lamina.tensor(rng.standard_normal((4, 2, 3)) * 0.5, requires_grad=True)
    c0 = lamina.tensor(rng.standard_normal((4, 2, 3)) * 0.5, requires_grad=True)

    def f(x, h0, c0, *params):
        return _flat(lm(x, (h0, c0) if lstm else h0, lengths=[3, 2]), lstm)
    assert gradcheck(f, [x, h0, c0] + list(lm.parameters()))


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_dropout_train_eval(mode):
    lstm = mode == "lstm"
    lcls, tcls, extra = MODES[mode]
    torch.manual_seed(0)
    tm = tcls(IN, HID, num_layers=3, dropout=0.5, **extra).double()
    lm = lcls(IN, HID, num_layers=3, dropout=0.5, dtype=np.float64, **extra)
    lm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((T, BATCH, IN))
    lm.eval()
    tm.eval()
    ev = _flat(lm(lamina.tensor(x)), lstm)
    ev2 = _flat(lm(lamina.tensor(x)), lstm)
    tev = _flat(tm(torch.tensor(x)), lstm)
    for a, a2, b in zip(ev, ev2, tev):
        np.testing.assert_array_equal(a.numpy(), a2.numpy())
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-8, atol=1e-10)
    lm.train()
    tr = lm(lamina.tensor(x))[0].numpy()
    assert not np.allclose(tr, ev[0].numpy()), "dropout in training had no effect"
    lm.dropout = 0.0
    np.testing.assert_array_equal(lm(lamina.tensor(x))[0].numpy(), ev[0].numpy())


def test_dropout_single_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="dropout"):
        nn.LSTM(IN, HID, num_layers=1, dropout=0.3)


@pytest.mark.parametrize("mode", list(MODES))
def test_state_dict_round_trip_and_init(mode):
    lcls, tcls, extra = MODES[mode]
    lm = lcls(IN, HID, num_layers=2, bidirectional=True, **extra)
    tm = tcls(IN, HID, num_layers=2, bidirectional=True, **extra)
    tsd = tm.state_dict()
    lsd = lm.state_dict()
    assert list(lsd) == list(tsd)
    bound = 1 / np.sqrt(HID)
    values = []
    for k, v in lsd.items():
        arr = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        assert arr.shape == tuple(tsd[k].shape), k
        assert arr.dtype == np.float32
        assert np.abs(arr).max() <= bound, k          # U(-1/sqrt(H), 1/sqrt(H))
        values.append(arr.ravel())
    values = np.concatenate(values)                   # hundreds of draws
    assert np.abs(values).max() > 0.9 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.15 * bound
    tm.load_state_dict({k: torch.from_numpy(np.array(v.numpy() if hasattr(v, "numpy") else v))
                        for k, v in lsd.items()})
    lm2 = lcls(IN, HID, num_layers=2, bidirectional=True, **extra)
    lm2.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((T, BATCH, IN)).astype(np.float32)
    np.testing.assert_array_equal(lm(lamina.tensor(x))[0].numpy(),
                                  lm2(lamina.tensor(x))[0].numpy())
    np.testing.assert_allclose(lm(lamina.tensor(x))[0].numpy(),
                               tm(torch.tensor(x))[0].detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", list(MODES))
def test_no_bias(mode):
    lm, tm, lam, tor, rng = _run_both(mode, lm_tm=_pair(mode, np.float64, bias=False,
                                                        num_layers=2, bidirectional=True),
                                      num_layers=2, bidirectional=True, init=True,
                                      lengths=LENGTHS)
    _compare(mode, np.float64, lm, tm, lam, tor, rng)
    assert all("bias" not in n for n, _ in lm.named_parameters())


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_zero_length_sequence_keeps_initial_state(mode):
    """A length-0 sequence (torch's packing refuses it) gives zero outputs, h_n = h0, and
    passes h_n's gradient straight to h0."""
    lstm = mode == "lstm"
    lm, _ = _pair(mode, np.float64, bidirectional=True)
    rng = np.random.default_rng(1)
    x = lamina.tensor(rng.standard_normal((T, 3, IN)))
    h0 = lamina.tensor(rng.standard_normal((2, 3, HID)), requires_grad=True)
    c0 = lamina.tensor(rng.standard_normal((2, 3, HID)), requires_grad=True)
    out = _flat(lm(x, (h0, c0) if lstm else h0, lengths=[2, 0, 5]), lstm)
    assert not out[0].numpy()[:, 1].any()
    np.testing.assert_array_equal(out[1].numpy()[:, 1], h0.numpy()[:, 1])
    if lstm:
        np.testing.assert_array_equal(out[2].numpy()[:, 1], c0.numpy()[:, 1])
    out[1].sum().backward()
    np.testing.assert_array_equal(h0.grad.numpy()[:, 1], np.ones((2, HID)))


def test_long_sequence_1000_steps():
    """1000 steps backpropagate (one node per layer: no recursion), gradients finite and
    equal to torch's."""
    torch.manual_seed(0)
    tm = torch.nn.LSTM(2, 4).double()
    lm = nn.LSTM(2, 4, dtype=np.float64)
    lm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1000, 2, 2))
    lx, tx = lamina.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo, (lh, lc) = lm(lx)
    to, (th, tc) = tm(tx)
    ((lo * lo).sum() + lh.sum() + lc.sum()).backward()
    ((to * to).sum() + th.sum() + tc.sum()).backward()
    assert np.isfinite(lx.grad.numpy()).all()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for n, p in lm.named_parameters():
        g = dict(tm.named_parameters())[n].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-8, atol=1e-10, err_msg=n)


def test_graph_is_one_node_per_layer_direction():
    """Memory stays linear in the length: the graph does not grow with the steps."""
    lm = nn.GRU(IN, HID, num_layers=2, bidirectional=True)
    x = lamina.tensor(np.zeros((200, 2, IN), np.float32), requires_grad=True)
    out, hn = lm(x)
    seen, stack = set(), [out, hn]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.extend(p for p in t._parents if p is not None)
    assert len(seen) < 60


def test_float32_kept_and_no_grad():
    lm = nn.LSTM(IN, HID, num_layers=2, bidirectional=True)
    x = lamina.tensor(np.ones((T, BATCH, IN), np.float32))
    with lamina.no_grad():
        out, (h, c) = lm(x)
    assert out.dtype == h.dtype == c.dtype == np.float32
    assert not out.requires_grad
    out2, _ = lm(x)
    np.testing.assert_array_equal(out.numpy(), out2.numpy())


def test_truncated_bptt_detach():
    """Carrying the state across chunks with detach() equals one run over the whole."""
    lm = nn.LSTM(IN, HID, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((8, 2, IN))
    whole, (hw, cw) = lm(lamina.tensor(x))
    o1, (h, c) = lm(lamina.tensor(x[:4]))
    o2, (h2, c2) = lm(lamina.tensor(x[4:], requires_grad=True), (h.detach(), c.detach()))
    np.testing.assert_allclose(np.concatenate([o1.numpy(), o2.numpy()]), whole.numpy(),
                               rtol=1e-12)
    o2.sum().backward()
    assert lm.weight_hh_l0.grad is not None


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("mode", list(MODES))
def test_errors(mode):
    lcls, _, extra = MODES[mode]
    lstm = mode == "lstm"
    name = "LSTM" if lstm else "GRU" if mode == "gru" else "RNN"
    lm = lcls(IN, HID, num_layers=2, **extra)
    x = lamina.tensor(np.zeros((T, BATCH, IN), np.float32))
    with pytest.raises(ValueError, match=rf"{name}.*\(5, 4, 7\).*input_size=3"):
        lm(lamina.tensor(np.zeros((T, BATCH, 7), np.float32)))
    with pytest.raises(ValueError, match=rf"{name}.*2-D.*3-D.*\(5,\)"):
        lm(lamina.tensor(np.zeros(T, np.float32)))
    with pytest.raises(ValueError, match=rf"{name}: lengths must lie in \[0, 5\].*max 6"):
        lm(x, lengths=[6, 1, 1, 1])
    with pytest.raises(ValueError, match=rf"{name}: lengths of shape \(3,\).*batch size 4"):
        lm(x, lengths=[1, 1, 1])
    bad = lamina.tensor(np.zeros((1, BATCH, HID), np.float32))
    good = lamina.tensor(np.zeros((2, BATCH, HID), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: expected h0 of shape \(2, 4, 6\).*"
                                         rf"got \(1, 4, 6\)"):
        lm(x, (bad, good) if lstm else bad)
    if lstm:
        with pytest.raises(ValueError, match=r"LSTM: expected c0 of shape \(2, 4, 6\)"):
            lm(x, (good, bad))
        with pytest.raises(ValueError, match="LSTM: hx must be a tuple"):
            lm(x, good)


def test_constructor_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(IN, HID, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(IN, HID, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size"):
        nn.LSTM(IN, 0)


# ---------------------------------------------------------------- pad_sequence
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence(batch_first, side):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 2, 3)) for n in (3, 1, 4)]
    ls = [lamina.tensor(s, requires_grad=True) for s in seqs]
    ts = [torch.tensor(s, requires_grad=True) for s in seqs]
    lo = pad_sequence(ls, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    to = trnn.pad_sequence(ts, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    assert lo.shape == tuple(to.shape)
    np.testing.assert_array_equal(lo.numpy(), to.detach().numpy())
    v = rng.standard_normal(lo.shape)
    (lo * lamina.tensor(v)).sum().backward()
    (to * torch.tensor(v)).sum().backward()
    for a, b in zip(ls, ts):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    with pytest.raises(ValueError, match="pad_sequence.*sequence 1"):
        pad_sequence([lamina.tensor(np.zeros((2, 3))), lamina.tensor(np.zeros((2, 4)))])
