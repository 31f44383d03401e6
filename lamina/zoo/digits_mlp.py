"""digits-mlp: a multilayer perceptron on the shipped 8x8 handwritten digits.

64 inputs -> 128 ReLU -> 64 ReLU -> 10 logits, softmax cross-entropy, mini-batch SGD with
momentum, shuffled every epoch. Prints the training loss per epoch and the test accuracy.
"""
import argparse
import time

import numpy as np

import lamina
from lamina import nn
from lamina.data import load_digits
from lamina.nn import functional as F


class DigitsMLP(nn.Module):
    """(N, 64) pixel vectors -> (N, 10) class logits."""

    def __init__(self, hidden=(128, 64), n_in=64, n_classes=10):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def accuracy(model, x, y, batch_size=512):
    correct = 0
    with lamina.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(lamina.from_numpy(x[i:i + batch_size]))
            correct += int((logits.argmax(1).numpy() == y[i:i + batch_size]).sum())
    return correct / len(x)


def train(epochs=30, batch_size=32, lr=0.05, momentum=0.9, seed=0, log=print):
    """Train and return ``(model, test_accuracy, epoch_losses)``."""
    lamina.manual_seed(seed)
    x_train, y_train = load_digits("train", seed=seed)
    x_test, y_test = load_digits("test", seed=seed)
    model = DigitsMLP()
    opt = lamina.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order_rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = order_rng.permutation(len(x_train))
        total, count = 0.0, 0
        model.train()
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = lamina.from_numpy(x_train[idx]), lamina.from_numpy(y_train[idx])
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / count)
        log(f"epoch {epoch:3d}  train loss {losses[-1]:.4f}  ({time.perf_counter() - t0:.2f} s)")
    model.eval()
    acc = accuracy(model, x_test, y_test)
    log(f"test accuracy {acc * 100:.2f}% on {len(x_test)} held-out digits")
    return model, acc, losses


def main(argv=None):
    p = argparse.ArgumentParser(prog="lamina train digits-mlp", description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="5 epochs (for CI)")
    a = p.parse_args(argv)
    epochs = 5 if a.quick else a.epochs
    t0 = time.perf_counter()
    _, acc, _ = train(epochs, a.batch_size, a.lr, a.momentum, a.seed)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return acc
