"""Training-step benchmarks, lamina and PyTorch side by side in one process.

Each case builds the same network in both frameworks (same float32 weights, same data),
then times blocks of training steps (zero_grad, forward, loss, backward, optimizer step),
alternating lamina and PyTorch block by block so both see the same machine state, with a
short pause before each block so neither runs next to the other's still-spinning threads.
Prints the median time per step of each, the ratio lamina / PyTorch, and the minor page
faults a step (fresh memory touched for the first time: ~3 µs each on this VM).

    python benchmarks/bench_step.py            # all cases
    python benchmarks/bench_step.py xor --repeats 15
"""
import argparse
import os
import platform
import resource
import statistics
import time

import numpy as np
import torch

import lamina
import lamina.nn.functional as LF
from models import build_lenet, build_wide
from lamina import nn as lnn


def _copy_weights(lam_layers, torch_layers):
    for ll, tl in zip(lam_layers, torch_layers):
        ll.weight.data[...] = tl.weight.detach().numpy()
        ll.bias.data[...] = tl.bias.detach().numpy()


def _mlp_pair(sizes, act):
    torch.manual_seed(0)
    t_layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    l_layers = [lnn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    _copy_weights(l_layers, t_layers)
    t_mods, l_mods = [], []
    for i, (tl, ll) in enumerate(zip(t_layers, l_layers)):
        t_mods.append(tl)
        l_mods.append(ll)
        if i < len(t_layers) - 1:
            t_mods.append(torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU())
            l_mods.append(lnn.Tanh() if act == "tanh" else lnn.ReLU())
    return lnn.Sequential(*l_mods), torch.nn.Sequential(*t_mods)


def case_xor():
    """The notes' XOR network: 2-8-1 tanh MLP, BCE-with-logits, batch 4, plain SGD."""
    lam_net, tor_net = _mlp_pair([2, 8, 1], "tanh")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lopt = lamina.optim.SGD(lam_net.parameters(), lr=0.5)
    topt = torch.optim.SGD(tor_net.parameters(), lr=0.5)

    def lam_step():
        lopt.zero_grad()
        loss = LF.binary_cross_entropy_with_logits(lam_net(lx), ly)
        loss.backward()
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(tor_net(tx), ty)
        loss.backward()
        topt.step()
        return loss

    return lam_step, tor_step, 1000


def _mlp_case(lam_opt, tor_opt):
    """MLP 784-1024-1024-10, ReLU, batch 128, cross-entropy; ``lam_opt``/``tor_opt`` make
    each framework's optimizer from its parameters."""
    lam_net, tor_net = _mlp_pair([784, 1024, 1024, 10], "relu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int64)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lopt, topt = lam_opt(lam_net.parameters()), tor_opt(tor_net.parameters())

    def lam_step():
        lopt.zero_grad()
        loss = LF.cross_entropy(lam_net(lx), ly)
        loss.backward()
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tor_net(tx), ty)
        loss.backward()
        topt.step()
        return loss

    return lam_step, tor_step, 20


def case_mlp():
    """MLP 784-1024-1024-10, ReLU, batch 128, cross-entropy, SGD momentum 0.9."""
    return _mlp_case(lambda ps: lamina.optim.SGD(ps, lr=0.01, momentum=0.9),
                     lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9))


def case_mlp_adam():
    """MLP 784-1024-1024-10, ReLU, batch 128, cross-entropy, Adam lr 1e-3 on both sides."""
    return _mlp_case(lambda ps: lamina.optim.Adam(ps, lr=1e-3),
                     lambda ps: torch.optim.Adam(ps, lr=1e-3))


def _sync_weights(lam_net, tor_net):
    """Copy PyTorch's freshly initialised parameters and buffers into lamina's net."""
    lam_net.load_state_dict({k: v.detach().numpy() for k, v in tor_net.state_dict().items()})


def _image_pair(build):
    import torch.nn as T
    from lamina import nn as N
    torch.manual_seed(0)
    tor_net = build(T)
    lam_net = build(N)
    _sync_weights(lam_net, tor_net)
    return lam_net, tor_net


