"""Synthetic tasks generated on the fly (NumPy arrays; every function takes ``seed``).

Classification in the plane: :func:`xor`, :func:`two_spirals`, :func:`moons`.
Regression: :func:`polynomial`. Sequences: :func:`copy_task`, :func:`reverse_task`,
:func:`sort_task`, :func:`addition_task`, :func:`anbn`.
"""
import numpy as np


def xor(n=None, noise=0.0, seed=0):
    """The four XOR points (n=None), or n noisy copies of them. x float32 (N, 2) in
    {0, 1}², y float32 (N, 1) = x1 XOR x2."""
    base = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    if n is None:
        x = base
    else:
        rng = np.random.default_rng(seed)
        x = base[rng.integers(0, 4, n)]
    y = (x[:, :1] != x[:, 1:]).astype(np.float32)
    if noise:
        x = x + np.random.default_rng(seed + 1).normal(0, noise, x.shape).astype(np.float32)
    return x, y


def two_spirals(n=400, noise=0.0, turns=1.5, seed=0):
    """Two interleaved spirals (Lang & Witbrock's benchmark): x float32 (n, 2) roughly in
    [-1, 1]², y int64 (n,) in {0, 1}, classes balanced."""
    rng = np.random.default_rng(seed)
    k = n // 2
    t = np.sqrt(rng.uniform(0, 1, k)) * turns * 2 * np.pi
    r = t / (turns * 2 * np.pi)
    a = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    x = np.concatenate([a, -a[: n - k]])
    y = np.concatenate([np.zeros(k, np.int64), np.ones(n - k, np.int64)])
    x = x + rng.normal(0, noise, x.shape) if noise else x
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def moons(n=400, noise=0.1, seed=0):
    """Two interleaving half circles: x float32 (n, 2), y int64 (n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    k = n // 2
    t1, t2 = rng.uniform(0, np.pi, k), rng.uniform(0, np.pi, n - k)
    a = np.stack([np.cos(t1), np.sin(t1)], 1)
    b = np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], 1)
    x = np.concatenate([a, b]) + rng.normal(0, noise, (n, 2))
    y = np.concatenate([np.zeros(k, np.int64), np.ones(n - k, np.int64)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def polynomial(n=200, coeffs=(0.5, -1.0, 0.0, 2.0), noise=0.1, low=-1.0, high=1.0, seed=0):
    """y = Σ_k coeffs[k] x^k + N(0, noise²), x uniform in [low, high]: x, y float32 (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, (n, 1))
    y = np.polynomial.polynomial.polyval(x, coeffs) + rng.normal(0, noise, (n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def _symbols(rng, n, length, vocab, first=1):
    return rng.integers(first, vocab, (n, length))


def copy_task(n=1000, length=8, vocab=10, seed=0):
    """Inputs: random symbols 1..vocab-1 (0 is free for padding/BOS), int64 (n, length);
    targets: the same sequence."""
    x = _symbols(np.random.default_rng(seed), n, length, vocab)
    return x, x.copy()


def reverse_task(n=1000, length=8, vocab=10, seed=0):
    """Targets are the inputs reversed."""
    x = _symbols(np.random.default_rng(seed), n, length, vocab)
    return x, x[:, ::-1].copy()


def sort_task(n=1000, length=8, vocab=10, seed=0):
    """Targets are the inputs sorted ascending."""
    x = _symbols(np.random.default_rng(seed), n, length, vocab)
    return x, np.sort(x, axis=1)


def addition_task(n=1000, digits=3, seed=0):
    """Adding two numbers written as digit sequences. Tokens: 0-9 digits, 10 '+', 11 pad.
    Inputs int64 (n, 2*digits+1): 'a+b' with a, b zero-padded to ``digits`` digits;
    targets int64 (n, digits+1): a+b zero-padded to digits+1 digits."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10 ** digits, n)
    b = rng.integers(0, 10 ** digits, n)

    def to_digits(v, width):
        return (v[:, None] // 10 ** np.arange(width - 1, -1, -1)) % 10

    x = np.concatenate([to_digits(a, digits), np.full((n, 1), 10), to_digits(b, digits)], 1)
    return x.astype(np.int64), to_digits(a + b, digits + 1).astype(np.int64)


def anbn(n=1000, max_n=10, seed=0, negatives=0.5, pad=0):
    """The context-free language aⁿbⁿ: strings of ``k`` a's (token 1) then ``k`` b's
    (token 2), k in 1..max_n, and near-miss negatives (aⁱbʲ with i ≠ j, or a shuffled
    order) in proportion ``negatives``. Returns x int64 (n, 2*max_n+1) right-padded with
    ``pad``, lengths int64 (n,), y int64 (n,) = 1 for members of the language."""
    rng = np.random.default_rng(seed)
    width = 2 * max_n + 1
    x = np.full((n, width), pad, np.int64)
    lengths = np.zeros(n, np.int64)
    y = (rng.uniform(size=n) >= negatives).astype(np.int64)
    for r in range(n):  # data generation, not a hot path
        k = int(rng.integers(1, max_n + 1))
        if y[r]:
            s = [1] * k + [2] * k
        elif rng.uniform() < 0.5:
            j = k
            while j == k:
                j = int(rng.integers(1, max_n + 1))
            s = [1] * k + [2] * j
        else:
            s = [1] * k + [2] * k
            while s == sorted(s):
                s = list(rng.permutation(s))
        x[r, :len(s)] = s
        lengths[r] = len(s)
    return x, lengths, y
