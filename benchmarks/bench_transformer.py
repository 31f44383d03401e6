"""Transformer-encoder training step, lamina and PyTorch side by side in one process.

Model (same float32 weights in both): input (32, 64, 128) batch-first, TransformerEncoder
of 2 post-norm layers (d_model 128, 4 heads, feed-forward 512, relu), causal mask
(``is_causal`` hint), a Linear(128, 65) head on every position and cross-entropy; plain
SGD (lr 0.01). Dropout 0.1 on both sides by default (``--dropout 0`` for none). Blocks of
steps alternate between the frameworks; medians and the ratio lamina / PyTorch printed.

    python benchmarks/bench_transformer.py [--repeats 7] [--steps 5] [--dropout 0.1]
    python benchmarks/bench_transformer.py --profile     # cProfile of lamina's step
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

N, L, D, HEADS, FF, LAYERS, VOCAB = 32, 64, 128, 4, 512, 2, 65


def build(dropout):
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout, batch_first=True)
    tor_enc = torch.nn.TransformerEncoder(tl, LAYERS, enable_nested_tensor=False)
    tor_head = torch.nn.Linear(D, VOCAB)
    ll = lnn.TransformerEncoderLayer(D, HEADS, FF, dropout, batch_first=True)
    lam_enc = lnn.TransformerEncoder(ll, LAYERS)
    lam_head = lnn.Linear(D, VOCAB)
    lam_enc.load_state_dict({k: v.numpy() for k, v in tor_enc.state_dict().items()})
    lam_head.load_state_dict({k: v.numpy() for k, v in tor_head.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, L, D)).astype(np.float32)
    y = rng.integers(0, VOCAB, (N * L,)).astype(np.int64)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lmask = lnn.causal_mask(L)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(L)
    lparams = list(lam_enc.parameters()) + list(lam_head.parameters())
    tparams = list(tor_enc.parameters()) + list(tor_head.parameters())
    lopt = lamina.optim.SGD(lparams, lr=0.01)
    topt = torch.optim.SGD(tparams, lr=0.01)

    def lam_step():
        lopt.zero_grad()
        h = lam_enc(lx, mask=lmask, is_causal=True)
        loss = LF.cross_entropy(lam_head(h).reshape(N * L, VOCAB), ly)
        loss.backward()
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        h = tor_enc(tx, mask=tmask, is_causal=True)
        loss = torch.nn.functional.cross_entropy(tor_head(h).reshape(N * L, VOCAB), ty)
        loss.backward()
        topt.step()
        return loss

    return lam_step, tor_step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per framework")
    p.add_argument("--steps", type=int, default=5, help="steps per block")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(2)
    lam_step, tor_step = build(a.dropout)
    if a.dropout == 0.0:  # same weights and data, no randomness: the losses must agree
        lam_loss, tor_loss = float(lam_step()), tor_step().item()
        assert abs(lam_loss - tor_loss) < 1e-4 * max(1.0, abs(tor_loss)), (lam_loss, tor_loss)
    if a.profile:
        import cProfile
        import pstats
        for _ in range(3):
            lam_step()
        cProfile.runctx("for _ in range(10): lam_step()", globals(), locals(), "/tmp/tf.prof")
        pstats.Stats("/tmp/tf.prof").sort_stats("tottime").print_stats(25)
        return
    for _ in range(3):
        lam_step()
        tor_step()
    lam_t, tor_t = [], []
    for r in range(a.repeats):
        order = (lam_step, tor_step) if r % 2 == 0 else (tor_step, lam_step)
        for step in order:
            (lam_t if step is lam_step else tor_t).append(_time_block(step, a.steps))
    lam, tor = statistics.median(lam_t), statistics.median(tor_t)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy "
          f"{np.__version__}")
    print(f"transformer encoder (2x d128 h4 ff512, L{L} N{N}, causal, dropout {a.dropout}): "
          f"lamina {lam * 1e3:.2f} ms  pytorch {tor * 1e3:.2f} ms  ratio {lam / tor:.3f}")


if __name__ == "__main__":
    main()
