#!/usr/bin/python3
"""PyTorch reference for mochi's training loop: replays the first steps of a
`mochi pretrain` run — MoCo-v2 (Chen et al., arXiv 2003.04297) with MoCHi
hard negatives (Kalantidis et al., arXiv 2010.01028) — in float64, from the
run's initial weights and queue, on its augmented batches, with its ShuffleBN
permutations and mixing draws.

    /usr/bin/python3 scripts/torch_moco.py DUMP

DUMP is what `mochi pretrain --dump-steps n --dump-dir DUMP` writes
(pkg/train/dump.go): meta.json, steps.jsonl, step-NNNN.npz (inputs and
draws) and state-NNNN.npz (the state after each step, 0000 before the
first). The training step follows the official MoCo code
(facebookresearch/moco, moco/builder.py): the key encoder starts as a copy
of the query encoder and gets its momentum update before it computes the
keys; the keys are computed on the shuffled batch and put back in order
(ShuffleBN; on one device the BatchNorm of both encoders is the split-BN of
MoCo's CIFAR-10 demo, SplitBatchNorm of torch_resnet.py); InfoNCE over
[q·k, q·queue] / τ with the positive at index 0, plus MoCHi's synthetic
negatives (logits() of torch_mochi.py); the keys replace the oldest queue
entries at the pointer; torch.optim.SGD with momentum and weight decay, its
learning rate set per step from MoCo's schedule (lr·batch/256, cosine or
step per epoch, after a linear warm-up if any).

Two replays run side by side:
  free    from mochi's initial state only, n steps on its own, as an
          independent training run would;
  forced  each step from mochi's state before it (state-NNNN), compared with
          mochi's state after it: float32 rounding cannot accumulate, so
          each step is held to float32 accuracy.
Only the discrete choice MoCHi makes from the data — which N queue entries
are hardest — is taken from mochi, since a near-tie may order differently
in float32 and float64; the forced replay reports where its own choice
differs and by how much the similarities decide it.

Output (stdout, JSON):
  {"steps": [{"step", "lr", "mixing",
              "loss": the free replay's loss,
              "forced_loss": the forced replay's loss,
              "q_update_err", "k_update_err", "velocity_err": the error of the
                  forced step's change of f_q, of f_k and of the SGD momentum
                  buffers relative to mochi's change, over all parameters
                  (update_err),
              "bn_err": max over BatchNorm statistics of |x − x_mochi|/(1 + |x_mochi|),
              "queue_err": max |queue − queue_mochi| after the forced step,
              "queue_ptr_ok": the forced step's pointer equals mochi's,
              "topn_rows_changed": rows whose own top-N set differs from mochi's,
              "topn_violation": max over rows of (largest q·n outside mochi's
                  set − smallest inside it); ≤ 0 when they agree}],
   "queue": K×D and "queue_ptr": the free replay's queue after the last step}

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_mochi import logits
from torch_resnet import ResNet


class MoCo(nn.Module):
    """MoCo-v2 as facebookresearch/moco's builder.MoCo, on one device."""

    def __init__(self, meta, init, dtype=torch.float64):
        """init: mochi's state-0000.npz, or None for PyTorch's own random
        start (scripts/torch_moco_bench.py), in dtype."""
        super().__init__()
        m = meta["model"]
        make = lambda: ResNet(m["depth"], m["stem"], m["width"], m["in_channels"], m["embed_dim"], m["bn_splits"]).to(dtype)
        self.encoder_q, self.encoder_k = make(), make()
        if init is not None:
            load(init, "encoder_q/", self.encoder_q.named_parameters())
            load(init, "bn_q/", running_stats(self.encoder_q))
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.copy_(param_q.data)  # initialize
            param_k.requires_grad = False  # not updated by gradient
        self.m, self.tau = meta["moco"]["m"], meta["moco"]["tau"]
        if init is None:
            queue = F.normalize(torch.randn(meta["moco"]["k"], m["embed_dim"], dtype=dtype), dim=1)
            self.register_buffer("queue", queue)  # K×D, one key per row
            self.queue_ptr = 0
            return
        # mochi must start the same way: f_k a copy of f_q, fresh running statistics
        start = [("encoder_k/" + n, p) for n, p in self.encoder_k.named_parameters()]
        start += [("bn_k/" + n, b) for n, b in running_stats(self.encoder_k)]
        for key, want in start:
            if not torch.equal(tensor(init, key, want.shape), want):
                sys.exit(f"mochi's initial key encoder is not MoCo's (a copy of the query encoder, fresh statistics): {key} differs")
        self.register_buffer("queue", tensor(init, "queue"))  # K×D, one key per row
        self.queue_ptr = int(init["queue_ptr"])

    def named_state(self, optimizer):
        """Everything a step changes, under the dump's names."""
        out = [("encoder_q/" + n, p) for n, p in self.encoder_q.named_parameters()]
        out += [("encoder_k/" + n, p) for n, p in self.encoder_k.named_parameters()]
        out += [("bn_q/" + n, b) for n, b in running_stats(self.encoder_q)]
        out += [("bn_k/" + n, b) for n, b in running_stats(self.encoder_k)]
        out += [("optim/" + n, velocity(optimizer, p)) for n, p in self.encoder_q.named_parameters()]
        return out + [("queue", self.queue)]

    def load(self, optimizer, state):
        """Sets the whole state (weights, statistics, momentum buffers, queue)
        from a state-NNNN.npz of the dump."""
        load(state, "", self.named_state(optimizer))
        self.queue_ptr = int(state["queue_ptr"])

    @torch.no_grad()
    def _momentum_update_key_encoder(self):
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data = param_k.data * self.m + param_q.data * (1.0 - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys):
        # builder.py needs K to be a multiple of the batch; mochi allows any K
        # and wraps around the end, which is the same where builder.py applies
        k, b = self.queue.shape[0], keys.shape[0]
        rows = (self.queue_ptr + torch.arange(b)) % k
        self.queue[rows] = keys  # replace the keys at ptr (dequeue and enqueue)
        self.queue_ptr = (self.queue_ptr + b) % k  # move pointer

    def forward(self, im_q, im_k, perm, mix):
        """One step's loss; perm is mochi's ShuffleBN permutation (key i is
        computed in row perm[i]), mix the MoCHi arguments of logits() or None."""
        q = self.encoder_q(im_q)  # queries: B×D, normalized
        with torch.no_grad():  # no gradient to keys
            self._momentum_update_key_encoder()  # update the key encoder
            idx_unshuffle = perm
            idx_shuffle = torch.argsort(idx_unshuffle)
            k = self.encoder_k(im_k[idx_shuffle])  # keys: B×D, normalized
            k = k[idx_unshuffle]  # undo shuffle
        queue = self.queue.clone().detach()
        if mix is None:
            z = logits(q, k, queue, 0, 0, 0, self.tau)
        else:
            z = logits(q, k, queue, tau=self.tau, **mix)
        labels = torch.zeros(z.shape[0], dtype=torch.long)  # positives are the 0-th
        loss = F.cross_entropy(z, labels)
        self._dequeue_and_enqueue(k)
        return loss, q.detach(), queue


