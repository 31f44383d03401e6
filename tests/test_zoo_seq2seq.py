"""Seq2seq zoo (issue 7, recipes seq2seq-attention and transformer-seq2seq): the
synthetic translation task, AttentionSeq2Seq and TransformerSeq2Seq (padding
invariance, attention weights, causal masking, greedy/beam decoding), and each
recipe's quick run."""

import numpy as np
import pytest

import lamina
from lamina.zoo import seq2seq_tasks as T
from lamina.zoo.seq2seq_attention import RECIPE as ATT_RECIPE, AttentionSeq2Seq
from lamina.zoo.transformer_seq2seq import RECIPE as TR_RECIPE, TransformerSeq2Seq

V = T.vocab_size(20)


def _t(a):
    return lamina.from_numpy(np.ascontiguousarray(np.asarray(a, np.int64)))


def _pad(rows, width):
    out = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _sentences(seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(3, V, n)) for n in (7, 3, 11, 5)]


# ---------------------------------------------------------------------- task data
def test_translation_pairs_reverse_and_sort():
    src, lens, tgt = T.translation_pairs(300, "reverse", 5, 30, 20, seed=1)
    assert src.shape == (300, 30) and tgt.shape == (300, 31) and V == 23
    assert lens.min() >= 5 and lens.max() <= 30 and len(np.unique(lens)) > 15
    for s, n, t in zip(src, lens, tgt):
        assert (s[n:] == T.PAD).all() and (s[:n] >= 3).all() and (s[:n] < V).all()
        np.testing.assert_array_equal(t[:n], s[:n][::-1])
        assert t[n] == T.EOS and (t[n + 1:] == T.PAD).all()
    src, lens, tgt = T.translation_pairs(50, "sort", seed=2)
    for s, n, t in zip(src, lens, tgt):
        np.testing.assert_array_equal(t[:n], np.sort(s[:n]))
    with pytest.raises(ValueError, match="task must be one of"):
        T.translation_pairs(5, "copy")


