#!/usr/bin/env bash
# conv-curve.sh — does a cpu.conv mode change learning? Pretrains the
# Fashion-MNIST demo (configs/fashion-mnist.yaml) for its first epoch — plain
# MoCo-v2, as the demo mixes from epoch 1 (here s = s′ = 0, since a 1-epoch
# run must not schedule mixing) — with every seed of SEEDS in every mode of
# MODES, draws all loss curves on one
# PNG (mochi plot) and checks each mode against the seed-to-seed spread of
# blas, the reference: a mode's numerics may differ (Winograd's ≈ 1e-6
# relative error against direct's ≈ 2e-7), its learning must not.
#
#   scripts/conv-curve.sh [OUT]                     # blas and auto (the default), seeds 1 2 3
#   MODES="blas winograd" scripts/conv-curve.sh     # oneDNN's Winograd on AVX-512, else mochi's
#   LIMIT=0 scripts/conv-curve.sh                   # the whole epoch (60,000 images)
#
# OUT (default /tmp/mochi-conv-curve) gets one run folder per mode and seed
# and curves.png. Environment: MODES ("blas auto"; blas is always run),
# SEEDS ("1 2 3"), LIMIT (data.limit, 6400 images: 50 steps of 128), WINDOW
# (20 steps, the moving average the check compares).
#
# The check, per mode: with each curve smoothed over WINDOW steps, the
# fraction of steps at which the mode's mean over the seeds lies within
# [min, max] of blas's seeds, and the mode's mean first-epoch loss against
# the range of blas's per-seed means. It passes when the mode's mean loss is
# inside that range (widened by half its width) and ≥ 80% of the steps lie
# within the band; the script exits 1 when a mode fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-/tmp/mochi-conv-curve}
modes=${MODES:-"blas auto"}
seeds=${SEEDS:-"1 2 3"}
limit=${LIMIT:-6400}
window=${WINDOW:-20}
export PATH="/usr/local/go/bin:$PATH"
[[ " $modes " == *" blas "* ]] || modes="blas $modes"

mkdir -p "$out"
go build -o "$out/mochi" ./cmd/mochi
echo "# $(date -u '+%F %H:%M UTC') $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# configs/fashion-mnist.yaml, 1 epoch, data.limit $limit, seeds $seeds, modes $modes"
for mode in $modes; do
	for seed in $seeds; do
		run="$out/$mode-seed$seed"
		echo "pretrain $mode seed $seed → $run"
		MOCHI_CPU_CONV=$mode "$out/mochi" pretrain --config configs/fashion-mnist.yaml --epochs 1 --s 0 --s-prime 0 --limit "$limit" \
			--seed "$seed" --output-dir "$run" --force >"$run.log" 2>&1 || {
			echo "conv-curve: the $mode seed $seed run failed; last lines of $run.log:" >&2
			tail -5 "$run.log" >&2
			exit 1
		}
	done
done
runs=()
for mode in $modes; do for seed in $seeds; do runs+=("$out/$mode-seed$seed"); done; done
"$out/mochi" plot "${runs[@]}" --out "$out/curves.png"
echo "curves: $out/curves.png"

python3 - "$out" "$window" "$seeds" $modes <<'PY'
import json, os, sys

out, window, seeds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]

def losses(mode, seed):
    with open(os.path.join(out, f"{mode}-seed{seed}", "metrics.jsonl")) as f:
        recs = [json.loads(l) for l in f if l.startswith("{")]
    return [r["loss"] for r in recs if "loss" in r and "step" in r]

def smooth(xs):
    return [sum(xs[max(0, i - window + 1):i + 1]) / len(xs[max(0, i - window + 1):i + 1]) for i in range(len(xs))]

curves = {m: [losses(m, s) for s in seeds] for m in modes}
steps = min(len(c) for cs in curves.values() for c in cs)
if steps == 0:
    sys.exit("conv-curve: no step losses in metrics.jsonl")
band = [smooth(c[:steps]) for c in curves["blas"]]
lo = [min(b[t] for b in band) for t in range(steps)]
hi = [max(b[t] for b in band) for t in range(steps)]
ref = [sum(c[:steps]) / steps for c in curves["blas"]]
rlo, rhi = min(ref), max(ref)
failed = False
print(f"{steps} steps; blas per-seed mean loss {', '.join(f'{r:.4f}' for r in ref)} (range {rlo:.4f}–{rhi:.4f})")
for m in modes:
    if m == "blas":
        continue
    sm = [smooth(c[:steps]) for c in curves[m]]
    mean = [sum(s[t] for s in sm) / len(sm) for t in range(steps)]
    inside = sum(lo[t] <= mean[t] <= hi[t] for t in range(steps)) / steps
    means = [sum(c[:steps]) / steps for c in curves[m]]
    avg = sum(means) / len(means)
    slack = (rhi - rlo) / 2
    ok = rlo - slack <= avg <= rhi + slack and inside >= 0.8
    failed |= not ok
    print(f"{m}: per-seed mean loss {', '.join(f'{x:.4f}' for x in means)} (mean {avg:.4f}); "
          f"{100 * inside:.0f}% of steps within blas's seed band: {'within' if ok else 'OUTSIDE'} blas's seed-to-seed spread")
sys.exit(1 if failed else 0)
PY
