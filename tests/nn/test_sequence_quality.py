"""Issue 4 (sequence models) quality bar, the parts the per-layer test files leave open:
variable lengths against separate runs in more layouts, truncated BPTT gradients, memory
linear in the sequence length, error messages that name the layer and the shapes,
Transformer decoder memory masks, CTC known answers and module parity, and beam search /
Seq2Seq generation against brute-force enumeration."""
import itertools
import math
import tracemalloc

import numpy as np
import pytest
import torch

import lamina
import lamina.nn.functional as F
from lamina import nn
from lamina.nn.utils.rnn import pad_sequence

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched")

RNN_MODES = {  # name -> (lamina class, torch class, extra kwargs)
    "rnn_tanh": (nn.RNN, torch.nn.RNN, {}),
    "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}),
    "gru": (nn.GRU, torch.nn.GRU, {}),
}
IN, HID = 3, 4


def _tol(dtype):
    return dict(rtol=1e-8, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


def _states(out, lstm):
    """(output, h_n[, c_n]) of a recurrent layer as a flat list."""
    return [out[0], *out[1]] if lstm else [out[0], out[1]]


def _rnn_pair(mode, dtype=np.float64, **kw):
    lcls, tcls, extra = RNN_MODES[mode]
    torch.manual_seed(0)
    tm = tcls(IN, HID, **extra, **kw).to(torch.float64 if dtype == np.float64 else
                                          torch.float32)
    lm = lcls(IN, HID, **extra, **kw, dtype=dtype)
    lm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    return lm, tm


# ---------------------------------------------------------------- variable lengths
@pytest.mark.parametrize("mode", list(RNN_MODES))
def test_batch_first_lengths_without_h0_equal_each_sequence_alone(mode):
    """3 layers, bidirectional, batch_first, zero initial state: the padded batch with
    lengths gives each sequence's own outputs, final states and gradients."""
    lstm = mode == "lstm"
    lm, _ = _rnn_pair(mode, num_layers=3, bidirectional=True, batch_first=True)
    rng = np.random.default_rng(0)
    lens = [2, 5, 1, 4]
    seqs = [lamina.tensor(rng.standard_normal((n, IN)), requires_grad=True) for n in lens]
    x = pad_sequence(seqs, batch_first=True, padding_value=-3.0)
    out = _states(lm(x, lengths=lens), lstm)
    vs = [rng.standard_normal(o.shape) for o in out]
    sum((o * lamina.tensor(v)).sum() for o, v in zip(out, vs)).backward()
    batch_grads = {k: p.grad.numpy().copy() for k, p in lm.named_parameters()}
    lm.zero_grad()
    for b, n in enumerate(lens):
        xb = lamina.tensor(seqs[b].numpy()[None], requires_grad=True)
        alone = _states(lm(xb), lstm)
        np.testing.assert_allclose(alone[0].numpy()[0], out[0].numpy()[b, :n], rtol=1e-10,
                                   atol=1e-12, err_msg=f"sequence {b}: outputs")
        assert not out[0].numpy()[b, n:].any(), f"sequence {b}: padded outputs not zero"
        for k in range(1, len(alone)):
            np.testing.assert_allclose(alone[k].numpy()[:, 0], out[k].numpy()[:, b],
                                       rtol=1e-10, atol=1e-12, err_msg=f"sequence {b}: state")
        loss = (alone[0] * lamina.tensor(vs[0][b:b + 1, :n])).sum()
        for k in range(1, len(alone)):
            loss = loss + (alone[k] * lamina.tensor(vs[k][:, b:b + 1])).sum()
        loss.backward()
        np.testing.assert_allclose(xb.grad.numpy()[0], seqs[b].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=f"sequence {b}: input gradient")
    for k, p in lm.named_parameters():  # summed over the separate runs
        np.testing.assert_allclose(p.grad.numpy(), batch_grads[k], rtol=1e-9, atol=1e-12,
                                   err_msg=k)


# ---------------------------------------------------------------- truncated BPTT
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_truncated_bptt_gradient_stops_at_the_detached_state(mode):
    """Chunk 2 starts from chunk 1's detached state: chunk 1's inputs get no gradient and
    the parameter gradients are torch's for the same truncated graph."""
    lstm = mode == "lstm"
    lm, tm = _rnn_pair(mode, num_layers=2)
    x = np.random.default_rng(1).standard_normal((8, 2, IN))
    v = np.random.default_rng(2).standard_normal((4, 2, HID))

    def run(lib, layer):
        x1 = lib.tensor(x[:4], requires_grad=True)
        x2 = lib.tensor(x[4:], requires_grad=True)
        _, s = layer(x1)
        s = tuple(t.detach() for t in s) if lstm else s.detach()
        o2, _ = layer(x2, s)
        (o2 * lib.tensor(v)).sum().backward()
        return x1, x2

    l1, l2 = run(lamina, lm)
    t1, t2 = run(torch, tm)
    assert l1.grad is None and t1.grad is None
    np.testing.assert_allclose(l2.grad.numpy(), t2.grad.numpy(), rtol=1e-8, atol=1e-10)
    tp = dict(tm.named_parameters())
    for name, p in lm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-10, err_msg=name)


