"""The autoencoder recipes (pca-vs-ae, tied-ae, denoising-ae, contractive-ae) and their
models, penalties and closed forms, with torch as the oracle."""
import importlib
import json
import os

import numpy as np
import pytest
import torch

import lamina
from lamina.autograd import gradcheck
from lamina.nn import functional as F
from lamina.zoo import autoencoders as ae

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION),
                                   reason="Fashion-MNIST not installed "
                                          "(apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def _leaf(a):
    return lamina.tensor(np.array(a, dtype=np.float64), requires_grad=True)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 1000


# ---------------------------------------------------------------- contractive penalty
def _sigmoid_layer_data(seed=0, n=5, d=7, k=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((k, d)), rng.standard_normal(k)


def test_contractive_penalty_is_the_squared_frobenius_norm_of_the_jacobian():
    x, w, b = _sigmoid_layer_data()
    h = F.sigmoid(lamina.tensor(x) @ lamina.tensor(w).T + lamina.tensor(b))
    pen = ae.contractive_penalty(h, lamina.tensor(w)).numpy()
    assert pen.shape == (len(x),) and pen.dtype == np.float64
    tw, tb = torch.tensor(w), torch.tensor(b)
    ref = [float((torch.autograd.functional.jacobian(
        lambda v: torch.sigmoid(tw @ v + tb), torch.tensor(xi)) ** 2).sum()) for xi in x]
    np.testing.assert_allclose(pen, ref, rtol=1e-12, atol=1e-14)
    # and column by column with central differences (no torch)
    eps = 1e-6
    fd = []
    for xi in x:
        cols = [(1 / (1 + np.exp(-(w @ (xi + eps * e) + b))) -
                 1 / (1 + np.exp(-(w @ (xi - eps * e) + b)))) / (2 * eps) for e in np.eye(len(xi))]
        fd.append(np.sum(np.square(cols)))
    np.testing.assert_allclose(pen, fd, rtol=1e-7)


def test_contractive_penalty_gradients_gradcheck_and_match_torch():
    x, w, b = _sigmoid_layer_data(1)
    inputs = (_leaf(x), _leaf(w), _leaf(b))

    def pen(xx, ww, bb):
        return ae.contractive_penalty(F.sigmoid(xx @ ww.T + bb), ww)
    assert gradcheck(pen, inputs)
    # the gradient of the mean penalty w.r.t. W and b, against torch's double backward
    pen(*inputs).mean().backward()
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    total = sum((torch.autograd.functional.jacobian(
        lambda v: torch.sigmoid(tw @ v + tb), torch.tensor(xi), create_graph=True) ** 2).sum()
        for xi in x) / len(x)
    total.backward()
    np.testing.assert_allclose(inputs[1].grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(inputs[2].grad.numpy(), tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_contractive_penalty_names_the_shapes_on_mismatch():
    with pytest.raises(ValueError, match=r"contractive_penalty.*\(3, 5\).*\(4, 7\)"):
        ae.contractive_penalty(lamina.zeros(3, 5), lamina.zeros(4, 7))


def test_sigmoid_autoencoder_penalty_uses_its_encoder_weight():
    lamina.manual_seed(0)
    m = ae.SigmoidAutoEncoder(12, 5).double()
    x = np.random.default_rng(2).random((3, 12))
    h = m.encode(lamina.tensor(x))
    assert m(lamina.tensor(x)).shape == (3, 12)
    w, b = m.encoder.weight.numpy(), m.encoder.bias.numpy()
    hh = 1 / (1 + np.exp(-(x @ w.T + b)))
    expect = ((hh * (1 - hh)) ** 2 * (w ** 2).sum(1)).sum(1)
    np.testing.assert_allclose(m.jacobian_penalty(h).numpy(), expect, rtol=1e-12)
    cae = importlib.import_module("lamina.zoo.contractive_ae")
    np.testing.assert_allclose(cae.jacobian_norms(m, x), np.sqrt(expect), rtol=1e-12)


# ---------------------------------------------------------------- threshold unit
@pytest.mark.parametrize("t", [0.0, 0.3, -0.5])
def test_threshold_unit_matches_torch(t):
    a = np.random.default_rng(3).standard_normal((6, 9))
    a[0, :3] = t                                    # exactly at the threshold: off
    x = _leaf(a)
    y = ae.threshold_linear(x, t)
    g = np.random.default_rng(4).standard_normal(a.shape)
    (y * lamina.tensor(g)).sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    ty = (tx > t) * tx                              # the notes' (prehiddens > thr) * prehiddens
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(y.numpy(), torch.nn.functional.threshold(
        torch.tensor(a), t, 0.0).numpy())
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    assert np.all(y.numpy()[0, :3] == 0)


# ---------------------------------------------------------------- tied autoencoder
def _torch_tied(x, w, b, c, hidden, t):
    a = x @ w + (b if b is not None else 0)
    h = {"relu": torch.relu, "sigmoid": torch.sigmoid, "linear": lambda z: z,
         "threshold": lambda z: (z > t) * z}[hidden](a)
    return h, h @ w.T + c


@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "linear", "threshold"])
def test_tied_autoencoder_shares_one_weight_and_matches_torch(hidden):
    lamina.manual_seed(0)
    bias = hidden != "threshold"
    m = ae.TiedAutoEncoder(9, 6, hidden=hidden, threshold=0.2, bias=bias).double()
    params = dict(m.named_parameters())
    assert sorted(params) == (["bias", "vbias", "weight"] if bias else ["vbias", "weight"])
    assert sum(p.ndim == 2 for p in m.parameters()) == 1
    rng = np.random.default_rng(5)
    m.vbias.data[...] = rng.standard_normal(9)
    if bias:
        m.bias.data[...] = 0.1 * rng.standard_normal(6)
    x = rng.random((4, 9))
    r = m(lamina.tensor(x))
    ae.reconstruction_cost(r, lamina.tensor(x)).backward()

    w0, c0 = m.weight.numpy(), m.vbias.numpy()
    b0 = m.bias.numpy() if bias else None
    tx = torch.tensor(x)
    tw = torch.tensor(w0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True) if bias else None
    tc = torch.tensor(c0, requires_grad=True)
    _, tr = _torch_tied(tx, tw, tb, tc, hidden, 0.2)
    ((tr - tx) ** 2).sum(1).mean().backward()
    np.testing.assert_allclose(r.numpy(), tr.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.weight.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.vbias.grad.numpy(), tc.grad.numpy(), rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(m.bias.grad.numpy(), tb.grad.numpy(), rtol=1e-10, atol=1e-12)

    # untied copies in torch: the shared gradient is the encoder's plus the decoder's
    we = torch.tensor(w0, requires_grad=True)
    wd = torch.tensor(w0, requires_grad=True)
    a = tx @ we + (torch.tensor(b0) if bias else 0)
    h = {"relu": torch.relu, "sigmoid": torch.sigmoid, "linear": lambda z: z,
         "threshold": lambda z: (z > 0.2) * z}[hidden](a)
    ((h @ wd.T + torch.tensor(c0) - tx) ** 2).sum(1).mean().backward()
    assert we.grad.abs().max() > 0 and wd.grad.abs().max() > 0
    np.testing.assert_allclose(m.weight.grad.numpy(), (we.grad + wd.grad).numpy(),
                               rtol=1e-10, atol=1e-12)


def test_tied_autoencoder_rejects_bad_inputs_naming_the_shapes():
    m = ae.TiedAutoEncoder(9, 6)
    with pytest.raises(ValueError, match=r"TiedAutoEncoder\(n_in=9.*\(N, 9\).*\(4, 8\)"):
        m(lamina.zeros(4, 8))
    with pytest.raises(ValueError, match="unknown hidden unit"):
        ae.TiedAutoEncoder(9, 6, hidden="softsign")


def test_l1_and_reconstruction_cost_values():
    h = lamina.tensor(np.array([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]))
    np.testing.assert_allclose(ae.l1_activity(h).numpy(), [3.0, 3.5])
    r, x = lamina.tensor(np.ones((2, 3))), lamina.tensor(np.zeros((2, 3)))
    assert ae.reconstruction_cost(r, x).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="reconstruction_cost"):
        ae.reconstruction_cost(r, lamina.zeros(2, 4))


# ---------------------------------------------------------------- PCA and the linear AE
def _low_rank_data(seed=0, n=400, d=10):
    rng = np.random.default_rng(seed)
    scales = np.array([5.0, 3.0, 2.0, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1])[:d]
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (rng.standard_normal((n, d)) * scales) @ q.T + rng.standard_normal(d)


def test_pca_matches_an_svd_reference():
    x = _low_rank_data()
    mean, comps, vals = ae.pca_fit(x, 3)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-12)
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(vals, s ** 2 / len(x), rtol=1e-10)
    ref = x.mean(0) + xc @ vt[:3].T @ vt[:3]
    np.testing.assert_allclose(ae.pca_reconstruct(x, mean, comps), ref, atol=1e-10)
    # the error of the rank-k reconstruction is the sum of the discarded eigenvalues
    err = np.sum((ae.pca_reconstruct(x, mean, comps) - x) ** 2) / len(x)
    assert err == pytest.approx(vals[3:].sum(), rel=1e-10)
    assert ae.subspace_alignment(vt[:3].T @ np.array([[2, 1, 0], [0, 1, 0], [1, 0, 3.0]]),
                                 comps) == pytest.approx(1.0)
    assert ae.subspace_alignment(vt[3:6].T, comps) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="pca_fit"):
        ae.pca_fit(x, 11)


