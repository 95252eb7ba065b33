#!/usr/bin/env python3
"""torchvision's two-view MoCo-v2 loader on an ImageFolder: the reference of
scripts/loader-bench.sh.

  torch_loader_bench.py ROOT --workers W [--batch 64] [--epochs 2] [--size 224]

Reads ROOT/train with torchvision.datasets.ImageFolder (PIL with
libjpeg-turbo), MoCo-v2's augmentation (moco/main_moco.py --aug-plus:
RandomResizedCrop(scale 0.2–1), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8,
RandomGrayscale p=0.2, PIL GaussianBlur σ∈[0.1, 2] p=0.5, horizontal flip,
ToTensor, Normalize) applied twice per image, through a DataLoader with W
worker processes, shuffled, drop_last. The first epoch warms the workers up
(file cache, process start) and is not timed; prints JSON with the pairs/s
of the others.
"""
import argparse
import json
import sys
import random
import time

import torch
from PIL import ImageFilter
from torchvision import datasets, transforms


class GaussianBlur:
    """MoCo-v2's blur: PIL's GaussianBlur with radius σ drawn from [0.1, 2]."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class TwoViews:
    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return self.t(x), self.t(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(1)
    aug = transforms.Compose([
        transforms.RandomResizedCrop(args.size, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur()], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    ds = datasets.ImageFolder(args.root + "/train", TwoViews(aug))
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         drop_last=True, persistent_workers=args.workers > 0)
    pairs, seconds = 0, 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        n = 0
        for (q, k), _ in loader:
            n += q.shape[0]
        if epoch > 0:
            pairs += n
            seconds += time.perf_counter() - start
    json.dump({"pairs_per_sec": pairs / seconds, "workers": args.workers, "pairs": pairs}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
