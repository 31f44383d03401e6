"""Autoencoders of the notes' unsupervised-learning lecture, and what their recipes share.

Models (inputs are flat images, (N, n_in), intensities in [0, 1]):

- :class:`AutoEncoder`: an MLP encoder down to a ``n_code`` bottleneck and its mirror as
  decoder; with no hidden layers and no output non-linearity it is the linear
  autoencoder, whose optimum spans the principal subspace (PCA);
- :class:`TiedAutoEncoder`: the notes' r(x) = W h(Wᵀx + b) + c, one weight matrix used
  by encoder and decoder; h is linear, ReLU, sigmoid or the thresholded linear unit
  (prehiddens > threshold) · prehiddens of the notes' Theano snippet;
- :class:`SigmoidAutoEncoder`: h = σ(Wx + b), r = σ(V h + c), the contractive
  autoencoder's model (its penalty: :func:`contractive_penalty`).

Helpers: closed-form PCA (:func:`pca_fit`, :func:`pca_reconstruct`), the two corruptions
of denoising autoencoders (:func:`mask_noise`, :func:`gaussian_noise`), the notes' cost
‖r(x) − x‖² (:func:`reconstruction_cost`), a small Adam training loop
(:func:`train_autoencoder`) and evaluation (:func:`reconstruct`, :func:`pixel_mse`).
Reported errors are per-pixel mean squared errors; training minimises the per-image sum.
"""
import math
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F

from .image_grid import batched, fashion_unit

_HIDDEN = ("linear", "relu", "sigmoid", "threshold")


# ---------------------------------------------------------------- units and penalties
def threshold_linear(x, threshold):
    """The selection-threshold unit of the notes: ``(x > threshold) * x`` (a truncated
    ReLU; 0 where x <= threshold, and there the gradient is 0 too). x: any shape."""
    return F.threshold(x, threshold, 0.0)


def contractive_penalty(h, weight):
    """‖∂h/∂x‖²_F of a sigmoid layer h = σ(Wx + b), exactly, per example.

    h: (N, n_hidden) the layer's outputs; weight: (n_hidden, n_in), W as a Linear layer
    stores it. ∂h_j/∂x_i = h_j (1 − h_j) W_ji, so
    ‖J‖²_F = Σ_j (h_j (1 − h_j))² Σ_i W_ji². Returns (N,); differentiable in h and W."""
    if h.ndim != 2 or weight.ndim != 2 or h.shape[1] != weight.shape[0]:
        raise ValueError(f"contractive_penalty: expected h (N, n_hidden) and weight "
                         f"(n_hidden, n_in), got h {tuple(h.shape)} and weight "
                         f"{tuple(weight.shape)}")
    slope = h * (1.0 - h)
    return (slope * slope) @ (weight * weight).sum(1)


def l1_activity(h):
    """Σ_j |h_j| per example: the L1 sparsity penalty on hidden activities. (N, H) -> (N,)."""
    return h.abs().sum(1)


def reconstruction_cost(r, x):
    """The notes' cost ‖r(x) − x‖², summed over pixels and averaged over the batch."""
    if tuple(r.shape) != tuple(x.shape):
        raise ValueError(f"reconstruction_cost: reconstruction {tuple(r.shape)} and target "
                         f"{tuple(x.shape)} differ in shape")
    d = r - x
    return (d * d).sum(1).mean()


# ---------------------------------------------------------------- models
def _activation(name, op="AutoEncoder"):
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    if name in (None, "linear", "none"):
        return None
    if name not in acts:
        raise ValueError(f"{op}: unknown activation {name!r} (linear, relu, sigmoid, tanh)")
    return acts[name]()


def _mlp(sizes, act, last_act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        f = last_act if i == len(sizes) - 2 else act
        m = _activation(f)
        if m is not None:
            layers.append(m)
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """(N, n_in) -> (N, n_in) reconstructions through an (N, n_code) code.

    Encoder: Linear layers n_in -> hidden[0] -> ... -> n_code with ``activation`` after
    each hidden layer and ``code_activation`` on the code; decoder: the mirror image,
    n_code -> ... -> hidden[0] -> n_in, ``output`` on the last layer. With ``hidden=()``,
    ``code_activation=output="linear"`` it is the linear autoencoder r(x) = D(Ex + b) + c."""

    def __init__(self, n_in=784, n_code=32, hidden=(256,), activation="relu",
                 code_activation="linear", output="sigmoid"):
        super().__init__()
        self.n_in, self.n_code, self.hidden = n_in, n_code, tuple(hidden)
        sizes = [n_in, *self.hidden, n_code]
        self.encoder = _mlp(sizes, activation, code_activation)
        self.decoder = _mlp(sizes[::-1], activation, output)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, h):
        return self.decoder(h)

    def forward(self, x):
        return self.decode(self.encode(x))


