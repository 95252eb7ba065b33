#!/usr/bin/env python3
"""Write a synthetic ImageFolder of JPEGs for the loader benchmarks.

  make-imagefolder.py ROOT --train N [--test M] [--classes C] [--size 500x375]
                      [--quality 90] [--seed S]

writes ROOT/train/class_XXX/img_XXXXXXX.jpg (N images over C classes) and,
with --test, ROOT/test/… (M images). Each image is smooth random colour
fields plus fine noise, so that JPEG files are about the size of photographs
of the same dimensions (ImageNet's mean is about 110 KB at 500×375, q 90).
Pillow encodes with libjpeg-turbo. Needs python3-pil and python3-numpy.
"""
import argparse
import os

import numpy as np
from PIL import Image


def picture(rng, w, h):
    coarse = rng.integers(0, 256, size=(h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    a = np.asarray(img, dtype=np.int16) + rng.normal(0, 12, size=(h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def write_split(root, split, n, classes, w, h, quality, rng):
    for c in range(classes):
        os.makedirs(os.path.join(root, split, "class_%03d" % c), exist_ok=True)
    for i in range(n):
        path = os.path.join(root, split, "class_%03d" % (i % classes), "img_%07d.jpg" % i)
        picture(rng, w, h).save(path, quality=quality)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--train", type=int, required=True)
    ap.add_argument("--test", type=int, default=0)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--size", default="500x375")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(args.seed)
    write_split(args.root, "train", args.train, args.classes, w, h, args.quality, rng)
    if args.test:
        write_split(args.root, "test", args.test, args.classes, w, h, args.quality, rng)


if __name__ == "__main__":
    main()
