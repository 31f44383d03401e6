"""Algorithmic / memory zoo recipes: seqclass (LSTM vs RNN by length), anbn (stack RNN on
counting languages), memnet (end-to-end memory network on generated bAbI stories) —
data generators with known answers, model checks, and the recipes' quick runs."""
import numpy as np
import pytest

import lamina
from lamina.autograd.gradcheck import gradcheck
from lamina.zoo import anbn, babi, memnet, seqclass


# ---------------------------------------------------------------------------- seqclass
def test_seqclass_tasks_have_the_stated_answers():
    x, lens, y = seqclass.classification_task("first", 200, 5, 30, seed=1)
    assert x.shape == (200, 30) and lens.min() >= 5 and lens.max() <= 30
    assert (x[:, 0] == y + 1).all() and set(np.unique(y)) == {0, 1, 2, 3}
    assert all((x[r, lens[r]:] == 0).all() and (x[r, 1:lens[r]] >= 5).all()
               for r in range(200))
    x, lens, y = seqclass.classification_task("parens", 300, 4, 40, seed=2)
    assert (lens % 2 == 0).all() and 0.35 < y.mean() < 0.65
    for r in range(300):
        assert seqclass._is_balanced(list(x[r, :lens[r]])) == bool(y[r])
    x, lens, y = seqclass.classification_task("parity", 100, 3, 9, seed=3)
    assert all(((x[r, :lens[r]] == 2).sum() % 2) == y[r] for r in range(100))
    a, _, _ = seqclass.classification_task("first", 50, seed=1)
    b, _, _ = seqclass.classification_task("first", 50, seed=2)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown task"):
        seqclass.classification_task("xor", 3)


def test_seqclassifier_reads_the_last_valid_step_and_rejects_bad_input():
    lamina.manual_seed(0)
    net = seqclass.SeqClassifier(13, 4, embed=8, hidden=16, cell="lstm")
    x = np.random.default_rng(0).integers(1, 13, (3, 12))
    lens = np.array([12, 7, 4])
    full = net(x, lens).numpy()
    # padding after a sequence's length must not change its logits
    x2 = x.copy()
    x2[1, 7:] = 0
    x2[2, 4:] = 5
    assert np.allclose(net(x2, lens).numpy(), full, atol=1e-6)
    assert np.allclose(net(x[2:3, :4]).numpy(), full[2:3], atol=1e-5)
    with pytest.raises(ValueError, match=r"SeqClassifier: token ids must lie in \[0, 13\)"):
        net(np.full((2, 5), 13), None)
    with pytest.raises(ValueError, match="SeqClassifier: x must be"):
        net(np.zeros((2, 5, 1), np.int64))
    with pytest.raises(ValueError, match="lengths of shape"):
        net(x, np.array([3, 3]))
    with pytest.raises(ValueError, match="unknown cell"):
        seqclass.SeqClassifier(13, 4, cell="transformer")


def test_seqclass_quick_lstm_remembers_the_first_token_rnn_table_printed():
    lines = []
    r = seqclass.RECIPE.run(seqclass.RECIPE.config(quick=True), verbose=False,
                            log=lines.append)
    # chance is 25%: an LSTM that cannot carry the first token over 20-40 steps fails
    assert r["lstm_first_long_accuracy"] >= 0.8, r
    assert r["lstm_first_accuracy"] >= 0.8
    assert "rnn_first_accuracy" in r
    table = next(l for l in lines if l.startswith("first: held-out accuracy"))
    assert "RNN" in table and "LSTM" in table and "20-40" in table


# ---------------------------------------------------------------------------- anbn
def test_language_batch_strings_targets_and_determined_part():
    x, y, det = anbn.language_batch("anbn", [2])
    assert x.tolist() == [[0, 1, 1, 2, 2]] and y.tolist() == [[1, 1, 2, 2, 0]]
    # after reading the first b, the second b and the end symbol are determined
    assert det.tolist() == [[False, False, False, True, True]]
    x, y, det = anbn.language_batch("anbmcnm", [1], [2])
    assert "".join(anbn.SYMBOLS[i] for i in x[0, 1:]) == "abbccc"
    assert det[0].tolist() == [False] * 4 + [True] * 3
    x, y, det = anbn.language_batch("anb2n", [1, 2])
    assert y[0].tolist() == [1, 2, 2, 0, -100, -100, -100]
    assert det[0].tolist() == [False, False, True, True, False, False, False]
    x, _, _ = anbn.language_batch("anbncndn", [3])
    assert "".join(anbn.SYMBOLS[i] for i in x[0]) == ".aaabbbcccddd"
    with pytest.raises(ValueError, match="unknown language"):
        anbn.language_batch("anbn2", [1])


def test_stack_rnn_step_matches_finite_differences_float64():
    lamina.manual_seed(0)
    net = anbn.StackRNN(hidden=5, n_stacks=2, k=2).double()
    rng = np.random.default_rng(0)
    ux = lamina.from_numpy(rng.standard_normal((3, 5))).requires_grad_(True)
    h = lamina.from_numpy(rng.uniform(0, 1, (3, 5))).requires_grad_(True)
    s = lamina.from_numpy(rng.uniform(-1, 1, (3, 2, 4))).requires_grad_(True)

    def one_step(ux, h, s, w_rec, w_ctl, b_ctl):
        h2, s2, _ = net.step(ux, h, s)
        return h2, s2

    params = (net.rec.weight, net.ctl.weight, net.ctl.bias)
    assert all(p.dtype == np.float64 for p in params)
    assert gradcheck(one_step, (ux, h, s) + params, eps=1e-6, atol=1e-6, rtol=1e-4)
    # and a whole (short) sequence: gradients reach the parameters through the stacks
    net.zero_grad()
    out = net(np.array([[0, 1, 1, 2]]))
    out.sum().backward()
    assert np.abs(net.ctl.weight.grad.numpy()).sum() > 0


