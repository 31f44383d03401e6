"""rbm: a binary restricted Boltzmann machine on binarized Fashion-MNIST, trained three ways.

The model (:class:`RBM`) is the bipartite energy model of the notes,

    E(v, h) = -vᵀb - cᵀh - vᵀWh,    p(v, h) = exp(-E(v, h)) / Z,

with binary visible units v (784 pixels) and binary hidden units h. Summing out h gives
the **free energy** F(v) = -vᵀb - Σ_j softplus(c_j + (vᵀW)_j), p(v) = exp(-F(v)) / Z.
The gradient of the mean negative log-likelihood is E_data[∂F/∂θ] - E_model[∂F/∂θ]: data
push their free energy down, "fantasy" samples from the model push theirs up. The model
expectation is approximated with Gibbs chains (h ~ p(h|v), v ~ p(v|h)), so training here
is autograd of ``F(v_data).mean() - F(v_neg).mean()`` with the negative samples v_neg
held fixed:

- ``cd1``: contrastive divergence, the chain started at the data batch, 1 Gibbs step;
- ``cd10``: the same with ``cd_k`` = 10 steps;
- ``pcd``: persistent CD (Tieleman 2008), ``pcd_k`` step(s) per update of chains that
  are never reset (started from noise).

All three get the same budget of parameter updates (``epochs`` over the same images, SGD
with momentum, the learning rate decaying linearly to zero, weight decay on W). The
pixels are binarized **stochastically, once** (pixel ~ Bernoulli(intensity), fixed
seeds for the training and the test images; ``binarize='threshold'`` thresholds at 0.5),
so the likelihoods are those of a fixed binary data set.

Reported per method on the test images: the reconstruction error (squared error of one
mean-field up-down pass, summed over the pixels, averaged over images), and the mean test
log-likelihood in nats, log p(v) = -F(v) - log Z, with log Z estimated by **annealed
importance sampling** (Salakhutdinov & Murray 2008) from the base-rate model (W = 0,
c = 0, visible biases the training pixels' log-odds): ``ais_runs`` independent groups of
``ais_chains`` chains, the estimate from all of them and its spread over the groups. A
SMALL RBM (``small_hidden`` = 16 hidden units) is trained too: its log Z is **exact**
(a sum over all 2^16 hidden states), so its exact test log-likelihood, next to the AIS
estimate for the same model, checks the AIS code. Written to the output directory:
``samples.png`` (Gibbs chains of each model from test images and from noise, snapshots
along the chain), ``filters.png`` (receptive fields of hidden units) and
``results.json``.
"""
import os
import time

import numpy as np

import lamina
from lamina import nn
from lamina.nn import functional as F
from lamina.tensor import Parameter, Tensor

from .image_grid import binarize, fashion_unit, save_image_grid
from .recipe import Recipe, save_results

METHODS = ("cd1", "cd10", "pcd")
LABELS = {"cd1": "CD-1", "cd10": "CD-k", "pcd": "PCD"}


def _softplus(x):
    """log(1 + e^x) in float64 NumPy, stable for any x."""
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logsumexp(x):
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


