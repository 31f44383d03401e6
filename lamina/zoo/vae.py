"""vae: a variational autoencoder (Kingma & Welling 2014) on binarized Fashion-MNIST.

The model is an MLP encoder q(z|x) = N(mu(x), diag(exp(logvar(x)))) and an MLP decoder
p(x|z) (Bernoulli logits on the 784 pixels, or a Gaussian), with the prior p(z) = N(0, I).
It is fitted by maximizing the evidence lower bound (ELBO) with the reparameterization
trick, z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), which makes the sampled z a
differentiable function of the encoder's outputs:

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)

(the KL of two diagonal Gaussians in closed form). The importance-weighted bound
(Burda et al. 2016) with k samples, log (1/k) sum_i p(x, z_i) / q(z_i|x), is tighter
(IWAE_k >= ELBO, increasing to log p(x) as k grows).

**Data.** The pixels are binarized so that the Bernoulli likelihood is a true likelihood
and the bounds are in nats: the training images are binarized stochastically afresh each
epoch (pixel ~ Bernoulli(intensity), "dynamic binarization"), the test images once, with a
fixed seed (``seed + 1``), and every reported number is on those fixed binary test images.

The recipe trains the main model (``latent`` dimensions) and reports the test ELBO and
IWAE (``iwae_k`` samples) in nats per image, then a model with a 2-D latent space and
writes ``latent_grid.png`` (the decoder's mean image on a grid of z at Gaussian quantiles)
and ``interpolation.png`` (decoded linear interpolations between the posterior means of
pairs of test images, the two end images shown beside each row), plus ``samples.png``
(the main model's mean images for z ~ p(z)) and ``reconstructions.png``.
"""
import math
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F

from .image_grid import binarize, fashion_unit, save_image_grid
from .recipe import Recipe, save_results

LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")


# ------------------------------------------------------------------ building blocks
def gaussian_log_prob(x, mu, logvar):
    """log N(x; mu, diag(exp(logvar))) summed over the last dimension: (..., D) -> (...).
    ``mu`` and ``logvar`` broadcast against ``x``."""
    return -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * (-logvar).exp()).sum(-1)


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z * z).sum(-1)


