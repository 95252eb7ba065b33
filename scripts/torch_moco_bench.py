#!/usr/bin/python3
"""PyTorch side of `STEP=moco scripts/bench-cpu.sh`: times the whole
MoCo-v2 / MoCHi training step in float32 — the momentum update of the key
encoder, the keys of the shuffled key batch, the queries, the loss with
MoCHi's synthetic negatives, backward, SGD and the enqueue — with the MoCo
model of scripts/torch_moco.py (the float64 replay of the parity test) on
the CIFAR ResNet-18 of torch_resnet.py and random views, as
`benchstep -moco` times mochi's.

    /usr/bin/python3 scripts/torch_moco_bench.py --width 16 --batch 64 --threads 2 --bn-groups 8 --k 4096
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import measure, parser  # noqa: E402
from torch_moco import Replay  # noqa: E402


def main():
    ap = parser()
    ap.add_argument("--bn-groups", type=int, default=8)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--s", type=int, default=256)
    ap.add_argument("--s-prime", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    # benchstep -moco's step: the MoCo CIFAR demo's m and τ, SGD lr 0.06, momentum 0.9, wd 5e-4
    meta = {"model": {"depth": 18, "stem": "small", "width": a.width, "in_channels": 3, "embed_dim": 128,
                      "bn_splits": a.bn_groups},
            "moco": {"k": a.k, "m": 0.99, "tau": 0.1},
            "optim": {"lr": 0.06, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False}}
    replay = Replay(meta, None, torch.float32)
    x_q, x_k = torch.randn(a.batch, 3, 32, 32), torch.randn(a.batch, 3, 32, 32)
    B, N, s, sp = a.batch, a.n, a.s, a.s_prime

    def step():
        mix = None
        if s + sp > 0:  # drawn per step as mochi's trainer does: ranks into Q̃_N, α ~ U(0, 1), β ~ U(0, 0.5)
            mix = {"N": N, "s": s, "s_prime": sp,
                   "plan": {"i": torch.randint(N, (B, s)), "j": torch.randint(N, (B, s)), "alpha": torch.rand(B, s),
                            "jq": torch.randint(N, (B, sp)), "beta": 0.5 * torch.rand(B, sp)}}
        loss, _, _ = replay.step(0.06, (x_q, x_k, torch.randperm(B)), mix)
        return loss

    print(measure("torch moco", a, step))


if __name__ == "__main__":
    main()
