"""DataLoader overhead vs the training it feeds.

Iterates Fashion-MNIST's 60,000 training images in shuffled batches of 128 with
standardization applied per batch (lamina's DataLoader, and PyTorch's DataLoader over
the same arrays for reference), and times one epoch of LeNet-5 training steps in lamina
(469 steps of the bench_step.py LeNet case). Prints the loader's time as a fraction of
the epoch (target ≤ 10%).

    python benchmarks/bench_data.py [--repeats 5]
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import lamina  # noqa: E402
import lamina.nn.functional as LF  # noqa: E402
from lamina.data import DataLoader, TensorDataset, load_fashion_mnist  # noqa: E402
from lamina.data.transforms import Standardize  # noqa: E402
from models import build_lenet  # noqa: E402


def loader_epoch(loader):
    t0 = time.perf_counter()
    n = 0
    for xb, yb in loader:
        n += len(yb)
    return time.perf_counter() - t0, n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=60,
                   help="LeNet steps timed (scaled to a 469-step epoch)")
    a = p.parse_args()
    torch.set_num_threads(2)
    x, y = load_fashion_mnist("train")                        # (60000, 1, 28, 28) float32
    norm = Standardize.fit(x)
    lam_loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, seed=0,
                            batch_transform=lambda b: (norm(b[0]), b[1]))
    mean, std = float(norm.mean), float(norm.std)
    tds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    tor_loader = torch.utils.data.DataLoader(tds, batch_size=128, shuffle=True)

    def tor_epoch():
        t0 = time.perf_counter()
        for xb, yb in tor_loader:
            xb = (xb - mean) / std
        return time.perf_counter() - t0

    lam_times, tor_times = [], []
    for _ in range(a.repeats):
        lam_times.append(loader_epoch(lam_loader)[0])
        tor_times.append(tor_epoch())

    net = build_lenet(lamina.nn)
    opt = lamina.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    batches = iter(lam_loader)
    step_times = []
    for i in range(a.train_steps + 5):
        xb, yb = next(batches)
        t0 = time.perf_counter()
        opt.zero_grad()
        LF.cross_entropy(net(xb), yb).backward()
        opt.step()
        if i >= 5:
            step_times.append(time.perf_counter() - t0)
    epoch = statistics.median(step_times) * len(lam_loader)
    lam, tor = statistics.median(lam_times), statistics.median(tor_times)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; numpy {np.__version__}, "
          f"torch {torch.__version__} (2 threads)")
    print(f"lamina DataLoader, 60,000 images, batches of 128, shuffled, standardized: "
          f"{lam * 1e3:.1f} ms per epoch")
    print(f"PyTorch DataLoader, same work: {tor * 1e3:.1f} ms per epoch "
          f"(lamina/PyTorch {lam / tor:.3f})")
    print(f"lamina LeNet-5 training, {len(lam_loader)} steps: {epoch:.2f} s per epoch "
          f"(median step {statistics.median(step_times) * 1e3:.2f} ms)")
    print(f"loader overhead: {100 * lam / epoch:.2f}% of the training epoch (target <= 10%)")


if __name__ == "__main__":
    main()