def bernoulli_log_prob(x, logits):
    """log Bernoulli(x; sigmoid(logits)) summed over the last dimension (x in {0, 1};
    stable for any logit)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def kl_diag_gaussians(mu_q, logvar_q, mu_p=None, logvar_p=None):
    """KL(q || p) of two diagonal Gaussians in closed form, summed over the last dimension:

        1/2 sum_j [logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1]

    ``mu_p``/``logvar_p`` default to the standard normal (0, 0); all broadcast."""
    if mu_p is None and logvar_p is None:
        return 0.5 * (logvar_q.exp() + mu_q * mu_q - 1.0 - logvar_q).sum(-1)
    mu_p = 0.0 if mu_p is None else mu_p
    logvar_p = 0.0 * logvar_q if logvar_p is None else logvar_p
    d = mu_q - mu_p
    r = logvar_q - logvar_p                  # log of the variance ratio: exactly 0 if q == p
    return 0.5 * (r.exp() + d * d * (-logvar_p).exp() - 1.0 - r).sum(-1)


def log_mean_exp(a, dim=0):
    """log(mean(exp(a))) along ``dim``, stably (logsumexp minus log n)."""
    return a.logsumexp(dim) - math.log(a.shape[dim])


def mlp(sizes, activation=nn.ReLU):
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


# ------------------------------------------------------------------ the model
class VAE(nn.Module):
    """Variational autoencoder with a diagonal-Gaussian q(z|x) and the prior N(0, I).

    Built-in MLPs: encoder n_in -> hidden... -> 2*latent (mu, logvar), decoder latent ->
    ...hidden -> n_in. ``likelihood``: 'bernoulli' (the decoder gives (N, n_in) logits;
    x in {0, 1}) or 'gaussian' (the decoder gives the mean and a learned per-pixel
    log-variance). Any ``encoder`` (x (N, D) -> (N, 2*latent)) and ``decoder`` (z (N, L)
    -> logits, or a (mean, logvar) pair for 'gaussian') modules may be passed instead.

    Shapes: x (N, D) -> ``elbo(x)`` (N,), ``iwae_bound(x, k)`` (N,), in nats.
    """

    def __init__(self, n_in=784, hidden=(400,), latent=20, likelihood="bernoulli",
                 encoder=None, decoder=None):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"VAE: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.n_in, self.latent, self.likelihood = n_in, latent, likelihood
        self.encoder = encoder if encoder is not None else mlp((n_in, *hidden, 2 * latent))
        self.decoder = decoder if decoder is not None else mlp((latent, *hidden[::-1], n_in))
        self._builtin_gaussian = likelihood == "gaussian" and decoder is None
        if self._builtin_gaussian:
            self.dec_logvar = nn.Parameter(lamina.zeros(n_in))

    # q(z|x) and p(x|z)
    def encode(self, x):
        """x (N, D) -> (mu, logvar), each (N, latent)."""
        if x.ndim != 2:
            raise ValueError(f"VAE.encode: expected x of shape (N, D), got {tuple(x.shape)}")
        h = self.encoder(x)
        if h.ndim != 2 or h.shape[1] != 2 * self.latent:
            raise ValueError(f"VAE.encode: the encoder must give (N, 2*latent) = "
                             f"(N, {2 * self.latent}), got {tuple(h.shape)}")
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z):
        """z (..., latent) -> Bernoulli logits (..., D), or (mean, logvar) if Gaussian."""
        lead = tuple(z.shape[:-1])
        out = self.decoder(z.reshape(-1, self.latent))
        if self._builtin_gaussian:
            return out.reshape(*lead, -1), self.dec_logvar
        if self.likelihood == "gaussian":
            mean, logvar = out
            return mean.reshape(*lead, -1), logvar
        return out.reshape(*lead, -1)

    def log_px_given_z(self, x, z):
        """log p(x|z) summed over pixels; z (..., N, latent), x (N, D) -> (..., N)."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            if tuple(out.shape[-2:]) != tuple(x.shape):
                raise ValueError(f"VAE: the decoder gives {tuple(out.shape)} for data "
                                 f"{tuple(x.shape)}")
            return bernoulli_log_prob(x.expand(*out.shape), out)
        mean, logvar = out
        return gaussian_log_prob(x, mean, logvar)

    @staticmethod
    def reparameterize(mu, logvar, eps):
        """z = mu + sigma * eps (differentiable in mu and logvar)."""
        return mu + (0.5 * logvar).exp() * eps

    def forward(self, x, eps=None):
        """(decoder output for one z sample, mu, logvar)."""
        mu, logvar = self.encode(x)
        eps = lamina.randn(*mu.shape, dtype=mu.dtype) if eps is None else eps
        return self.decode(self.reparameterize(mu, logvar, eps)), mu, logvar

    # the bounds
    def elbo(self, x, eps=None, analytic_kl=True):
        """Single-sample ELBO estimate per example, (N,), nats.

        ``eps`` (N, latent) fixes the noise (drawn from lamina's generator otherwise).
        ``analytic_kl``: E_q[log p(x|z)] estimated by one sample minus the closed-form KL
        (the usual, lower-variance estimator); False gives log p(x, z) - log q(z|x) at the
        sample (exactly log p(x) when q is the true posterior)."""
        mu, logvar = self.encode(x)
        if eps is None:
            eps = lamina.randn(*mu.shape, dtype=mu.dtype)
        z = self.reparameterize(mu, logvar, eps)
        rec = self.log_px_given_z(x, z)
        if analytic_kl:
            return rec - kl_diag_gaussians(mu, logvar)
        return rec + standard_normal_log_prob(z) - gaussian_log_prob(z, mu, logvar)

    def iwae_bound(self, x, k=50, eps=None, max_rows=8192):
        """The importance-weighted bound with ``k`` samples per example, (N,), nats:
        log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x), as a log-mean-exp.
        ``eps`` (k, N, latent) fixes the noise. Examples are processed in chunks of at most
        ``max_rows`` decoded rows (k * chunk)."""
        if k < 1:
            raise ValueError(f"VAE.iwae_bound: k must be >= 1, got {k}")
        n = x.shape[0]
        step = max(1, max_rows // k)
        parts = []
        for s in range(0, n, step):
            xs = x[s:s + step]
            mu, logvar = self.encode(xs)
            e = (lamina.randn(k, *mu.shape, dtype=mu.dtype) if eps is None
                 else eps[:, s:s + step])
            z = self.reparameterize(mu, logvar, e)                 # (k, n, L)
            log_w = (self.log_px_given_z(xs, z) + standard_normal_log_prob(z)
                     - gaussian_log_prob(z, mu, logvar))          # (k, n)
            parts.append(log_mean_exp(log_w, 0))
        return parts[0] if len(parts) == 1 else lamina.cat(parts)

    def mean_image(self, z):
        """The decoder's mean image for z (N, latent) as a NumPy array (N, D)."""
        with lamina.no_grad():
            out = self.decode(z)
            return (out[0] if self.likelihood == "gaussian" else out.sigmoid()).numpy()


# ------------------------------------------------------------------ training, evaluation
def train_vae(model, x_train, epochs, lr, batch_size, rng, log=print, name="vae",
              dynamic=True):
    """Adam on the negative ELBO (mean over the batch); x_train in [0, 1], binarized
    afresh each epoch (``dynamic``) with ``rng``. Returns the per-epoch mean negative
    ELBO and the negative ELBO of the first batch (the starting point)."""
    opt = lamina.optim.Adam(model.parameters(), lr=lr)
    history, first = [], None
    fixed = None if dynamic else binarize(x_train, rng)
    model.train()
    for epoch in range(epochs):
        xb_all = binarize(x_train, rng) if dynamic else fixed
        order = rng.permutation(len(xb_all))
        total, seen = 0.0, 0
        for s in range(0, len(order), batch_size):
            xb = lamina.from_numpy(xb_all[order[s:s + batch_size]])
            loss = -model.elbo(xb).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            v = float(loss.item())
            if first is None:
                first = v
            total += v * len(xb)
            seen += len(xb)
        history.append(total / seen)
        log(f"[{name}] epoch {epoch + 1}/{epochs}  train -ELBO {history[-1]:.2f} nats")
    return history, first


def evaluate(model, x, k=50, batch_size=500):
    """Mean test ELBO and IWAE_k (nats per example) on binary x (N, D); the ELBO uses the
    analytic KL and one sample per example."""
    model.eval()
    elbo, iwae = [], []
    with lamina.no_grad():
        for s in range(0, len(x), batch_size):
            xb = lamina.from_numpy(x[s:s + batch_size])
            elbo.append(model.elbo(xb).numpy())
            iwae.append(model.iwae_bound(xb, k).numpy())
    return float(np.concatenate(elbo).mean()), float(np.concatenate(iwae).mean())


def normal_quantiles(n, lo=0.05, hi=0.95):
    """n points of N(0, 1) at evenly spaced probabilities in [lo, hi]."""
    from statistics import NormalDist
    nd = NormalDist()
    return np.array([nd.inv_cdf(p) for p in np.linspace(lo, hi, n)], np.float32)


def latent_grid(model, n=15):
    """Mean images (n*n, D) for z on the grid of Gaussian quantiles (2-D latent only);
    rows go from high z2 (top) to low, columns from low z1 to high."""
    if model.latent != 2:
        raise ValueError(f"latent_grid: needs a 2-D latent space, the model has {model.latent}")
    q = normal_quantiles(n)
    z = np.array([[a, b] for b in q[::-1] for a in q], np.float32)
    return model.mean_image(lamina.from_numpy(z))


def interpolations(model, x_a, x_b, steps=10, shown_a=None, shown_b=None):
    """Rows of decoded linear interpolations between the posterior means of x_a[i] and
    x_b[i]; each row is x_a[i], the ``steps`` decoded points (ends included), x_b[i]
    (or ``shown_a``/``shown_b``, e.g. the grey-level originals of binarized inputs).
    Returns (rows * (steps + 2), D)."""
    with lamina.no_grad():
        mu_a, _ = model.encode(lamina.from_numpy(x_a))
        mu_b, _ = model.encode(lamina.from_numpy(x_b))
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    z = (1 - t) * mu_a.numpy()[:, None] + t * mu_b.numpy()[:, None]     # (rows, steps, L)
    dec = model.mean_image(lamina.from_numpy(z.reshape(-1, model.latent)))
    dec = dec.reshape(len(x_a), steps, -1)
    a = x_a if shown_a is None else shown_a
    b = x_b if shown_b is None else shown_b
    return np.concatenate([a[:, None], dec, b[:, None]], 1).reshape(-1, x_a.shape[1])


# ------------------------------------------------------------------ the recipe
class VAERecipe(Recipe):
    name = "vae"
    summary = ("VAE on binarized Fashion-MNIST: test ELBO and IWAE in nats; 2-D latent "
               "grid and latent interpolations")
    defaults = dict(seed=0, subset=0, hidden=400, latent=20, epochs=25, lr=1e-3,
                    batch_size=100, iwae_k=100, latent2_epochs=12, grid_n=15,
                    interp_rows=8, interp_steps=10)
    quick = dict(subset=3000, hidden=128, epochs=4, latent2_epochs=3, iwae_k=50,
                 grid_n=8, interp_rows=4, interp_steps=6)
    target = ("test_elbo", -250.0)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError("vae: --resume is not supported")
        t0 = time.perf_counter()
        say = log if verbose else (lambda *a, **k: None)
        (x, _), _, (xt, _) = fashion_unit(cfg["seed"], cfg["subset"])
        xt_bin = binarize(xt, np.random.default_rng(cfg["seed"] + 1))
        hidden = cfg["hidden"]
        results = {"recipe": self.name, "binarization": "dynamic (train), static seed+1 (test)"}

        def fit(latent, epochs, tag):
            lamina.manual_seed(cfg["seed"])
            model = VAE(784, hidden, latent)
            rng = np.random.default_rng(cfg["seed"])
            hist, first = train_vae(model, x, epochs, cfg["lr"], cfg["batch_size"], rng,
                                    say, tag)
            lamina.manual_seed(cfg["seed"] + 2)
            elbo, iwae = evaluate(model, xt_bin, cfg["iwae_k"])
            say(f"[{tag}] test ELBO {elbo:.2f} nats  IWAE(k={cfg['iwae_k']}) {iwae:.2f} nats")
            return model, {"latent": latent, "train_neg_elbo": hist, "first_batch_neg_elbo":
                           first, "test_elbo": elbo, "test_iwae": iwae}

        main, res = fit(cfg["latent"], cfg["epochs"], f"vae z={cfg['latent']}")
        results.update(test_elbo=res["test_elbo"], test_iwae=res["test_iwae"],
                       iwae_k=cfg["iwae_k"], main=res)
        two, res2 = fit(2, cfg["latent2_epochs"], "vae z=2")
        results["latent2"] = res2
        if out_dir is not None:
            import os
            rng = np.random.default_rng(cfg["seed"] + 3)
            g = cfg["grid_n"]
            save_image_grid(os.path.join(out_dir, "latent_grid.png"), latent_grid(two, g),
                            nrow=g, title="2-D latent VAE: decoded z on a grid of "
                            "N(0,1) quantiles (5%..95%)")
            r, st = cfg["interp_rows"], cfg["interp_steps"]
            pick = rng.choice(len(xt_bin), 2 * r, replace=False)
            save_image_grid(os.path.join(out_dir, "interpolation.png"),
                            interpolations(two, xt_bin[pick[:r]], xt_bin[pick[r:]], st,
                                           xt[pick[:r]], xt[pick[r:]]),
                            nrow=st + 2, title="2-D latent VAE: test image A, decoded "
                            "(1-t) mu(A) + t mu(B), test image B (ends: originals; "
                            "encoded: binarized)")
            lamina.manual_seed(cfg["seed"] + 4)
            z = lamina.randn(64, cfg["latent"])
            save_image_grid(os.path.join(out_dir, "samples.png"), main.mean_image(z), nrow=8,
                            title=f"VAE z={cfg['latent']}: mean images of z ~ N(0, I)")
            xs = xt_bin[pick[:8]]
            with lamina.no_grad():
                mu, _ = main.encode(lamina.from_numpy(xs))
            save_image_grid(os.path.join(out_dir, "reconstructions.png"),
                            np.concatenate([xs, main.mean_image(mu)]), nrow=8,
                            row_labels=["test", "decoded mu"],
                            title=f"VAE z={cfg['latent']} reconstructions")
            results["figures"] = ["latent_grid.png", "interpolation.png", "samples.png",
                                  "reconstructions.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = VAERecipe()