def test_stack_rnn_push_and_pop_move_the_stack():
    lamina.manual_seed(0)
    net = anbn.StackRNN(hidden=4, n_stacks=1, k=1, empty=-1.0)
    h, s = net.init_state(1, 3)
    assert s.numpy().tolist() == [[[-1.0, -1.0, -1.0]]]
    ux = lamina.zeros(1, 4)
    with lamina.no_grad():
        net.ctl.weight.data[:] = 0
        net.ctl.bias.data[:] = np.array([50.0, 0, 0, 50.0], np.float32)   # push 1.0
        _, s, a = net.step(ux, h, s)
        _, s, a = net.step(ux, h, s)
        assert np.allclose(s.numpy(), [[[1, 1, -1]]], atol=1e-5)
        net.ctl.bias.data[:] = np.array([0, 50.0, 0, 0], np.float32)      # pop
        _, s, a = net.step(ux, h, s)
        assert np.allclose(s.numpy(), [[[1, -1, -1]]], atol=1e-5)
        assert np.allclose(a.numpy()[0, 0], [0, 1, 0], atol=1e-5)
    with pytest.raises(ValueError, match=r"StackRNN: x token ids must lie in \[0, 5\)"):
        net(np.array([[0, 7]]))
    with pytest.raises(ValueError, match="StackRNN: x must be"):
        net(np.zeros(4, np.int64))


def test_anbn_quick_stack_rnn_learns_the_training_lengths():
    lines = []
    r = anbn.RECIPE.run(anbn.RECIPE.config(quick=True), verbose=False, log=lines.append)
    # n = 1..train_max_n all predicted right: the counting is learned, not guessed
    assert r["stack_anbn"] >= 0.99, r
    assert any("Stack RNN 40+10" in l and "a^n b^n" in l for l in lines)


# ---------------------------------------------------------------------------- memnet
def _parse(story_ids, words):
    return [[words[i] for i in s if i] for s in story_ids if s.any()]


def test_babi_answers_follow_from_the_stories():
    (st, q, a), words = babi.babi_task(1, 200, seed=3)
    for r in range(200):
        person = words[q[r, 2]]
        last = [s[-1] for s in _parse(st[r], words) if s[0] == person]
        assert words[a[r]] == last[-1]
    (st, q, a), words = babi.babi_task(2, 200, seed=4)
    takes = {p.split()[0] for p in babi.TAKES}
    two_fact = 0
    for r in range(200):
        obj = words[q[r, 3]]
        place, holder, dropped_at = {}, None, None
        for s in _parse(st[r], words):
            if s[-1] in babi.PLACES:
                place[s[0]] = s[-1]
            elif s[-1] == obj and s[1] in takes:
                holder = s[0]
            elif s[-1] == obj:
                holder, dropped_at = None, place[s[0]]
        where = place[holder] if holder is not None else dropped_at
        two_fact += holder is not None
        assert words[a[r]] == where
    assert two_fact > 150          # most questions need two supporting facts
    (st2, _, _), _ = babi.babi_task(1, 200, seed=5)
    assert not np.array_equal(st[:50], st2[:50])
    assert "Where is" in babi.render(st[0], q[0], a[0], words)


def test_position_encoding_formula():
    pe = memnet.position_encoding(4, 3)
    j, k = 2, 3                      # 1-based word j, component k
    assert np.isclose(pe[j - 1, k - 1], (1 - j / 4) - (k / 3) * (1 - 2 * j / 4))
    assert pe.shape == (4, 3)


def test_memn2n_attention_and_errors():
    lamina.manual_seed(0)
    (st, q, a), words = babi.babi_task(1, 4, max_sentences=5, seed=0)
    net = memnet.MemN2N(len(words), dim=8, hops=3, max_memories=5, sentence_len=6)
    logits, attn = net(st, q, _return_attention=True)
    assert logits.shape == (4, len(words)) and len(attn) == 3
    empty = ~(st != 0).any(-1)
    for p in attn:
        assert np.allclose(p.sum(1), 1, atol=1e-5) and (p[empty] == 0).all()
    # weight tying: answer matrix is the last C, question embedding is A_1
    assert len(list(net.embeddings)) == 4
    with pytest.raises(ValueError, match=r"MemN2N: story must be \(N, M <= 5, 6\)"):
        net(np.zeros((2, 6, 6), np.int64), q[:2])
    with pytest.raises(ValueError, match="MemN2N: question must be"):
        net(st, q[:2])
    with pytest.raises(ValueError, match="word ids must lie"):
        net(st, np.full_like(q, 99))


def test_memnet_quick_single_fact_well_above_chance():
    r = memnet.RECIPE.run(memnet.RECIPE.config(quick=True), verbose=False, log=lambda m: 0)
    # 6 places: chance is 1/6; a broken memory (no attention) stays near it
    assert r["task1_accuracy"] >= 0.9, r
