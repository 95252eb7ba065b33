#!/usr/bin/python3
"""PyTorch reference for pkg/hardneg: MoCHi's loss (Kalantidis et al.,
NeurIPS 2020, arXiv 2010.01028) and its gradients by autograd, in float64.

Input (stdin): a list of cases, each
  {"q": B×D, "k": B×D, "queue": K×D, "N", "s", "s_prime", "tau",
   "grad_through_hprime": bool,
   "plan": {"i", "j", "alpha": B×s, "jq", "beta": B×s′},  ranks into Q̃_N
   "query_labels": B, "queue_labels": K}                  optional: class oracle
Output (stdout): a list of {"loss", "dq": B×D, "dk": B×D}, where loss is
the mean over the batch of the cross-entropy with the positive at index 0.
The logits themselves are logits(), which scripts/torch_moco.py imports.

Run with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import sys

import torch
import torch.nn.functional as F

MARGIN = 1e-9  # the least gap in q·n at the edge of Q̃_N, see mochi()


def logits(q, k, queue, N, s, s_prime, tau, plan=None, grad_through_hprime=False,
           query_labels=None, queue_labels=None, hard_index=None):
    """MoCHi's logits [q·k, q·Qᵀ, q·h, q·h′]/τ (B×(1+K+s+s′)); the positive
    is column 0. q, k: B×D; queue: K×D, a constant. plan holds the mixing
    draws as tensors, ranks into Q̃_N: "i", "j" (long, B×s), "alpha" (B×s),
    "jq" (long, B×s′), "beta" (B×s′). query_labels (B) and queue_labels (K)
    turn on the class oracle. hard_index (long, B×N, queue indices in
    ascending order) fixes Q̃_N instead of selecting it here: a caller
    replaying another implementation's run takes that run's selection, as
    a near-tie of q·n may order differently in another precision."""
    B, D = q.shape
    l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)  # B×1
    l_neg = torch.einsum("nc,kc->nk", [q, queue])  # B×K
    if query_labels is not None:  # class oracle: same-label entries are no negatives
        same = query_labels.unsqueeze(1) == queue_labels.unsqueeze(0)  # B×K
        same &= query_labels.unsqueeze(1) >= 0  # label −1: unknown
        l_neg = l_neg.masked_fill(same, float("-inf"))
    out = [l_pos, l_neg]

    if s + s_prime > 0:
        # Q̃_N: the N hardest negatives. torch.topk lists them by q·n, but the
        # Go code (and the plan's ranks) list the same set in queue-index
        # order, so that a plan names the same entries whatever the selection
        # algorithm; sorting topk's indices gives that order.
        idx = hard_index
        if idx is None:
            idx = torch.topk(l_neg.detach(), N, dim=1).indices.sort(dim=1).values  # B×N
            # Which N are hardest must not hinge on rounding: both sides compute
            # q·n in float64 (errors about 1e-15 here), so a case whose N-th and
            # (N+1)-th largest q·n are closer than MARGIN could select another set
            # with another summation order; such a case is refused, not compared.
            # A float32 run (torch_moco_bench.py, timing only) compares nothing.
            if N < l_neg.shape[1] and l_neg.dtype == torch.float64:
                top = torch.topk(l_neg.detach(), N + 1, dim=1).values
                gap = (top[:, N - 1] - top[:, N]).min().item()
                if gap < MARGIN:
                    sys.exit(f"the {N}-th and {N + 1}-th hardest negatives are only {gap:.2g} apart (< {MARGIN}): choose another seed")
        hard = queue[idx]  # B×N×D

        def n(ranks):  # the entries of Q̃_N at ranks (B×r): B×r×D
            return torch.gather(hard, 1, ranks.unsqueeze(-1).expand(-1, -1, D))

        # h = normalize(α n_i + (1−α) n_j), α ~ U(0, 1): B×s×D, a constant
        alpha = plan["alpha"].reshape(B, s, 1)
        h = F.normalize(alpha * n(plan["i"]) + (1 - alpha) * n(plan["j"]), dim=2).detach()
        # h′ = normalize(β q + (1−β) n_j), β ~ U(0, 0.5): B×s′×D, a constant
        # unless the gradient may reach the q inside it
        beta = plan["beta"].reshape(B, s_prime, 1)
        h_prime = F.normalize(beta * q.unsqueeze(1) + (1 - beta) * n(plan["jq"]), dim=2)
        if not grad_through_hprime:
            h_prime = h_prime.detach()
        l_h = torch.einsum("nc,nsc->ns", [q, h])  # B×s
        l_h_prime = torch.einsum("nc,nsc->ns", [q, h_prime])  # B×s′
        out += [l_h, l_h_prime]
    return torch.cat(out, dim=1) / tau


def mochi(c):
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    q = t(c["q"]).requires_grad_()  # queries: B×D
    k = t(c["k"]).requires_grad_()  # keys: B×D
    plan = None
    if c["s"] + c["s_prime"] > 0:
        p = c["plan"]
        long = lambda x: torch.tensor(x, dtype=torch.long)
        plan = {"i": long(p["i"]), "j": long(p["j"]), "alpha": t(p["alpha"]), "jq": long(p["jq"]), "beta": t(p["beta"])}
    labels = {}
    if "query_labels" in c:
        labels = {"query_labels": t(c["query_labels"]), "queue_labels": t(c["queue_labels"])}
    z = logits(q, k, t(c["queue"]), c["N"], c["s"], c["s_prime"], c["tau"], plan, c["grad_through_hprime"], **labels)
    labels = torch.zeros(z.shape[0], dtype=torch.long)  # the positive is index 0
    loss = F.cross_entropy(z, labels)
    dq, dk = torch.autograd.grad(loss, [q, k])
    return {"loss": loss.item(), "dq": dq.tolist(), "dk": dk.tolist()}


def main():
    json.dump([mochi(c) for c in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