def test_splits_are_disjoint_and_decoder_input_is_shifted():
    d = T.task_splits(200, 100, n_val=50, seed=3, min_len=3, max_len=4, n_symbols=5)
    keys = {name: {tuple(r[:n]) for r, n in zip(s[0], s[1])} for name, s in d.items()}
    assert len(keys["train"]) == 200 and len(keys["test"]) == 100
    assert not keys["train"] & keys["test"] and not keys["val"] & (keys["train"] | keys["test"])
    with pytest.raises(ValueError, match="cannot draw 40 distinct"):
        T.translation_pairs(40, min_len=2, max_len=2, n_symbols=6)
    tgt = np.array([[5, 6, 2, 0, 0], [7, 2, 0, 0, 0]])
    np.testing.assert_array_equal(T.decoder_input(tgt),
                                  [[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])


def test_length_bucket_loader_covers_the_data_once_with_trimmed_similar_batches():
    split = T.translation_pairs(530, seed=4)
    seen, spreads = [], []
    for src, tin, tout in T.train_loader(split, 16, seed=0):
        s, ti, to = src.numpy(), tin.numpy(), tout.numpy()
        n = (s != T.PAD).sum(1)
        assert s.shape[1] == n.max() and to.shape[1] == n.max() + 1  # trimmed
        assert (ti[:, 0] == T.BOS).all()
        spreads.append(n.max() - n.min())
        seen += [tuple(r[:k]) for r, k in zip(s, n)]
    assert sorted(seen) == sorted(tuple(r[:k]) for r, k in zip(split[0], split[1]))
    assert np.mean(spreads) < 5      # random batches would span ~20 lengths


def test_exact_match_and_length_buckets():
    tgt = np.array([[5, 6, 2, 0], [7, 2, 0, 0], [8, 9, 2, 0]])
    pred = np.array([[5, 6, 2, 2], [7, 5, 2, 2], [8, 9, 9, 2]])
    np.testing.assert_array_equal(T.exact_match(pred, tgt), [True, False, False])
    acc = T.accuracy_by_length([1, 0, 1, 1], [5, 12, 14, 30])
    assert acc == {"5-10": 1.0, "11-15": 0.5, "26-30": 1.0}


# ---------------------------------------------------------------------- AttentionSeq2Seq
@pytest.fixture(params=["gru", "lstm"])
def att_model(request):
    lamina.manual_seed(0)
    m = AttentionSeq2Seq(V, 16, 24, 20, attention=True, cell=request.param)
    m.eval()
    return m


def test_attention_weights_sum_to_one_over_valid_positions(att_model):
    src = _pad(_sentences(), 14)
    tin = T.decoder_input(_pad([s[::-1] + [T.EOS] for s in _sentences()], 12))
    w = att_model.attention_weights(_t(src), _t(tin))
    assert w.shape == (4, 12, 14)
    valid = src != T.PAD
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert np.abs(w * ~valid[:, None, :]).max() == 0          # nothing on padding
    assert (w[valid[:, None, :].repeat(12, 1)] > 0).all()


def test_precomputed_key_attention_equals_additive_attention_module(att_model):
    src = _t(_pad(_sentences(), 12))
    with lamina.no_grad():
        enc = att_model.encode(src)
        q = lamina.from_numpy(np.random.default_rng(0).standard_normal((4, 24))
                              .astype(np.float32))
        ctx, w = att_model._attend(q, enc)
        ctx2, w2 = att_model.attn(q, enc["memory"],
                                  key_padding_mask=lamina.from_numpy(enc["mask"]))
    np.testing.assert_allclose(w.numpy(), w2.numpy(), atol=1e-6)
    np.testing.assert_allclose(ctx.numpy(), ctx2.numpy(), atol=1e-6)


def _assert_padding_invariant(m, sents, max_len):
    """Extra source padding changes neither the teacher-forced logits nor the greedy and
    beam outputs (each sentence decoded alone vs inside a padded batch)."""
    tin = _t(T.decoder_input(_pad([s[::-1] + [T.EOS] for s in sents], 12)))
    with lamina.no_grad():
        a = m(_t(_pad(sents, 11)), tin).numpy()
        b = m(_t(_pad(sents, 25)), tin).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    for method in ("greedy", "beam"):
        alone = [m.decode(_t([s]), method, beam_size=3, max_len=max_len).numpy()[0]
                 for s in sents]
        batch = m.decode(_t(_pad(sents, 20)), method, beam_size=3, max_len=max_len).numpy()
        for x, y in zip(alone, batch):
            np.testing.assert_array_equal(x, y[:len(x)])


@pytest.mark.parametrize("attention", [True, False])
def test_attention_seq2seq_padding_does_not_change_logits_or_decoding(attention):
    lamina.manual_seed(1)
    m = AttentionSeq2Seq(V, 16, 24, 20, attention=attention)
    m.eval()
    _assert_padding_invariant(m, _sentences(1), 14)


def test_attention_seq2seq_teacher_forcing_matches_stepwise_and_gradients_flow():
    lamina.manual_seed(2)
    for attention in (True, False):
        m = AttentionSeq2Seq(V, 16, 24, 20, attention=attention)
        src = _t(_pad(_sentences(), 11))
        tin = _t(T.decoder_input(_pad([s[::-1] + [T.EOS] for s in _sentences()], 12)))
        logits = m(src, tin)
        assert logits.shape == (4, 12, V)
        # the fused no-attention path equals the step-by-step decoder
        with lamina.no_grad():
            enc = m.encode(src)
            st, steps = enc["state"], []
            for i in range(12):
                lg, st, _ = m.step(_t(tin.numpy()[:, i]), st, enc)
                steps.append(lg.numpy())
        np.testing.assert_allclose(logits.detach().numpy(), np.stack(steps, 1), atol=1e-5)
        T.sequence_loss(logits, tin).backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name
        g = m.encoder.weight_ih_l0.grad.numpy()
        assert np.abs(g).sum() > 0


def _forced_log_prob(m, src, tokens):
    """Sum of the teacher-forced log-probabilities of ``tokens`` up to the first EOS."""
    tok = tokens.numpy()
    tin = np.concatenate([np.full((len(tok), 1), T.BOS), tok[:, :-1]], 1)
    with lamina.no_grad():
        lp = lamina.nn.functional.log_softmax(m(src, _t(tin)), -1).numpy()
    picked = np.take_along_axis(lp, tok[:, :, None], 2)[:, :, 0]
    live = (np.cumsum(tok == T.EOS, 1) - (tok == T.EOS)) == 0
    return (picked * live).sum(1)


@pytest.mark.parametrize("model", ["attention", "transformer"])
def test_greedy_is_beam_of_one_and_beam_scores_are_the_sequence_log_probs(model):
    lamina.manual_seed(3)
    m = AttentionSeq2Seq(V, 16, 24, 20) if model == "attention" else \
        TransformerSeq2Seq(V, 32, 4, 1, 1, 64)
    m.eval()
    src = _t(_pad(_sentences(), 11))
    g, gs = m.decode(src, "greedy", max_len=10, return_scores=True)
    b1 = m.decode(src, "beam", beam_size=1, max_len=10, length_penalty=0)
    np.testing.assert_array_equal(g.numpy(), b1.numpy())
    np.testing.assert_allclose(gs.numpy(), _forced_log_prob(m, src, g), atol=1e-4)
    b, bs = m.decode(src, "beam", beam_size=5, max_len=10, length_penalty=0,
                     return_scores=True)
    np.testing.assert_allclose(bs.numpy(), _forced_log_prob(m, src, b), atol=1e-4)


def test_attention_seq2seq_bad_inputs_name_the_model_and_shapes():
    m = AttentionSeq2Seq(V, 8, 8, 8)
    with pytest.raises(ValueError, match=r"AttentionSeq2Seq.*src.*\(B, L\).*\(3,\)"):
        m.decode(_t([3, 4, 5]))
    with pytest.raises(ValueError, match=r"AttentionSeq2Seq.*\[0, 23\).*max 30"):
        m.decode(_t([[3, 30]]))
    with pytest.raises(ValueError, match="right-padded"):
        m.decode(_t([[0, 3, 4]]))
    with pytest.raises(ValueError, match="at least one non-pad"):
        m.decode(_t([[3, 4], [0, 0]]))
    with pytest.raises(ValueError, match=r"same batch size.*\(2, 2\).*\(3, 2\)"):
        m(_t([[3, 4], [5, 6]]), _t([[1, 3]] * 3))
    with pytest.raises(ValueError, match="method must be"):
        m.decode(_t([[3, 4]]), method="sample")
    with pytest.raises(ValueError, match="cell must be"):
        AttentionSeq2Seq(V, cell="rnn")
    with pytest.raises(ValueError, match="no attention weights"):
        AttentionSeq2Seq(V, 8, 8, 8, attention=False).attention_weights(
            _t([[3, 4]]), _t([[1, 4]]))


# ---------------------------------------------------------------------- TransformerSeq2Seq
@pytest.mark.parametrize("src_positions", ["start", "end"])
def test_transformer_padding_does_not_change_logits_or_decoding(src_positions):
    lamina.manual_seed(4)
    m = TransformerSeq2Seq(V, 32, 4, 2, 2, 64, src_positions=src_positions)
    m.eval()
    _assert_padding_invariant(m, _sentences(2), 8)


def test_transformer_is_causal_and_decoding_matches_teacher_forcing():
    lamina.manual_seed(5)
    m = TransformerSeq2Seq(V, 32, 4, 2, 2, 64)
    m.eval()
    src = _t(_pad(_sentences(), 11))
    tin = T.decoder_input(_pad([s[::-1] + [T.EOS] for s in _sentences()], 12))
    changed = tin.copy()
    changed[:, 6:] = 5
    with lamina.no_grad():
        a, b = m(src, _t(tin)).numpy(), m(src, _t(changed)).numpy()
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-5)   # the future is not seen
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-3
    # greedy output = argmax of the teacher-forced logits on its own output
    g = m.decode(src, "greedy", max_len=9).numpy()
    with lamina.no_grad():
        tf = m(src, _t(np.concatenate([np.full((4, 1), T.BOS), g[:, :-1]], 1))).numpy()
    done = np.cumsum(g == T.EOS, 1) - (g == T.EOS) > 0  # positions after the first EOS
    np.testing.assert_array_equal(np.where(done, T.EOS, tf.argmax(-1)), g)
    b1 = m.decode(src, "beam", beam_size=1, max_len=9, length_penalty=0).numpy()
    np.testing.assert_array_equal(b1, g)


