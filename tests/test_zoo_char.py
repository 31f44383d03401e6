"""Character language models of the zoo (char-rnn, char-transformer): generation with
known answers, truncated-BPTT batching and state carrying, causality, input errors, the
quick recipes (which must beat a bigram model, so a model without memory fails) and
``lamina generate``."""
import importlib

import numpy as np
import pytest

import lamina
from lamina.data.text import SHAKESPEARE_TITLES, Vocab, load_shakespeare, shakespeare_plays
from lamina.zoo import char_rnn as cr
from lamina.zoo import char_transformer as ct


# ------------------------------------------------------------------ rigged models
class Rigged(cr.CharLM):
    """logits[t] = scale * onehot((x[t] + 1) % V) + bias: the next token is the
    successor of the current one (when ``scale`` dominates), or drawn from softmax(bias)
    (when scale is 0)."""

    def __init__(self, vocab_size, scale=50.0, bias=None):
        super().__init__()
        self.vocab_size, self.scale = vocab_size, scale
        self.bias = np.zeros(vocab_size) if bias is None else np.asarray(bias, float)
        self.calls = 0

    def step(self, ids, state):
        self.calls += 1
        a = self._check_ids(ids)
        logits = self.scale * np.eye(self.vocab_size)[(a + 1) % self.vocab_size] + self.bias
        return lamina.from_numpy(logits.astype(np.float32)), state


def test_rigged_model_generates_the_expected_string():
    vocab = Vocab(list("abcd"))
    m = Rigged(4)
    out = m.generate(vocab.encode("ca"), 7, temperature=0.8, generator=0)
    assert vocab.decode(out) == "bcdabcd"
    assert out.dtype == np.int64 and out.shape == (7,)
    assert m.calls == 7                         # the prime once, then one step per token
    batch = m.generate(np.array([[0], [2]]), 3, temperature=1.0, generator=1)
    np.testing.assert_array_equal(batch, [[1, 2, 3], [3, 0, 1]])
    assert m.generate([1], 0).shape == (0,)


def test_sampling_follows_softmax_of_logits_over_temperature():
    bias = np.log([0.5, 0.3, 0.2])
    m = Rigged(3, scale=0.0, bias=bias)
    prime = np.zeros((20000, 1), np.int64)
    draws = m.generate(prime, 1, temperature=1.0, generator=0)[:, 0]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), [0.5, 0.3, 0.2],
                               atol=0.015)
    # temperature 0.5 squares the probabilities (then renormalises)
    p = np.array([0.5, 0.3, 0.2]) ** 2
    draws = m.generate(prime, 1, temperature=0.5, generator=1)[:, 0]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), p / p.sum(),
                               atol=0.015)


def _models():
    lamina.manual_seed(0)
    rnn = cr.CharRNN(11, hidden_size=16, embed_dim=8, num_layers=2, cell="lstm")
    gru = cr.CharRNN(11, hidden_size=16, embed_dim=8, cell="gru")
    tr = ct.CharTransformer(11, d_model=16, nhead=2, num_layers=2, dim_feedforward=32,
                            block_size=6, dropout=0.0)
    return {"lstm": rnn, "gru": gru, "transformer": tr}


def _full_logits(model, seq):
    """Logits of the last position, recomputed from scratch on the whole sequence (the
    transformer sees only its last block_size tokens)."""
    x = np.asarray(seq, np.int64)[None]
    with lamina.no_grad():
        if isinstance(model, ct.CharTransformer):
            return model(x[:, -model.block_size:]).numpy()[0, -1]
        return model(x)[0].numpy()[0, -1]


