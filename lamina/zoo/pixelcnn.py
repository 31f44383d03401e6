"""pixelcnn: an autoregressive image model built from masked convolutions (the notes'
"generative models: i) autoregressive").

A PixelCNN writes the likelihood of a binary image in raster order (row by row, left to
right) as a product of conditionals, p(x) = prod_i p(x_i | x_<i), and computes all the
conditionals at once with convolutions whose kernels are masked so that output pixel i
never sees input pixel i or any later one:

- mask type 'A' (first layer): the rows above the centre and the pixels left of the
  centre in its row — the centre itself is excluded, so the output at (i, j) does not see
  x(i, j);
- mask type 'B' (later layers): the same plus the centre, which there holds features that
  already depend only on earlier pixels.

The network is a 7×7 type-A convolution, residual blocks h + conv_B(relu(h)) with 3×3
type-B convolutions, and a ReLU-1×1-ReLU-1×1 head giving one Bernoulli logit per pixel.
(This is the original PixelCNN with its "blind spot": pixels up and to the right beyond
the kernels' reach are never seen; the gated two-stack variant removes it.)

Data: Fashion-MNIST 28×28 binarized with a STATIC threshold at 0.5 (the test set is a
fixed binary data set, so its likelihood is well defined). The recipe reports the test
negative log-likelihood in bits per dimension (and nats per image) beside an independent
per-pixel Bernoulli baseline (each pixel's training frequency), and writes
``samples.png`` (images drawn pixel by pixel) and ``completions.png`` (the bottom halves of
test images sampled given their top halves).

    lamina train pixelcnn [--quick] [--set channels=64]
"""
import math
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.grad_mode import no_grad
from lamina.nn import functional as F
from lamina.ops.conv import conv

from .image_grid import binarize, fashion_unit, save_image_grid
from .recipe import Recipe, save_results

LN2 = math.log(2.0)


def causal_mask(kernel_size, mask_type):
    """The (k, k) 0/1 raster-order mask: rows above the centre, the pixels left of the
    centre, and (type 'B' only) the centre itself."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"MaskedConv2d: mask_type must be 'A' or 'B', got {mask_type!r}")
    if not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"MaskedConv2d: kernel_size must be an odd positive int (the mask "
                         f"needs a centre pixel), got {kernel_size!r}")
    c = kernel_size // 2
    m = np.zeros((kernel_size, kernel_size), np.float32)
    m[:c, :] = 1.0
    m[c, :c] = 1.0
    if mask_type == "B":
        m[c, c] = 1.0
    return m


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded k×k convolution (odd k, stride 1) whose kernel is multiplied by a
    raster-order mask in every forward: (N, C_in, H, W) -> (N, C_out, H, W).

    ``mask_type`` 'A' excludes the centre pixel, 'B' includes it. Because the mask
    multiplies the weight inside the graph, the masked weights get exactly zero gradient
    (and stay at their initial values; they never matter). Parameters ``weight``
    (C_out, C_in, k, k) and ``bias`` as in Conv2d; the mask is a non-persistent buffer."""

    def __init__(self, in_channels, out_channels, kernel_size, mask_type="B", bias=True):
        m = causal_mask(kernel_size, mask_type)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", m[None, None], persistent=False)

    def forward(self, input):
        try:
            return conv(input, self.weight * self.mask, self.bias, self.stride, self.padding,
                        self.dilation, self.groups, 2)
        except ValueError as e:
            raise self._rename(e) from None

    def extra_repr(self):
        return super().extra_repr() + f", mask_type={self.mask_type!r}"


