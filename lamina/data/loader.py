"""DataLoader: mini-batches from a dataset, reshuffled every epoch by a seeded generator.

    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, seed=0)
    for xb, yb in loader:          # Tensors (128, ...) and (128,)
        ...

Batching takes one fancy index when the dataset has ``__getitems__`` (TensorDataset,
Subset of one, the built-in datasets), else it collates ``dataset[i]`` sample by sample.
``prefetch=k`` prepares up to k batches ahead in a background thread.
"""
import numbers
import queue
import threading

import numpy as np

from .. import backend as B
from ..tensor import Tensor, from_numpy


def collate_arrays(samples):
    """Stack a list of samples (arrays, numbers, Tensors, or tuples/lists/dicts of those)
    into arrays with a leading batch axis, keeping the structure. Strings stay lists."""
    first = samples[0]
    if isinstance(first, dict):
        return {k: collate_arrays([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError(f"collate: samples have different lengths "
                             f"{sorted({len(s) for s in samples})}")
        return type(first)(collate_arrays(list(col)) for col in zip(*samples))
    if isinstance(first, (str, bytes)):
        return list(samples)
    if isinstance(first, Tensor):
        samples = [s.data for s in samples]
    elif isinstance(first, numbers.Number):
        return np.asarray(samples)
    shapes = {np.shape(s) for s in samples}
    if len(shapes) > 1:
        raise ValueError(f"collate: cannot stack samples of different shapes {sorted(shapes)} "
                         f"(pad them, e.g. with lamina.nn.utils.rnn.pad_sequence, in a "
                         f"collate_fn)")
    return np.stack(samples)


def to_tensors(batch):
    """Arrays inside a (nested) batch become Tensors sharing their memory."""
    if isinstance(batch, dict):
        return {k: to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_tensors(v) for v in batch)
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biuf":
        return from_numpy(np.ascontiguousarray(batch))
    if isinstance(batch, list) and batch and isinstance(batch[0], np.ndarray):
        return [to_tensors(v) for v in batch]
    return batch


def default_collate(samples):
    """PyTorch's default: stack samples into Tensors with a leading batch axis."""
    return to_tensors(collate_arrays(samples))


class DataLoader:
    """Iterate over ``dataset`` in mini-batches.

    batch_size: samples per batch (None: single samples, no batch axis).
    shuffle:    a new permutation every epoch, drawn from ``generator`` (a
                ``numpy.random.Generator``) or from one seeded with ``seed``; with neither,
                from one seeded by lamina's global generator (``lamina.manual_seed``).
    drop_last:  drop the final incomplete batch.
    collate_fn: list of samples -> batch (default: :func:`default_collate`); when given,
                batches are built sample by sample.
    batch_transform: optional function applied to each collated batch (of arrays, before
                they become Tensors), e.g. vectorized augmentation.
    prefetch:   number of batches prepared ahead in a background thread (0: none).
    sampler:    optional iterable of indices (overrides ``shuffle``).

    ``state_dict()`` / ``load_state_dict()`` save the shuffling generator, so a resumed
    run draws the same permutations as an uninterrupted one.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None,
                 generator=None, seed=None, prefetch=0, sampler=None, batch_transform=None):
        if batch_size is not None and (not isinstance(batch_size, numbers.Integral)
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None, "
                             f"got {batch_size!r}")
        if prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be >= 0, got {prefetch}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give either sampler or shuffle=True, not both")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.batch_transform = batch_transform
        self.prefetch = int(prefetch)
        self.sampler = sampler
        if generator is None:
            generator = np.random.default_rng(
                seed if seed is not None else int(B.rng().integers(2 ** 63)))
        self.generator = generator

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def _batches(self, order):
        ds = self.dataset
        if self.batch_size is None:
            for i in order:
                yield ds[int(i)]
            return
        bs = self.batch_size
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        fast = self.collate_fn is None and hasattr(ds, "__getitems__")
        for start in range(0, stop, bs):
            idx = order[start:start + bs]
            if fast:
                batch = ds.__getitems__(idx)
            else:
                samples = [ds[int(i)] for i in idx]
                if self.collate_fn is not None:
                    yield self.collate_fn(samples)
                    continue
                batch = collate_arrays(samples)
            if self.batch_transform is not None:
                batch = self.batch_transform(batch)
            yield to_tensors(batch)

    def __iter__(self):
        batches = self._batches(self._order())
        if self.prefetch == 0:
            return batches
        return _prefetched(batches, self.prefetch)

    def _transform_generators(self):
        """Random generators of the transforms (so augmentation also resumes exactly)."""
        found = []

        def visit(t):
            if t is None:
                return
            for sub in getattr(t, "transforms", ()):
                visit(sub)
            g = getattr(t, "rng", None)
            if isinstance(g, np.random.Generator) and all(g is not f for f in found):
                found.append(g)
        visit(self.batch_transform)
        visit(getattr(self.dataset, "transform", None))
        return found

    def state_dict(self):
        return {"generator": self.generator.bit_generator.state,
                "transforms": [g.bit_generator.state for g in self._transform_generators()]}

    def load_state_dict(self, state):
        self.generator.bit_generator.state = state["generator"]
        gens = self._transform_generators()
        saved = state.get("transforms", [])
        if len(saved) != len(gens):
            raise ValueError(f"DataLoader.load_state_dict: the state has {len(saved)} "
                             f"transform generators, this loader has {len(gens)}")
        for g, st in zip(gens, saved):
            g.bit_generator.state = st


def _prefetched(batches, depth):
    """Run ``batches`` in a daemon thread, ``depth`` items ahead; errors re-raise here."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put((b, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as e:  # handed to the consumer
            q.put((done, e))

    t = threading.Thread(target=work, daemon=True, name="lamina-prefetch")
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