def _generator(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class RBM(nn.Module):
    """Binary restricted Boltzmann machine, E(v, h) = -vᵀb - cᵀh - vᵀWh.

    Parameters: ``W`` (n_visible, n_hidden), ``b`` (n_visible,) visible biases, ``c``
    (n_hidden,) hidden biases; W ~ N(0, init_std²), biases zero. Visible batches are
    (N, n_visible) and hidden batches (N, n_hidden), binary (any float dtype); the
    methods take Tensors or arrays. ``free_energy`` is a differentiable lamina
    expression; the sampling methods draw from ``rng`` (a NumPy Generator or seed; None:
    lamina's generator, set by ``lamina.manual_seed``) and record no graph.
    """

    def __init__(self, n_visible=784, n_hidden=128, init_std=0.01, dtype=None):
        super().__init__()
        if n_visible <= 0 or n_hidden <= 0:
            raise ValueError(f"RBM: n_visible and n_hidden must be > 0, got {n_visible}, "
                             f"{n_hidden}")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        dtype = lamina.backend.get_default_dtype() if dtype is None else \
            lamina.backend.to_dtype(dtype)
        w = lamina.backend.rng().standard_normal((n_visible, n_hidden)) * init_std
        self.W = Parameter(w.astype(dtype))
        self.b = Parameter(np.zeros(n_visible, dtype))
        self.c = Parameter(np.zeros(n_hidden, dtype))

    def extra_repr(self):
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    # ------------------------------------------------------------ shapes
    def _batch(self, x, n, side, where):
        x = x if isinstance(x, Tensor) else lamina.from_numpy(np.asarray(x))
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden})."
                             f"{where}: expected {side} units of shape (N, {n}), got "
                             f"{tuple(x.shape)}")
        if x.dtype != self.W.dtype:
            x = x.to(self.W.dtype)
        return x

    def _v(self, v, where):
        return self._batch(v, self.n_visible, "visible", where)

    def _h(self, h, where):
        return self._batch(h, self.n_hidden, "hidden", where)

    def _rng(self, rng):
        return lamina.backend.rng() if rng is None else _generator(rng)

    # ------------------------------------------------------------ energies
    def energy(self, v, h):
        """E(v, h) = -vᵀb - cᵀh - vᵀWh for paired batches: (N,)."""
        v, h = self._v(v, "energy"), self._h(h, "energy")
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def free_energy(self, v):
        """F(v) = -log Σ_h exp(-E(v, h)) = -vᵀb - Σ_j softplus(c_j + (vᵀW)_j): (N,).
        Differentiable in W, b, c (and v)."""
        v = self._v(v, "free_energy")
        return -(v @ self.b) - F.softplus(v @ self.W + self.c, threshold=float("inf")).sum(-1)

    # ------------------------------------------------------------ conditionals, sampling
    def p_h_given_v(self, v):
        """p(h_j = 1 | v) = sigmoid(c + vᵀW): (N, n_hidden)."""
        return (self._v(v, "p_h_given_v") @ self.W + self.c).sigmoid()

    def p_v_given_h(self, h):
        """p(v_i = 1 | h) = sigmoid(b + W h): (N, n_visible)."""
        return (self._h(h, "p_v_given_h") @ self.W.T + self.b).sigmoid()

    def _bernoulli(self, p, rng):
        u = self._rng(rng).random(p.shape)
        return lamina.from_numpy((u < p.data).astype(p.data.dtype))

    def sample_h(self, v, rng=None):
        """(p(h|v), a binary draw h ~ p(h|v)), both (N, n_hidden)."""
        with lamina.no_grad():
            p = self.p_h_given_v(v)
            return p, self._bernoulli(p, rng)

    def sample_v(self, h, rng=None):
        """(p(v|h), a binary draw v ~ p(v|h)), both (N, n_visible)."""
        with lamina.no_grad():
            p = self.p_v_given_h(h)
            return p, self._bernoulli(p, rng)

    def gibbs(self, v, k=1, rng=None, return_mean=False):
        """``k`` steps of block Gibbs sampling v -> h -> v from ``v``: the binary visible
        state after the last step (and, with ``return_mean``, its p(v|h) too)."""
        v = self._v(v, "gibbs")
        p = v
        for _ in range(k):
            _, h = self.sample_h(v, rng)
            p, v = self.sample_v(h, rng)
        return (v, p) if return_mean else v

    def reconstruction_error(self, v):
        """Mean over the batch of Σ_i (v_i - p(v_i = 1 | h = p(h|v)))²: one mean-field
        up-down pass, squared error summed over the pixels (a float)."""
        with lamina.no_grad():
            v = self._v(v, "reconstruction_error")
            r = self.p_v_given_h(self.p_h_given_v(v))
            return float(((v - r) ** 2).sum(-1).mean().item())

    # ------------------------------------------------------------ partition function
    def _arrays(self):
        return (self.W.data.astype(np.float64), self.b.data.astype(np.float64),
                self.c.data.astype(np.float64))

    def log_partition_exact(self, max_hidden=24, chunk=4096):
        """Exact log Z by enumerating all 2^n_hidden hidden states (float64):
        log Z = logsumexp_h [cᵀh + Σ_i softplus(b_i + (W h)_i)]. Only for
        n_hidden ≤ ``max_hidden``."""
        n = self.n_hidden
        if n > max_hidden:
            raise ValueError(f"RBM.log_partition_exact: 2^{n} hidden states is too many to "
                             f"enumerate (n_hidden must be <= {max_hidden}); use "
                             f"log_partition_ais")
        W, b, c = self._arrays()
        bits = np.arange(n)
        parts = []
        for lo in range(0, 2 ** n, chunk):
            idx = np.arange(lo, min(lo + chunk, 2 ** n))
            h = ((idx[:, None] >> bits) & 1).astype(np.float64)       # (chunk, n_hidden)
            s = h @ c + _softplus(h @ W.T + b).sum(1)
            parts.append(_logsumexp(s))
        return _logsumexp(np.array(parts))

    def log_partition_ais(self, n_chains=100, n_betas=10000, rng=None, base_bias=None,
                          return_log_weights=False):
        """log Z by annealed importance sampling (Salakhutdinov & Murray 2008).

        The base model A has W = 0, c = 0 and visible biases ``base_bias`` (default 0; the
        data's log-odds is a better start), so log Z_A = Σ_i softplus(b_A,i) + n_hidden
        log 2 and exact samples are independent pixels. The intermediate models are
        p_β(v) ∝ exp((1-β) vᵀb_A + β vᵀb) Π_j (1 + exp(β (c_j + (vᵀW)_j))), β from 0 to
        1 in ``n_betas`` values (the paper's spacing: 3.4% of them up to 0.5, 27.6% up to
        0.9, the rest up to 1); each chain moves by one Gibbs step of p_β and adds
        log p_β(v) - log p_β'(v) to its log weight. log Z ≈ log Z_A + log mean exp(log w).
        Returns the estimate (and, with ``return_log_weights``, the (n_chains,) float64
        log weights: split them to see the spread of independent runs)."""
        if n_betas < 2 or n_chains < 1:
            raise ValueError(f"RBM.log_partition_ais: need n_betas >= 2 and n_chains >= 1, "
                             f"got {n_betas}, {n_chains}")
        rng = self._rng(rng)
        W = self.W.data
        b, c = self.b.data.astype(np.float64), self.c.data.astype(np.float64)
        b_a = np.zeros(self.n_visible) if base_bias is None else \
            np.asarray(base_bias, np.float64).reshape(self.n_visible)
        log_z_a = float(_softplus(b_a).sum()) + self.n_hidden * np.log(2.0)
        betas = ais_betas(n_betas)
        v = (rng.random((n_chains, self.n_visible)) < _sigmoid(b_a)).astype(W.dtype)
        log_w = np.zeros(n_chains)
        for beta_prev, beta in zip(betas[:-1], betas[1:]):
            a = (v @ W).astype(np.float64) + c                   # hidden pre-activations
            log_w += (beta - beta_prev) * (v.astype(np.float64) @ (b - b_a))
            log_w += (_softplus(beta * a) - _softplus(beta_prev * a)).sum(1)
            if beta < 1.0:                                       # a Gibbs step of p_beta
                h = (rng.random(a.shape) < _sigmoid(beta * a)).astype(W.dtype)
                pre = (1.0 - beta) * b_a + beta * ((h @ W.T).astype(np.float64) + b)
                v = (rng.random(pre.shape) < _sigmoid(pre)).astype(W.dtype)
        log_z = log_z_a + _logsumexp(log_w) - np.log(n_chains)
        return (log_z, log_w) if return_log_weights else log_z

    def log_likelihood(self, v, log_z):
        """log p(v) = -F(v) - log Z for each row of ``v``: (N,) float64 array."""
        with lamina.no_grad():
            return -self.free_energy(v).numpy().astype(np.float64) - log_z