# ---------------------------------------------------------------- memory
def _peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _lstm_layer_step(T, batch=4, hidden=16):
    lamina.manual_seed(0)
    m = nn.LSTM(8, hidden, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((T, batch, 8))

    def fn():
        lx = lamina.tensor(x, requires_grad=True)
        out, (h, c) = m(lx)
        (out.sum() + h.sum() + c.sum()).backward()
        assert np.isfinite(lx.grad.numpy()).all()
    return fn


def _lstm_cell_loop(T, batch=4, hidden=16):
    lamina.manual_seed(0)
    cell = nn.LSTMCell(8, hidden).double()
    x = np.random.default_rng(0).standard_normal((T, batch, 8))

    def fn():
        lx = lamina.tensor(x, requires_grad=True)
        state, loss = None, 0
        for t in range(T):
            state = cell(lx[t], state)
            loss = loss + state[0].sum()
        loss.backward()
        assert np.isfinite(lx.grad.numpy()).all()
    return fn


@pytest.mark.parametrize("make", [_lstm_layer_step, _lstm_cell_loop], ids=["LSTM", "LSTMCell"])
def test_memory_grows_linearly_with_length(make):
    """Peak traced memory of forward + backward over T, 2T and 4T steps (T = 250): doubling
    the length doubles the memory (not 4x), and each step costs a bounded number of
    (batch, hidden) float64 arrays."""
    T, batch, hidden = 250, 4, 16
    peaks = [_peak_bytes(make(n, batch, hidden)) for n in (T, 2 * T, 4 * T)]
    for short, long in zip(peaks, peaks[1:]):
        assert 1.6 < long / short < 2.4, f"peak memory {peaks} for T = 250, 500, 1000"
    per_step = (peaks[2] - peaks[1]) / (2 * T)
    assert per_step < 40 * batch * hidden * 8, f"{per_step:.0f} bytes per step"


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("mode", list(RNN_MODES))
def test_rnn_bad_lengths_and_features_name_layer_and_shapes(mode):
    name = "LSTM" if mode == "lstm" else "GRU" if mode == "gru" else "RNN"
    lm, _ = _rnn_pair(mode, batch_first=True)
    x = lamina.tensor(np.zeros((4, 5, IN)))  # (N, L, input_size)
    with pytest.raises(ValueError, match=rf"^{name}: lengths must lie in \[0, 5\].*max 6.*"
                                         rf"input of shape \(4, 5, 3\)"):
        lm(x, lengths=[6, 1, 2, 3])
    with pytest.raises(ValueError, match=rf"^{name}: lengths of shape \(5,\).*batch size 4"
                                         rf".*input of shape \(4, 5, 3\)"):
        lm(x, lengths=[1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=rf"^{name}: input of shape \(4, 5, 7\).*"
                                         rf"input_size=3"):
        lm(lamina.tensor(np.zeros((4, 5, 7))))


def test_transformer_bad_masks_name_the_layer_and_shapes():
    enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    src = lamina.tensor(np.zeros((5, 2, 8), np.float32))
    tgt = lamina.tensor(np.zeros((4, 2, 8), np.float32))
    with pytest.raises(ValueError, match=r"^TransformerEncoderLayer\(d_model=8\), self_attn:.*"
                                         r"key_padding_mask of shape \(2, 5\), got \(2, 4\)"):
        enc(src, src_key_padding_mask=lamina.tensor(np.zeros((2, 4), bool)))
    with pytest.raises(ValueError, match=r"^TransformerEncoderLayer\(d_model=8\), self_attn:.*"
                                         r"attn_mask is \(5, 4\), but should be \(5, 5\).*"
                                         r"query \(5, 2, 8\)"):
        enc(src, src_mask=lamina.tensor(np.zeros((5, 4), bool)))
    with pytest.raises(ValueError, match=r"^TransformerDecoderLayer\(d_model=8\), "
                                         r"multihead_attn:.*attn_mask is \(4, 4\), but should "
                                         r"be \(4, 5\).*key \(5, 2, 8\)"):
        dec(tgt, src, memory_mask=lamina.tensor(np.zeros((4, 4), bool)))
    with pytest.raises(ValueError, match=r"^TransformerDecoderLayer\(d_model=8\), self_attn:.*"
                                         r"key_padding_mask of shape \(2, 4\), got \(3, 4\)"):
        dec(tgt, src, tgt_key_padding_mask=lamina.tensor(np.zeros((3, 4), bool)))
    with pytest.raises(ValueError, match=r"^TransformerDecoderLayer\(d_model=8\), "
                                         r"multihead_attn:.*\(5, 3, 8\)"):
        dec(tgt, lamina.tensor(np.zeros((5, 3, 8), np.float32)))


def test_attention_module_bad_mask_names_layer_and_shapes():
    q, k = lamina.tensor(np.zeros((2, 4))), lamina.tensor(np.zeros((2, 3, 4)))
    for mod in (nn.AdditiveAttention(4, 4, 5), nn.MultiplicativeAttention(4)):
        with pytest.raises(ValueError, match=rf"^{type(mod).__name__}:.*key_padding_mask of "
                                             rf"shape \(2, 3\).*\(2, 4\)"):
            mod(q, k, key_padding_mask=lamina.tensor(np.zeros((2, 4), bool)))


@pytest.mark.parametrize("il, tl, match", [
    ([7, 5], [3, 1], r"input_lengths 7 exceeds the input length T = 6 \(log_probs of shape "
                     r"\(6, 2, 4\)\)"),
    ([6, 5, 6], [3, 1], r"input_lengths must have one entry per batch element \(2\).*\(3,\)"
                        r".*log_probs of shape \(6, 2, 4\)"),
    ([6, 5], [4, 1], r"target_lengths 4 exceeds the targets' length S = 3 \(targets \(2, 3\)\)"),
])
def test_ctc_bad_lengths_name_the_shapes(il, tl, match):
    x = lamina.tensor(np.zeros((6, 2, 4)))
    with pytest.raises(ValueError, match=r"^ctc_loss: " + match):
        F.ctc_loss(x, np.array([[1, 2, 1], [2, 0, 0]]), il, tl)
    with pytest.raises(ValueError, match=r"^ctc_loss: " + match):
        nn.CTCLoss()(x, np.array([[1, 2, 1], [2, 0, 0]]), il, tl)


# ---------------------------------------------------------------- transformer masks
def _module_parity(lmod, tmod, arrays, call, dtype, seed=0):
    """Perturbed torch weights copied into lamina; compare the output, the gradients of a
    random projection w.r.t. every input and every parameter (by name)."""
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    tmod.to(tdt)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in tmod.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=tdt) * 0.1)
    lmod.to(lamina.float64 if dtype == np.float64 else lamina.float32)
    lmod.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})
    tol = _tol(dtype)
    lx = [lamina.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    tx = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    lo, to = call(lmod, lx, lamina), call(tmod, tx, torch)
    assert lo.shape == tuple(to.shape) and lo.dtype == np.dtype(dtype)
    np.testing.assert_allclose(lo.numpy(), to.detach().numpy(), **tol, err_msg="output")
    v = np.random.default_rng(seed + 1).standard_normal(lo.shape).astype(dtype)
    (lo * lamina.tensor(v)).sum().backward()
    (to * torch.tensor(v)).sum().backward()
    gtol = dict(rtol=tol["rtol"], atol=tol["atol"] * 10)
    for i, (a, b) in enumerate(zip(lx, tx)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **gtol,
                                   err_msg=f"input {i} gradient")
    tp = dict(tmod.named_parameters())
    assert {n for n, _ in lmod.named_parameters()} == set(tp)
    for name, p in lmod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), **gtol,
                                   err_msg=f"{name} gradient")


