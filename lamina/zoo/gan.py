"""gan: a fully connected generative adversarial network on Fashion-MNIST.

A generator G maps a latent vector z ~ N(0, I) to an image; a discriminator D maps an
image to one logit, "real" against "generated" (Goodfellow et al. 2014). They are
trained in turn on each minibatch:

- D step: minimize BCE(D(x), 1) + BCE(D(G(z)), 0) — real images x against samples
  G(z) (detached, so only D changes);
- G step: minimize the *non-saturating* loss BCE(D(G(z)), 1) = -log σ(D(G(z))) (rather
  than the minimax log(1 - σ(D(G(z)))), whose gradient vanishes while D wins easily).

Both with Adam (lr 2e-4, betas (0.5, 0.999)) as in the DCGAN paper; images are scaled to
[-1, 1] to match G's tanh output. Every ``sample_every`` epochs the samples of one FIXED
latent batch are written as ``samples_epoch{E}.png``; at the end ``interpolation.png``
shows G along straight lines between pairs of latent vectors (a good G "unfolds the
manifold": the images in between are plausible too).

Evaluation: a LeNet-5 trained on the real [0, 1] images (``classifier_epochs`` epochs
with Adam; cached as ``classifier.safetensors`` in the output directory and reused when
found there) labels ``n_eval`` generated samples and ``n_eval`` real test images. For
each set we report the mean max-softmax confidence (do the samples look like *some*
class?) and the class histogram with its entropy in nats (diversity; log 10 ≈ 2.303 for
ten equally used classes, 0 for one). A run counts as mode-collapsed when the samples'
histogram entropy is below ``COLLAPSE_ENTROPY`` nats or one class takes more than half.

The training loop, the figures and the evaluation are shared with :mod:`lamina.zoo.dcgan`,
which only swaps the two networks.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data.mnist import FASHION_CLASSES
from lamina.nn import functional as F

from .image_grid import batched, fashion_unit, save_image_grid
from .lenet import LeNet5
from .recipe import Recipe, save_results

COLLAPSE_ENTROPY = 1.5   # nats; log 10 = 2.303 is the most diverse a 10-class histogram gets
COLLAPSE_LARGEST = 0.5   # or: more than half of the samples in one class


# ---------------------------------------------------------------- models
class Generator(nn.Module):
    """(N, latent_dim) latent vectors -> (N, out_dim) images in [-1, 1]: Linear + leaky
    ReLU layers of widths ``hidden``, then a linear layer and tanh."""

    def __init__(self, latent_dim=64, hidden=(256, 512), out_dim=784, slope=0.2):
        super().__init__()
        self.latent_dim = latent_dim
        layers, width = [], latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        layers += [nn.Linear(width, out_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Generator: expected latents (N, {self.latent_dim}), got shape "
                             f"{tuple(z.shape)}")
        return self.net(z)


class Discriminator(nn.Module):
    """(N, in_dim) images in [-1, 1] (or (N, 1, 28, 28), flattened) -> (N,) logits of
    "real": Linear + leaky ReLU layers of widths ``hidden``, then a linear layer to 1."""

    def __init__(self, in_dim=784, hidden=(512, 256), slope=0.2):
        super().__init__()
        self.in_dim = in_dim
        layers, width = [nn.Flatten()], in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        n_in = int(np.prod(x.shape[1:])) if x.ndim >= 2 else -1
        if n_in != self.in_dim:
            raise ValueError(f"Discriminator: expected images with {self.in_dim} values each, "
                             f"got shape {tuple(x.shape)}")
        return self.net(x).reshape(-1)


# ---------------------------------------------------------------- losses
def discriminator_loss(real_logits, fake_logits):
    """BCE(real logits, 1) + BCE(fake logits, 0), each a mean over its batch."""
    ones = lamina.from_numpy(np.ones(real_logits.shape, dtype=real_logits.dtype))
    zeros = lamina.from_numpy(np.zeros(fake_logits.shape, dtype=fake_logits.dtype))
    return (F.binary_cross_entropy_with_logits(real_logits, ones)
            + F.binary_cross_entropy_with_logits(fake_logits, zeros))


def generator_loss(fake_logits):
    """The non-saturating generator loss BCE(D(G(z)), 1) = mean(-log σ(fake logits))."""
    ones = lamina.from_numpy(np.ones(fake_logits.shape, dtype=fake_logits.dtype))
    return F.binary_cross_entropy_with_logits(fake_logits, ones)


# ---------------------------------------------------------------- evaluation helpers
def histogram_entropy(counts):
    """Entropy in nats of the distribution ``counts / counts.sum()`` (0 log 0 = 0)."""
    p = np.asarray(counts, dtype=np.float64)
    if p.ndim != 1 or p.sum() <= 0 or (p < 0).any():
        raise ValueError(f"histogram_entropy: expected a 1-D histogram of non-negative counts "
                         f"with a positive total, got {p.tolist()}")
    p = p[p > 0] / p.sum()
    return max(0.0, float(-(p * np.log(p)).sum()))


def class_statistics(probs):
    """What a classifier says about a set of images, from its (N, C) class probabilities:
    mean max-probability ``confidence``, the argmax ``histogram`` (counts per class), its
    ``entropy`` (nats), the ``largest_fraction`` taken by one class and ``collapsed``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"class_statistics: expected (N, C) probabilities, got shape {p.shape}")
    counts = np.bincount(p.argmax(1), minlength=p.shape[1])
    entropy = histogram_entropy(counts)
    largest = float(counts.max() / counts.sum())
    return {"confidence": float(p.max(1).mean()), "histogram": counts.tolist(),
            "entropy": entropy, "largest_fraction": largest,
            "collapsed": bool(entropy < COLLAPSE_ENTROPY or largest > COLLAPSE_LARGEST)}


