#!/usr/bin/python3
"""Reference for pkg/optim: runs torch.optim.SGD on the parameters and
gradients given as JSON on stdin and prints the parameters and momentum
buffers after the last step as JSON on stdout, for a list of cases.

Input:  [{"momentum", "weight_decay", "nesterov", "lrs": [lr per step],
          "params": {name: [values]}, "grads": [{name: [values]} per step]}, …]
Output: [{"params": {name: [values]}, "velocity": {name: [values]}}, …]

Run with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import sys

import torch


def run(cfg):
    names = sorted(cfg["params"])
    params = [torch.nn.Parameter(torch.tensor(cfg["params"][n], dtype=torch.float32)) for n in names]
    opt = torch.optim.SGD(params, lr=cfg["lrs"][0], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
    for lr, grads in zip(cfg["lrs"], cfg["grads"]):
        for g in opt.param_groups:
            g["lr"] = lr
        for n, p in zip(names, params):
            p.grad = torch.tensor(grads[n], dtype=torch.float32)
        opt.step()
    out = {
        "params": {n: p.detach().tolist() for n, p in zip(names, params)},
        "velocity": {n: opt.state[p]["momentum_buffer"].tolist() for n, p in zip(names, params)},
    }
    return out


def main():
    json.dump([run(cfg) for cfg in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
