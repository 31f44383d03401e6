"""Model zoo II: word2vec (skip-gram, negative sampling), learn-to-execute (the program
generator and the seq2seq executor) and ctc (digit strips read with CTC) — helpers with
known answers, the models' shapes and errors, and each recipe's quick run."""
import contextlib
import importlib
import io
import re

import numpy as np
import pytest

import lamina
from lamina.data import load_digits
from lamina.nn import functional as F
from lamina.zoo import get_recipe

w2v = importlib.import_module("lamina.zoo.word2vec")
programs = importlib.import_module("lamina.zoo.programs")
lte = importlib.import_module("lamina.zoo.learn_to_execute")
ctc = importlib.import_module("lamina.zoo.ctc_digits")


def test_the_three_recipes_are_registered():
    for name, mod in (("word2vec", w2v), ("learn-to-execute", lte), ("ctc", ctc)):
        r = get_recipe(name)
        assert r is mod.RECIPE and r.name == name and r.summary
        for k in r.quick:
            assert k in r.config()
        for k in r.search_space:
            assert k in r.config()
    assert ctc.RECIPE.target == ("sequence_accuracy", 0.90)


# ============================================================================ word2vec
def test_skipgram_pairs_with_a_window_of_one():
    c, o = w2v.skipgram_pairs(np.array([7, 8, 9]), 1, np.random.default_rng(0))
    assert sorted(zip(c.tolist(), o.tolist())) == [(7, 8), (8, 7), (8, 9), (9, 8)]


def test_skipgram_pairs_dynamic_window_stays_within_the_window():
    ids = np.arange(200)
    c, o = w2v.skipgram_pairs(ids, 3, np.random.default_rng(1))
    d = np.abs(c - o)
    assert d.min() >= 1 and d.max() <= 3
    # every distance occurs, nearer ones more often (b >= d has probability (4 - d) / 3)
    n = [int((d == k).sum()) for k in (1, 2, 3)]
    assert n[0] == 2 * 200 - 2 and n[0] > n[1] > n[2] > 0


def test_noise_distribution_and_subsampling():
    counts = np.array([1000, 100, 10, 1])
    p = w2v.noise_distribution(counts)
    np.testing.assert_allclose(p, counts ** 0.75 / (counts ** 0.75).sum())
    assert p[0] / p[1] == pytest.approx(10 ** 0.75)
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(4), counts)
    kept = w2v.subsample(ids, counts, 1e-2, rng)
    kc = np.bincount(kept, minlength=4)
    assert kc[3] == 1 and kc[2] == 10          # rare words always kept (t/f >= 1)
    f = 1000 / 1111
    expect = (np.sqrt(1e-2 / f) + 1e-2 / f) * 1000          # about 116 of 1000
    assert abs(kc[0] - expect) < 5 * np.sqrt(expect) and kc[0] < 200
    assert w2v.subsample(ids, counts, 0, rng) is ids


def test_skipgram_loss_is_the_negative_sampling_objective():
    lamina.manual_seed(0)
    m = w2v.SkipGram(10, 4)
    rng = np.random.default_rng(0)
    m.out_embed.weight.data[...] = rng.normal(size=(10, 4))
    m.in_embed.weight.data[...] = rng.normal(size=(10, 4))
    c, o, neg = np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([[7, 8], [9, 0], [1, 1]])
    V, U = m.in_embed.weight.numpy(), m.out_embed.weight.numpy()
    logsig = lambda z: -np.log1p(np.exp(-z))
    want = np.mean([-logsig(U[o[i]] @ V[c[i]]) - sum(logsig(-(U[k] @ V[c[i]])) for k in neg[i])
                    for i in range(3)])
    loss = m(c, o, neg)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    loss.backward()
    g = m.in_embed.weight.grad.numpy()
    assert np.abs(g[[1, 2, 3]]).sum() > 0 and np.abs(g[[0, 4, 5, 6, 7, 8, 9]]).sum() == 0


def test_skipgram_initialisation_and_errors():
    lamina.manual_seed(0)
    m = w2v.SkipGram(50, 8)
    assert np.abs(m.in_embed.weight.numpy()).max() <= 0.5 / 8
    assert not m.out_embed.weight.numpy().any()
    # zero output table: every score is 0, the loss (1 + K) log 2
    assert m(np.arange(4), np.arange(4), np.zeros((4, 5), np.int64)).item() == \
        pytest.approx(6 * np.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="SkipGram: negatives must be a 2-D"):
        m(np.arange(4), np.arange(4), np.arange(4))
    with pytest.raises(ValueError, match=r"SkipGram: center has ids outside \[0, 50\)"):
        m(np.array([50]), np.array([1]), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="same batch size"):
        m(np.arange(4), np.arange(3), np.zeros((4, 2), np.int64))


