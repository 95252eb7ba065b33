#!/usr/bin/env bash
# gpu-session.sh is the one command of a GPU session, sized to the device
# budget: a session has 15 minutes of device time, the machine's start
# included, and one command may run 10 minutes, so this script stops within
# BUDGET seconds (default 420), which leaves room for one rerun.
#
# Required, in this order (the sum of their timeouts is 390 s):
#   scripts/gpu-check.sh kernels train pretrain move bench tf32   (≤ 320 s)
#   scripts/gpu-mochi-cost.sh, ResNet-50 224² only, two runs      (≤ 70 s)
# Then, each only when its timeouts still fit in BUDGET:
#   scripts/gpu-check.sh nccl                                      (≤ 80 s)
#   scripts/gpu-check.sh profile                                   (≤ 40 s)
#   scripts/gpu-mochi-cost.sh, ResNet-18, two runs                 (≤ 40 s)
#
# Run from the repository root on the GPU machine with .gpu/
# (scripts/build-gpu.sh) carried there. Everything goes to $OUT (or
# .gpu/out) as it finishes: summary.txt gets one line per step (verdict and
# seconds), table.txt is rewritten after each gpu-check step, mochi-cost.txt
# gets one line per run; a run killed from outside keeps all of it. The same
# summary and tables go to stdout, last. `gpu-session.sh STEP...` runs only
# the gpu-check steps named (and no MoCHi cost unless "cost" is named):
# a rerun of what failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.." || exit 1
export OUT=${OUT:-.gpu/out}
budget=${BUDGET:-420}
mkdir -p "$OUT"
rm -f "$OUT/summary.txt" "$OUT/mochi-cost.txt" "$OUT/table.txt"
check=0 cost=0

# left prints the seconds left in the budget.
left() { echo $((budget - SECONDS)); }

# note LINE: a line of the session's own in summary.txt.
note() { echo "session: $*" >>"$OUT/summary.txt"; }

# mochi_cost MODEL TIMEOUT: gpu-mochi-cost.sh's two runs of MODEL.
mochi_cost() {
	local t0=$SECONDS rc
	MODELS=$1 COST_TIMEOUT=$2 bash scripts/gpu-mochi-cost.sh >>"$OUT/cost.out" 2>&1
	rc=$?
	note "mochi-cost $1 exit $rc, $((SECONDS - t0)) s"
	[ "$rc" = 0 ] || cost=1
}

if [ $# -gt 0 ]; then
	steps=() want_cost=no
	for s in "$@"; do
		if [ "$s" = cost ]; then want_cost=yes; else steps+=("$s"); fi
	done
	if [ ${#steps[@]} -gt 0 ]; then
		bash scripts/gpu-check.sh "${steps[@]}" >>"$OUT/gpucheck.out" 2>&1 || check=1
	fi
	[ "$want_cost" = yes ] && mochi_cost resnet50 35
else
	bash scripts/gpu-check.sh kernels train pretrain move bench tf32 >>"$OUT/gpucheck.out" 2>&1 || check=1
	mochi_cost resnet50 35
	if [ "$(left)" -ge 85 ]; then
		bash scripts/gpu-check.sh nccl >>"$OUT/gpucheck.out" 2>&1 || check=1
	else
		note "nccl skipped: $(left) s left of $budget (run gpu-session.sh nccl)"
	fi
	if [ "$(left)" -ge 50 ]; then
		bash scripts/gpu-check.sh profile >>"$OUT/gpucheck.out" 2>&1 || check=1
	else
		note "profile skipped: $(left) s left of $budget"
	fi
	if [ "$(left)" -ge 50 ]; then
		mochi_cost resnet18 20
	else
		note "mochi-cost resnet18 skipped: $(left) s left of $budget"
	fi
fi
note "done in $SECONDS s (budget $budget s)"

echo "== summary ($OUT/summary.txt; logs in $OUT)"
cat "$OUT/summary.txt"
echo "== tables ($OUT/table.txt)"
cat "$OUT/table.txt" 2>/dev/null
grep -E 'FAIL|TIMEOUT' "$OUT/gpucheck.out" 2>/dev/null | tail -n 15
if [ -s "$OUT/profile.txt" ]; then
	echo "== profile of the fp32 steps ($OUT/profile.txt)"
	grep -E -A14 '^kind ' "$OUT/profile.txt"
fi
if [ -s "$OUT/mochi-cost.txt" ]; then
	echo "== MoCHi cost ($OUT/mochi-cost.txt; logs in $OUT/cost.out)"
	cat "$OUT/mochi-cost.txt"
fi
exit $((check | cost))