def test_linear_autoencoder_learns_the_principal_subspace():
    x = _low_rank_data(1).astype(np.float32)
    mean, comps, _ = ae.pca_fit(x, 3)
    pca_err = ae.pixel_mse(ae.pca_reconstruct(x, mean, comps), x)
    lamina.manual_seed(0)
    m = ae.AutoEncoder(10, 3, hidden=(), code_activation="linear", output="linear")
    hist = ae.train_autoencoder(m, x, epochs=150, lr=1e-2, batch_size=50, seed=0,
                                final_lr=0.01, log=lambda s: None)
    assert hist[-1] < 0.05 * hist[0]
    err = ae.pixel_mse(ae.reconstruct(m, x), x)
    assert pca_err <= err < 1.01 * pca_err
    assert ae.subspace_alignment(m.decoder[0].weight.numpy(), comps) > 0.99


# ---------------------------------------------------------------- corruption
def test_corruptions():
    x = np.full((200, 50), 0.5, np.float32)
    m = ae.mask_noise(x, 0.3, np.random.default_rng(0))
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 0.5}
    assert np.mean(m == 0) == pytest.approx(0.3, abs=0.02)
    g = ae.gaussian_noise(x, 0.2, np.random.default_rng(0))
    assert g.dtype == np.float32 and np.std(g - x) == pytest.approx(0.2, rel=0.03)
    assert ae.corruption("none", 0) is None
    np.testing.assert_array_equal(ae.corruption("mask", 0.3)(x, np.random.default_rng(0)), m)
    with pytest.raises(ValueError, match="salt"):
        ae.corruption("salt", 0.1)


