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
# .gpu/out) and appends its figures to mochi-cost.txt there, line by line.
# MODELS="resnet18" runs one of them; each pretraining run is killed after
# $COST_TIMEOUT seconds (default 240). A run that fails or times out (an
# out-of-memory error at ResNet-50 224² batch 256, say) is reported with
# its last lines and makes the script exit non-zero.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"
gpu_dirs "$here" || exit 1
gpu_env "$gpu" || exit 1
status=0

# run NAME MODEL S S_PRIME: pretrain 20 steps, print ms per step; non-zero
# when the run fails, times out or leaves no step to measure.
run() {
	local model rc
	case $2 in
	resnet50) model="model: {backbone: resnet50, stem: imagenet, width: 64}
data: {kind: mnist, path: $gpu/data, image_size: 224, limit: 5120, workers: 0, prefetch: 4}" ;;
	resnet18) model="model: {backbone: resnet18, stem: cifar, width: 64}
data: {kind: mnist, path: $gpu/data, limit: 5120, workers: 0}" ;;
	*)
		echo "gpu-mochi-cost: unknown model $2 (resnet50, resnet18)"
		return 2
		;;
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
	rm -rf "$out/cost-$1"
	timeout -k 5 "${COST_TIMEOUT:-240}" "$gpu/mochi-gpu" pretrain --config "$out/cost-$1.yaml" --device cuda \
		--output-dir "$out/cost-$1" >"$out/cost-$1.log" 2>&1
	rc=$?
	if [ "$rc" != 0 ]; then
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			echo "gpu-mochi-cost: FAIL: $1 pretrain timed out after ${COST_TIMEOUT:-240} s; last lines of $out/cost-$1.log:"
		else
			echo "gpu-mochi-cost: FAIL: $1 pretrain failed (exit $rc) after $((SECONDS - t0)) s; last lines of $out/cost-$1.log:"
		fi
		tail -n 5 "$out/cost-$1.log"
		tail -n 3 "$out/cost-$1/metrics.jsonl" 2>/dev/null
		return 1
	fi
	python3 - "$out/cost-$1/metrics.jsonl" "$1" $((SECONDS - t0)) <<'PY'
import json, sys
steps = [m for m in map(json.loads, open(sys.argv[1])) if m.get("kind") == "step"]
steps = steps[5:]  # after warm-up
if not steps:
    print(f"gpu-mochi-cost: FAIL: {sys.argv[2]}: no step after the 5 warm-up steps in {sys.argv[1]}")
    sys.exit(1)
ms = sum(256 / s["images_per_sec"] * 1000 - s["data_wait_ms"] for s in steps) / len(steps)
wait = sum(s["data_wait_ms"] for s in steps) / len(steps)
print(f"{sys.argv[2]}: {ms:.1f} ms/step over {len(steps)} steps (+{wait:.1f} ms waiting for data; {sys.argv[3]} s wall for 20 steps)")
PY
}

# cost MODEL: what mixing adds to MODEL's step, from the last two lines of
# mochi-cost.txt that measured it.
cost() {
	local moco mochi
	moco=$(sed -n "s/^$1-moco: \([0-9.]*\) ms.*/\1/p" "$out/mochi-cost.txt" | tail -1)
	mochi=$(sed -n "s/^$1-mochi: \([0-9.]*\) ms.*/\1/p" "$out/mochi-cost.txt" | tail -1)
	[ -n "$moco" ] && [ -n "$mochi" ] || return 0
	awk -v a="$moco" -v b="$mochi" -v m="$1" 'BEGIN { printf "%s: MoCHi adds %.1f ms per step, %.1f%% of the MoCo-v2 step\n", m, b - a, 100 * (b - a) / a }'
}

echo "MoCHi cost at K 65536, batch 256, MoCHi(1024, 1024, 512): mean step time over steps 6-20, the wait for the data loader excluded, statistics off" | tee -a "$out/mochi-cost.txt"
for m in ${MODELS:-resnet50 resnet18}; do
	run "$m-moco" "$m" 0 0 2>&1 | tee -a "$out/mochi-cost.txt"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	run "$m-mochi" "$m" 1024 512 2>&1 | tee -a "$out/mochi-cost.txt"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	cost "$m" | tee -a "$out/mochi-cost.txt"
done
[ "$status" = 0 ] || echo "gpu-mochi-cost: FAIL: a run above failed; see the lines marked FAIL" | tee -a "$out/mochi-cost.txt"
exit "$status"
