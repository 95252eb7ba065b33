#!/usr/bin/python3
"""PyTorch reference for pkg/resnet: one training-mode forward and backward
of a ResNet with MoCo-v2's head on weights and inputs written by mochi.

    /usr/bin/python3 scripts/torch_resnet.py DIR

DIR holds tensors written by the Go test (pkg/resnet/torch_test.go):
  config.json  {"depth", "stem": "imagenet"|"small", "width", "in_channels",
                "embed_dim", "bn_groups", "tau"}
  in.json + in.f32    parameters (torchvision names), "input" N×C×H×W,
                      "labels" (as float32) and, for mochi's k-th ReLU or
                      max-pool in forward order, "branch.<k>.relu", its
                      output, or "branch.<k>.maxpool", its input
Each .json is a list of {"name", "shape"}; the .f32 file holds the tensors'
little-endian float32 values one after the other in that order.

It writes out.json + out.f32: "loss" (cross-entropy of the embedding / tau
against the labels, MoCo's InfoNCE form), "embedding", every parameter's
gradient as "grad.<name>" and every BatchNorm's updated running statistics,
and out64.json + out64.f32 with the same computed in float64 (the values
rounded to float32 on writing), the reference both float32 results are
measured against.

Both passes differentiate mochi's piecewise branch, not their own: each ReLU
computes x·[y_mochi > 0] and each max-pool takes x at the first arg-max of
x_mochi's window, as mochi's backward does. A decision within rounding of a
kink then cannot differ between the two, and the results differ by rounding
only. branches64.json says, per ReLU and max-pool, where the float64 pass
alone would have chosen another branch and how far from the kink: {"name",
"elements", "flips", "worst", "float32"}, worst being max |x| (ReLU) or the
window's maximum less the chosen value (max-pool) over those places, and
float32 the largest error of PyTorch float32's input there, both relative to
the RMS of the float64 input.

The network is built from torchvision's own BasicBlock and Bottleneck, with
the stage widths w, 2w, 4w, 8w that torchvision fixes at w = 64.
Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck

LAYERS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


class SplitBatchNorm(nn.BatchNorm2d):
    """Split-BN as MoCo's CIFAR demo, but with mochi's grouping (device.BNShape):
    group g holds the consecutive samples g·N/G … (g+1)·N/G − 1, where the
    demo's view(-1, C·G, H, W) puts sample n in group n mod G. Statistics are
    per group, the running ones averaged over the groups."""

    def __init__(self, num_features, num_splits):
        super().__init__(num_features)
        self.num_splits = num_splits

    def forward(self, x):
        n, c, h, w = x.shape
        g = self.num_splits
        if not self.training or g == 1:
            return super().forward(x)
        # N×C×H×W → (N/G)×(G·C)×H×W with channel block k holding group k.
        xg = x.view(g, n // g, c, h, w).transpose(0, 1).reshape(n // g, g * c, h, w)
        rm = self.running_mean.repeat(g)
        rv = self.running_var.repeat(g)
        out = F.batch_norm(xg, rm, rv, self.weight.repeat(g), self.bias.repeat(g),
                           True, self.momentum, self.eps)
        self.running_mean.data.copy_(rm.view(g, c).mean(dim=0))
        self.running_var.data.copy_(rv.view(g, c).mean(dim=0))
        return out.view(n // g, g, c, h, w).transpose(0, 1).reshape(n, c, h, w)


class Branches:
    """mochi's forward decisions, consumed in forward order by BranchReLU and
    BranchMaxPool. The float32 pass keeps what its ReLUs and max-pools get
    (seen); the float64 pass, given those as float32, reports where it would
    have decided otherwise than mochi and PyTorch float32's rounding there."""

    def __init__(self, inputs, float32=None):
        self.inputs = inputs  # [(name, kind, mochi's ReLU output or max-pool input)]
        self.next = 0
        self.float32 = float32
        self.seen = {}
        self.report = []

    def take(self, kind, x):
        if self.next == len(self.inputs):
            sys.exit(f"the network has more ReLUs and max-pools than the {len(self.inputs)} that mochi sent")
        name, k, xm = self.inputs[self.next]
        self.next += 1
        if k != kind or xm.shape != x.shape:
            sys.exit(f"{name}: mochi's {k} has shape {list(xm.shape)}, here a {kind} gets {list(x.shape)}")
        return name, xm.to(x.dtype)

    def note(self, name, elements, flips, dist, x):
        x = x.detach()
        if self.float32 is None:
            self.seen[name] = x.clone()
            return
        rms = x.pow(2).mean().sqrt().item()
        worst = dist[flips].max().item() / rms if flips.any() else 0.0
        err32 = (self.float32[name].to(x.dtype) - x).abs().max().item() / rms
        self.report.append({"name": name, "elements": elements, "flips": int(flips.sum()), "worst": worst,
                            "float32": err32})

    def relu(self, x):
        name, ym = self.take("relu", x)
        mask = ym > 0
        self.note(name, x.numel(), mask != (x.detach() > 0), x.detach().abs(), x)
        return x * mask.to(x.dtype)

    def maxpool(self, pool, x):
        name, xm = self.take("maxpool", x)
        _, idx = F.max_pool2d(xm, pool.kernel_size, pool.stride, pool.padding, return_indices=True)
        y = x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
        best, own = F.max_pool2d(x.detach(), pool.kernel_size, pool.stride, pool.padding, return_indices=True)
        self.note(name, idx.numel(), own != idx, best - y.detach(), x)
        return y


