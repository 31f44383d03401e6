"""The benchmark CNNs' convolutions alone: lamina's engines and PyTorch, side by side.

For each convolution of ``models.build_wide`` (3x3, padding 1) and ``models.build_lenet``
(5x5), batch 128, it times the forward
and the backward (input and weight gradients) of ``lamina.nn.functional.conv2d`` with the
plain im2col engine (``lamina.ops.conv._SHIFT = False``, one product over each chunk),
with the engines chosen by shape (the shifted products of ``conv_shift`` for the phases
whose products have at least 16 inner terms; im2col for the rest, its forward one product
per image when an image has at least ``_BY_IMAGE_MIN`` outputs), and
``torch.nn.functional.conv2d``,
one timed call of each in turn per round (after bench_step's pause and one untimed call),
and prints
medians and per-round ratios.

    python benchmarks/bench_conv.py [--rounds 9]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

import lamina
import lamina.nn.functional as F
import lamina.ops.conv as conv_ops
from bench_step import SETTLE_S

# (C_in, C_out, input size, kernel, padding): the wide CNN's four, then LeNet-5's two
LAYERS = [(1, 32, 28, 3, 1), (32, 32, 28, 3, 1), (32, 64, 14, 3, 1), (64, 64, 14, 3, 1),
          (1, 6, 28, 5, 2), (6, 16, 14, 5, 0)]


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    a = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}")
    print(f"{'layer':>16s} {'phase':>5s} {'im2col':>9s} {'chosen':>9s} {'torch':>9s}  "
          f"chosen/im2col  chosen/torch")
    rng = np.random.default_rng(0)
    default_by_image = conv_ops._BY_IMAGE_MIN
    for ci, co, s, k, pad in LAYERS:
        o = s + 2 * pad - k + 1
        x = rng.standard_normal((128, ci, s, s)).astype(np.float32)
        w = (rng.standard_normal((co, ci, k, k)) * 0.1).astype(np.float32)
        b = np.zeros(co, np.float32)
        g = rng.standard_normal((128, co, o, o)).astype(np.float32)
        lx = lamina.tensor(x, requires_grad=ci > 1)
        lw, lb = lamina.tensor(w, requires_grad=True), lamina.tensor(b, requires_grad=True)
        tx = torch.tensor(x, requires_grad=ci > 1)
        tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        lg, tg = lamina.tensor(g), torch.tensor(g)
        out = {}

        def lam(shift):
            def run():
                conv_ops._SHIFT = shift  # False: plain im2col, one product over each chunk
                conv_ops._BY_IMAGE_MIN = default_by_image if shift is None else 1 << 62
                y = F.conv2d(lx, lw, lb, padding=pad)
                t0 = time.perf_counter()
                y.backward(lg)
                return t0
            return run

        def tor():
            y = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
            t0 = time.perf_counter()
            y.backward(tg)
            return t0

        runs = {"im2col": lam(False), "chosen": lam(None), "torch": tor}
        times = {k: ([], []) for k in runs}
        for fn in runs.values():
            fn()  # warm up
        for _ in range(a.rounds):
            for name, fn in runs.items():
                time.sleep(SETTLE_S)  # let the other framework's threads go idle
                fn()  # untimed: wake this one's own threads
                t = time.perf_counter()
                mid = fn()
                end = time.perf_counter()
                times[name][0].append(mid - t)
                times[name][1].append(end - mid)
        conv_ops._SHIFT, conv_ops._BY_IMAGE_MIN = None, default_by_image
        for i, phase in enumerate(("fwd", "bwd")):
            med = {k: statistics.median(v[i]) for k, v in times.items()}
            r1 = statistics.median(c / m for c, m in zip(times["chosen"][i], times["im2col"][i]))
            r2 = statistics.median(c / t for c, t in zip(times["chosen"][i], times["torch"][i]))
            print(f"{f'{ci}->{co} k{k} @{s}x{s}':>16s} {phase:>5s} {med['im2col'] * 1e3:7.2f}ms "
                  f"{med['chosen'] * 1e3:7.2f}ms {med['torch'] * 1e3:7.2f}ms  {r1:13.3f}  "
                  f"{r2:12.3f}")


if __name__ == "__main__":
    main()
