"""Peak memory of one training step, lamina vs PyTorch.

Each framework runs in its own child process (importing only itself), builds the
network, allocates the batch and then runs training steps; the figure is the peak
resident memory during the steps minus the resident memory just before them (weights,
data and the interpreter are excluded; optimizer state and every activation kept for
backward are included).

    python benchmarks/bench_memory.py wide
"""
import argparse
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_kib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_peak():
    """Reset the kernel's peak-RSS counter (VmHWM) so imports do not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(framework, model, steps):
    import numpy as np
    sys.path.insert(0, HERE)
    from models import IMAGE_MODELS
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int64)
    if framework == "torch":
        import torch
        net = IMAGE_MODELS[model](torch.nn)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        xb, yb = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        import lamina
        net = IMAGE_MODELS[model](lamina.nn)
        opt = lamina.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        xb, yb = lamina.from_numpy(x), lamina.from_numpy(y)
        loss_fn = lamina.nn.functional.cross_entropy
    _reset_peak()
    before = _rss_kib()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
    print(max(_peak_kib() - before, 0))


def measure(framework, model, steps=3):
    out = subprocess.run([sys.executable, __file__, "--child", framework, model, str(steps)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=["wide"])
    a = p.parse_args()
    print(f"{'model':6s} {'lamina':>10s} {'pytorch':>10s}   lamina/pytorch  (peak MiB during steps)")
    for m in a.models:
        lam, tor = measure("lamina", m), measure("torch", m)
        print(f"{m:6s} {lam / 1024:10.1f} {tor / 1024:10.1f}   {lam / max(tor, 1):.2f}")


if __name__ == "__main__":
    main()
