"""Character LSTM stepped cell by cell in a Python loop, lamina vs PyTorch side by side.

Embedding 65 -> 64, LSTMCell(64, 256) called once per time step (sequence 64, batch 32),
Linear 256 -> 65 on every step's h, cross-entropy over all steps, gradient clipping at
global norm 5, plain SGD. Same float32 weights and data in both frameworks; blocks of steps
alternate lamina / PyTorch; medians per step and the ratio lamina / PyTorch are printed.
This measures per-op overhead (the issue's target: lamina <= 0.7x PyTorch).

    python benchmarks/bench_rnn_cells.py [--repeats 7] [--steps 5] [--profile]
"""
import argparse
import os
import platform
import statistics
import sys

import numpy as np
import torch

import lamina
import lamina.nn.functional as LF
from lamina import nn as lnn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import _time_block  # noqa: E402

VOCAB, EMB, HID, SEQ, BATCH, CLIP, LR = 65, 64, 256, 64, 32, 5.0, 0.1

try:
    from lamina.nn.utils import clip_grad_norm_ as lam_clip
except ImportError:  # the same math, until lamina ships its own
    def lam_clip(parameters, max_norm):
        grads = [p.grad.data for p in parameters if p.grad is not None]
        norm = float(np.sqrt(sum(float(np.dot(g.reshape(-1), g.reshape(-1))) for g in grads)))
        if norm > max_norm:
            for g in grads:
                g *= max_norm / (norm + 1e-6)
        return norm


class LamChar(lnn.Module):
    def __init__(self):
        super().__init__()
        self.emb = lnn.Embedding(VOCAB, EMB)
        self.cell = lnn.LSTMCell(EMB, HID)
        self.out = lnn.Linear(HID, VOCAB)

    def forward(self, x):                       # x: (SEQ, BATCH) token ids
        e = self.emb(x)
        state, logits = None, []
        for t in range(x.shape[0]):
            state = self.cell(e[t], state)
            logits.append(self.out(state[0]))
        return lamina.stack(logits)


class TorChar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, EMB)
        self.cell = torch.nn.LSTMCell(EMB, HID)
        self.out = torch.nn.Linear(HID, VOCAB)

    def forward(self, x):
        e = self.emb(x)
        state, logits = None, []
        for t in range(x.shape[0]):
            state = self.cell(e[t], state)
            logits.append(self.out(state[0]))
        return torch.stack(logits)


def build():
    torch.manual_seed(0)
    tnet, lnet = TorChar(), LamChar()
    lnet.load_state_dict({k: v.detach().numpy().copy() for k, v in tnet.state_dict().items()})
    rng = np.random.default_rng(0)
    text = rng.integers(0, VOCAB, (SEQ + 1, BATCH)).astype(np.int64)
    x, y = text[:-1], text[1:].reshape(-1)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lopt = lamina.optim.SGD(lnet.parameters(), lr=LR)
    topt = torch.optim.SGD(tnet.parameters(), lr=LR)
    lparams, tparams = list(lnet.parameters()), list(tnet.parameters())

    def lam_step():
        lopt.zero_grad()
        loss = LF.cross_entropy(lnet(lx).reshape(-1, VOCAB), ly)
        loss.backward()
        lam_clip(lparams, CLIP)
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tnet(tx).reshape(-1, VOCAB), ty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tparams, CLIP)
        topt.step()
        return loss

    return lam_step, tor_step, lnet, tnet


def check_agreement(lam_step, tor_step, lnet, tnet, n=3):
    """Both frameworks start from the same weights: a few steps must give the same losses."""
    for _ in range(n):
        ll, tl = lam_step().item(), tor_step().item()
        if abs(ll - tl) > 1e-4 * max(1.0, abs(tl)):
            raise SystemExit(f"losses differ: lamina {ll:.6f} vs torch {tl:.6f}")
    return ll, tl


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per framework")
    p.add_argument("--steps", type=int, default=5, help="training steps per block")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--profile", action="store_true", help="cProfile 20 lamina steps")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    lam_step, tor_step, lnet, tnet = build()
    ll, tl = check_agreement(lam_step, tor_step, lnet, tnet)
    if a.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(20):
            lam_step()
        pr.disable()
        stats = pstats.Stats(pr, stream=sys.stdout)
        stats.sort_stats(os.environ.get("SORT", "tottime")).print_stats(25)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy "
          f"{np.__version__}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    print(f"losses after 3 steps agree: lamina {ll:.5f}, torch {tl:.5f}")
    lam_t, tor_t = [], []
    for r in range(a.repeats):
        order = (lam_step, tor_step) if r % 2 == 0 else (tor_step, lam_step)
        for step in order:
            (lam_t if step is lam_step else tor_t).append(_time_block(step, a.steps))
    lm, tm = statistics.median(lam_t), statistics.median(tor_t)
    print(f"{'case':10s} {'lamina':>10s} {'pytorch':>10s}   lamina/pytorch")
    print(f"{'cell-loop':10s} {lm * 1e3:7.2f} ms {tm * 1e3:7.2f} ms   {lm / tm:.3f}")


if __name__ == "__main__":
    main()