def test_transformer_bad_inputs():
    m = TransformerSeq2Seq(V, 16, 2, 1, 1, 32, max_len=20)
    with pytest.raises(ValueError, match=r"TransformerSeq2Seq.*longer than max_len=20"):
        m.decode(_t(np.full((1, 25), 3)))
    with pytest.raises(ValueError, match=r"TransformerSeq2Seq.*tgt_in.*\(B, L\)"):
        m(_t([[3, 4]]), _t([1, 3]))
    with pytest.raises(ValueError, match="src_positions"):
        TransformerSeq2Seq(V, src_positions="middle")


# ---------------------------------------------------------------------- quick recipes
def test_seq2seq_attention_quick_run_learns_and_beats_no_attention(tmp_path):
    cfg = ATT_RECIPE.config(quick=True)
    res = ATT_RECIPE.run(cfg, out_dir=str(tmp_path), verbose=False, log=lambda m: None)
    att = res["attention"]
    assert att["test_token_accuracy"] > 0.85           # chance: 1/20
    assert res["greedy_exact_match"] > 0.5             # chance: ~0
    assert res["beam_exact_match"] > 0.5
    assert res["greedy_exact_match"] > res["no_attention_exact_match"] + 0.4
    assert set(att["greedy_by_length"]) == {"5-10"}
    png = tmp_path / "attention.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results.json").exists()


def test_transformer_seq2seq_quick_run_learns(tmp_path):
    cfg = TR_RECIPE.config(quick=True)
    res = TR_RECIPE.run(cfg, out_dir=str(tmp_path), verbose=False, log=lambda m: None)
    assert res["test_token_accuracy"] > 0.5            # chance: 1/20
    assert res["greedy_exact_match"] > 0.05
    assert "beam_exact_match" in res