def ais_betas(n):
    """``n`` inverse temperatures from 0 to 1, spaced as in Salakhutdinov & Murray (2008):
    500 / 4,000 / 10,000 of their 14,500 steps in [0, 0.5], [0.5, 0.9], [0.9, 1] (evenly
    spaced when n < 30)."""
    if n < 30:
        return np.linspace(0.0, 1.0, n)
    n1, n2 = max(int(round(n * 500 / 14500)), 1), max(int(round(n * 4000 / 14500)), 1)
    n3 = n - n1 - n2
    return np.concatenate([np.linspace(0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3)])


def log_odds(x, eps=1e-3):
    """Per-pixel log-odds of the mean of binary images ``x`` (N, D), clipped to
    [eps, 1 - eps] (visible-bias initialization and the AIS base-rate model)."""
    p = np.clip(np.asarray(x, np.float64).mean(0), eps, 1 - eps)
    return np.log(p / (1 - p))


# ---------------------------------------------------------------------------- training
def train_rbm(rbm, x, method="cd1", k=1, epochs=5, lr=0.1, momentum=0.5, weight_decay=1e-4,
              batch_size=100, seed=0, log=None):
    """Fit ``rbm`` to binary images ``x`` (N, n_visible) by CD-k (``method`` 'cd') or
    persistent CD ('pcd', ``batch_size`` persistent chains started from noise). Each
    update is autograd of F(v_data).mean() - F(v_neg).mean() (v_neg fixed), SGD with
    momentum, lr decaying linearly to 0, weight decay on W only. Returns the per-epoch
    training reconstruction errors."""
    if method not in ("cd", "pcd"):
        raise ValueError(f"train_rbm: method must be 'cd' or 'pcd', got {method!r}")
    rng = np.random.default_rng(seed)
    x = np.asarray(x, rbm.W.data.dtype)
    opt = lamina.optim.SGD([{"params": [rbm.W], "weight_decay": weight_decay},
                            {"params": [rbm.b, rbm.c], "weight_decay": 0.0}],
                           lr=lr, momentum=momentum)
    n_batches = max(len(x) // batch_size, 1)
    total, step = epochs * n_batches, 0
    chains = lamina.from_numpy((rng.random((batch_size, rbm.n_visible)) < 0.5).astype(x.dtype))
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(n_batches):
            v = lamina.from_numpy(x[order[i * batch_size:(i + 1) * batch_size]])
            v_neg = rbm.gibbs(chains if method == "pcd" else v, k, rng)
            if method == "pcd":
                chains = v_neg
            for g in opt.param_groups:
                g["lr"] = lr * (1.0 - step / total)
            opt.zero_grad()
            loss = rbm.free_energy(v).mean() - rbm.free_energy(v_neg).mean()
            loss.backward()
            opt.step()
            step += 1
        history.append(rbm.reconstruction_error(x[:2000]))
        if log is not None:
            log(f"  epoch {epoch + 1}/{epochs}: train reconstruction error {history[-1]:.2f}")
    return history


def chain_snapshots(rbm, starts, steps, rng):
    """Run Gibbs chains from ``starts`` (M, n_visible); return {step: (M, n_visible)}:
    the start itself at step 0, else p(v|h) after that many steps."""
    v = lamina.from_numpy(np.asarray(starts, rbm.W.data.dtype))
    out, done = {}, 0
    for s in sorted(steps):
        if s == 0:
            out[0] = v.numpy().copy()
            continue
        v, p = rbm.gibbs(v, s - done, rng, return_mean=True)
        done = s
        out[s] = p.numpy().copy()
    return out


def _filters(rbm, n):
    w = rbm.W.data[:, :n].T.astype(np.float64)
    lo, hi = w.min(1, keepdims=True), w.max(1, keepdims=True)
    return (w - lo) / np.maximum(hi - lo, 1e-12)


def ais_summary(rbm, x_test, n_runs, n_chains, n_betas, base_bias, seed):
    """AIS with ``n_runs`` × ``n_chains`` chains in one batch: the pooled log Z, the
    per-run estimates (their spread), and the mean test log-likelihood from the pooled
    estimate."""
    _, log_w = rbm.log_partition_ais(n_runs * n_chains, n_betas, np.random.default_rng(seed),
                                     base_bias, return_log_weights=True)
    log_z_a = float(_softplus(base_bias).sum()) + rbm.n_hidden * np.log(2.0)
    pooled = log_z_a + _logsumexp(log_w) - np.log(len(log_w))
    runs = [log_z_a + _logsumexp(g) - np.log(len(g)) for g in log_w.reshape(n_runs, n_chains)]
    mean_f = float(rbm.log_likelihood(x_test, 0.0).mean())     # mean of -F(v)
    return {"log_Z_ais": pooled, "log_Z_ais_runs": runs, "log_Z_ais_std": float(np.std(runs)),
            "test_log_likelihood_ais": mean_f - pooled,
            "test_log_likelihood_ais_runs": [mean_f - z for z in runs]}


# ---------------------------------------------------------------------------- recipe
class RBMRecipe(Recipe):
    name = "rbm"
    summary = ("binary RBM (784 visible, 128 hidden) on binarized Fashion-MNIST: CD-1 vs "
               "CD-k vs persistent CD; reconstruction error, AIS test log-likelihood, "
               "Gibbs samples")
    defaults = dict(seed=0, subset=0, binarize="stochastic", n_hidden=128,
                    methods="cd1,cd10,pcd", cd_k=10, pcd_k=1, epochs=10, lr=0.1,
                    momentum=0.5, weight_decay=1e-4, batch_size=100, init_std=0.01,
                    ais_runs=4, ais_chains=50, ais_betas=10000,
                    small_hidden=16, small_method="pcd", small_epochs=10,
                    n_chains_shown=10, sample_steps="0,1,10,100,1000", n_filters=16)
    quick = dict(subset=5000, epochs=3, cd_k=3, ais_runs=2, ais_chains=20, ais_betas=300,
                 small_hidden=10, small_epochs=2, sample_steps="0,1,20", n_chains_shown=6,
                 methods="cd1,cd10,pcd")
    target = None

    def run(self, cfg, out_dir=None, resume=None, verbose=True, log=print, callbacks=()):
        if resume is not None:
            raise ValueError("rbm: --resume is not supported")
        methods = [m.strip() for m in str(cfg["methods"]).split(",") if m.strip()]
        for m in methods + [cfg["small_method"]]:
            if m not in METHODS:
                raise ValueError(f"rbm: unknown method {m!r}; choose from {METHODS}")
        if cfg["binarize"] not in ("stochastic", "threshold"):
            raise ValueError(f"rbm: binarize must be 'stochastic' or 'threshold', got "
                             f"{cfg['binarize']!r}")
        log = log if verbose else (lambda *a, **k: None)
        t0 = time.perf_counter()
        seed = cfg["seed"]
        (x, _), _, (xt, _) = fashion_unit(seed=seed, subset=cfg["subset"])
        if cfg["binarize"] == "stochastic":
            x = binarize(x, np.random.default_rng(seed + 1))
            xt = binarize(xt, np.random.default_rng(seed + 2))
        else:
            x, xt = binarize(x), binarize(xt)
        base = log_odds(x)
        log(f"rbm: {len(x)} training and {len(xt)} test images, binarization: "
            f"{cfg['binarize']}")
        steps = sorted(int(s) for s in str(cfg["sample_steps"]).split(","))
        n_show = cfg["n_chains_shown"]
        starts = np.concatenate([xt[:n_show // 2], (np.random.default_rng(seed + 3).random(
            (n_show - n_show // 2, x.shape[1])) < 0.5).astype(x.dtype)])
        results = {"recipe": self.name, "binarization": cfg["binarize"],
                   "log_Z_method": "AIS (Salakhutdinov & Murray 2008), base-rate model",
                   "n_train": len(x), "n_test": len(xt)}
        rows, labels, filters = [], [], []

        ks = {"cd1": 1, "cd10": cfg["cd_k"], "pcd": cfg["pcd_k"]}

        def fit(method, n_hidden, epochs):
            lamina.manual_seed(seed)                     # the same initial W for each
            rbm = RBM(x.shape[1], n_hidden, cfg["init_std"])
            rbm.b.data[...] = base                       # visible biases: the log-odds
            err0 = rbm.reconstruction_error(xt)
            k = ks[method]
            t = time.perf_counter()
            hist = train_rbm(rbm, x, "pcd" if method == "pcd" else "cd", k, epochs, cfg["lr"],
                             cfg["momentum"], cfg["weight_decay"], cfg["batch_size"], seed,
                             log)
            return rbm, {"k": k, "n_hidden": n_hidden, "epochs": epochs,
                         "train_seconds": time.perf_counter() - t,
                         "test_recon_error_init": err0,
                         "test_recon_error": rbm.reconstruction_error(xt),
                         "train_recon_error_history": hist}

        ais = (cfg["ais_runs"], cfg["ais_chains"], cfg["ais_betas"], base)
        for method in methods:
            label = LABELS[method] + (f" (k={ks[method]})" if method != "cd1" else "")
            log(f"--- {label}: {cfg['n_hidden']} hidden units, {cfg['epochs']} epochs")
            rbm, res = fit(method, cfg["n_hidden"], cfg["epochs"])
            t = time.perf_counter()
            res.update(ais_summary(rbm, xt, *ais, seed=seed + 10))
            res["ais_seconds"] = time.perf_counter() - t
            log(f"{label}: test reconstruction error {res['test_recon_error']:.2f} "
                f"(untrained {res['test_recon_error_init']:.2f}); AIS log Z "
                f"{res['log_Z_ais']:.2f} (runs: std {res['log_Z_ais_std']:.2f}); test "
                f"log-likelihood {res['test_log_likelihood_ais']:.2f} nats")
            results[method] = res
            snaps = chain_snapshots(rbm, starts, steps, np.random.default_rng(seed + 4))
            for s in steps:
                rows.append(snaps[s])
                labels.append(f"{LABELS[method]} " + ("start" if s == 0 else f"t={s}"))
            filters.append(_filters(rbm, cfg["n_filters"]))

        # the small RBM: exact log Z next to AIS for the same model
        method, nh = cfg["small_method"], cfg["small_hidden"]
        log(f"--- small RBM ({nh} hidden units, {LABELS[method]}): exact log Z vs AIS")
        rbm, res = fit(method, nh, cfg["small_epochs"])
        t = time.perf_counter()
        log_z = rbm.log_partition_exact()
        res["exact_seconds"] = time.perf_counter() - t
        res["log_Z_exact"] = log_z
        res["test_log_likelihood_exact"] = float(rbm.log_likelihood(xt, log_z).mean())
        res.update(ais_summary(rbm, xt, *ais, seed=seed + 11))
        res["ais_minus_exact"] = res["log_Z_ais"] - log_z
        log(f"small RBM: exact log Z {log_z:.3f}, AIS {res['log_Z_ais']:.3f} "
            f"(runs std {res['log_Z_ais_std']:.3f}); test log-likelihood exact "
            f"{res['test_log_likelihood_exact']:.2f}, AIS {res['test_log_likelihood_ais']:.2f}")
        results["small"] = res

        if out_dir is not None and rows:
            os.makedirs(out_dir, exist_ok=True)
            save_image_grid(os.path.join(out_dir, "samples.png"), np.concatenate(rows),
                            nrow=n_show, row_labels=labels,
                            title=f"Gibbs chains: {n_show // 2} from test images, "
                                  f"{n_show - n_show // 2} from noise; p(v|h) after t "
                                  f"steps")
            save_image_grid(os.path.join(out_dir, "filters.png"), np.concatenate(filters),
                            nrow=cfg["n_filters"], row_labels=[LABELS[m] for m in methods],
                            title="weights of the first hidden units (each scaled to [0, 1])")
        results["seconds"] = time.perf_counter() - t0
        results["config"] = cfg
        save_results(out_dir, results)
        return results


RECIPE = RBMRecipe()
