#!/usr/bin/python3
"""PyTorch side of mochi's export/import tests (cmd/mochi/interop_test.go).

    /usr/bin/python3 scripts/torch_interop.py check-export DIR
    /usr/bin/python3 scripts/torch_interop.py write-moco DIR

check-export: DIR holds backbone.safetensors (mochi export of the query
encoder), key-head.npz (mochi export --format npz --encoder key --with-head)
and input.npy (a normalised batch N×C×H×W). Each is loaded with
load_state_dict(strict=True) into torchvision.models.resnet18 with the CIFAR
stem change (conv1 = Conv2d(C, 64, 3, 1, 1, bias=False), maxpool =
Identity) and fc = Identity (backbone) or MoCo-v2's MLP head; every tensor's
shape and dtype must equal the model's own. The safetensors file is parsed
here from its definition (8-byte little-endian header length, JSON header,
raw data), independently of mochi and of the safetensors package. Writes
features.npy (backbone, eval mode) and key-embeddings.npy (normalize(fc(·)))
and prints {"metadata": the safetensors __metadata__} as JSON.

write-moco: DIR holds input.npy and params.json {"channels", "embed_dim",
"queue", "seed"}. Builds a random query and key encoder (resnet18, CIFAR
stem, MoCo-v2 MLP head; BatchNorm affine parameters and running statistics
random too) and writes them as facebookresearch/moco does,
{"epoch", "arch", "state_dict": {module.encoder_q.*, module.encoder_k.*,
module.queue (D×K), module.queue_ptr}, "optimizer"}, to moco.pth.tar (zip)
and moco-legacy.pth.tar (the pre-1.6 format MoCo's releases use), the query
backbone as a plain torchvision state_dict (with its 1000-class fc) to
plain.safetensors, and the references q-features.npy, q-embeddings.npy,
k-embeddings.npy and queue.npy (K×D).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def write_safetensors(path, sd):
    header, blobs, offset = {}, [], 0
    for name in sorted(sd):
        arr = sd[name].detach().cpu().contiguous().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[arr.dtype]
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def resnet18(channels, head_dim=None):
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)  # the CIFAR stem
    m.maxpool = nn.Identity()
    if head_dim is None:
        m.fc = nn.Identity()
    elif head_dim > 0:
        m.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, head_dim))
    return m


def load_strict(model, sd, what):
    own = model.state_dict()
    for name, t in own.items():
        if name not in sd:
            raise SystemExit(f"{what}: no {name}")
        if tuple(sd[name].shape) != tuple(t.shape) or sd[name].dtype != t.dtype:
            raise SystemExit(f"{what}: {name} is {sd[name].dtype} {tuple(sd[name].shape)}, torchvision has {t.dtype} {tuple(t.shape)}")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def check_export(d):
    x = torch.from_numpy(np.load(os.path.join(d, "input.npy")))
    sd, meta = read_safetensors(os.path.join(d, "backbone.safetensors"))
    model = load_strict(resnet18(x.shape[1]), sd, "backbone.safetensors")
    npz = np.load(os.path.join(d, "key-head.npz"))
    sd_key = {k: torch.from_numpy(npz[k]) for k in npz.files}
    dim = sd_key["fc.2.weight"].shape[0]
    key = load_strict(resnet18(x.shape[1], dim), sd_key, "key-head.npz")
    with torch.no_grad():
        np.save(os.path.join(d, "features.npy"), model(x).numpy())
        np.save(os.path.join(d, "key-embeddings.npy"), F.normalize(key(x), dim=1).numpy())
    json.dump({"metadata": meta}, sys.stdout)


def randomize(model, gen):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif "bn" in name or "downsample.1" in name:
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=gen))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=gen) * (2 / fan_in) ** 0.5)


def write_moco(d):
    p = json.load(open(os.path.join(d, "params.json")))
    x = torch.from_numpy(np.load(os.path.join(d, "input.npy")))
    gen = torch.Generator().manual_seed(p["seed"])
    q, k = resnet18(p["channels"], p["embed_dim"]), resnet18(p["channels"], p["embed_dim"])
    randomize(q, gen)
    randomize(k, gen)
    queue = F.normalize(torch.randn(p["embed_dim"], p["queue"], generator=gen), dim=0)
    sd = {}
    for prefix, m in (("module.encoder_q.", q), ("module.encoder_k.", k)):
        for name, t in m.state_dict().items():
            sd[prefix + name] = t
    sd["module.queue"] = queue
    sd["module.queue_ptr"] = torch.tensor([7])
    ckpt = {"epoch": 200, "arch": "resnet18", "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "momentum": 0.9, "params": [0, 1]}]}}
    torch.save(ckpt, os.path.join(d, "moco.pth.tar"))
    torch.save(ckpt, os.path.join(d, "moco-legacy.pth.tar"), _use_new_zipfile_serialization=False)

    plain = torchvision.models.resnet18()
    plain.conv1, plain.maxpool = nn.Conv2d(p["channels"], 64, 3, 1, 1, bias=False), nn.Identity()
    plain_sd = {n: t for n, t in plain.state_dict().items() if not n.startswith("fc.")}
    backbone_q = {n: t for n, t in q.state_dict().items() if not n.startswith("fc.")}
    plain_sd.update(backbone_q)
    plain_sd["fc.weight"], plain_sd["fc.bias"] = plain.fc.weight, plain.fc.bias
    write_safetensors(os.path.join(d, "plain.safetensors"), plain_sd)

    q.eval()
    k.eval()
    with torch.no_grad():
        head = q.fc
        q.fc = nn.Identity()
        feats = q(x)
        np.save(os.path.join(d, "q-features.npy"), feats.numpy())
        np.save(os.path.join(d, "q-embeddings.npy"), F.normalize(head(feats), dim=1).numpy())
        np.save(os.path.join(d, "k-embeddings.npy"), F.normalize(k(x), dim=1).numpy())
    np.save(os.path.join(d, "queue.npy"), queue.t().contiguous().numpy())
    json.dump({"ok": True}, sys.stdout)


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"check-export": check_export, "write-moco": write_moco}[sys.argv[1]](sys.argv[2])
