#!/usr/bin/env bash
# bench-cpu.sh — mochi against PyTorch on the CPU: forward + backward + SGD
# step of the CIFAR ResNet-18 (3×3 stem, MoCo-v2 head) at batch 64 on 2
# threads, for base widths 64 (stages 64–512) and 16 (16–128).
#
# The two programs run interleaved — mochi, PyTorch, mochi, PyTorch … for
# ROUNDS rounds — so both see the same machine state; each run reports the
# images/s of its median timed step and its peak RSS. The script prints every
# run, then per width the median of the per-round ratios mochi/PyTorch and
# their spread (min–max over the rounds).
#
#   scripts/bench-cpu.sh                 # defaults below
#   ROUNDS=7 THREADS=2 BATCH=64 STEPS=5 WIDTHS="64 16" scripts/bench-cpu.sh
#   CONV=blas scripts/bench-cpu.sh        # mochi's convolution kernels (cpu.conv; default auto)
#   STEP=moco scripts/bench-cpu.sh        # the whole MoCo-v2 / MoCHi step instead
#
# STEP=moco times the MoCo step of pkg/train (benchstep -moco) against the
# MoCo model of scripts/torch_moco.py in float32 (scripts/torch_moco_bench.py):
# both encoders, momentum update 0.99, ShuffleBN over BN_GROUPS split-BN
# groups (default 8), queue of K keys (4096), InfoNCE at τ 0.1 with MoCHi's
# N/S/S_PRIME hardest-negative mixes (256/256/64; S=0 S_PRIME=0 for MoCo-v2
# alone), SGD and enqueue.
#
# Needs Go and Debian's /usr/bin/python3 with python3-torch. Run it on a quiet
# machine: the figures in docs/BENCH.md come from this script.
set -euo pipefail

cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
WIDTHS=${WIDTHS:-"64 16"}
CONV=${CONV:-auto}
STEP=${STEP:-resnet}
BN_GROUPS=${BN_GROUPS:-8} K=${K:-4096} N=${N:-256} S=${S:-256} S_PRIME=${S_PRIME:-64}
PYTHON=/usr/bin/python3 # Debian's, with python3-torch; not another python3 on PATH

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

if ((ROUNDS < 5)); then
	echo "bench-cpu.sh: ROUNDS=$ROUNDS; a ratio needs at least 5 interleaved rounds" >&2
	exit 2
fi
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	echo "bench-cpu.sh: $PYTHON cannot import torch; install python3-torch (MOCHI_SETUP_TORCH=1 scripts/setup.sh)" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/benchstep" ./scripts/benchstep

echo "# $(date -u '+%F %H:%M UTC') $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
case $STEP in
resnet)
	ours_args=() torch_cmd=(scripts/torch_bench.py)
	echo "# step: ResNet-18 forward, backward, SGD"
	;;
moco)
	ours_args=(-moco -bn-groups "$BN_GROUPS" -k "$K" -n "$N" -s "$S" -s-prime "$S_PRIME")
	torch_cmd=(scripts/torch_moco_bench.py --bn-groups "$BN_GROUPS" --k "$K" --n "$N" --s "$S" --s-prime "$S_PRIME")
	echo "# step: MoCo-v2 / MoCHi, split-BN $BN_GROUPS groups, K $K, N $N, s $S, s′ $S_PRIME"
	;;
*)
	echo "bench-cpu.sh: STEP=$STEP; choose resnet or moco" >&2
	exit 2
	;;
esac
echo "# batch $BATCH, $THREADS threads, $WARMUP warm-up + $STEPS timed steps per run (median step), $ROUNDS interleaved rounds"
echo "# mochi BLAS: $("$bin/benchstep" -blas); OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE-unset}; convolutions: $CONV"
echo "# torch: $("$PYTHON" -c 'import torch; print(torch.__version__, "oneDNN", torch.backends.mkldnn.is_available())')"

# "...: <images/s> images/s  peak RSS <MiB> MiB ..." → "<images/s> <MiB>"
fields='s/.*: +([0-9.]+) images\/s +peak RSS +([0-9.]+) MiB.*/\1 \2/'
for w in $WIDTHS; do
	speed=() memory=()
	for ((r = 1; r <= ROUNDS; r++)); do
		ours=$("$bin/benchstep" "${ours_args[@]}" -width "$w" -batch "$BATCH" -threads "$THREADS" -warmup "$WARMUP" -steps "$STEPS" -conv "$CONV")
		theirs=$("$PYTHON" "${torch_cmd[@]}" --width "$w" --batch "$BATCH" --threads "$THREADS" --warmup "$WARMUP" --steps "$STEPS")
		echo "round $r $ours"
		echo "round $r $theirs"
		read -r ours_ips ours_rss <<<"$(sed -E "$fields" <<<"$ours")"
		read -r torch_ips torch_rss <<<"$(sed -E "$fields" <<<"$theirs")"
		speed+=("$(awk -v a="$ours_ips" -v b="$torch_ips" 'BEGIN { print a / b }')")
		memory+=("$(awk -v a="$ours_rss" -v b="$torch_rss" 'BEGIN { print a / b }')")
	done
	# median and min–max of the per-round ratios
	summary() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f× (spread %.2f–%.2f)", m, v[1], v[NR] }'; }
	echo "ratio  width $w: speed $(summary "${speed[@]}") PyTorch, peak RSS $(summary "${memory[@]}") PyTorch, over $ROUNDS rounds"
done
