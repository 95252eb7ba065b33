#!/usr/bin/env bash
# gpu-mochi-cost.sh measures what MoCHi's hard negatives cost in a GPU
# training step at the paper's ImageNet-1K settings — K = 65536, batch 256,
# MoCHi(1024, 1024, 512) — by pretraining the same model with and without
# mixing (s = s′ = 0) and comparing the step times. Runs on the GPU machine
# from the repository root with .gpu/ (scripts/build-gpu.sh) carried there;
# writes its log to $OUT (or .gpu/out).
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=.gpu
out=${OUT:-$gpu/out}
mkdir -p "$out"
run() { # run NAME S S_PRIME: pretrain one epoch, print its images/s
	cat >"$out/cost-$1.yaml" <<YAML
model: {backbone: resnet18, stem: cifar, width: 64}
moco: {k: 65536}
mochi: {n: 1024, s: $2, s_prime: $3, mix_start_epoch: 0}
optim: {batch: 256, epochs: 1}
data: {kind: mnist, path: $gpu/data, limit: 5120, workers: 8}
eval: {knn_every: 0}
run: {seed: 1, checkpoint_every: 0}
YAML
	local t0=$SECONDS
	if ! timeout 150 "$gpu/mochi-gpu" pretrain --config "$out/cost-$1.yaml" --device cuda --output-dir "$out/cost-$1" >"$out/cost-$1.log" 2>&1; then
		echo "$1: pretrain failed or timed out after $((SECONDS - t0)) s; last lines:"
		tail -n 5 "$out/cost-$1.log"
		tail -n 3 "$out/cost-$1/metrics.jsonl" 2>/dev/null
		return 0
	fi
	echo "$1: 20 steps + statistics in $((SECONDS - t0)) s wall"
	python3 - "$out/cost-$1/metrics.jsonl" "$1" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
steps = steps[5:]  # after warm-up
ms = sum(256 / s["images_per_sec"] for s in steps) / len(steps) * 1000
print(f"{sys.argv[2]}: {ms:.1f} ms/step over {len(steps)} steps")
PY
}
{
	echo "MoCHi cost, ResNet-18 (CIFAR stem, width 64) on 28×28, batch 256, K 65536"
	run moco 0 0
	run mochi 1024 512
} | tee "$out/mochi-cost.txt"