class PixelCNN(nn.Module):
    """PixelCNN for binary images: (N, 1, H, W) in {0, 1} -> Bernoulli logits (N, 1, H, W);
    logit (i, j) depends only on pixels before (i, j) in raster order.

    A ``first_kernel``×``first_kernel`` type-A masked convolution (1 -> ``channels``),
    ``n_layers`` residual blocks h + MaskedConv_B(relu(h)) (``kernel_size``×``kernel_size``),
    then relu -> 1×1 (``channels`` -> ``head_channels``) -> relu -> 1×1 (-> 1 logit). The
    input is fed as 2x - 1 so that a black pixel (-1) differs from the zero padding."""

    def __init__(self, channels=32, n_layers=4, kernel_size=3, first_kernel=7,
                 head_channels=32):
        super().__init__()
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.layers = nn.ModuleList([MaskedConv2d(channels, channels, kernel_size, "B")
                                     for _ in range(n_layers)])
        self.head1 = nn.Conv2d(channels, head_channels, 1)
        self.head2 = nn.Conv2d(head_channels, 1, 1)
        # how many rows above a pixel can influence its logit (used by sample)
        self.rows_above = first_kernel // 2 + n_layers * (kernel_size // 2)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"PixelCNN: expected binary images (N, 1, H, W), got shape "
                             f"{tuple(x.shape)}")
        h = self.first(x * 2.0 - 1.0)
        for layer in self.layers:
            h = h + layer(h.relu())
        return self.head2(self.head1(h.relu()).relu())

    def sample(self, n, rng=None, size=(28, 28), prefix=None, start_row=0):
        """Draw ``n`` binary images pixel by pixel in raster order: pixel (i, j) is drawn
        from Bernoulli(sigmoid(logit(i, j))) given all pixels drawn before it.

        ``rng``: a NumPy Generator or int seed (reproducible). With ``prefix`` (n, 1, H, W)
        the rows above ``start_row`` are copied from it and only the rest are sampled
        (image completion). Returns (n, 1, H, W) float32 in {0, 1}. Each step runs the
        network only on the ``rows_above + 1`` rows that can influence the current row,
        which gives exactly the full-image logits there. Eval mode, no gradients."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        H, W = size
        x = np.zeros((n, 1, H, W), np.float32)
        if prefix is not None:
            prefix = np.asarray(prefix, np.float32)
            if prefix.shape != x.shape:
                raise ValueError(f"PixelCNN.sample: prefix must have shape {x.shape}, got "
                                 f"{prefix.shape}")
            x[:, :, :start_row] = prefix[:, :, :start_row]
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for i in range(start_row, H):
                    lo = max(0, i - self.rows_above)
                    for j in range(W):
                        z = self(lamina.from_numpy(x[:, :, lo:i + 1].copy())).numpy()
                        p = 1.0 / (1.0 + np.exp(-z[:, 0, -1, j]))
                        x[:, 0, i, j] = (rng.random(n) < p).astype(np.float32)
        finally:
            self.train(was_training)
        return x


def nll_bits_per_dim(logits, x):
    """Mean negative log-likelihood in bits per pixel of binary images ``x`` under
    Bernoulli(sigmoid(logits)): BCE-with-logits (nats, averaged over every pixel) / ln 2.
    A Tensor (differentiable); all-zero logits give exactly 1 bit per pixel."""
    if not isinstance(x, lamina.Tensor):
        x = lamina.from_numpy(np.asarray(x, np.float32))
    return F.binary_cross_entropy_with_logits(logits, x) / LN2


def evaluate_bpd(model, x, batch_size=500):
    """Test NLL of the binary images ``x`` (N, 1, H, W) in bits per pixel (eval mode)."""
    model.eval()
    total = 0.0
    with no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            total += float(nll_bits_per_dim(model(lamina.from_numpy(xb)), xb).item()) * len(xb)
    model.train()
    return total / len(x)


def independent_bernoulli_bpd(x_train, x_test):
    """Bits per pixel of ``x_test`` under independent per-pixel Bernoulli distributions
    fitted on ``x_train`` (Laplace-smoothed frequencies (count + 1) / (n + 2))."""
    p = (x_train.sum(0) + 1.0) / (len(x_train) + 2.0)
    ll = x_test * np.log2(p) + (1 - x_test) * np.log2(1 - p)
    return float(-ll.mean())


class PixelCNNRecipe(Recipe):
    name = "pixelcnn"
    summary = ("PixelCNN (masked convolutions A/B) on binarized Fashion-MNIST: test NLL in "
               "bits/dim vs independent pixels, samples drawn pixel by pixel")
    defaults = dict(epochs=2, lr=2e-3, batch_size=32, seed=0, channels=32, n_layers=6,
                    kernel_size=3, head_channels=32, n_train=12000, n_val=1000, n_test=0,
                    n_samples=16, n_complete=8)
    quick = dict(epochs=1, channels=16, n_layers=2, head_channels=16, n_train=1600,
                 n_val=200, n_test=300, n_samples=2, n_complete=2, lr=3e-3)
    target = ("test_bits_per_dim", 0.22)

    def build_model(self, cfg):
        return PixelCNN(cfg["channels"], cfg["n_layers"], cfg["kernel_size"], 7,
                        cfg["head_channels"])

    def data(self, cfg):
        """Binary (N, 1, 28, 28) train / val / test images (static threshold 0.5)."""
        (xtr, _), (xva, _), (xte, _) = fashion_unit(seed=cfg["seed"], n_val=cfg["n_val"],
                                                    flatten=False)
        xtr = xtr[:cfg["n_train"]] if cfg["n_train"] else xtr
        xte = xte[:cfg["n_test"]] if cfg["n_test"] else xte
        return binarize(xtr), binarize(xva), binarize(xte)

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError("pixelcnn: --resume is not supported")
        t0 = time.perf_counter()
        lamina.manual_seed(cfg["seed"])
        rng = np.random.default_rng(cfg["seed"])
        xtr, xva, xte = self.data(cfg)
        model = self.build_model(cfg)
        opt = lamina.optim.Adam(model.parameters(), lr=cfg["lr"])
        baseline = independent_bernoulli_bpd(xtr, xte)
        start = evaluate_bpd(model, xte)
        log(f"pixelcnn: {len(xtr)} train / {len(xva)} val / {len(xte)} test binarized "
            f"images; untrained test NLL {start:.4f} bits/dim, independent-pixel baseline "
            f"{baseline:.4f} bits/dim")
        bs, history, curve = cfg["batch_size"], [], []
        steps_per_epoch = len(xtr) // bs
        total_steps = cfg["epochs"] * steps_per_epoch
        step = 0
        for epoch in range(1, cfg["epochs"] + 1):
            order = rng.permutation(len(xtr))
            run_loss, run_n = 0.0, 0
            for b in range(steps_per_epoch):
                # cosine decay of the learning rate to lr / 20 over the whole run
                for g in opt.param_groups:
                    g["lr"] = cfg["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step
                                                                             / total_steps)))
                xb = xtr[order[b * bs:(b + 1) * bs]]
                loss = nll_bits_per_dim(model(lamina.from_numpy(xb)), xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                run_loss += float(loss.item())
                run_n += 1
                if step % 50 == 0 or step == total_steps:
                    curve.append([step, run_loss / run_n])
                    if verbose:
                        log(f"  step {step}/{total_steps}: train {run_loss / run_n:.4f} "
                            f"bits/dim")
                    run_loss, run_n = 0.0, 0
            val = evaluate_bpd(model, xva)
            history.append({"epoch": epoch, "val_bits_per_dim": val})
            log(f"epoch {epoch}: val {val:.4f} bits/dim ({time.perf_counter() - t0:.0f} s)")
        test = evaluate_bpd(model, xte)
        D = xte.shape[-1] * xte.shape[-2]
        log(f"test NLL {test:.4f} bits/dim = {test * D * LN2:.1f} nats/image "
            f"(independent pixels {baseline:.4f} bits/dim = {baseline * D * LN2:.1f} nats/image)")
        t_sample = time.perf_counter()
        samples = model.sample(cfg["n_samples"], rng)
        half = 14
        given = xte[:cfg["n_complete"]]
        completed = model.sample(len(given), rng, prefix=given, start_row=half)
        t_sample = time.perf_counter() - t_sample
        results = {"recipe": self.name, "epochs": cfg["epochs"], "steps": step,
                   "binarization": "static threshold at 0.5",
                   "n_train": len(xtr), "n_test": len(xte),
                   "test_bits_per_dim": test, "test_nats_per_image": test * D * LN2,
                   "untrained_test_bits_per_dim": start,
                   "baseline_bits_per_dim": baseline,
                   "baseline_nats_per_image": baseline * D * LN2,
                   "baseline": "independent per-pixel Bernoulli (training frequencies)",
                   "history": history, "train_curve": curve,
                   "sample_mean_intensity": float(samples.mean()),
                   "test_mean_intensity": float(xte.mean()),
                   "sampling_seconds": t_sample}
        if out_dir is not None:
            save_image_grid(os.path.join(out_dir, "samples.png"), samples,
                            title=f"PixelCNN samples\n(test {test:.3f} bits/dim)")
            rows = np.concatenate([given, completed])
            save_image_grid(os.path.join(out_dir, "completions.png"), rows, nrow=len(given),
                            row_labels=["test image", "top half given"],
                            title="bottom halves sampled given the top 14 rows")
            results["figures"] = ["samples.png", "completions.png"]
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        self.model = model
        log(f"{results['seconds']:.0f} s")
        return results


RECIPE = PixelCNNRecipe()