# ---------------------------------------------------------------- the recipes, quick
def _run(module, tmp_path):
    r = importlib.import_module(f"lamina.zoo.{module}").RECIPE
    res = r.run(r.config(quick=True), out_dir=tmp_path, verbose=False, log=lambda m: None)
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)
    assert saved["recipe"] == r.name and "seconds" in saved and "config" in saved
    for name in res["files"]:
        assert _is_png(tmp_path / name), name
    return r, res


@needs_fashion
def test_pca_vs_ae_quick(tmp_path):
    r, res = _run("pca_vs_ae", tmp_path)
    assert r.name == "pca-vs-ae" and res["files"] == ["reconstructions.png"]
    mse = res["mse"]
    assert mse["pca"] < 0.25 * mse["mean_image"]
    assert mse["nonlinear_ae"] < 0.4 * mse["mean_image"]
    assert mse["pca"] <= mse["linear_ae"] < 1.15 * mse["pca"]     # it approaches PCA
    assert res["linear_ae_over_pca"] == pytest.approx(mse["linear_ae"] / mse["pca"])
    assert res["linear_ae_subspace_alignment"] > 0.75
    for h in res["history"].values():
        assert h[-1] < 0.5 * h[0]


@needs_fashion
def test_tied_ae_quick(tmp_path):
    r, res = _run("tied_ae", tmp_path)
    assert r.name == "tied-ae" and res["n_weight_matrices"] == 1
    v = res["variants"]
    assert sorted(v) == ["l1", "plain", "threshold"]
    for name, d in v.items():
        assert d["test_mse"] < 0.4 * res["mean_image_mse"], name
        assert d["history"][-1] < 0.5 * d["history"][0], name
    # the sparse forms switch most hidden units off; the plain ReLU one does not
    assert v["threshold"]["active_fraction"] < 0.5 * v["plain"]["active_fraction"]
    assert v["l1"]["active_fraction"] < 0.5 * v["plain"]["active_fraction"]
    assert v["plain"]["test_mse"] < min(v["threshold"]["test_mse"], v["l1"]["test_mse"])


@needs_fashion
def test_denoising_ae_quick(tmp_path):
    r, res = _run("denoising_ae", tmp_path)
    assert r.name == "denoising-ae" and res["files"] == ["denoised.png"]
    m = res["mse"]
    assert m["plain"]["clean"] < 0.4 * res["mean_image_mse"]
    for k in ("mask", "gaussian"):
        assert m[f"dae_{k}"][k] < 0.9 * m["plain"][k], k        # the DAE denoises better
        assert m[f"dae_{k}"][k] < 0.5 * m["identity"][k], k
        assert res[f"dae_beats_plain_{k}"]


@needs_fashion
def test_contractive_ae_quick(tmp_path):
    r, res = _run("contractive_ae", tmp_path)
    assert r.name == "contractive-ae" and res["files"] == ["reconstructions.png"]
    p, c = res["plain"], res["cae"]
    for d in (p, c):
        assert d["test_mse"] < 0.5 * res["mean_image_mse"]
        assert d["history"][-1] < 0.5 * d["history"][0]
    assert c["jacobian_norm"] < 0.9 * p["jacobian_norm"] and res["cae_smaller_jacobian"]
    assert res["jacobian_ratio"] == pytest.approx(c["jacobian_norm"] / p["jacobian_norm"])
