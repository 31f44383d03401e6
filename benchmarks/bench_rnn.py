"""Character-level LSTM training step, lamina and PyTorch side by side in one process.

Embedding 65 -> 64, LSTM hidden 256 (one layer, time-major), sequence 64, batch 32,
Linear 256 -> 65, cross-entropy over all steps, gradient clipping at global norm 5, SGD
(lr 0.1). Both frameworks start from the same float32 weights and see the same batch.
Blocks of steps alternate lamina / PyTorch; the medians and the ratio are printed.

    python benchmarks/bench_rnn.py [--repeats 11] [--steps 10] [--profile]
"""
import argparse
import os
import platform
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import _fmt, _time_block  # noqa: E402

import lamina  # noqa: E402
import lamina.nn.functional as LF  # noqa: E402
from lamina import nn as lnn  # noqa: E402

VOCAB, EMB, HIDDEN, SEQ, BATCH = 65, 64, 256, 64, 32


def build(M):
    """The char model in either framework (``M`` is torch.nn or lamina.nn)."""
    class CharLSTM(M.Module):
        def __init__(self):
            super().__init__()
            self.emb = M.Embedding(VOCAB, EMB)
            self.lstm = M.LSTM(EMB, HIDDEN)
            self.fc = M.Linear(HIDDEN, VOCAB)

        def forward(self, x):
            out, _ = self.lstm(self.emb(x))
            return self.fc(out)
    return CharLSTM()


def case_char_lstm(lr=0.1, clip=5.0):
    torch.manual_seed(0)
    tor_net = build(torch.nn)
    lam_net = build(lnn)
    lam_net.load_state_dict({k: v.detach().numpy() for k, v in tor_net.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (SEQ, BATCH)).astype(np.int64)
    y = rng.integers(0, VOCAB, (SEQ, BATCH)).astype(np.int64)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y.reshape(-1))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.reshape(-1))
    lparams, tparams = list(lam_net.parameters()), list(tor_net.parameters())
    lopt = lamina.optim.SGD(lparams, lr=lr)
    topt = torch.optim.SGD(tparams, lr=lr)

    def lam_step():
        lopt.zero_grad()
        loss = LF.cross_entropy(lam_net(lx).reshape(-1, VOCAB), ly)
        loss.backward()
        lnn.utils.clip_grad_norm_(lparams, clip)
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tor_net(tx).reshape(-1, VOCAB), ty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tparams, clip)
        topt.step()
        return loss

    return lam_step, tor_step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=11, help="timed blocks per framework")
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--profile", action="store_true", help="cProfile lamina's step instead")
    p.add_argument("--threads", type=int, default=2, help="torch threads (set "
                   "OPENBLAS_NUM_THREADS to match for numpy)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    lam_step, tor_step = case_char_lstm()
    l0, t0 = float(lam_step()), float(tor_step().detach())
    l1, t1 = float(lam_step()), float(tor_step().detach())
    print(f"losses, steps 1-2: lamina {l0:.6f} {l1:.6f}, pytorch {t0:.6f} {t1:.6f}")
    if a.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(a.steps * 3):
            lam_step()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return
    for _ in range(3):
        lam_step()
        tor_step()
    lam_times, tor_times = [], []
    for r in range(a.repeats):
        order = (lam_step, tor_step) if r % 2 == 0 else (tor_step, lam_step)
        for step in order:
            t = _time_block(step, a.steps)
            (lam_times if step is lam_step else tor_times).append(t)
    lam, tor = statistics.median(lam_times), statistics.median(tor_times)
    lmin, tmin = min(lam_times), min(tor_times)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy "
          f"{np.__version__}")
    print(f"{'case':10s} {'lamina':>12s} {'pytorch':>12s}   lamina/pytorch")
    print(f"{'char_lstm':10s} {_fmt(lam)} {_fmt(tor)}   {lam / tor:.3f}   (median)")
    print(f"{'':10s} {_fmt(lmin)} {_fmt(tmin)}   {lmin / tmin:.3f}   (best block)")


if __name__ == "__main__":
    main()