@pytest.mark.parametrize("kind", ["lstm", "gru", "transformer"])
def test_temperature_zero_is_argmax_decoding(kind):
    model = _models()[kind]
    model.eval()
    prime = [3, 1, 4, 1]
    out = model.generate(prime, 12, temperature=0, generator=0)
    seq = list(prime)
    for _ in range(12):                       # greedy decoding without carried state
        seq.append(int(np.argmax(_full_logits(model, seq))))
    assert list(out) == seq[len(prime):]
    # a tiny temperature samples the argmax too
    np.testing.assert_array_equal(model.generate(prime, 12, temperature=1e-4, generator=5),
                                  out)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_seeded_sampling_is_reproducible(kind):
    model = _models()[kind]
    a = model.generate([1, 2], 40, temperature=1.5, generator=np.random.default_rng(7))
    b = model.generate([1, 2], 40, temperature=1.5, generator=np.random.default_rng(7))
    c = model.generate([1, 2], 40, temperature=1.5, generator=8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert model.training                     # generate restores the mode


def test_generate_rejects_bad_arguments_with_clear_errors():
    m = _models()["lstm"]
    with pytest.raises(ValueError, match=r"CharRNN.generate: prime_ids must be a non-empty"):
        m.generate([], 5)
    with pytest.raises(ValueError, match=r"CharRNN: prime_ids token ids must be in \[0, 11\)"):
        m.generate([3, 11], 5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        m.generate([3], 5, temperature=-1)
    with pytest.raises(ValueError, match="length must be a non-negative integer"):
        m.generate([3], -2)


def test_models_reject_bad_input_naming_the_model_and_shape():
    ms = _models()
    with pytest.raises(ValueError, match=r"CharRNN: input must be \(batch, time\) integer.*"
                                         r"shape \(2, 3, 4\)"):
        ms["lstm"](np.zeros((2, 3, 4), np.int64))
    with pytest.raises(ValueError, match=r"CharRNN: input must be .*dtype float"):
        ms["gru"](np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"CharTransformer: sequence length must be in "
                                         r"\[1, 6\].*\(1, 7\)"):
        ms["transformer"](np.zeros((1, 7), np.int64))
    with pytest.raises(ValueError, match="cell must be one of"):
        cr.CharRNN(5, cell="tanh")
    with pytest.raises(ValueError, match="divisible"):
        ct.CharTransformer(5, d_model=10, nhead=4)


def test_shapes():
    ms = _models()
    x = np.random.default_rng(0).integers(0, 11, (3, 5))
    out, (h, c) = ms["lstm"](x)
    assert out.shape == (3, 5, 11) and h.shape == (2, 3, 16) and c.shape == (2, 3, 16)
    out, h = ms["gru"](x)
    assert out.shape == (3, 5, 11) and h.shape == (1, 3, 16)
    assert ms["transformer"](x).shape == (3, 5, 11)


def test_transformer_is_causal():
    m = _models()["transformer"]
    m.eval()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (2, 6))
    y = x.copy()
    y[:, 3:] = rng.integers(0, 11, (2, 3))
    with lamina.no_grad():
        a, b = m(x).numpy(), m(y).numpy()
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-5)
    assert np.abs(a[:, 3:] - b[:, 3:]).max() > 1e-3


# ------------------------------------------------------------------ TBPTT machinery
def test_shakespeare_plays_cut_the_corpus_at_the_title_lines():
    text = load_shakespeare()
    plays = shakespeare_plays(text)
    assert [t for t, _ in plays] == list(SHAKESPEARE_TITLES)
    assert "".join(p for _, p in plays) == text
    for title, p in plays:
        assert p.startswith(title + "\n\nby William Shakespeare")
    assert "To be, or not to be" in plays[0][1] and "Puck" in plays[-1][1]
    with pytest.raises(ValueError, match="no title line"):
        shakespeare_plays(text.replace("MACBETH\n\nby", "MACBETH\nby"))


def test_split_by_play_holds_out_the_end_of_every_play():
    vocab, tr, va = cr.shakespeare_split(0.1, by="play")
    ids = vocab.encode(load_shakespeare())
    assert len(tr) + len(va) == len(ids) and abs(len(va) / len(ids) - 0.1) < 1e-3
    a = t0 = v0 = 0
    for _, p in shakespeare_plays():
        cut = int(round(len(p) * 0.9))
        np.testing.assert_array_equal(tr[t0:t0 + cut], ids[a:a + cut])
        np.testing.assert_array_equal(va[v0:v0 + len(p) - cut], ids[a + cut:a + len(p)])
        a, t0, v0 = a + len(p), t0 + cut, v0 + len(p) - cut
    assert t0 == len(tr) and v0 == len(va)
    # by position: the first 90% and the last 10% of the corpus
    _, trp, vap = cr.shakespeare_split(0.1)
    np.testing.assert_array_equal(np.concatenate([trp, vap]), ids)
    assert len(trp) == int(round(len(ids) * 0.9))
    with pytest.raises(ValueError, match="by must be"):
        cr.shakespeare_split(0.1, by="scene")


