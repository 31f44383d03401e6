"""The vae recipe: the closed-form KL, the ELBO and IWAE bounds against a linear-Gaussian
model whose log-likelihood is exact, the reparameterized gradients against PyTorch, and
the quick run on a Fashion-MNIST subset."""
import json
import math
import os

import numpy as np
import pytest
import torch

import lamina
from lamina import nn
from lamina.zoo.vae import (RECIPE, VAE, gaussian_log_prob, interpolations, kl_diag_gaussians,
                            latent_grid, log_mean_exp, standard_normal_log_prob)

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST not "
                                   "installed (apt-get install dataset-fashion-mnist)")
PNG = b"\x89PNG\r\n\x1a\n"


def leaf(a):
    return lamina.tensor(np.asarray(a, np.float64), requires_grad=True)


def tleaf(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


# ------------------------------------------------------------------ KL and log-densities
def kl_inputs():
    rng = np.random.default_rng(0)
    mu_q, mu_p = rng.normal(0, 2, (8, 5)), rng.normal(0, 2, (8, 5))
    lv_q, lv_p = rng.uniform(-3, 3, (8, 5)), rng.uniform(-3, 3, (8, 5))
    mu_p[0], lv_p[0] = mu_q[0], lv_q[0]          # q == p: KL exactly 0
    lv_q[1], lv_p[1] = -9.0, 7.0                 # very narrow q, very wide p
    lv_q[2], lv_p[2] = 7.0, -9.0                 # the other way round: a huge KL
    mu_q[3] = 40.0                               # far-apart means
    return mu_q, lv_q, mu_p, lv_p


def torch_kl(mu_q, lv_q, mu_p, lv_p):
    q = torch.distributions.Normal(mu_q, (0.5 * lv_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
    return torch.distributions.kl_divergence(q, p).sum(-1)


def test_kl_of_diagonal_gaussians_matches_torch_values_and_gradients():
    arrays = kl_inputs()
    lam = [leaf(a) for a in arrays]
    tor = [tleaf(a) for a in arrays]
    kl, kl_t = kl_diag_gaussians(*lam), torch_kl(*tor)
    assert kl.shape == (8,)
    np.testing.assert_allclose(kl.numpy(), kl_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert kl.numpy()[0] == 0.0                          # equal distributions
    assert np.all(kl.numpy()[1:] > 0)
    v = np.random.default_rng(1).normal(size=8)
    (kl * lamina.tensor(v)).sum().backward()
    (kl_t * torch.tensor(v)).sum().backward()
    for a, b in zip(lam, tor):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-10)
    # at q == p the KL is at its minimum: zero gradient in q's parameters
    assert np.all(lam[0].grad.numpy()[0] == 0) and np.abs(lam[1].grad.numpy()[0]).max() < 1e-15


def test_kl_to_the_standard_normal_is_the_default_prior():
    mu_q, lv_q, _, _ = kl_inputs()
    zero = np.zeros_like(mu_q)
    a = kl_diag_gaussians(leaf(mu_q), leaf(lv_q)).numpy()
    b = kl_diag_gaussians(leaf(mu_q), leaf(lv_q), leaf(zero), leaf(zero)).numpy()
    t = torch_kl(*(torch.tensor(x) for x in (mu_q, lv_q, zero, zero))).numpy()
    np.testing.assert_allclose(a, t, rtol=1e-12)
    np.testing.assert_allclose(b, t, rtol=1e-12)
    assert kl_diag_gaussians(leaf(zero), leaf(zero)).numpy().max() == 0.0


def test_kl_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(2)
    mu_q, lv_q = np.array([0.5, -1.0, 2.0]), np.array([-0.5, 0.3, -1.2])
    mu_p, lv_p = np.array([0.0, 0.7, 1.0]), np.array([0.4, -0.2, 0.1])
    z = mu_q + np.exp(0.5 * lv_q) * rng.standard_normal((200_000, 3))
    zt = lamina.tensor(z)
    diff = (gaussian_log_prob(zt, lamina.tensor(mu_q), lamina.tensor(lv_q))
            - gaussian_log_prob(zt, lamina.tensor(mu_p), lamina.tensor(lv_p))).numpy()
    exact = float(kl_diag_gaussians(*(lamina.tensor(a) for a in (mu_q, lv_q, mu_p,
                                                                 lv_p))).numpy())
    se = diff.std() / math.sqrt(len(diff))
    assert abs(diff.mean() - exact) < 4 * se
    assert se < 0.01 * exact                      # the check is sharp


def test_gaussian_log_probs_match_torch():
    rng = np.random.default_rng(3)
    x, mu, lv = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.uniform(-2, 2, (4, 6))
    got = gaussian_log_prob(lamina.tensor(x), lamina.tensor(mu), lamina.tensor(lv)).numpy()
    want = torch.distributions.Normal(torch.tensor(mu), torch.tensor(np.exp(0.5 * lv))
                                      ).log_prob(torch.tensor(x)).sum(-1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    want0 = torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(x)).sum(-1).numpy()
    np.testing.assert_allclose(standard_normal_log_prob(lamina.tensor(x)).numpy(), want0,
                               rtol=1e-12)


def test_log_mean_exp_is_stable():
    a = lamina.tensor(np.array([[-1000.0, 1000.0], [-1000.0, 1000.0 + math.log(3)]]))
    np.testing.assert_allclose(log_mean_exp(a, 0).numpy(),
                               [-1000.0, 1000.0 + math.log(2)], rtol=1e-12)


# ------------------------------------------------------------------ the exact toy model
class LinearGaussianEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag(exp(logvar))): x (N, D) -> (N, 2K)."""

    def __init__(self, A, c, logvar):
        super().__init__()
        self.A, self.c, self.logvar = (lamina.tensor(v) for v in (A, c, logvar))

    def forward(self, x):
        mu = x @ self.A.T + self.c
        return lamina.cat([mu, self.logvar + 0.0 * mu], 1)


class LinearGaussianDecoder(nn.Module):
    """p(x|z) = N(W z + b, sigma2 I): z (M, K) -> (mean (M, D), logvar (D,))."""

    def __init__(self, W, b, sigma2):
        super().__init__()
        self.W, self.b = lamina.tensor(W), lamina.tensor(b)
        self.logvar = lamina.tensor(np.full(len(b), math.log(sigma2)))

    def forward(self, z):
        return z @ self.W.T + self.b, self.logvar


def linear_gaussian(seed=0, D=5, K=2, sigma2=0.5, n=200):
    """The model p(z) = N(0, I), p(x|z) = N(W z + b, sigma2 I) with W's columns orthogonal
    (so the exact posterior is diagonal), data drawn from it, the exact log p(x) and the
    exact posterior's parameters."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(D, K)))
    W = Q * np.array([1.5, 0.7])[:K]
    b = rng.normal(size=D)
    x = rng.normal(size=(n, K)) @ W.T + b + math.sqrt(sigma2) * rng.normal(size=(n, D))
    C = W @ W.T + sigma2 * np.eye(D)
    d = x - b
    logpx = -0.5 * (D * math.log(2 * math.pi) + np.linalg.slogdet(C)[1]
                    + np.einsum("nd,de,ne->n", d, np.linalg.inv(C), d))
    S = np.linalg.inv(np.eye(K) + W.T @ W / sigma2)
    assert np.allclose(S, np.diag(np.diag(S)))            # diagonal posterior covariance
    A = S @ W.T / sigma2                                   # posterior mean A (x - b)
    return dict(W=W, b=b, sigma2=sigma2, x=x, logpx=logpx, A=A, c=-A @ b,
                logvar=np.log(np.diag(S)))


def toy_vae(m, shift=0.0, var_scale=1.0):
    enc = LinearGaussianEncoder(m["A"], m["c"] + shift, m["logvar"] + math.log(var_scale))
    dec = LinearGaussianDecoder(m["W"], m["b"], m["sigma2"])
    return VAE(n_in=m["x"].shape[1], latent=m["A"].shape[0], likelihood="gaussian",
               encoder=enc, decoder=dec)


def test_elbo_equals_log_likelihood_with_the_exact_posterior():
    m = linear_gaussian()
    vae, x = toy_vae(m), lamina.tensor(m["x"])
    lamina.manual_seed(0)
    # log p(x, z) - log q(z|x) is the constant log p(x) for every z under the true posterior
    for _ in range(3):
        np.testing.assert_allclose(vae.elbo(x, analytic_kl=False).numpy(), m["logpx"],
                                   rtol=1e-10)
        np.testing.assert_allclose(vae.iwae_bound(x, k=7).numpy(), m["logpx"], rtol=1e-10)
    # the analytic-KL estimator is unbiased: its mean over many noise draws -> log p(x)
    draws = np.stack([vae.elbo(x).numpy() for _ in range(400)])      # (400, n)
    mean = draws.mean(0)
    se = draws.std(0) / math.sqrt(len(draws))
    assert np.all(np.abs(mean - m["logpx"]) < 4.5 * se)
    assert abs(mean.mean() - m["logpx"].mean()) < 4 * se.mean() / math.sqrt(len(se)) + 1e-3


def test_elbo_is_strictly_lower_and_iwae_closes_the_gap_from_below():
    m = linear_gaussian(seed=1)
    vae, x = toy_vae(m, shift=0.6, var_scale=2.5), lamina.tensor(m["x"])
    logpx = m["logpx"].mean()
    lamina.manual_seed(1)
    elbo = np.mean([vae.elbo(x).numpy().mean() for _ in range(200)])
    gap = logpx - elbo
    assert gap > 0.3                                   # a clearly wrong q
    with lamina.no_grad():
        iw = {k: np.mean([vae.iwae_bound(x, k).numpy().mean() for _ in range(reps)])
              for k, reps in ((1, 200), (10, 40), (100, 10), (2000, 2))}
    assert abs(iw[1] - elbo) < 0.05 * gap              # k = 1 is the (MC-KL) ELBO
    assert elbo < iw[10] < iw[100] < iw[2000] < logpx  # monotone, below log p(x)
    assert logpx - iw[2000] < 0.05 * gap               # and close to it for large k


def test_iwae_chunks_and_fixed_noise_agree():
    m = linear_gaussian(seed=2, n=30)
    vae, x = toy_vae(m, shift=0.3, var_scale=1.5), lamina.tensor(m["x"])
    eps = lamina.tensor(np.random.default_rng(0).standard_normal((9, 30, 2)))
    a = vae.iwae_bound(x, 9, eps=eps).numpy()
    b = vae.iwae_bound(x, 9, eps=eps, max_rows=20).numpy()      # chunks of 2 examples
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # by hand: log-mean-exp of log p(x|z) + log p(z) - log q(z|x)
    mu = m["x"] @ m["A"].T + m["c"] + 0.3
    lv = m["logvar"] + math.log(1.5)
    z = mu + np.exp(0.5 * lv) * eps.numpy()
    mean = z @ m["W"].T + m["b"]
    lw = (-0.5 * (np.log(2 * math.pi * m["sigma2"]) + (m["x"] - mean) ** 2 / m["sigma2"]).sum(-1)
          - 0.5 * (np.log(2 * math.pi) + z ** 2).sum(-1)
          + 0.5 * (np.log(2 * math.pi) + lv + (z - mu) ** 2 / np.exp(lv)).sum(-1))
    want = np.log(np.exp(lw - lw.max(0)).mean(0)) + lw.max(0)
    np.testing.assert_allclose(a, want, rtol=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        vae.iwae_bound(x, 0)


# ------------------------------------------------------------------ parity with torch
def torch_mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def test_reparameterized_elbo_and_gradients_match_torch():
    lamina.manual_seed(0)
    vae = VAE(n_in=12, hidden=(10, 8), latent=3).double()
    enc, dec = torch_mlp((12, 10, 8, 6)), torch_mlp((3, 8, 10, 12))
    tparams = {**{f"encoder.{k}": v for k, v in enc.named_parameters()},
               **{f"decoder.{k}": v for k, v in dec.named_parameters()}}
    lparams = dict(vae.named_parameters())
    assert set(tparams) == set(lparams)
    with torch.no_grad():
        for k, p in tparams.items():
            p.copy_(torch.tensor(lparams[k].numpy()))
    rng = np.random.default_rng(0)
    x = (rng.random((7, 12)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((7, 3))

    loss = -vae.elbo(lamina.tensor(x), eps=lamina.tensor(eps)).mean()
    loss.backward()

    xt = torch.tensor(x)
    h = enc(xt)
    mu, lv = h[:, :3], h[:, 3:]
    z = mu + (0.5 * lv).exp() * torch.tensor(eps)
    rec = -torch.nn.functional.binary_cross_entropy_with_logits(dec(z), xt,
                                                                 reduction="none").sum(1)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * lv).exp()),
        torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    loss_t = -(rec - kl).mean()
    loss_t.backward()
    np.testing.assert_allclose(loss.item(), loss_t.item(), rtol=1e-12)
    for k, p in tparams.items():
        np.testing.assert_allclose(lparams[k].grad.numpy(), p.grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=k)
    # the same weights and noise give the same importance-weighted bound
    eps_k = rng.standard_normal((5, 7, 3))
    with lamina.no_grad():
        iw = vae.iwae_bound(lamina.tensor(x), 5, eps=lamina.tensor(eps_k)).numpy()
    with torch.no_grad():
        zk = mu + (0.5 * lv).exp() * torch.tensor(eps_k)
        lpx = -torch.nn.functional.binary_cross_entropy_with_logits(
            dec(zk), xt.expand(5, 7, 12), reduction="none").sum(-1)
        lpz = torch.distributions.Normal(0.0, 1.0).log_prob(zk).sum(-1)
        lq = torch.distributions.Normal(mu, (0.5 * lv).exp()).log_prob(zk).sum(-1)
        iw_t = (torch.logsumexp(lpx + lpz - lq, 0) - math.log(5)).numpy()
    np.testing.assert_allclose(iw, iw_t, rtol=1e-10)


def test_vae_shapes_and_errors():
    lamina.manual_seed(0)
    vae = VAE(n_in=20, hidden=16, latent=2)
    x = lamina.from_numpy((np.random.default_rng(0).random((6, 20)) < 0.5).astype(np.float32))
    logits, mu, logvar = vae(x)
    assert logits.shape == (6, 20) and mu.shape == (6, 2) and logvar.shape == (6, 2)
    assert vae.elbo(x).shape == (6,) and vae.iwae_bound(x, 4).shape == (6,)
    assert latent_grid(vae, 4).shape == (16, 20)
    rows = interpolations(vae, x.numpy()[:3], x.numpy()[3:], steps=5)
    assert rows.shape == (3 * 7, 20)
    np.testing.assert_array_equal(rows[0], x.numpy()[0])       # the ends are the inputs
    np.testing.assert_array_equal(rows[6], x.numpy()[3])
    g = VAE(n_in=20, hidden=16, latent=3, likelihood="gaussian")
    assert g.elbo(x).shape == (6,)
    with pytest.raises(ValueError, match="2-D latent"):
        latent_grid(g)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match=r"VAE.encode.*\(N, D\)"):
        vae.elbo(lamina.zeros(20))


# ------------------------------------------------------------------ the recipe
@needs_fashion
def test_quick_recipe_learns_and_writes_the_figures(tmp_path):
    cfg = RECIPE.config(quick=True)
    r = RECIPE.run(cfg, out_dir=str(tmp_path), verbose=False)
    main = r["main"]
    assert main["train_neg_elbo"][-1] < 0.7 * main["first_batch_neg_elbo"]
    assert -r["test_elbo"] < 0.7 * main["first_batch_neg_elbo"]
    assert r["test_iwae"] >= r["test_elbo"] and r["iwae_k"] >= 50
    assert r["latent2"]["test_iwae"] >= r["latent2"]["test_elbo"]
    assert r["latent2"]["train_neg_elbo"][-1] < 0.75 * r["latent2"]["first_batch_neg_elbo"]
    for name in ("latent_grid.png", "interpolation.png", "samples.png", "reconstructions.png"):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == PNG
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recipe"] == "vae" and saved["config"] == cfg and saved["seconds"] > 0