def _bool_mask(shape, seed):
    m = np.random.default_rng(seed).random(shape) > 0.6
    m[..., 0] = False  # no fully masked row
    return m


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mask_kind", ["bool2d", "float3d"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoder_layer_memory_mask_matches_torch(norm_first, mask_kind, dtype):
    """memory_mask (cross-attention mask) together with both key padding masks."""
    E, H, N, T, S = 8, 2, 2, 4, 5
    kw = dict(dim_feedforward=12, dropout=0.0, norm_first=norm_first)
    torch.manual_seed(0)
    tmod, lmod = torch.nn.TransformerDecoderLayer(E, H, **kw), nn.TransformerDecoderLayer(
        E, H, **kw)
    rng = np.random.default_rng(3)
    mm = (_bool_mask((T, S), 4) if mask_kind == "bool2d" else
          rng.standard_normal((N * H, T, S)).astype(dtype))
    tkpm, mkpm = _bool_mask((N, T), 5), _bool_mask((N, S), 6)

    def call(mod, x, lib):
        return mod(x[0], x[1], tgt_mask=lib.tensor(np.triu(np.ones((T, T), bool), 1)),
                   memory_mask=lib.tensor(mm), tgt_key_padding_mask=lib.tensor(tkpm),
                   memory_key_padding_mask=lib.tensor(mkpm))
    _module_parity(lmod, tmod, [rng.standard_normal((T, N, E)),
                                rng.standard_normal((S, N, E))], call, dtype)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encoder_layer_3d_float_mask_and_float_padding_mask(norm_first, dtype):
    E, H, N, S = 8, 2, 3, 5
    kw = dict(dim_feedforward=12, dropout=0.0, norm_first=norm_first, batch_first=True)
    torch.manual_seed(0)
    tmod, lmod = torch.nn.TransformerEncoderLayer(E, H, **kw), nn.TransformerEncoderLayer(
        E, H, **kw)
    rng = np.random.default_rng(7)
    am = rng.standard_normal((N * H, S, S)).astype(dtype)
    kpm = np.where(_bool_mask((N, S), 8), -np.inf, rng.standard_normal((N, S))).astype(dtype)

    def call(mod, x, lib):
        return mod(x[0], src_mask=lib.tensor(am), src_key_padding_mask=lib.tensor(kpm))
    _module_parity(lmod, tmod, [rng.standard_normal((N, S, E))], call, dtype)