def test_recipes_default_to_the_per_play_split_and_quick_runs_to_a_prefix():
    for mod in (cr, ct):
        assert mod.RECIPE.config()["split"] == "play"
    cfg = cr.RECIPE.config(quick=True)
    vocab, tr, va = cr._corpus(cfg)
    ids = vocab.encode(load_shakespeare()[:cfg["corpus_chars"]])
    np.testing.assert_array_equal(np.concatenate([tr, va]), ids)


def test_stream_batches_are_consecutive_chunks_of_parallel_streams():
    ids = np.arange(1000)
    sb = cr.StreamBatches(ids, batch_size=4, seq_len=10)
    batches = list(sb)
    assert len(batches) == len(sb) == 24
    assert [r for _, r, _ in batches] == [True] + [False] * 23
    streams = ids[:1000].reshape(4, 250)
    for k, (x, _, y) in enumerate(batches):
        np.testing.assert_array_equal(x.numpy(), streams[:, 10 * k:10 * k + 10])
        np.testing.assert_array_equal(y.numpy(), streams[:, 10 * k + 1:10 * k + 11])
    # shifted epochs start elsewhere but stay contiguous
    sh = cr.StreamBatches(ids, 4, 10, shift=True, seed=0)
    starts = {int(next(iter(sh))[0].numpy()[0, 0]) for _ in range(6)}
    assert len(starts) > 1 and max(starts) < 10
    with pytest.raises(ValueError, match="too few"):
        cr.StreamBatches(np.arange(30), 4, 10)


def test_tbptt_carries_the_state_detached():
    lamina.manual_seed(0)
    inner = cr.CharRNN(7, hidden_size=8, embed_dim=4)
    m = cr.TBPTT(inner)
    x = np.random.default_rng(0).integers(0, 7, (2, 12))
    with lamina.no_grad():
        whole = inner(x)[0].numpy()
    out1 = m(x[:, :5], True)
    out2 = m(x[:, 5:], False)
    np.testing.assert_allclose(np.concatenate([out1.numpy(), out2.numpy()], 1), whole,
                               atol=1e-5)
    assert all(not t.requires_grad for t in m._state)
    fresh = m(x[:, 5:], True)                  # reset: starts from zero again
    with lamina.no_grad():
        np.testing.assert_allclose(fresh.numpy(), inner(x[:, 5:])[0].numpy(), atol=1e-5)
    # backward through the second chunk only reaches this chunk's graph
    loss = cr.lm_loss(m(x[:, 5:], False), x[:, 5:])
    loss.backward()
    assert inner.rnn.weight_hh_l0.grad is not None
    assert list(m.state_dict()) == ["model." + k for k in inner.state_dict()]


def test_lm_loss_of_uniform_logits_is_log_vocab():
    logits = lamina.zeros(2, 3, 5)
    assert abs(cr.lm_loss(logits, np.zeros((2, 3), np.int64)).item() - np.log(5)) < 1e-6


# ------------------------------------------------------------------ quick recipes
def _bigram_entropy(train, val, v):
    """Validation cross-entropy of the add-one-smoothed bigram model of ``train``: the
    best a model that sees only the current character can do (roughly)."""
    counts = np.ones((v, v))
    np.add.at(counts, (train[:-1], train[1:]), 1)
    p = counts / counts.sum(1, keepdims=True)
    return float(-np.log(p[val[:-1], val[1:]]).mean())


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    out = {}
    for mod in (cr, ct):
        d = tmp_path_factory.mktemp(mod.RECIPE.name)
        cfg = mod.RECIPE.config(quick=True)
        out[mod.RECIPE.name] = (mod.RECIPE.run(cfg, out_dir=str(d), verbose=False), d, cfg)
    return out


