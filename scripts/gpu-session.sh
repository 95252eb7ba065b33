#!/usr/bin/env bash
# gpu-session.sh is the one command of a GPU session: scripts/gpu-check.sh
# (kernels, CPU-vs-GPU training, images/s against PyTorch in fp32 and TF32,
# per-kernel profile, a run moved between CPU and GPU), then
# scripts/gpu-mochi-cost.sh (what MoCHi costs at K 65536 on a ResNet-50 224²
# step and a small ResNet-18 step). Run from the repository root on the GPU
# machine with .gpu/ (scripts/build-gpu.sh) carried there; logs go to $OUT
# (or .gpu/out) and the summary to stdout, last. About 7 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
timeout 450 bash scripts/gpu-check.sh >"$OUT/gpucheck.out" 2>&1
check=$?
timeout 300 bash scripts/gpu-mochi-cost.sh >"$OUT/cost.out" 2>&1
cost=$?
echo "== gpu-check (exit $check; $OUT/gpucheck.out)"
cat "$OUT/table.txt" 2>/dev/null
grep -E 'FAIL|overall' "$OUT/gpucheck.out" | tail -n 15
echo "== profile of the fp32 steps ($OUT/profile.txt)"
grep -E -A14 '^kind ' "$OUT/profile.txt" 2>/dev/null
echo "== MoCHi cost (exit $cost; $OUT/cost.out)"
tail -n 12 "$OUT/cost.out"
exit $((check | cost))