# ---------------------------------------------------------------- CTC
def test_ctc_loss_known_answers_uniform_distribution():
    """Uniform log-probabilities over C classes: the loss is log(C^T / #alignments)."""
    C, T = 4, 3
    lp = lamina.tensor(np.full((T, 6, C), -math.log(C)))
    targets = np.array([[1, 0], [1, 1], [1, 2], [0, 0], [2, 2], [3, 0]])
    tl = np.array([1, 2, 2, 0, 2, 1])
    il = np.array([2, 3, 3, 3, 2, 1])
    # [1] in 2 steps: 11, 1_, _1; [1,1] in 3: 1_1 only; [1,2] in 3: 112 122 _12 1_2 12_;
    # [] in 3: ___; [2,2] in 2: impossible; [3] in 1: 3
    n_align = np.array([3, 1, 5, 1, 0, 1])
    with np.errstate(divide="ignore"):
        want = il * math.log(C) - np.log(n_align)
    out = F.ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=True)
    np.testing.assert_allclose(out.numpy(), np.where(np.isinf(want), 0, want), rtol=1e-12)
    with pytest.raises(ValueError, match="target 4 .* needs at least 3 input steps"):
        F.ctc_loss(lp, targets, il, tl, reduction="none")
    crit = nn.CTCLoss(reduction="mean", zero_infinity=True)
    feasible = np.where(np.isinf(want), 0, want)
    np.testing.assert_allclose(crit(lp, targets, il, tl).numpy(),
                               np.mean(feasible / np.maximum(tl, 1)), rtol=1e-12)


