"""Generation helpers (greedy_decode, beam_search, sample) and the Seq2Seq scaffold."""
import itertools

import numpy as np
import pytest

import lamina
import lamina.nn.functional as F
from lamina import nn

EOS, BOS, V = 0, 4, 5


# ---------------------------------------------------------------- a tiny Markov model
def markov_tables(n, seed):
    """Second-order Markov models, one per batch element: log p(next | prev, cur), (n, V,
    V, V). BOS is never produced."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, V, V, V)) * 2
    logits[..., BOS] = -np.inf
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def markov_step(tables):
    """step_fn over a nested state: (prev token (B,) float, {"row": batch row (B,) int64})."""
    def step(tokens, state):
        prev, extra = state
        row = extra["row"].numpy()
        lp = tables[row, prev.numpy().astype(np.int64), tokens.numpy()]
        return lamina.tensor(lp), (lamina.tensor(tokens.numpy().astype(np.float64)), extra)
    return step


def markov_start(n):
    return (lamina.tensor(np.full(n, BOS, np.float64)), {"row": lamina.tensor(np.arange(n))})


def brute_force_best(table, max_len, length_penalty):
    """The best sequence (ending with EOS, or max_len long) by exhaustive enumeration."""
    best, best_score = None, -np.inf
    for length in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=length):
            if EOS in seq[:-1]:
                continue
            prev, cur, total = BOS, BOS, 0.0
            for tok in seq:
                total += table[prev, cur, tok]
                prev, cur = cur, tok
            if seq[-1] != EOS and length < max_len:
                continue
            score = total / length ** length_penalty
            if score > best_score:
                best, best_score = list(seq), score
    return best, best_score


def _strip(tokens):
    """A generated row up to and including its first EOS."""
    out = []
    for t in tokens:
        out.append(int(t))
        if t == EOS:
            break
    return out


# ---------------------------------------------------------------- greedy and beam search
def test_greedy_decode_follows_argmax():
    tables = markov_tables(3, 0)
    tokens, scores = nn.greedy_decode(markov_step(tables), markov_start(3), BOS, EOS, 6)
    assert tokens.dtype == np.int64 and tokens.shape[0] == 3 and tokens.shape[1] <= 6
    for b in range(3):
        prev, cur, total, seq = BOS, BOS, 0.0, []
        for _ in range(6):
            nxt = int(np.argmax(tables[b, prev, cur]))
            total += tables[b, prev, cur, nxt]
            seq.append(nxt)
            prev, cur = cur, nxt
            if nxt == EOS:
                break
        assert _strip(tokens.numpy()[b]) == seq
        assert np.all(tokens.numpy()[b, len(seq):] == EOS)
        np.testing.assert_allclose(scores.numpy()[b], total, rtol=1e-12)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_size_one_is_greedy(length_penalty):
    tables = markov_tables(4, 1)
    g_tok, g_score = nn.greedy_decode(markov_step(tables), markov_start(4), BOS, EOS, 7)
    b_tok, b_score = nn.beam_search(markov_step(tables), markov_start(4), BOS, EOS, 1, 7,
                                    length_penalty=length_penalty)
    np.testing.assert_array_equal(b_tok.numpy(), g_tok.numpy())
    if length_penalty == 0:
        np.testing.assert_allclose(b_score.numpy(), g_score.numpy(), rtol=1e-12)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 0.6])
def test_exhaustive_beam_finds_brute_force_optimum(length_penalty):
    n, max_len = 3, 4
    tables = markov_tables(n, 2)
    tokens, scores = nn.beam_search(markov_step(tables), markov_start(n), BOS, EOS,
                                    beam_size=V ** max_len, max_len=max_len,
                                    length_penalty=length_penalty)
    for b in range(n):
        seq, score = brute_force_best(tables[b], max_len, length_penalty)
        assert _strip(tokens.numpy()[b]) == seq
        np.testing.assert_allclose(scores.numpy()[b], score, rtol=1e-12)


def test_small_beam_beats_greedy_and_returns_sorted_beams():
    """A trap: the greedy first token leads to a bad continuation; beam 2 avoids it."""
    table = np.full((V, V, V), -np.inf)
    table[:, :, EOS] = np.log(0.05)
    table[BOS, BOS, [1, 2]] = np.log([0.5, 0.45])   # greedy takes 1 ...
    table[BOS, 1, [1, 2, 3]] = np.log(0.95 / 3)     # ... which then spreads thin
    table[BOS, 2, 3] = np.log(0.95)                 # 2 is followed by a sure 3
    table[1:4, 1:4, EOS] = 0.0                      # afterwards: stop
    tables = table[None]
    step, start = markov_step(tables), markov_start(1)
    g, _ = nn.greedy_decode(step, start, BOS, EOS, 4)
    b, s = nn.beam_search(step, start, BOS, EOS, 2, 4, length_penalty=0.0)
    assert _strip(g.numpy()[0])[:2] == [1, 1] and _strip(b.numpy()[0]) == [2, 3, EOS]
    np.testing.assert_allclose(s.numpy()[0], np.log(0.45 * 0.95), rtol=1e-12)
    allt, alls = nn.beam_search(step, start, BOS, EOS, 3, 4, length_penalty=0.0,
                                return_all=True)
    assert allt.shape[:2] == (1, 3) and np.all(np.diff(alls.numpy()[0]) <= 0)
    np.testing.assert_array_equal(allt.numpy()[0, 0], b.numpy()[0])


def test_decoders_run_without_grad_and_check_shapes():
    w = lamina.tensor(np.random.default_rng(3).standard_normal((V, V)), requires_grad=True)

    def step(tokens, state):
        assert not lamina.is_grad_enabled()
        return (w[tokens] + state).log_softmax(-1), state

    state = lamina.zeros(2, V, dtype=lamina.float64)
    tok, score = nn.beam_search(step, state, BOS, EOS, 3, 5)
    assert not tok.requires_grad and not score.requires_grad and tok.shape[0] == 2
    with pytest.raises(ValueError, match=r"beam_search: step_fn must return .* \(6, V\)"):
        nn.beam_search(lambda t, s: (lamina.zeros(2, V), s), state, BOS, EOS, 3, 5)
    with pytest.raises(ValueError, match="beam_search: beam_size must be >= 1"):
        nn.beam_search(step, state, BOS, EOS, 0, 5)
    with pytest.raises(ValueError, match="greedy_decode: cannot infer the batch size"):
        nn.greedy_decode(step, None, BOS, EOS, 5)
    # bos as a (B,) tensor gives the batch size when the state holds no tensor
    tok, _ = nn.greedy_decode(lambda t, s: step(t, state), None, lamina.tensor([BOS, BOS]),
                              EOS, 5)
    assert tok.shape[0] == 2


# ---------------------------------------------------------------- sampling
def test_sample_temperature_zero_and_tiny_is_argmax():
    logits = np.random.default_rng(4).standard_normal((50, 7)).astype(np.float32)
    want = logits.argmax(-1)
    np.testing.assert_array_equal(nn.sample(lamina.tensor(logits), 0).numpy(), want)
    np.testing.assert_array_equal(nn.sample(lamina.tensor(logits), 1e-6).numpy(), want)
    one = nn.sample(lamina.tensor(logits[0]), 0)
    assert one.shape == () and int(one) == want[0]


def _freqs(tokens, v):
    return np.bincount(tokens, minlength=v) / len(tokens)


def test_sample_frequencies_match_softmax():
    n = 40000
    logits = np.array([1.0, 0.2, -0.5, 2.0, 0.0, -3.0])
    for temp in (1.0, 0.5, 2.0):
        rows = lamina.tensor(np.tile(logits, (n, 1)))
        got = _freqs(nn.sample(rows, temp, generator=np.random.default_rng(5)).numpy(), 6)
        p = np.exp(logits / temp) / np.exp(logits / temp).sum()
        # 5 standard errors: a seeded run, no flakiness, still a tight test
        np.testing.assert_array_less(np.abs(got - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-12)


def test_sample_top_k_and_top_p():
    n = 30000
    logits = np.array([0.5, 2.0, -1.0, 1.5, 1.0, 0.0])
    rows = lamina.tensor(np.tile(logits, (n, 1)))
    got = nn.sample(rows, top_k=3, generator=np.random.default_rng(6)).numpy()
    assert set(np.unique(got)) <= {1, 3, 4}
    p = np.where(np.isin(np.arange(6), [1, 3, 4]), np.exp(logits), 0)
    p /= p.sum()
    f = _freqs(got, 6)
    np.testing.assert_array_less(np.abs(f - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
    # top_p: probabilities sorted .44, .27, .16, .10, ...: 0.6 keeps the first two
    q = np.exp(logits) / np.exp(logits).sum()
    got = nn.sample(rows, top_p=0.6, generator=np.random.default_rng(7)).numpy()
    assert set(np.unique(got)) == {1, 3}
    f = _freqs(got, 6)
    np.testing.assert_allclose(f[1], q[1] / (q[1] + q[3]), atol=5 * np.sqrt(0.25 / n))
    assert set(np.unique(nn.sample(rows, top_k=1).numpy())) == {1}
    # seeded generators reproduce; lamina.manual_seed drives the default one
    a = nn.sample(rows[:100], generator=np.random.default_rng(8)).numpy()
    b = nn.sample(rows[:100], generator=np.random.default_rng(8)).numpy()
    np.testing.assert_array_equal(a, b)
    lamina.manual_seed(3)
    a = nn.sample(rows[:100]).numpy()
    lamina.manual_seed(3)
    np.testing.assert_array_equal(nn.sample(rows[:100]).numpy(), a)
    with pytest.raises(ValueError, match="sample: temperature must be >= 0"):
        nn.sample(rows, -1.0)
    with pytest.raises(ValueError, match=r"sample: logits must be \(B, V\)"):
        nn.sample(lamina.zeros(2, 3, 4))


# ---------------------------------------------------------------- Seq2Seq
class GRULikeEncoder(nn.Module):
    """Embedding + a GRU-like cell built from Linear, sigmoid and tanh, batch first:
    src (B, T) -> (outputs (B, T, H), h (B, H))."""

    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.ih = nn.Linear(emb, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)
        self.hidden = hidden

    def cell(self, x, h):
        a, b = self.ih(x).chunk(3, -1), self.hh(h).chunk(3, -1)
        r, z = (a[0] + b[0]).sigmoid(), (a[1] + b[1]).sigmoid()
        n = (a[2] + r * b[2]).tanh()
        return (1 - z) * n + z * h

    def forward(self, src):
        x = self.emb(src)
        h = lamina.zeros(src.shape[0], self.hidden)
        outs = []
        for t in range(src.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return lamina.stack(outs, 1), h


class AttnDecoder(nn.Module):
    """One step: dot-product attention of h over the memory, then a GRU-like cell on
    [embedding, context]; logits from [h, context]."""

    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.ih = nn.Linear(emb + hidden, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, tokens, h, memory):
        w = lamina.matmul(memory, h.unsqueeze(-1)).softmax(1)  # (B, T, 1)
        ctx = (w * memory).sum(1)
        x = lamina.cat([self.emb(tokens), ctx], -1)
        a, b = self.ih(x).chunk(3, -1), self.hh(h).chunk(3, -1)
        r, z = (a[0] + b[0]).sigmoid(), (a[1] + b[1]).sigmoid()
        n = (a[2] + r * b[2]).tanh()
        h = (1 - z) * n + z * h
        return self.out(lamina.cat([h, ctx], -1)), h


def _model(seed=0, vocab=7, emb=8, hidden=32):
    lamina.manual_seed(seed)
    return nn.Seq2Seq(GRULikeEncoder(vocab, emb, hidden), AttnDecoder(vocab, emb, hidden))


def _manual(model, src, tgt_in, feed_own=False):
    memory, h = model.encoder(src)
    tok, outs = tgt_in.numpy()[:, 0], []
    for t in range(tgt_in.shape[1]):
        logits, h = model.decoder(lamina.tensor(tok), h, memory)
        outs.append(logits)
        if t + 1 < tgt_in.shape[1]:
            tok = logits.numpy().argmax(-1) if feed_own else tgt_in.numpy()[:, t + 1]
    return lamina.stack(outs, 1)


def test_seq2seq_teacher_forcing_equals_manual_loop():
    model = _model()
    rng = np.random.default_rng(9)
    src = lamina.tensor(rng.integers(3, 7, (4, 5)))
    tgt_in = lamina.tensor(rng.integers(1, 7, (4, 6)))
    out = model(src, tgt_in)
    assert out.shape == (4, 6, 7)
    np.testing.assert_array_equal(out.numpy(), _manual(model, src, tgt_in).numpy())
    # gradients flow into both encoder and decoder
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # ratio 0 in training feeds the argmax; eval mode ignores the ratio
    own = _manual(model, src, tgt_in, feed_own=True).numpy()
    np.testing.assert_array_equal(model(src, tgt_in, teacher_forcing_ratio=0.0).numpy(), own)
    model.eval()
    np.testing.assert_array_equal(model(src, tgt_in, teacher_forcing_ratio=0.0).numpy(),
                                  out.numpy())
    model.train()
    mixed = model(src, tgt_in, teacher_forcing_ratio=0.5).numpy()
    assert mixed.shape == out.shape and np.array_equal(mixed[:, 0], out.numpy()[:, 0])
    with pytest.raises(ValueError, match=r"Seq2Seq: tgt_in must be \(B, L\) integer"):
        model(src, lamina.zeros(4, 6))


def test_seq2seq_generate_matches_helpers():
    model = _model(1)
    src = lamina.tensor(np.random.default_rng(10).integers(3, 7, (3, 5)))
    tok, score = model.generate(src, bos=1, eos=2, max_len=8)
    memory, h = model.encoder(src)

    def step(t, h):
        logits, h = model.decoder(t, h, memory)
        return logits.log_softmax(-1), h
    want, want_score = nn.greedy_decode(step, h, 1, 2, 8)
    np.testing.assert_array_equal(tok.numpy(), want.numpy())
    np.testing.assert_allclose(score.numpy(), want_score.numpy(), rtol=1e-6)
    b1, _ = model.generate(src, 1, 2, 8, beam_size=1)
    np.testing.assert_array_equal(b1.numpy(), tok.numpy())
    b3, s3 = model.generate(src, 1, 2, 8, beam_size=3, length_penalty=0.0)
    assert b3.shape[0] == 3 and np.all(s3.numpy() >= score.numpy() - 1e-5)
    assert not b3.requires_grad


def test_seq2seq_copy_task_trains():
    """Copy 5 digits: a few hundred SGD steps take the loss from ~log(7) to near zero and
    greedy and beam decoding reproduce unseen sequences."""
    vocab, bos, eos = 7, 1, 2
    model = _model(2)
    opt = lamina.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    rng = np.random.default_rng(11)
    losses = []
    for step in range(300):
        seqs = rng.integers(3, vocab, (32, 5))
        src = lamina.tensor(seqs)
        tgt_in = lamina.tensor(np.concatenate([np.full((32, 1), bos), seqs], 1))
        tgt_out = lamina.tensor(np.concatenate([seqs, np.full((32, 1), eos)], 1))
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[:10]) > 1.5 and np.mean(losses[-10:]) < 0.02
    model.eval()
    seqs = rng.integers(3, vocab, (16, 5))
    want = np.concatenate([seqs, np.full((16, 1), eos)], 1)
    for beam in (1, 3):
        tok, _ = model.generate(lamina.tensor(seqs), bos, eos, 10, beam_size=beam)
        np.testing.assert_array_equal(tok.numpy()[:, :6], want)
