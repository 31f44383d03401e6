"""Datasets and the DataLoader: batching, shuffling, collate, prefetch, resumable order."""
import numpy as np
import pytest

import lamina
from lamina.data import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset,
                         default_collate, random_split)


class Squares(Dataset):
    """A dataset without __getitems__: forces the sample-by-sample path."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.full(3, i, np.float32), "y": i * i, "name": f"s{i}"}


def test_tensor_dataset_batches_cover_everything_once():
    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    y = np.arange(23)
    loader = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, seed=0)
    assert len(loader) == 5
    seen = []
    for xb, yb in loader:
        assert isinstance(xb, lamina.Tensor) and xb.dtype == lamina.float32
        assert yb.dtype == lamina.int64
        np.testing.assert_array_equal(xb.numpy()[:, 0], 2 * yb.numpy())
        seen += yb.numpy().tolist()
    assert sorted(seen) == list(range(23)) and seen != list(range(23))
    assert [len(b[1]) for b in loader] == [5, 5, 5, 5, 3]


def test_drop_last_and_unshuffled_order():
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_new_permutation_every_epoch_and_seeded():
    ds = TensorDataset(np.arange(50))
    a = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    b = DataLoader(ds, batch_size=50, shuffle=True, seed=3)
    e1, e2 = [next(iter(a))[0].numpy() for _ in range(2)]
    assert not np.array_equal(e1, e2)
    np.testing.assert_array_equal(next(iter(b))[0].numpy(), e1)
    np.testing.assert_array_equal(next(iter(b))[0].numpy(), e2)


def test_global_seed_makes_loader_reproducible():
    ds = TensorDataset(np.arange(30))
    lamina.manual_seed(7)
    a = next(iter(DataLoader(ds, batch_size=30, shuffle=True)))[0].numpy()
    lamina.manual_seed(7)
    b = next(iter(DataLoader(ds, batch_size=30, shuffle=True)))[0].numpy()
    np.testing.assert_array_equal(a, b)


def test_state_dict_resumes_the_same_permutations():
    ds = TensorDataset(np.arange(40))
    ref = DataLoader(ds, batch_size=40, shuffle=True, seed=1)
    orders = [next(iter(ref))[0].numpy() for _ in range(4)]
    run = DataLoader(ds, batch_size=40, shuffle=True, seed=1)
    next(iter(run)), next(iter(run))
    state = run.state_dict()
    resumed = DataLoader(ds, batch_size=40, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), orders[2])
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), orders[3])


def test_collate_dicts_numbers_strings_per_sample_path():
    batches = list(DataLoader(Squares(), batch_size=4))
    b = batches[0]
    assert set(b) == {"x", "y", "name"}
    assert b["x"].shape == (4, 3)
    np.testing.assert_array_equal(b["y"].numpy(), [0, 1, 4, 9])
    assert b["name"] == ["s0", "s1", "s2", "s3"]
    assert len(batches) == 3 and batches[-1]["x"].shape == (2, 3)


def test_custom_collate_fn_and_unbatched():
    got = list(DataLoader(Squares(), batch_size=3, collate_fn=lambda s: len(s)))
    assert got == [3, 3, 3, 1]
    one = list(DataLoader(TensorDataset(np.arange(3)), batch_size=None))
    assert [int(t[0]) for t in one] == [0, 1, 2]


def test_default_collate_rejects_ragged_samples_clearly():
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])


def test_prefetch_gives_the_same_batches_and_propagates_errors():
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    plain = [b[0].numpy() for b in DataLoader(TensorDataset(x), batch_size=7, shuffle=True, seed=2)]
    pre = [b[0].numpy() for b in DataLoader(TensorDataset(x), batch_size=7, shuffle=True, seed=2,
                                            prefetch=3)]
    assert len(plain) == len(pre)
    for a, b in zip(plain, pre):
        np.testing.assert_array_equal(a, b)

    class Broken(Squares):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("sample 5 is broken")
            return super().__getitem__(i)

    with pytest.raises(KeyError, match="sample 5"):
        list(DataLoader(Broken(), batch_size=2, prefetch=2))
    # breaking out early does not hang
    for _ in DataLoader(TensorDataset(x), batch_size=1, prefetch=2):
        break


def test_batch_transform_runs_on_arrays_before_tensors():
    x = np.ones((6, 2), np.float32)
    out = [b[0].numpy() for b in DataLoader(TensorDataset(x), batch_size=3,
                                            batch_transform=lambda b: (b[0] * 2,))]
    assert all((o == 2).all() for o in out)


def test_random_split_subset_concat():
    ds = TensorDataset(np.arange(10))
    a, b = random_split(ds, [7, 3], seed=0)
    ids = sorted(int(a[i][0]) for i in range(7)) + sorted(int(b[i][0]) for i in range(3))
    assert sorted(ids) == list(range(10))
    c, d, e = random_split(ds, [0.5, 0.3, 0.2], seed=0)
    assert (len(c), len(d), len(e)) == (5, 3, 2)
    with pytest.raises(ValueError, match="random_split"):
        random_split(ds, [5, 6])
    sub = Subset(ds, [4, 2])
    assert [int(t) for t in next(iter(DataLoader(sub, batch_size=2)))[0].numpy()] == [4, 2]
    cat = ConcatDataset([ds, TensorDataset(np.arange(100, 103))])
    assert len(cat) == 13 and int(cat[11][0]) == 101 and int(cat[-1][0]) == 102


def test_bad_arguments():
    ds = TensorDataset(np.arange(3))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(np.zeros(3), np.zeros(4))