def _ctc_batch(seed, T=12, N=5, C=4):
    """Few classes (many repeated labels); the last sample cannot be aligned."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(1, C, (N, 5))
    targets[0, :4] = [2, 2, 2, 1]
    tl = np.array([4, 5, 3, 1, 5])
    il = np.array([T, 10, 7, 1, 4])
    return rng.standard_normal((T, N, C)) * 2, targets, il, tl


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ctc_module_matches_torch_with_repeats_and_infeasible_sample(reduction, zero_infinity,
                                                                     dtype):
    x, targets, il, tl = _ctc_batch(0)
    if not zero_infinity:  # lamina raises where torch gives inf: compare the rest
        x, targets, il, tl = x[:, :-1], targets[:-1], il[:-1], tl[:-1]
    kw = dict(blank=0, reduction=reduction, zero_infinity=zero_infinity)
    xl = lamina.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    lo = nn.CTCLoss(**kw)(xl.log_softmax(-1), lamina.tensor(targets), il, tl)
    to = torch.nn.CTCLoss(**kw)(xt.log_softmax(-1), torch.tensor(targets), torch.tensor(il),
                                torch.tensor(tl))
    assert lo.shape == tuple(to.shape) and lo.dtype == np.dtype(dtype)
    np.testing.assert_allclose(lo.numpy(), to.detach().numpy(), **_tol(dtype))
    if reduction == "none" and zero_infinity:
        assert lo.numpy()[-1] == 0
    w = np.random.default_rng(1).uniform(0.5, 1.5, lo.shape).astype(dtype)
    (lo * lamina.tensor(w)).sum().backward()
    (to * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xl.grad.numpy(), xt.grad.numpy(), equal_nan=True,
                               **_tol(dtype))


# ---------------------------------------------------------------- beam search
V, EOS, BOS = 4, 0, 3


def _markov(n, seed):
    """First-order tables log p(next | current), (n, V, V); BOS is never produced."""
    z = np.random.default_rng(seed).standard_normal((n, V, V)) * 2
    z[..., BOS] = -np.inf
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _candidates(max_len, vocab):
    """Every output a decoder can end with: eos-terminated, or max_len long."""
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if EOS not in seq[:-1] and (seq[-1] == EOS or length == max_len):
                yield list(seq)


def _ranked(scores, length_penalty):
    """[(normalized score, seq)] best first, from {tuple(seq): summed log p}."""
    return sorted(((s / len(q) ** length_penalty, list(q)) for q, s in scores.items()),
                  key=lambda r: -r[0])


def _strip(row):
    out = []
    for t in row:
        out.append(int(t))
        if t == EOS:
            break
    return out


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_return_all_lists_the_brute_force_top_hypotheses(length_penalty):
    n, max_len, k = 2, 3, 4
    tables = _markov(n, 0)

    def step(tokens, rows):
        return lamina.tensor(tables[rows.numpy(), tokens.numpy()]), rows
    # beam as large as the number of hypotheses: exhaustive
    toks, scores = nn.beam_search(step, lamina.tensor(np.arange(n)), BOS, EOS, V ** max_len,
                                  max_len, length_penalty=length_penalty, return_all=True)
    for b in range(n):
        summed = {}
        for seq in _candidates(max_len, V):
            prev, total = BOS, 0.0
            for t in seq:
                total, prev = total + tables[b, prev, t], t
            summed[tuple(seq)] = total
        want = [r for r in _ranked(summed, length_penalty) if np.isfinite(r[0])][:k]
        got = [(scores.numpy()[b, i], _strip(toks.numpy()[b, i])) for i in range(k)]
        assert [g[1] for g in got] == [w[1] for w in want]
        np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], rtol=1e-12)


class _GRUEncoder(nn.Module):
    """src (B, S) -> memory (S, B, H) and state (1, B, H): batch in dim 1."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn = nn.Embedding(V, 5), nn.GRU(5, 6)

    def forward(self, src):
        return self.rnn(self.emb(src).transpose(0, 1))