def test_nearest_and_analogy_with_known_vectors():
    vocab = lamina.data.text.Vocab(["king", "queen", "man", "woman", "apple"], joiner=" ")
    vec = np.array([[1, 1, 0], [1, -1, 0], [0, 1, 0.1], [0, -1, 0.1], [0, 0, 1]], float)
    assert w2v.analogy(vec, vocab, "man", "woman", "king") == ["queen"]
    assert w2v.nearest(vec, vocab, "king", 1)[0][0] == "man"
    top1, top5, rows = w2v.evaluate_analogies(
        vec, vocab, [("man", "woman", "king", "queen"), ("woman", "man", "queen", "king"),
                     ("king", "man", "apple", "zebra")], k=2)
    assert len(rows) == 2 and top1 == 1.0 and top5 == 1.0   # the OOV item is skipped


def test_corpus_ids_drops_punctuation_and_rare_words():
    ids, vocab, counts = w2v.corpus_ids(2, text="The king, the KING! A queen; the end.")
    assert vocab.itos == ["the", "king"] and counts.tolist() == [3, 2]
    assert ids.tolist() == [0, 1, 0, 1, 0]


def test_word2vec_quick_run_learns(tmp_path):
    r = w2v.RECIPE.run(w2v.RECIPE.config(quick=True), out_dir=str(tmp_path), log=lambda m: None)
    assert r["untrained_loss"] == pytest.approx(6 * np.log(2), rel=1e-3)
    assert r["final_loss"] < 0.85 * r["untrained_loss"]
    assert r["analogy_items"] >= 20 and set(r["neighbours"]) >= {"king", "love", "night"}
    assert (tmp_path / "words.png").stat().st_size > 1000


# ============================================================================ programs
def _run_python(source):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(source, {})
    return buf.getvalue().strip()


@pytest.mark.parametrize("length,nesting", [(1, 1), (2, 3), (4, 2), (3, 6)])
def test_generated_programs_print_what_the_generator_says(length, nesting):
    rng = np.random.default_rng(length * 10 + nesting)
    seen_ops = set()
    for _ in range(150):
        src, out = programs.generate_program(length, nesting, rng)
        assert _run_python(src) == out, src
        assert src.splitlines()[-1].startswith("print(")
        assert set(src) <= set(programs.ALPHABET)
        # every constant has `length` digits, apart from the one-digit loop counts
        for m in re.finditer(r"\d+", src):
            is_count = src[max(m.start() - 6, 0):m.start()] == "range("
            if not is_count:
                assert len(m.group()) == length, src
        seen_ops |= {"for" if "for " in src else None, "if" if " if " in src else None}
    assert {"for", "if"} <= seen_ops


def test_program_generator_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="length and nesting"):
        programs.generate_program(0, 1, rng)
    with pytest.raises(ValueError, match="unknown operations"):
        programs.generate_program(1, 1, rng, operations=("mul",))
    assert programs.generate_program(2, 1, rng, operations=("sub",))[0].count("-") == 1


def test_curriculum_levels():
    rng = np.random.default_rng(0)
    f = programs.curriculum_level
    assert {f("none", 3, 2, p, rng) for p in (0, 0.5, 1)} == {(3, 2)}
    assert f("naive", 3, 2, 0.0, rng) == (1, 1)
    assert f("naive", 3, 2, 0.99, rng) == (3, 2)
    walk = [f("naive", 3, 2, p, rng) for p in np.linspace(0, 1, 50)]
    assert walk == sorted(walk) and set(walk) == set(programs.difficulty_levels(3, 2))
    mixed = {f("mixed", 3, 2, 0.0, rng) for _ in range(300)}
    assert mixed == set(programs.difficulty_levels(3, 2))
    combined = [f("combined", 3, 2, 0.0, rng) for _ in range(300)]
    share = np.mean([c == (1, 1) for c in combined])   # naive at the start is (1, 1)
    assert 0.45 < share < 0.75
    with pytest.raises(ValueError, match="curriculum"):
        f("reverse", 3, 2, 0.0, rng)