class BranchReLU(nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.branches = branches

    def forward(self, x):
        return self.branches.relu(x)


class BranchMaxPool(nn.Module):
    def __init__(self, pool, branches):
        super().__init__()
        self.pool, self.branches = pool, branches

    def forward(self, x):
        return self.branches.maxpool(self.pool, x)


def follow_branches(model, branches):
    """Replaces every ReLU and max-pool of model by one that follows branches."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, BranchReLU(branches))
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, BranchMaxPool(child, branches))


class ResNet(nn.Module):
    def __init__(self, depth, stem, width, in_channels, embed_dim, bn_groups):
        super().__init__()
        block, layers = LAYERS[depth]
        norm = (lambda c: SplitBatchNorm(c, bn_groups)) if bn_groups > 1 else nn.BatchNorm2d
        self._norm_layer = norm
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], 2)
        dim = 8 * width * block.expansion
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, embed_dim))

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       self._norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer=self._norm_layer)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_layer=self._norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.normalize(self.fc(x), dim=1)


def read_tensors(base):
    with open(base + ".json") as f:
        index = json.load(f)
    flat = np.fromfile(base + ".f32", dtype="<f4")
    out, off = {}, 0
    for e in index:
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        out[e["name"]] = torch.from_numpy(flat[off:off + n].reshape(e["shape"]).copy())
        off += n
    if off != flat.size:
        sys.exit(f"{base}.f32 holds {flat.size} values, {base}.json lists {off}")
    return out


def write_tensors(base, tensors):
    index, parts = [], []
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous()
        index.append({"name": name, "shape": list(t.shape)})
        parts.append(t.numpy().ravel())
    with open(base + ".json", "w") as f:
        json.dump(index, f)
    np.concatenate(parts).astype("<f4").tofile(base + ".f32")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = ResNet(cfg["depth"], cfg["stem"], cfg["width"], cfg["in_channels"], cfg["embed_dim"], cfg["bn_groups"])
    t = read_tensors(os.path.join(d, "in"))
    x, labels = t.pop("input"), t.pop("labels").long()
    inputs = [(n, n.split(".")[2], t.pop(n)) for n in [n for n in t if n.startswith("branch.")]]
    missing, unexpected = model.load_state_dict(t, strict=False)
    if unexpected or any(not k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in missing):
        sys.exit(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
    model64 = copy.deepcopy(model).double()
    b32 = Branches(inputs)
    follow_branches(model, b32)
    write_tensors(os.path.join(d, "out"), step(model, b32, x, labels, cfg["tau"]))
    b64 = Branches(inputs, b32.seen)
    follow_branches(model64, b64)
    write_tensors(os.path.join(d, "out64"), step(model64, b64, x.double(), labels, cfg["tau"]))
    with open(os.path.join(d, "branches64.json"), "w") as f:
        json.dump(b64.report, f)


def step(model, branches, x, labels, tau):
    """One training-mode forward and backward along branches; returns the
    loss, the embedding, the gradients and the updated running statistics."""
    model.train()
    z = model(x)
    if branches.next != len(branches.inputs):
        sys.exit(f"mochi sent {len(branches.inputs)} ReLUs and max-pools, the network has {branches.next}")
    loss = F.cross_entropy(z / tau, labels)
    loss.backward()
    out = {"loss": loss.reshape(1), "embedding": z}
    out.update({"grad." + n: p.grad for n, p in model.named_parameters()})
    out.update({n: b for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")})
    return out


if __name__ == "__main__":
    main()