class TiedAutoEncoder(nn.Module):
    """The notes' tied-weight autoencoder r(x) = W h(Wᵀx + b) + c. x: (N, n_in) -> (N, n_in).

    ``weight`` W: (n_in, n_hidden), one Parameter used by the encoder (x @ W) and the
    decoder (h @ Wᵀ), so its gradient is the sum of both uses; ``bias`` b: (n_hidden,)
    (None when ``bias=False``), ``vbias`` c: (n_in,). ``hidden``: "linear", "relu",
    "sigmoid" or "threshold" — the notes' selection unit (Wᵀx + b > threshold)·(Wᵀx + b),
    used in the notes without a hidden bias (the threshold takes its place)."""

    def __init__(self, n_in=784, n_hidden=256, hidden="relu", threshold=1.0, bias=True):
        super().__init__()
        if hidden not in _HIDDEN:
            raise ValueError(f"TiedAutoEncoder: unknown hidden unit {hidden!r} "
                             f"({', '.join(_HIDDEN)})")
        self.n_in, self.n_hidden, self.hidden, self.threshold = n_in, n_hidden, hidden, threshold
        bound = math.sqrt(6.0 / (n_in + n_hidden))        # Glorot uniform
        w = lamina.backend.rng().uniform(-bound, bound, (n_in, n_hidden))
        self.weight = nn.Parameter(w.astype(lamina.backend.get_default_dtype()))
        self.bias = nn.Parameter(lamina.zeros(n_hidden).data) if bias else None
        self.vbias = nn.Parameter(lamina.zeros(n_in).data)

    def prehiddens(self, x):
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"TiedAutoEncoder(n_in={self.n_in}, n_hidden={self.n_hidden}): "
                             f"expected input (N, {self.n_in}), got {tuple(x.shape)}")
        a = x @ self.weight
        return a + self.bias if self.bias is not None else a

    def encode(self, x):
        a = self.prehiddens(x)
        if self.hidden == "relu":
            return F.relu(a)
        if self.hidden == "sigmoid":
            return F.sigmoid(a)
        if self.hidden == "threshold":
            return threshold_linear(a, self.threshold)
        return a

    def decode(self, h):
        return h @ self.weight.T + self.vbias

    def forward(self, x):
        return self.decode(self.encode(x))

    def extra_repr(self):
        extra = f", threshold={self.threshold}" if self.hidden == "threshold" else ""
        return f"n_in={self.n_in}, n_hidden={self.n_hidden}, hidden={self.hidden}{extra}"


class SigmoidAutoEncoder(nn.Module):
    """h = σ(W x + b) (N, n_hidden), r = σ(V h + c) (N, n_in); x: (N, n_in).

    ``encoder`` is one Linear layer (weight W: (n_hidden, n_in)), so the encoder's
    Jacobian norm is :func:`contractive_penalty` (h, encoder.weight) exactly."""

    def __init__(self, n_in=784, n_hidden=256):
        super().__init__()
        self.n_in, self.n_hidden = n_in, n_hidden
        self.encoder = nn.Linear(n_in, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_in)

    def encode(self, x):
        return F.sigmoid(self.encoder(x))

    def decode(self, h):
        return F.sigmoid(self.decoder(h))

    def forward(self, x):
        return self.decode(self.encode(x))

    def jacobian_penalty(self, h):
        return contractive_penalty(h, self.encoder.weight)