# ============================================================================ learn-to-execute
def test_encode_batch_and_decode_string():
    src, lens, tin, tout = lte.encode_batch(["print(5)", "a=12\nprint(a)"], ["5", "-12"])
    assert src.shape == (2, 13) and lens.tolist() == [8, 13]
    assert src[0, 8:].tolist() == [lte.PAD] * 5
    assert tin[1].tolist() == [lte.BOS] + [lte.STOI[c] for c in "-12"]
    assert tout[1].tolist() == [lte.STOI[c] for c in "-12"] + [lte.EOS]
    assert tout[0].tolist() == [lte.STOI["5"], lte.EOS, lte.PAD, lte.PAD]
    assert lte.decode_string(tout[1]) == "-12"
    assert lte.decode_string([lte.STOI["7"], lte.EOS, lte.STOI["8"]]) == "7"


def test_program_executor_shapes_and_padding():
    lamina.manual_seed(0)
    m = lte.ProgramExecutor(hidden=16, embed=8)
    src, lens, tin, tout = lte.encode_batch(["print(5)", "a=12\nprint(a)"], ["5", "-12"])
    m.eval()
    out = m(src, lens, tin)
    assert out.shape == (2, 4, len(lte.TOKENS))
    # right padding does not change a program's encoding
    alone = m(src[:1, :8], lens[:1], tin[:1])
    np.testing.assert_allclose(out.numpy()[0], alone.numpy()[0], rtol=1e-5, atol=1e-6)
    gen = m.generate(src, lens, max_len=5)
    assert len(gen) == 2 and all(isinstance(g, str) and len(g) <= 5 for g in gen)
    loss = lte.sequence_loss(out, tout)
    loss.backward()
    assert np.abs(m.encoder.weight_ih_l0.grad.numpy()).sum() > 0
    with pytest.raises(ValueError, match=r"ProgramExecutor: src_lengths"):
        m(src, np.array([8, 14]), tin)
    with pytest.raises(ValueError, match=r"ProgramExecutor: src must be a 2-D integer"):
        m(src.astype(np.float32), lens, tin)


def _positional_majority(outputs):
    """Accuracy of the best constant guess per output position (characters + <eos>)."""
    seqs = [o + "$" for o in outputs]
    hits = 0
    for i in range(max(map(len, seqs))):
        col = [s[i] for s in seqs if len(s) > i]
        hits += max(col.count(c) for c in set(col))
    return hits / sum(map(len, seqs))


def test_learn_to_execute_quick_run_beats_the_constant_baseline():
    cfg = lte.RECIPE.config(quick=True)
    r = lte.RECIPE.run(cfg, verbose=False, log=lambda m: None)
    rng_out = lte.program_sets([(1, 1)], 2000, seed=5)[(1, 1)][1]
    baseline = _positional_majority(rng_out)                      # about 0.49
    assert list(r["val_char_accuracy"]) == ["none"]                # one run in CI
    assert r["val_char_accuracy"]["none"] > baseline + 0.12, r["val_char_accuracy"]
    # whole outputs right well above the ~10% of guessing one digit (about 0.3 here)
    assert r["exact_match_target"]["none"] > 0.2, r["exact_match_target"]


def test_learn_to_execute_trains_both_strategies_with_the_same_budget():
    cfg = lte.RECIPE.config(dict(curriculum="mixed", epochs=1, batches=2, batch_size=4,
                                 hidden=8, n_test=3), quick=True)
    r = lte.RECIPE.run(cfg, verbose=False, log=lambda m: None)
    assert list(r["exact_match"]) == ["none", "mixed"]
    assert r["examples_per_run"] == 8
    with pytest.raises(ValueError, match="curriculum"):
        lte.RECIPE.run(dict(cfg, curriculum="backwards"), verbose=False, log=lambda m: None)