@pytest.mark.parametrize("name", ["char-rnn", "char-transformer"])
def test_quick_recipe_beats_unigram_and_bigram_models(quick_runs, name):
    res, d, cfg = quick_runs[name]
    vocab, train, val = cr._corpus(cfg)
    bigram = _bigram_entropy(train, val, len(vocab))
    assert res["unigram_entropy"] > 3.2
    # a model without memory (or broken recurrence/attention) cannot beat the bigram model
    assert res["val_loss"] < bigram - 0.1, (res["val_loss"], bigram)
    assert res["val_loss"] < res["unigram_entropy"] - 1.0
    assert res["sample"].startswith("ROMEO:") and len(res["sample"]) == 206
    assert (d / "best.safetensors").is_file()


# ------------------------------------------------------------------ lamina generate
@pytest.fixture
def registered(monkeypatch):
    zoo = importlib.import_module("lamina.zoo")
    monkeypatch.setitem(zoo.RECIPES, "char-rnn", "lamina.zoo.char_rnn")
    monkeypatch.setitem(zoo.RECIPES, "char-transformer", "lamina.zoo.char_transformer")


@pytest.mark.parametrize("name", ["char-rnn", "char-transformer"])
def test_cli_generate_samples_reproducibly_from_a_checkpoint(quick_runs, registered, capsys,
                                                              name):
    from lamina.cli import main
    _, d, _ = quick_runs[name]
    ck = str(d / "best.safetensors")
    args = ["generate", ck, "--prime", "ROMEO:", "--temperature", "0.8", "--length", "60",
            "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) == 66
    assert main(args[:-1] + ["4"]) == 0
    assert capsys.readouterr().out != first
    # greedy decoding through the CLI equals the model's argmax decoding
    assert main(["generate", ck, "--prime", "KING", "--temperature", "0", "--length", "30"]) == 0
    greedy = capsys.readouterr().out.rstrip("\n")
    recipe = {"char-rnn": cr.RECIPE, "char-transformer": ct.RECIPE}[name]
    ckpt = lamina.load(ck)
    cfg = dict(ckpt["config"])
    cfg.pop("recipe")
    model, vocab = recipe.text_model(recipe.config(cfg))
    model.load_state_dict(ckpt["model"])
    assert greedy == "KING" + vocab.decode(model.generate(vocab.encode("KING"), 30, 0))


def test_cli_generate_errors(quick_runs, registered, capsys, tmp_path):
    from lamina.cli import main
    _, d, _ = quick_runs["char-rnn"]
    ck = str(d / "best.safetensors")
    assert main(["generate", str(tmp_path / "nope.safetensors")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04not a checkpoint, maybe a pickle" * 4)
    assert main(["generate", str(junk)]) == 2
    assert "lamina.load" in capsys.readouterr().err
    other = tmp_path / "other.safetensors"
    lamina.save({"model": {"w": np.zeros(2, np.float32)}, "config": {"recipe": "polyfit"}},
                other)
    assert main(["generate", str(other)]) == 2
    assert "not a text model" in capsys.readouterr().err
    plain = tmp_path / "plain.safetensors"
    lamina.save({"w": np.zeros(2, np.float32)}, plain)
    assert main(["generate", str(plain)]) == 2
    assert "not a recipe checkpoint" in capsys.readouterr().err
    # a checkpoint whose weights do not fit the configured model
    bad = lamina.load(ck)
    bad["config"]["hidden_size"] = 64
    lamina.save(bad, tmp_path / "bad.safetensors")
    assert main(["generate", str(tmp_path / "bad.safetensors")]) == 2
    assert "does not fit recipe 'char-rnn'" in capsys.readouterr().err
    assert main(["generate", ck, "--prime", "ROMEO~\u00e9"]) == 2
    assert "does not know" in capsys.readouterr().err
    assert main(["generate", ck, "--temperature", "-1"]) == 2
    assert main(["generate", ck, "--length", "-1"]) == 2