def _image_case(build, lr=0.01):
    lam_net, tor_net = _image_pair(build)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int64)
    lx, ly = lamina.from_numpy(x), lamina.from_numpy(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lopt = lamina.optim.SGD(lam_net.parameters(), lr=lr, momentum=0.9)
    topt = torch.optim.SGD(tor_net.parameters(), lr=lr, momentum=0.9)

    def lam_step():
        lopt.zero_grad()
        loss = LF.cross_entropy(lam_net(lx), ly)
        loss.backward()
        lopt.step()
        return loss

    def tor_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tor_net(tx), ty)
        loss.backward()
        topt.step()
        return loss

    return lam_step, tor_step


def case_lenet():
    """LeNet-5 on 1x28x28, batch 128, cross-entropy, SGD momentum 0.9."""
    return (*_image_case(build_lenet), 10)


def case_wide():
    """conv32-BN-conv32-BN-pool-conv64-BN-conv64-BN-pool-FC256-dropout-FC10, batch 128,
    SGD momentum 0.9 on both sides."""
    return (*_image_case(build_wide), 3)


CASES = {"xor": case_xor, "mlp": case_mlp, "mlp_adam": case_mlp_adam, "lenet": case_lenet,
         "wide": case_wide}


# pause before each timed block: OpenBLAS's worker threads keep spinning for up to ~0.1 s
# (~13 ms since lamina shortens it at import, see lamina/parallel.py) after lamina's last product and PyTorch's OpenMP threads for a while after its last
# kernel; measured here, a PyTorch block started right after a lamina one ran its first
# ~0.1 s up to 2x slower, which flattered lamina's ratio. One untimed step follows the
# pause: after it, a framework's own idle threads needed waking (several ms here)
SETTLE_S = 0.25


_faults = {}  # step function -> minor page faults counted in its timed blocks


def _minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _time_block(step, n):
    time.sleep(SETTLE_S)
    step()  # untimed: wakes this framework's own threads, asleep after the pause
    f0 = _minor_faults()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    elapsed = (time.perf_counter() - t0) / n
    _faults[step] = _faults.get(step, 0) + _minor_faults() - f0
    return elapsed


def run(name, repeats, lamina_only=False):
    lam_step, tor_step, n = CASES[name]()
    for _ in range(max(3, n // 10)):  # warm up both
        lam_step()
        if not lamina_only:
            tor_step()
    lam_times, tor_times = [], []
    for r in range(repeats):
        order = (lam_step,) if lamina_only else \
            (lam_step, tor_step) if r % 2 == 0 else (tor_step, lam_step)
        for step in order:
            t = _time_block(step, n)
            (lam_times if step is lam_step else tor_times).append(t)
    if lamina_only:
        return statistics.median(lam_times), None, _faults.pop(lam_step) / (repeats * n), None
    lam_med, tor_med = statistics.median(lam_times), statistics.median(tor_times)
    steps = repeats * n
    return lam_med, tor_med, _faults.pop(lam_step) / steps, _faults.pop(tor_step) / steps


def _fmt(seconds):
    return f"{seconds * 1e6:9.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cases", nargs="*", default=list(CASES))
    p.add_argument("--repeats", type=int, default=11, help="timed blocks per framework")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of pause before each timed block (default %(default)s)")
    p.add_argument("--lamina-only", action="store_true",
                   help="time lamina alone (PyTorch's network is built but never run), as "
                        "in a process that only trains with lamina")
    a = p.parse_args()
    global SETTLE_S
    SETTLE_S = a.settle
    threads = torch.get_num_threads()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__} ({threads} threads), numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    print(f"{'case':8s} {'lamina':>12s} {'pytorch':>12s}   lamina/pytorch   "
          f"page faults a step (lamina, pytorch)")
    for name in a.cases:
        lam, tor, lam_f, tor_f = run(name, a.repeats, a.lamina_only)
        if tor is None:
            print(f"{name:8s} {_fmt(lam)} {'-':>12s}   {'-':>14s}   {lam_f:9.0f} {'-':>9s}")
        else:
            print(f"{name:8s} {_fmt(lam)} {_fmt(tor)}   {lam / tor:14.3f}   {lam_f:9.0f} "
                  f"{tor_f:9.0f}")


if __name__ == "__main__":
    main()