# ============================================================================ ctc
def test_make_strips_layout():
    x8, y = load_digits("test", flatten=False)
    x, lens, tg = ctc.make_strips(x8, y, 50, min_len=3, max_len=8, max_gap=2, seed=0)
    assert x.shape == (50, 8 * 8 + 7 * 2, 8) and x.dtype == np.float32
    k = (tg > 0).sum(1)
    assert k.min() >= 3 and k.max() <= 8 and len(set(k.tolist())) > 2
    assert np.all(lens >= 8 * k) and np.all(lens <= 8 * k + 2 * (k - 1))
    for i in range(50):
        assert not x[i, lens[i]:].any()                  # right padding is zero
        assert np.all(tg[i, k[i]:] == 0) and np.all(tg[i, :k[i]] >= 1)
    # without gaps the strip is the images side by side, read column by column
    x, lens, tg = ctc.make_strips(x8[:5], y[:5], 20, 2, 4, max_gap=0, seed=3)
    for i in range(20):
        n = int((tg[i] > 0).sum())
        assert lens[i] == 8 * n
        for j in range(n):
            img = x[i, 8 * j:8 * j + 8].T                 # back to (row, column)
            match = [t for t in range(5) if np.array_equal(img, x8[t])]
            assert match and y[match[0]] + 1 == tg[i, j]
    assert ctc.labels_to_string(tg[0]) == "".join(str(d - 1) for d in tg[0] if d)
    with pytest.raises(ValueError, match="make_strips"):
        ctc.make_strips(x8[:, :4], y, 3)
    with pytest.raises(ValueError, match="min_len"):
        ctc.make_strips(x8, y, 3, min_len=4, max_len=3)


def test_greedy_ctc_decoding_known_answer():
    # best path (blank 0): 3 3 _ 3 5 5 _ _ 2 -> [3, 3, 5, 2]; then padding steps
    path = [3, 3, 0, 3, 5, 5, 0, 0, 2, 7, 7]
    lp = np.full((len(path), 2, ctc.N_CLASSES), -5.0, np.float32)
    lp[np.arange(len(path)), 0, path] = -0.1
    lp[:, 1, 0] = -0.1                                    # all blank -> empty
    dec = F.ctc_greedy_decode(lamina.from_numpy(lp), [9, 11], blank=ctc.BLANK)
    assert dec == [[3, 3, 5, 2], []]
    assert ctc.labels_to_string(dec[0]) == "2241"
    tg = np.array([[3, 3, 5, 2, 0], [1, 0, 0, 0, 0]])
    assert ctc.sequence_matches(dec, tg).tolist() == [True, False]
    acc = ctc.SequenceAccuracy()
    acc.update((lamina.from_numpy(lp), np.array([9, 11])), tg)
    assert acc.compute() == 0.5


def test_ctc_reader_shapes_loss_and_errors():
    lamina.manual_seed(0)
    m = ctc.CTCReader(hidden=8, num_layers=1)
    x8, y = load_digits("test", flatten=False)
    x, lens, tg = ctc.make_strips(x8, y, 4, 1, 3, seed=0)
    lp, l2 = m(lamina.from_numpy(x), lens)
    assert lp.shape == (x.shape[1], 4, ctc.N_CLASSES) and np.array_equal(l2, lens)
    np.testing.assert_allclose(np.exp(lp.numpy()).sum(-1), 1, rtol=1e-5)
    loss = ctc.ctc_loss((lp, l2), tg)
    loss.backward()
    assert np.isfinite(loss.item()) and np.abs(m.out.weight.grad.numpy()).sum() > 0
    assert len(m.decode(x, lens)) == 4
    with pytest.raises(ValueError, match=r"CTCReader: expected input \(N, T, 8\)"):
        m(lamina.zeros(2, 10, 7))
    with pytest.raises(ValueError, match=r"CTCReader: lengths must have shape \(2,\)"):
        m(lamina.zeros(2, 10, 8), [10, 10, 10])


def test_ctc_quick_run_reads_short_strips():
    r = ctc.RECIPE.run(ctc.RECIPE.config(quick=True), verbose=False, log=lambda m: None)
    # 1-3 held-out digits, exact strings: chance is far below 1%
    assert r["test_sequence_accuracy"] > 0.4, r


def test_make_strips_augmentation_shifts_by_at_most_one_row_and_dims():
    x8, y = load_digits("test", flatten=False)
    x, lens, tg = ctc.make_strips(x8[:3], y[:3], 30, 1, 3, max_gap=0, seed=1, augment=True)
    shifted = 0
    for i in range(30):
        n = int((tg[i] > 0).sum())
        assert lens[i] == 8 * n
        for j in range(n):
            img = x[i, 8 * j:8 * j + 8].T
            ok = False
            for t in range(3):
                if y[t] + 1 != tg[i, j]:
                    continue
                for s in (-1, 0, 1):
                    ref = np.roll(x8[t], s, axis=0)
                    if s:
                        ref[0 if s > 0 else -1] = 0
                    scale = img.sum() / max(ref.sum(), 1e-9)
                    if 0.69 <= scale <= 1.01 and np.allclose(img, ref * scale, atol=1e-5):
                        ok, shifted = True, shifted + (s != 0)
            assert ok
    assert shifted > 0