class _GRUAttnDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.rnn = nn.Embedding(V, 5), nn.GRU(5, 6)
        self.attn, self.out = nn.MultiplicativeAttention(6), nn.Linear(12, V)

    def forward(self, tokens, h, memory):
        o, h = self.rnn(self.emb(tokens).unsqueeze(0), h)
        ctx, _ = self.attn(o[0], memory.transpose(0, 1))
        return self.out(lamina.cat([o[0], ctx], -1)), h


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_seq2seq_exhaustive_beam_with_batch_dim_1_finds_the_best_sequence(length_penalty):
    """nn.GRU state (1, B, H) and memory (S, B, H) (state_batch_dim = memory_batch_dim = 1):
    generate() with an exhaustive beam returns the best-scoring output found by scoring
    every candidate with teacher forcing; greedy follows the argmax."""
    lamina.manual_seed(2)
    model = nn.Seq2Seq(_GRUEncoder(), _GRUAttnDecoder(), state_batch_dim=1,
                       memory_batch_dim=1).double()
    with lamina.no_grad():
        for p in model.parameters():
            p.data[...] *= 3  # peaked distributions: clear gaps between candidates
    model.eval()
    max_len = 3
    src = np.array([[1, 2, 3, 1], [3, 3, 0, 2], [2, 1, 1, 3]])
    toks, scores = model.generate(lamina.tensor(src), BOS, EOS, max_len, beam_size=V ** max_len,
                                  length_penalty=length_penalty)
    greedy, _ = model.generate(lamina.tensor(src), BOS, EOS, max_len)
    cands = list(_candidates(max_len, V))
    beats_greedy = []
    for b in range(len(src)):
        summed = {}
        with lamina.no_grad():
            for seq in cands:
                tgt_in = np.array([[BOS] + seq[:-1]])
                lp = model(lamina.tensor(src[b:b + 1]), lamina.tensor(tgt_in)).log_softmax(-1)
                summed[tuple(seq)] = lp.numpy()[0, np.arange(len(seq)), seq].sum()
        (best_score, best), (second, _) = _ranked(summed, length_penalty)[:2]
        assert best_score - second > 1e-3  # the answer is not decided by rounding
        assert _strip(toks.numpy()[b]) == best
        beats_greedy.append(best != _strip(greedy.numpy()[b]))
        np.testing.assert_allclose(scores.numpy()[b], best_score, rtol=1e-10)
        # greedy: the argmax prefix, each step scored by teacher forcing
        seq = _strip(greedy.numpy()[b])
        for t in range(len(seq)):
            tgt_in = np.array([[BOS] + seq[:t]])
            with lamina.no_grad():
                logits = model(lamina.tensor(src[b:b + 1]), lamina.tensor(tgt_in))
            assert int(np.argmax(logits.numpy()[0, -1])) == seq[t]
    assert any(beats_greedy), "a case where the beam finds more than greedy"
