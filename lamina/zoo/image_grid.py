"""Helpers shared by the unsupervised and generative recipes: Fashion-MNIST in [0, 1],
binarization, batched inference, and image grids written as PNG (matplotlib Agg,
atomically)."""
import numpy as np

import lamina
from lamina.data import load_fashion_mnist
from lamina.train.callbacks import save_figure


def fashion_unit(seed=0, subset=0, n_val=0, flatten=True):
    """Fashion-MNIST scaled to [0, 1] (no standardization): ``(train, val, test)`` as
    ``(x float32, y int64)`` pairs, x (N, 784) or (N, 1, 28, 28). The training images are
    shuffled with ``seed``; ``n_val`` of them are held out (``val`` is None when 0).
    ``subset`` keeps the first n training images and n // 2 test images (quick runs)."""
    x, y = load_fashion_mnist("train", flatten=flatten)
    xt, yt = load_fashion_mnist("test", flatten=flatten)
    order = np.random.default_rng(seed).permutation(len(x))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if subset:
        train_idx = train_idx[:subset]
        val_idx = val_idx[:max(subset // 5, 100)] if n_val else val_idx
        xt, yt = xt[:max(subset // 2, 100)], yt[:max(subset // 2, 100)]
    val = (x[val_idx], y[val_idx]) if n_val else None
    return (x[train_idx], y[train_idx]), val, (xt, yt)


def binarize(x, rng=None):
    """Binary images from intensities in [0, 1]: each pixel drawn as Bernoulli(x) when a
    NumPy Generator ``rng`` is given (stochastic binarization), else thresholded at 0.5."""
    if rng is None:
        return (x > 0.5).astype(x.dtype)
    return (rng.random(x.shape, dtype=np.float32) < x).astype(x.dtype)


def batched(fn, x, batch_size=1000):
    """``fn`` (Tensor -> Tensor) over the array ``x`` in batches of ``batch_size`` rows,
    without a graph; the outputs stacked into one NumPy array."""
    with lamina.no_grad():
        return np.concatenate([fn(lamina.from_numpy(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def save_image_grid(path, images, nrow=None, title=None, shape=(28, 28), row_labels=None,
                    cell=0.6, vmin=0.0, vmax=1.0, cmap="gray"):
    """Write ``images`` as one PNG grid.

    images: (N, H, W), (N, 1, H, W) or flat (N, H*W) with ``shape`` = (H, W); shown with
    ``vmin``..``vmax`` on ``cmap`` (values outside are clipped). ``nrow`` images per row
    (default: about a square); ``row_labels`` (one string per row) go on the left."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 2:
        a = a.reshape(len(a), *shape)
    elif a.ndim == 4:
        if a.shape[1] != 1:
            raise ValueError(f"save_image_grid: expected one channel, got images of shape "
                             f"{a.shape}")
        a = a[:, 0]
    elif a.ndim != 3:
        raise ValueError(f"save_image_grid: expected (N, H, W), (N, 1, H, W) or (N, H*W) "
                         f"images, got shape {a.shape}")
    n = len(a)
    if n == 0:
        raise ValueError("save_image_grid: no images to draw")
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    h, w = a.shape[1:]
    gap = 1
    canvas = np.full((rows * (h + gap) - gap, nrow * (w + gap) - gap), vmax, np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = a[i]
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    left = 1.2 if row_labels else 0.1
    fig = Figure(figsize=(left + cell * nrow, 0.3 + cell * rows + (0.3 if title else 0)),
                 dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(np.clip(canvas, vmin, vmax), cmap=cmap, vmin=vmin, vmax=vmax,
              interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=7)
    else:
        ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)
    save_figure(fig, path)
    return path