def learning_rate(o, step, steps_per_epoch):
    """MoCo's adjust_learning_rate for the (0-based) step: the rate for a
    batch of 256 scaled to the batch, per epoch cosine or ×0.1 at each
    milestone, after warmup_epochs of a linear ramp that moves every step."""
    lr = o["lr"] * o["batch"] / 256
    epoch, warm = step // steps_per_epoch, o["warmup_epochs"]
    t = epoch
    if warm > 0:
        t = epoch + (step % steps_per_epoch) / steps_per_epoch
        if t < warm:
            return learning_rate(dict(o, warmup_epochs=0), 0, steps_per_epoch) * t / warm
        t -= warm
    if o["schedule"] == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * t / (o["epochs"] - warm)))
    for milestone in o["milestones"]:
        lr *= 0.1 if t >= milestone - warm else 1.0
    return lr


def topn_disagreement(q, queue, hard_index):
    """How far mochi's top-N set is from this run's: the number of rows
    where the sets differ, and max over rows of (largest q·n outside
    mochi's set − smallest q·n inside it)."""
    l_neg = q @ queue.T  # B×K
    inside = torch.zeros_like(l_neg, dtype=torch.bool).scatter_(1, hard_index, True)
    lowest_in = l_neg.masked_fill(~inside, math.inf).min(dim=1).values
    highest_out = l_neg.masked_fill(inside, -math.inf).max(dim=1).values
    own = torch.topk(l_neg, hard_index.shape[1], dim=1).indices.sort(dim=1).values
    return int((own != hard_index).any(dim=1).sum()), float((highest_out - lowest_in).max())


def tensor(arrays, name, shape=None):
    """arrays[name] of an npz as a float64 tensor (of shape, if given)."""
    if name not in arrays.files:
        sys.exit(f"the dump has no {name}: was it written for another model?")
    t = torch.from_numpy(arrays[name].astype(np.float64))
    return t if shape is None else t.reshape(shape)


