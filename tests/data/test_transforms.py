"""Input transforms: per-sample randomness over batches, statistics from training data."""
import numpy as np
import pytest

from lamina.data import transforms as T


def test_standardize_uses_training_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (500, 4)).astype(np.float32)
    test = rng.normal(3.0, 2.0, (100, 4)).astype(np.float32)
    s = T.Standardize.fit(train, axis=0)
    z = s(train)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(s(test), (test - train.mean(0)) / train.std(0), rtol=1e-4,
                               atol=1e-5)
    imgs = rng.uniform(0, 1, (20, 3, 5, 5)).astype(np.float32)
    per_channel = T.Standardize.fit(imgs, axis=(0, 2, 3))
    zc = per_channel(imgs)
    np.testing.assert_allclose(zc.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert per_channel(imgs[0]).shape == (3, 5, 5)            # one sample works too
    const = T.Standardize.fit(np.ones((4, 2)), axis=0)
    assert np.isfinite(const(np.ones((4, 2)))).all()
    assert T.Standardize.fit(imgs).mean.shape == ()


def test_random_crop_is_a_shifted_window_per_sample():
    x = np.arange(2 * 3 * 6 * 6, dtype=np.float32).reshape(2, 3, 6, 6) + 1
    out = T.RandomCrop(6, padding=2, rng=np.random.default_rng(0))(x)
    assert out.shape == x.shape
    for n in range(2):
        # every channel of a sample is cut at the same offset: the first nonzero matches
        pads = [np.argwhere(out[n, c] == x[n, c].min())[0] for c in range(3)
                if (out[n, c] == x[n, c].min()).any()]
        assert all((p == pads[0]).all() for p in pads)
    smaller = T.RandomCrop(4, rng=np.random.default_rng(1))(x)
    assert smaller.shape == (2, 3, 4, 4)
    for n in range(2):  # a contiguous window of the original
        top, left = np.argwhere(x[n, 0] == smaller[n, 0, 0, 0])[0]
        np.testing.assert_array_equal(smaller[n], x[n, :, top:top + 4, left:left + 4])
    one = T.RandomCrop(4, padding=1, sample_ndim=2)(x[0, 0])
    assert one.shape == (4, 4)
    with pytest.raises(ValueError, match="RandomCrop"):
        T.RandomCrop(10)(x)
    with pytest.raises(ValueError, match="RandomCrop"):
        T.RandomCrop(2)(np.zeros(5))


def test_random_shift_keeps_size_and_content():
    x = np.random.default_rng(0).uniform(1, 2, (50, 1, 8, 8)).astype(np.float32)
    out = T.RandomShift(2, rng=np.random.default_rng(0))(x)
    assert out.shape == x.shape
    shifted = [not np.array_equal(o, i) for o, i in zip(out, x)]
    assert 0 < sum(shifted) < 50                    # mostly moved, some offsets are zero
    assert ((out == 0) | (out >= 1)).all()          # values are copied, border is fill


def test_horizontal_flip_per_sample():
    x = np.random.default_rng(0).standard_normal((200, 2, 3, 4)).astype(np.float32)
    out = T.RandomHorizontalFlip(0.5, rng=np.random.default_rng(1))(x)
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (flipped | same).all() and 70 < flipped.sum() < 130
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x[0]), x[0][..., ::-1])


def test_gaussian_noise_and_compose():
    x = np.zeros((1000, 10), np.float32)
    out = T.Compose([T.GaussianNoise(0.5, rng=np.random.default_rng(0)),
                     lambda a: a * 2])(x)
    assert out.dtype == np.float32
    assert abs(out.std() - 1.0) < 0.02 and abs(out.mean()) < 0.02