def predict_probs(model, x, batch_size=500):
    """Softmax probabilities of ``model`` (eval mode, no graph) on the array ``x``."""
    model.eval()
    return batched(lambda t: F.softmax(model(t), dim=1), x, batch_size)


def train_classifier(train, test, epochs=4, lr=2e-3, batch_size=64, seed=0, log=print):
    """A LeNet-5 (modern) trained with Adam on [0, 1] images (N, 1, 28, 28), the last
    epoch at lr / 4; returns (model, test accuracy)."""
    lamina.manual_seed(seed)
    model = LeNet5()
    opt = lamina.optim.Adam(model.parameters(), lr=lr)
    x, y = train
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        if epoch == epochs - 1 and epochs > 1:   # a last epoch at a quarter of the rate
            for group in opt.param_groups:
                group["lr"] = lr / 4
        model.train()
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(lamina.from_numpy(x[idx])), lamina.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f"classifier epoch {epoch + 1}: last batch loss {loss.item():.3f}")
    acc = float((predict_probs(model, test[0]).argmax(1) == test[1]).mean())
    return model, acc


def get_classifier(cfg, train, test, out_dir, log=print):
    """The evaluation classifier: loaded from ``OUT_DIR/classifier.safetensors`` when that
    exists (a cache across runs), else trained (and saved there). Returns (model, test
    accuracy, whether it came from the cache)."""
    path = os.path.join(out_dir, "classifier.safetensors") if out_dir is not None else None
    if path is not None and os.path.exists(path):
        model = LeNet5()
        model.load_state_dict(lamina.load(path))
        acc = float((predict_probs(model, test[0]).argmax(1) == test[1]).mean())
        log(f"classifier loaded from {path}: test accuracy {acc * 100:.2f}%")
        return model, acc, True
    model, acc = train_classifier(train, test, cfg["classifier_epochs"], seed=cfg["seed"],
                                  log=log)
    log(f"classifier trained: test accuracy {acc * 100:.2f}%")
    if path is not None:
        os.makedirs(out_dir, exist_ok=True)
        lamina.save(model.state_dict(), path)
    return model, acc, False


# ---------------------------------------------------------------- sampling and figures
def generate(G, z, batch_size=500):
    """G's images for the latent array ``z``, mapped from [-1, 1] back to [0, 1] (NumPy;
    G in eval mode, no graph)."""
    G.eval()
    return (batched(G, z, batch_size) + 1.0) / 2.0