# ---------------------------------------------------------------- PCA in closed form
def pca_fit(x, k):
    """The k leading eigenvectors of the covariance of ``x`` (N, D) by ``np.linalg.eigh``.
    Returns (mean (D,), components (k, D) with orthonormal rows, eigenvalues (D,) in
    decreasing order), in float64."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or not 0 < k <= x.shape[1]:
        raise ValueError(f"pca_fit: need data (N, D) and 0 < k <= D, got {x.shape} and k={k}")
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / len(x)
    vals, vecs = np.linalg.eigh(cov)              # ascending
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    return mean, vecs[:, :k].T.copy(), vals


def pca_reconstruct(x, mean, components):
    """Project ``x`` (N, D) on the principal subspace and map back: m + (x − m) V Vᵀ."""
    xc = np.asarray(x, np.float64) - mean
    return mean + (xc @ components.T) @ components


def subspace_alignment(basis, components):
    """Mean squared cosine of the principal angles between span(basis) (D, k) and the
    rows of ``components`` (k', D), orthonormal: 1 when the spans coincide (k = k')."""
    q, _ = np.linalg.qr(np.asarray(basis, np.float64))
    return float(np.sum((components @ q) ** 2) / q.shape[1])


# ---------------------------------------------------------------- corruption
def mask_noise(x, fraction, rng):
    """Masking noise: each pixel set to 0 with probability ``fraction`` (NumPy Generator);
    ``x`` itself when ``fraction`` <= 0."""
    if fraction <= 0:
        return x
    keep = rng.random(x.shape) >= fraction
    return (x * keep).astype(x.dtype)


def gaussian_noise(x, sigma, rng):
    """Additive isotropic Gaussian noise x + σ z (not clipped)."""
    return (x + sigma * rng.standard_normal(x.shape)).astype(x.dtype)


def corruption(kind, level):
    """A function (x, rng) -> corrupted x: ``kind`` "mask" (level = fraction zeroed),
    "gaussian" (level = σ) or "none"."""
    if kind == "mask":
        return lambda x, rng: mask_noise(x, level, rng)
    if kind == "gaussian":
        return lambda x, rng: gaussian_noise(x, level, rng)
    if kind in (None, "none"):
        return None
    raise ValueError(f"corruption: unknown kind {kind!r} (mask, gaussian, none)")


# ---------------------------------------------------------------- training, evaluation
def fashion_images(cfg):
    """Flat Fashion-MNIST images in [0, 1]: (train (N, 784), test (M, 784)) float32;
    ``cfg['subset']`` (0 = all) trims them for quick runs."""
    (x, _), _, (xt, _) = fashion_unit(seed=cfg.get("seed", 0), subset=cfg.get("subset", 0))
    return x, xt


def plain_loss(model, inp, target):
    """‖r(inp) − target‖² (batch mean): the plain (target = inp) and denoising objective."""
    return reconstruction_cost(model(lamina.from_numpy(inp)), lamina.from_numpy(target))


def train_autoencoder(model, x, epochs, lr=1e-3, batch_size=128, seed=0, loss_fn=plain_loss,
                      corrupt=None, final_lr=0.1, name="autoencoder", log=print):
    """Adam on ``loss_fn(model, input, clean)`` over shuffled minibatches of ``x``;
    ``corrupt(x, rng)`` (if given) makes the input, the clean batch is the target. The
    learning rate follows a cosine from ``lr`` to ``final_lr * lr``. Returns the loss
    history: the untrained loss on the first batches, then each epoch's mean loss."""
    rng = np.random.default_rng(seed)
    opt = lamina.optim.Adam(model.parameters(), lr=lr)
    n = len(x)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total_steps = max(epochs * steps_per_epoch, 1)
    probe = x[:min(n, 4 * batch_size)]
    with lamina.no_grad():
        inp = corrupt(probe, np.random.default_rng(seed + 1)) if corrupt else probe
        history = [float(loss_fn(model, inp, probe).item())]
    step = 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        total = 0.0
        for s in range(0, n, batch_size):
            frac = step / total_steps
            for g in opt.param_groups:
                g["lr"] = lr * (final_lr + (1 - final_lr) * 0.5 * (1 + math.cos(math.pi * frac)))
            xb = x[order[s:s + batch_size]]
            inp = corrupt(xb, rng) if corrupt else xb
            opt.zero_grad()
            loss = loss_fn(model, inp, xb)
            loss.backward()
            opt.step()
            total += loss.item()
            step += 1
        history.append(total / steps_per_epoch)
        log(f"{name}: epoch {epoch + 1}/{epochs}  loss {history[-1]:.4f}  "
            f"({time.perf_counter() - t0:.1f}s)")
    return history


def reconstruct(model, x, batch_size=1000):
    """model(x) as a NumPy array, in batches, without a graph."""
    return batched(model, x, batch_size)


def encode(model, x, batch_size=1000):
    """model.encode(x) as a NumPy array, in batches, without a graph."""
    return batched(model.encode, x, batch_size)


def pixel_mse(r, x):
    """Per-pixel mean squared error between two image arrays (float64)."""
    return float(np.mean((np.asarray(r, np.float64) - np.asarray(x, np.float64)) ** 2))
