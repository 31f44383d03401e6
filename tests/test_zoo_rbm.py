"""rbm: the binary RBM's closed forms (free energy, partition function, conditionals) against
brute-force enumeration and torch, AIS against the exact log Z, CD learning, the recipe."""
import itertools
import json
import os

import numpy as np
import pytest
import torch

import lamina
from lamina.autograd import gradcheck
from lamina.zoo.rbm import RECIPE, RBM, ais_betas, log_odds, train_rbm

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def random_rbm(n_v, n_h, scale=1.0, seed=0):
    lamina.manual_seed(seed)
    rbm = RBM(n_v, n_h, init_std=scale, dtype="float64")
    rng = np.random.default_rng(seed + 100)
    rbm.b.data[...] = rng.standard_normal(n_v) * scale
    rbm.c.data[...] = rng.standard_normal(n_h) * scale
    return rbm


def joint_log_weights(rbm):
    """-E(v, h) for every (v, h): (2^n_v, 2^n_h), by the energy formula itself."""
    W, b, c = rbm.W.data, rbm.b.data, rbm.c.data
    V, H = all_states(rbm.n_visible), all_states(rbm.n_hidden)
    return V @ b[:, None] + (H @ c)[None, :] + V @ W @ H.T, V, H


def logsumexp(a, axis=None):
    return torch.logsumexp(torch.from_numpy(np.asarray(a)), dim=axis).numpy() \
        if axis is not None else float(torch.logsumexp(torch.from_numpy(a).reshape(-1), 0))


# ---------------------------------------------------------------------------- closed forms
def test_energy_matches_its_formula():
    rbm = random_rbm(5, 4)
    neg_e, V, H = joint_log_weights(rbm)
    for i, j in ((0, 0), (7, 3), (31, 15), (18, 9)):
        assert rbm.energy(V[i:i + 1], H[j:j + 1]).item() == pytest.approx(-neg_e[i, j],
                                                                           abs=1e-12)


def test_free_energy_is_minus_log_sum_over_hidden_states():
    rbm = random_rbm(5, 4)
    neg_e, V, _ = joint_log_weights(rbm)
    want = -logsumexp(neg_e, axis=1)                       # -log Σ_h exp(-E(v, h))
    got = rbm.free_energy(V).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_free_energy_values_and_gradients_match_torch():
    rbm = random_rbm(7, 5, scale=2.0, seed=3)                # pre-activations well past ±5
    v = (np.random.default_rng(1).random((6, 7)) < 0.5).astype(np.float64)
    out = rbm.free_energy(v)
    g = np.random.default_rng(2).standard_normal(6)
    (out * lamina.from_numpy(g)).sum().backward()
    W, b, c = (torch.tensor(p.data, requires_grad=True) for p in (rbm.W, rbm.b, rbm.c))
    vt = torch.from_numpy(v)
    ref = -(vt @ b) - torch.nn.functional.softplus(vt @ W + c, threshold=1e9).sum(-1)
    (ref * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-13, atol=1e-12)
    for p, t in ((rbm.W, W), (rbm.b, b), (rbm.c, c)):
        np.testing.assert_allclose(np.asarray(p.grad), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_free_energy_gradcheck():
    rbm = random_rbm(4, 3, seed=5)
    v = lamina.from_numpy((np.random.default_rng(0).random((3, 4)) < 0.5).astype(np.float64))
    W, b, c = (lamina.from_numpy(p.data.copy()) for p in (rbm.W, rbm.b, rbm.c))
    for t in (W, b, c):
        t.requires_grad = True

    def fe(W, b, c):
        rbm.W.data[...], rbm.b.data[...], rbm.c.data[...] = W.data, b.data, c.data
        return -(v @ b) - lamina.nn.functional.softplus(v @ W + c).sum(-1)

    assert gradcheck(fe, (W, b, c))
    # and the model's own expression has the closed-form gradient -v σ(c + vW)ᵀ in W
    rbm = random_rbm(4, 3, seed=5)
    rbm.free_energy(v).sum().backward()
    sig = 1 / (1 + np.exp(-(v.data @ rbm.W.data + rbm.c.data)))
    np.testing.assert_allclose(np.asarray(rbm.W.grad), -v.data.T @ sig, atol=1e-12)
    np.testing.assert_allclose(np.asarray(rbm.b.grad), -v.data.sum(0), atol=1e-12)
    np.testing.assert_allclose(np.asarray(rbm.c.grad), -sig.sum(0), atol=1e-12)


def test_exact_log_partition_matches_brute_force_over_all_states():
    for n_v, n_h, chunk in ((5, 4, 4096), (6, 7, 16)):      # chunk 16: several chunks
        rbm = random_rbm(n_v, n_h, seed=n_h)
        neg_e, _, _ = joint_log_weights(rbm)
        assert rbm.log_partition_exact(chunk=chunk) == pytest.approx(logsumexp(neg_e),
                                                                     abs=1e-11)


def test_likelihood_sums_to_one_over_all_visible_states():
    rbm = random_rbm(6, 4, seed=2)
    V = all_states(6)
    log_p = rbm.log_likelihood(V, rbm.log_partition_exact())
    assert log_p.shape == (64,) and np.all(log_p < 0)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)


def test_conditionals_match_the_joint():
    rbm = random_rbm(5, 4, seed=4)
    neg_e, V, H = joint_log_weights(rbm)
    p_joint = np.exp(neg_e - logsumexp(neg_e))
    p_h_v = p_joint / p_joint.sum(1, keepdims=True)           # p(h | v), each row
    np.testing.assert_allclose(rbm.p_h_given_v(V).numpy(), p_h_v @ H, atol=1e-12)
    p_v_h = p_joint / p_joint.sum(0, keepdims=True)           # p(v | h), each column
    np.testing.assert_allclose(rbm.p_v_given_h(H).numpy(), p_v_h.T @ V, atol=1e-12)


