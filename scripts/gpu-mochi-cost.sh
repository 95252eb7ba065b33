#!/usr/bin/env bash
# gpu-mochi-cost.sh measures what MoCHi's hard negatives cost in a GPU
# training step at the paper's ImageNet-1K settings — K = 65536, batch 256,
# MoCHi(1024, 1024, 512) — by pretraining the same model with and without
# mixing (s = s′ = 0) and comparing the step times, for two models:
#   resnet50: the paper's ResNet-50 on 224×224 crops (Fashion-MNIST images
#             upscaled by the crop; the step does not depend on content)
#   resnet18: a ResNet-18 (CIFAR stem, width 64) on 28×28, a small step
#             against which the cost shows clearly
# Runs on the GPU machine from the repository root with .gpu/
# (scripts/build-gpu.sh) carried there; writes its logs to $OUT (or
# .gpu/out). MODELS="resnet18" runs one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=.gpu
out=${OUT:-$gpu/out}
mkdir -p "$out"
run() { # run NAME MODEL S S_PRIME: pretrain 20 steps, print ms per step
	local model
	case $2 in
	resnet50) model="model: {backbone: resnet50, stem: imagenet, width: 64}
data: {kind: mnist, path: $gpu/data, image_size: 224, limit: 5120, workers: 0, prefetch: 4}" ;;
	resnet18) model="model: {backbone: resnet18, stem: cifar, width: 64}
data: {kind: mnist, path: $gpu/data, limit: 5120, workers: 0}" ;;
	esac
	cat >"$out/cost-$1.yaml" <<YAML
$model
moco: {k: 65536}
mochi: {n: 1024, s: $3, s_prime: $4, mix_start_epoch: 0}
optim: {batch: 256, epochs: 1}
eval: {knn_every: 0}
run: {seed: 1, checkpoint_every: 0, stats_every: 0}
YAML
	rm -rf "$out/cost-$1" # a run directory is never reused: pretrain refuses one holding a run
	local t0=$SECONDS
	if ! timeout 240 "$gpu/mochi-gpu" pretrain --config "$out/cost-$1.yaml" --device cuda --output-dir "$out/cost-$1" >"$out/cost-$1.log" 2>&1; then
		echo "$1: pretrain failed or timed out after $((SECONDS - t0)) s; last lines:"
		tail -n 5 "$out/cost-$1.log"
		tail -n 3 "$out/cost-$1/metrics.jsonl" 2>/dev/null
		return 0
	fi
	python3 - "$out/cost-$1/metrics.jsonl" "$1" $((SECONDS - t0)) <<'PY'
import json, sys
steps = [m for m in map(json.loads, open(sys.argv[1])) if m.get("kind") == "step"]
steps = steps[5:]  # after warm-up
ms = sum(256 / s["images_per_sec"] * 1000 - s["data_wait_ms"] for s in steps) / len(steps)
wait = sum(s["data_wait_ms"] for s in steps) / len(steps)
print(f"{sys.argv[2]}: {ms:.1f} ms/step over {len(steps)} steps (+{wait:.1f} ms waiting for data; {sys.argv[3]} s wall for 20 steps)")
PY
}
{
	echo "MoCHi cost at K 65536, batch 256, MoCHi(1024, 1024, 512): mean step time over steps 6-20, the wait for the data loader excluded, statistics off"
	for m in ${MODELS:-resnet50 resnet18}; do
		run "$m-moco" "$m" 0 0
		run "$m-mochi" "$m" 1024 512
	done
} | tee "$out/mochi-cost.txt"
