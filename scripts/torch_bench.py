#!/usr/bin/python3
"""PyTorch side of scripts/bench-cpu.sh: times forward, backward and an SGD
step of the CIFAR ResNet-18 (small stem, MoCo-v2 head, CE(z/τ, labels)) —
the network of scripts/torch_resnet.py, the one mochi's benchstep times.

    /usr/bin/python3 scripts/torch_bench.py --width 64 --batch 64 --threads 2
"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet import ResNet  # noqa: E402


def parser():
    """The options both benchmarks take, as benchstep's flags."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    return ap


def main():
    a = parser().parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = ResNet(18, "small", a.width, 3, 128, 1).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, 32, 32)
    labels = torch.randint(0, 128, (a.batch,))

    def step():
        loss = F.cross_entropy(model(x) / 0.2, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    print(measure("torch ", a, lambda: step().item()))


def measure(label, a, step):
    """Runs a.warmup untimed calls of step (which returns the loss), then
    a.steps timed ones, and returns the line bench-cpu.sh reads: images/s
    of the median step, as benchstep, the fastest beside it, peak RSS."""
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    median = (times[(len(times) - 1) // 2] + times[len(times) // 2]) / 2
    return (f"{label} width {a.width:3d} batch {a.batch} threads {a.threads}: {a.batch / median:7.1f} images/s"
            f"  peak RSS {peak:6.0f} MiB  (fastest {a.batch / times[0]:.1f} images/s)"
            f"  torch {torch.__version__}  loss {loss:.4f}")


if __name__ == "__main__":
    main()