def test_gibbs_chains_sample_the_model_distribution():
    rbm = random_rbm(4, 3, scale=0.8, seed=6)
    V = all_states(4)
    p = np.exp(rbm.log_likelihood(V, rbm.log_partition_exact()))
    rng = np.random.default_rng(0)
    v = rbm.gibbs(np.zeros((4000, 4)), 30, rng)              # 4,000 chains, 30 steps
    counts = np.bincount((v.numpy() @ (2 ** np.arange(3, -1, -1))).astype(int), minlength=16)
    freq = counts / counts.sum()
    se = np.sqrt(p * (1 - p) / 4000)
    assert np.all(np.abs(freq - p) < 5 * se + 1e-3), (freq, p)
    # the shapes of the sampling methods
    ph, h = rbm.sample_h(v[:5], rng)
    assert ph.shape == h.shape == (5, 3) and set(np.unique(h.numpy())) <= {0.0, 1.0}
    pv, v2 = rbm.sample_v(h, rng)
    assert pv.shape == v2.shape == (5, 4)


def test_reconstruction_error_is_one_mean_field_up_down_pass():
    rbm = random_rbm(5, 4, seed=8)
    v = all_states(5)[::3]
    sig = lambda a: 1 / (1 + np.exp(-a))                      # noqa: E731
    r = sig(sig(v @ rbm.W.data + rbm.c.data) @ rbm.W.data.T + rbm.b.data)
    assert rbm.reconstruction_error(v) == pytest.approx(((v - r) ** 2).sum(1).mean(),
                                                        rel=1e-12)


def test_ais_estimate_is_close_to_the_exact_log_partition():
    rbm = random_rbm(40, 10, scale=0.5, seed=7)
    exact = rbm.log_partition_exact()
    base = np.random.default_rng(0).standard_normal(40) * 0.5
    est, log_w = rbm.log_partition_ais(200, 2000, np.random.default_rng(1), base,
                                       return_log_weights=True)
    assert log_w.shape == (200,)
    assert est == pytest.approx(exact, abs=0.05)
    # with very few intermediate models the estimate is worse (here: well off)
    rough = rbm.log_partition_ais(200, 3, np.random.default_rng(1), base)
    assert abs(rough - exact) > abs(est - exact)


def test_ais_betas_run_from_zero_to_one_increasing():
    for n in (2, 10, 1000, 14500):
        b = ais_betas(n)
        assert len(b) == n and b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)


def test_cd1_on_a_toy_dataset_increases_the_exact_likelihood():
    rng = np.random.default_rng(0)
    protos = (rng.random((3, 16)) < 0.5).astype(np.float32)
    data = protos[rng.integers(0, 3, 600)]
    data = np.abs(data - (rng.random(data.shape) < 0.05)).astype(np.float32)   # 5% flips
    lamina.manual_seed(0)
    rbm = RBM(16, 8, init_std=0.01)
    rbm.b.data[...] = log_odds(data)
    before = rbm.log_likelihood(data, rbm.log_partition_exact()).mean()
    err0 = rbm.reconstruction_error(data)
    train_rbm(rbm, data, "cd", 1, epochs=20, lr=0.1, momentum=0.5, batch_size=20, seed=0)
    after = rbm.log_likelihood(data, rbm.log_partition_exact()).mean()
    assert after > before + 3.0, (before, after)              # ~ -11 -> ~ -6 nats
    assert rbm.reconstruction_error(data) < 0.5 * err0


def test_errors_name_the_model_and_shapes():
    rbm = RBM(6, 3)
    with pytest.raises(ValueError, match=r"RBM\(n_visible=6, n_hidden=3\).free_energy.*\(N, 6\)"
                                         r".*\(2, 5\)"):
        rbm.free_energy(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"p_v_given_h.*hidden.*\(N, 3\)"):
        rbm.p_v_given_h(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="log_partition_exact.*n_hidden must be <= 24"):
        RBM(4, 30).log_partition_exact()
    with pytest.raises(ValueError, match="method"):
        train_rbm(rbm, np.zeros((10, 6)), "cd2")


# ---------------------------------------------------------------------------- recipe
def test_recipe_config():
    cfg = RECIPE.config()
    assert cfg["n_hidden"] >= 128 and cfg["subset"] == 0
    assert set(cfg["methods"].split(",")) == {"cd1", "cd10", "pcd"}
    q = RECIPE.config(quick=True)
    assert q["subset"] and set(q["methods"].split(",")) == {"cd1", "cd10", "pcd"}
    with pytest.raises(KeyError, match="rbm"):
        RECIPE.config({"nope": 1})


@needs_fashion
def test_quick_recipe_learns_and_writes_its_figures(tmp_path):
    res = RECIPE.run(RECIPE.config(quick=True), out_dir=str(tmp_path), verbose=False)
    for m in ("cd1", "cd10", "pcd"):
        r = res[m]
        assert r["test_recon_error"] < 0.85 * r["test_recon_error_init"], (m, r)
        assert np.isfinite(r["log_Z_ais"]) and r["test_log_likelihood_ais"] < 0
    small = res["small"]
    assert abs(small["ais_minus_exact"]) < 1.0, small
    assert small["test_log_likelihood_exact"] < 0
    for name in ("samples.png", "filters.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == PNG
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)
    assert saved["recipe"] == "rbm" and saved["config"]["subset"] and "seconds" in saved