def load(arrays, prefix, named):
    """Copies arrays[prefix + name] into each (name, tensor) of named."""
    with torch.no_grad():
        for name, t in named:
            t.copy_(tensor(arrays, prefix + name, t.shape))


def velocity(optimizer, p):
    """p's SGD momentum buffer, made (zero) before the first step."""
    state = optimizer.state[p]
    if state.get("momentum_buffer") is None:
        state["momentum_buffer"] = torch.zeros_like(p)
    return state["momentum_buffer"]


def running_stats(module):
    return [(n, b) for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var"))]


def update_err(before, after, want):
    """‖after − want‖ / (‖want − before‖ + 10⁻⁶‖want‖) over tensors: the
    error of a step's change relative to the change, with a floor of about
    30× the float32 rounding of the values themselves, so that a change
    below their rounding (f_k at step 1, a copy of f_q) is not measured
    against that rounding."""
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    b, a, w = flat(before), flat(after), flat(want)
    return float((a - w).norm() / ((w - b).norm() + 1e-6 * w.norm()))


class Replay:
    """A MoCo model with its optimizer."""

    def __init__(self, meta, init, dtype=torch.float64):
        o = meta["optim"]
        self.model = MoCo(meta, init, dtype)
        self.model.train()
        self.optimizer = torch.optim.SGD(self.model.encoder_q.parameters(), o["lr"], momentum=o["momentum"],
                                         weight_decay=o["weight_decay"], nesterov=o["nesterov"])

    def step(self, lr, inputs, mix):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        loss, q, queue = self.model(*inputs, mix)
        loss.backward()
        self.optimizer.step()
        return loss.item(), q, queue


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    for key, why in (("symmetric", "the symmetric loss"), ("class_oracle", "the class oracle")):
        if meta["moco"].get(key) or meta["mochi"].get(key):
            sys.exit(f"{why} is not implemented here; dump a run without it")
    mi = meta["mochi"]
    state = lambda n: np.load(os.path.join(d, f"state-{n:04d}.npz"))
    before = state(0)
    free, forced = Replay(meta, before), Replay(meta, before)
    steps = []
    for n in range(1, meta["steps"] + 1):
        lr = learning_rate(meta["optim"], n - 1, meta["steps_per_epoch"])
        x = np.load(os.path.join(d, f"step-{n:04d}.npz"))
        long = lambda name: torch.from_numpy(x[name].astype(np.int64))
        inputs = (tensor(x, "x_q"), tensor(x, "x_k"), long("perm"))
        mixing = mi["s"] + mi["s_prime"] > 0 and (n - 1) // meta["steps_per_epoch"] >= mi["mix_start_epoch"]
        if mixing != ("topn" in x.files):
            sys.exit(f"step {n}: this schedule {'mixes' if mixing else 'does not mix'}, mochi's dump says otherwise")
        mix = None
        if mixing:
            mix = {"N": mi["n"], "s": mi["s"], "s_prime": mi["s_prime"], "grad_through_hprime": mi["grad_through_hprime"],
                   "plan": {"i": long("mix_i"), "j": long("mix_j"), "alpha": tensor(x, "alpha"), "jq": long("mix_jq"),
                            "beta": tensor(x, "beta")},
                   "hard_index": long("topn")}
        rec = {"step": n, "lr": lr, "mixing": mixing}
        rec["loss"], _, _ = free.step(lr, inputs, mix)

        forced.model.load(forced.optimizer, before)
        rec["forced_loss"], q, queue = forced.step(lr, inputs, mix)
        after = state(n)
        got = dict(forced.model.named_state(forced.optimizer))
        for group, err in (("encoder_q/", "q_update_err"), ("encoder_k/", "k_update_err"), ("optim/", "velocity_err")):
            names = [k for k in got if k.startswith(group)]
            rec[err] = update_err([tensor(before, k) for k in names], [got[k] for k in names],
                                  [tensor(after, k) for k in names])
        rec["bn_err"] = max(float(((got[k].reshape(-1) - tensor(after, k)).abs() / (1 + tensor(after, k).abs())).max())
                            for k in got if k.startswith("bn_"))
        rec["queue_err"] = float((got["queue"] - tensor(after, "queue")).abs().max())
        rec["queue_ptr_ok"] = forced.model.queue_ptr == int(after["queue_ptr"])
        if mixing:
            rec["topn_rows_changed"], rec["topn_violation"] = topn_disagreement(q, queue, mix["hard_index"])
        steps.append(rec)
        before = after

    json.dump({"steps": steps, "queue": free.model.queue.tolist(), "queue_ptr": free.model.queue_ptr}, sys.stdout)


if __name__ == "__main__":
    main()