def interpolation_latents(rng, latent_dim, rows=8, steps=10):
    """(rows * steps, latent_dim) latents: each row walks in ``steps`` equal steps along the
    straight line from one random latent vector to another (both ends included)."""
    a = rng.standard_normal((rows, 1, latent_dim)).astype(np.float32)
    b = rng.standard_normal((rows, 1, latent_dim)).astype(np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    return ((1 - t) * a + t * b).reshape(rows * steps, latent_dim)


def sample_statistics(samples, real):
    """How far the samples' statistics are from the data's, in [0, 1] pixel units: the L2
    distance between the mean images and the ratio of the mean per-pixel std."""
    s, r = samples.reshape(len(samples), -1), real.reshape(len(real), -1)
    return {"mean_image_distance": float(np.linalg.norm(s.mean(0) - r.mean(0))),
            "pixel_std_ratio": float(s.std(0).mean() / r.std(0).mean())}


# ---------------------------------------------------------------- the adversarial loop
def train_adversarial(G, D, x, cfg, out_dir=None, log=print, real_ref=None):
    """Train G and D in turn on the images ``x`` (scaled to [-1, 1]; (N, 784) or
    (N, 1, 28, 28), the layout D takes and G produces) for ``cfg['epochs']`` epochs.

    Per epoch the history records the mean D and G losses, D's accuracy (real logits > 0,
    fake logits < 0), mean σ(D(x)) and σ(D(G(z))), and the statistics of the fixed
    latent batch's samples against ``real_ref`` ([0, 1] images). Raises on a non-finite
    loss, naming the epoch and step."""
    rng = np.random.default_rng(cfg["seed"])
    latent = cfg["latent_dim"]
    fixed_z = rng.standard_normal((cfg["n_fixed"], latent)).astype(np.float32)
    betas = (cfg["beta1"], 0.999)
    opt_g = lamina.optim.Adam(G.parameters(), lr=cfg["lr"], betas=betas)
    opt_d = lamina.optim.Adam(D.parameters(), lr=cfg["lr"], betas=betas)
    bs, history = cfg["batch_size"], []
    real_ref = (x[:1000] + 1) / 2 if real_ref is None else real_ref
    start = sample_statistics(generate(G, fixed_z), real_ref)
    log(f"epoch 0: mean-image distance {start['mean_image_distance']:.3f}")
    for epoch in range(1, cfg["epochs"] + 1):
        t0 = time.perf_counter()
        G.train()
        D.train()
        order = rng.permutation(len(x))
        sums = np.zeros(6)
        n_steps = len(x) // bs
        for step in range(n_steps):
            real = lamina.from_numpy(x[order[step * bs:(step + 1) * bs]])
            z = lamina.from_numpy(rng.standard_normal((bs, latent)).astype(np.float32))
            fake = G(z)
            # D step: real against detached samples.
            real_logits, fake_logits = D(real), D(fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            # G step: through the updated D, on the same samples.
            g_loss = generator_loss(D(fake))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            dl, gl = d_loss.item(), g_loss.item()
            if not (np.isfinite(dl) and np.isfinite(gl)):
                raise FloatingPointError(f"adversarial training: non-finite loss at epoch "
                                         f"{epoch}, step {step} (D {dl}, G {gl})")
            rl, fl = real_logits.numpy(), fake_logits.numpy()
            sums += [dl, gl, ((rl > 0).mean() + (fl < 0).mean()) / 2,
                     (1 / (1 + np.exp(-rl))).mean(), (1 / (1 + np.exp(-fl))).mean(), 1]
        m = sums[:5] / max(sums[5], 1)
        samples = generate(G, fixed_z)
        row = {"epoch": epoch, "d_loss": m[0], "g_loss": m[1], "d_accuracy": m[2],
               "d_real": m[3], "d_fake": m[4], **sample_statistics(samples, real_ref),
               "seconds": time.perf_counter() - t0}
        history.append({k: float(v) for k, v in row.items()})
        log(f"epoch {epoch}: D loss {m[0]:.3f}  G loss {m[1]:.3f}  D acc {m[2]:.3f}  "
            f"D(x) {m[3]:.2f}  D(G(z)) {m[4]:.2f}  mean-image distance "
            f"{row['mean_image_distance']:.3f}  ({row['seconds']:.1f}s)")
        if out_dir is not None and (epoch % cfg["sample_every"] == 0 or epoch == cfg["epochs"]):
            save_image_grid(os.path.join(out_dir, f"samples_epoch{epoch}.png"), samples,
                            nrow=int(np.ceil(np.sqrt(len(samples)))),
                            title=f"{cfg.get('name', 'GAN')} samples, fixed latents, "
                                  f"epoch {epoch}")
    return history, start, fixed_z


class GANRecipe(Recipe):
    """The adversarial experiment: train G and D, write the figures, then evaluate the
    samples with a classifier. Subclasses override :meth:`build` (the two networks) and
    ``flatten`` (the image layout they use)."""

    name = "gan"
    summary = ("fully connected GAN on Fashion-MNIST: samples, latent interpolation, "
               "classifier confidence and class-histogram entropy vs real images")
    flatten = True
    defaults = dict(epochs=15, batch_size=64, lr=2e-4, beta1=0.5, latent_dim=64,
                    hidden_g=[256, 512], hidden_d=[512, 256], subset=0, seed=0,
                    sample_every=3, n_fixed=64, n_eval=1000, classifier_epochs=4,
                    classifier_subset=0)
    quick = dict(epochs=4, subset=8000, hidden_g=[128, 256], hidden_d=[256, 128],
                 sample_every=1, n_eval=500, classifier_epochs=2, classifier_subset=5000)

    def build(self, cfg):
        return (Generator(cfg["latent_dim"], tuple(cfg["hidden_g"])),
                Discriminator(hidden=tuple(cfg["hidden_d"])))

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError(f"{self.name}: resume is not supported (the run is short)")
        if not verbose:
            log = lambda *a, **k: None  # noqa: E731
        t0 = time.perf_counter()
        lamina.manual_seed(cfg["seed"])
        (x, y), _, (xt, yt) = fashion_unit(cfg["seed"], flatten=self.flatten)
        xg = x[:cfg["subset"]] if cfg["subset"] else x
        G, D = self.build(cfg)
        log(f"{self.name}: {len(xg)} training images, G {n_params(G):,} parameters, "
            f"D {n_params(D):,} parameters")
        history, start, fixed_z = train_adversarial(
            G, D, xg * 2 - 1, {**cfg, "name": self.name}, out_dir, log, real_ref=xt[:1000])
        t_train = time.perf_counter() - t0

        rng = np.random.default_rng(cfg["seed"] + 1)
        if out_dir is not None:
            save_image_grid(os.path.join(out_dir, "interpolation.png"),
                            generate(G, interpolation_latents(rng, cfg["latent_dim"])),
                            nrow=10, title=f"{self.name}: linear interpolation in latent space")

        # Evaluation: a classifier's view of n_eval samples and n_eval real test images.
        x_img = x.reshape(-1, 1, 28, 28)
        xt_img = xt.reshape(-1, 1, 28, 28)
        n_clf = cfg["classifier_subset"] or len(x_img)
        clf, acc, cached = get_classifier(cfg, (x_img[:n_clf], y[:n_clf]), (xt_img, yt),
                                          out_dir, log)
        z = rng.standard_normal((cfg["n_eval"], cfg["latent_dim"])).astype(np.float32)
        samples = generate(G, z).reshape(-1, 1, 28, 28)
        fake_stats = class_statistics(predict_probs(clf, samples))
        real_stats = class_statistics(predict_probs(clf, xt_img[:cfg["n_eval"]]))
        for label, s in (("samples", fake_stats), ("real", real_stats)):
            log(f"{label:8s} confidence {s['confidence']:.3f}  entropy {s['entropy']:.3f} nats "
                f"(max {np.log(10):.3f})  largest class {s['largest_fraction'] * 100:.1f}%  "
                f"histogram {s['histogram']}")
        if fake_stats["collapsed"]:
            log(f"{self.name}: WARNING mode collapse (entropy < {COLLAPSE_ENTROPY} nats or "
                f"one class > {COLLAPSE_LARGEST:.0%})")
        results = {
            "recipe": self.name, "epochs": cfg["epochs"], "n_train": len(xg),
            "g_parameters": n_params(G), "d_parameters": n_params(D),
            "history": history, "start": start, "final": {k: history[-1][k] for k in (
                "d_loss", "g_loss", "d_accuracy", "mean_image_distance", "pixel_std_ratio")},
            "classifier": {"model": "LeNet5 (modern)", "test_accuracy": acc, "cached": cached},
            "samples": fake_stats, "real": real_stats, "classes": list(FASHION_CLASSES),
            "collapsed": fake_stats["collapsed"], "train_seconds": t_train,
            "seconds": time.perf_counter() - t0, "config": cfg}
        save_results(out_dir, results)
        self.G, self.D, self.classifier, self.fixed_z = G, D, clf, fixed_z
        return results


def n_params(model):
    return int(sum(p.numel() for p in model.parameters()))


RECIPE = GANRecipe()
