#!/usr/bin/env bash
# bench-cpu.sh — mochi against PyTorch on the CPU: forward + backward + SGD
# step of the CIFAR ResNet-18 (3×3 stem, MoCo-v2 head) at batch 64 on 2
# threads, for base widths 64 (stages 64–512) and 16 (16–128). Prints
# images/s (fastest timed step; the mean in brackets), peak RSS and the
# ratios mochi/PyTorch.
#
#   scripts/bench-cpu.sh                 # defaults below
#   THREADS=2 BATCH=64 STEPS=5 WIDTHS="64 16" scripts/bench-cpu.sh
#
# Needs Go and Debian's /usr/bin/python3 with python3-torch.
set -euo pipefail

cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
WIDTHS=${WIDTHS:-"64 16"}
PYTHON=/usr/bin/python3 # Debian's, with python3-torch; not another python3 on PATH

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	echo "bench-cpu.sh: $PYTHON cannot import torch; install python3-torch" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/benchstep" ./scripts/benchstep

echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# batch $BATCH, $THREADS threads, $WARMUP warm-up + $STEPS timed steps"
echo "# mochi BLAS: $("$bin/benchstep" -blas)"
echo "# OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE-unset} (mochi's GEMMs follow it; PyTorch's convolutions run on oneDNN, which does not)"
for w in $WIDTHS; do
	ours=$("$bin/benchstep" -width "$w" -batch "$BATCH" -threads "$THREADS" -warmup "$WARMUP" -steps "$STEPS")
	theirs=$("$PYTHON" scripts/torch_bench.py --width "$w" --batch "$BATCH" --threads "$THREADS" --warmup "$WARMUP" --steps "$STEPS")
	echo "$ours"
	echo "$theirs"
	# "...: <images/s> images/s  peak RSS <MiB> MiB ..." → "<images/s> <MiB>"
	fields='s/.*: +([0-9.]+) images\/s +peak RSS +([0-9.]+) MiB.*/\1 \2/'
	read -r ours_ips ours_rss <<<"$(sed -E "$fields" <<<"$ours")"
	read -r torch_ips torch_rss <<<"$(sed -E "$fields" <<<"$theirs")"
	awk -v w="$w" -v a="$ours_ips" -v b="$torch_ips" -v c="$ours_rss" -v d="$torch_rss" \
		'BEGIN { printf "ratio  width %3d: speed %.2f× PyTorch, peak RSS %.2f× PyTorch\n", w, a/b, c/d }'
done
