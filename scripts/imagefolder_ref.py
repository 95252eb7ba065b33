#!/usr/bin/env python3
"""torchvision's reference for pkg/data's ImageFolder tests.

Reads JSON on stdin: {"root": a split folder, "size": S, "resize": R,
"crop_sizes": [[h, w], ...], "draws": n, "seed": s} and prints JSON:
  classes, samples ([relative path, label], torchvision.datasets.ImageFolder),
  eval   {path: base64 of 3×S×S uint8}: Resize(R) + CenterCrop(S),
  crop   {path: base64}: RandomResizedCrop(S, scale=(1, 1)) — deterministic:
         the centre crop with the aspect ratio clamped to [3/4, 4/3],
  errors {path: message} for files PIL cannot read,
  area, log_ratio: RandomResizedCrop.get_params(scale=(0.2, 1)) on images of
         each crop_sizes entry, n draws each: area fraction and log(w/h).
Run by TestImageFolderTorchvision (pkg/data) with Debian's python3-torchvision.
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms


def to_b64(img):
    a = np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def main():
    req = json.load(sys.stdin)
    root, size = req["root"], req["size"]
    ds = datasets.ImageFolder(root)
    out = {"classes": ds.classes, "samples": [], "eval": {}, "crop": {}, "errors": {}}
    evaluate = transforms.Compose([transforms.Resize(req["resize"]), transforms.CenterCrop(size)])
    crop = transforms.RandomResizedCrop(size, scale=(1.0, 1.0))
    torch.manual_seed(req["seed"])
    for path, label in ds.samples:
        rel = os.path.relpath(path, root)
        out["samples"].append([rel, label])
        try:
            img = ds.loader(path)
        except Exception as e:  # the corrupt file: its name is all the test needs
            out["errors"][rel] = str(e)
            continue
        out["eval"][rel] = to_b64(evaluate(img))
        out["crop"][rel] = to_b64(crop(img))
    torch.manual_seed(req["seed"])
    area, log_ratio = [], []
    scale, ratio = (0.2, 1.0), (3.0 / 4.0, 4.0 / 3.0)
    for h, w in req["crop_sizes"]:
        img = Image.new("L", (w, h))
        for _ in range(req["draws"]):
            _, _, ch, cw = transforms.RandomResizedCrop.get_params(img, scale, ratio)
            area.append(ch * cw / (h * w))
            log_ratio.append(math.log(cw / ch))
    out["area"], out["log_ratio"] = area, log_ratio
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
