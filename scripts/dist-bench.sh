#!/usr/bin/env bash
# dist-bench.sh — data-parallel scaling on the CPU: one process on one core
# against `mpirun -np 2`, one core each (taskset / --bind-to core, one
# OpenBLAS and OpenMP thread per process), training CONFIG for one epoch of
# IMAGES images with MoCHi from the first step, no kNN monitor and no
# statistics.
#
# The two run interleaved — 1 process, 2 processes, 1, 2 … for ROUNDS
# rounds — so both see the same machine state. Each run is the test binary
# of pkg/train in its benchmark mode (pkg/train/distbench_test.go): the real
# trainer, whose rank 0 reports, over the steps after 2 warm-up ones, the
# images/s, the share of the step spent in collectives (time in
# all-reduce/all-gather/broadcast over step time) and their payload per
# step (the bytes each all-reduce sums, each all-gather receives, each
# broadcast copies), next to the gradients' size. The script prints every
# run, then the medians and spreads (min–max) over the rounds of the
# speed-up 2p/1p and the scaling efficiency 2p/(2·1p).
#
#   scripts/dist-bench.sh                                # defaults below
#   ROUNDS=7 IMAGES=2048 SHUFFLE_BN=split scripts/dist-bench.sh
#   CONFIG=configs/fashion-mnist.yaml IMAGES=4096 scripts/dist-bench.sh
#
# Needs Go, OpenMPI (openmpi-bin), Fashion-MNIST for the default config and
# 2 free cores; run it on a quiet machine.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
IMAGES=${IMAGES:-1024}
CONFIG=${CONFIG:-configs/ci.yaml}
SHUFFLE_BN=${SHUFFLE_BN:-ranks}

if ((ROUNDS < 5)); then
	echo "dist-bench.sh: ROUNDS=$ROUNDS; a ratio needs at least 5 interleaved rounds" >&2
	exit 2
fi
if ! command -v mpirun >/dev/null; then
	echo "dist-bench.sh: mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)" >&2
	exit 1
fi
cores=$(nproc) # before OMP_NUM_THREADS, which nproc obeys
if ((cores < 2)); then
	echo "dist-bench.sh: $cores core available; 2 processes × 1 core need 2" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/train.test" ./pkg/train

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export TRAIN_BENCH_CONFIG=$CONFIG MOCHI_DATA_LIMIT=$IMAGES MOCHI_MODEL_SHUFFLE_BN=$SHUFFLE_BN
export MOCHI_OPTIM_EPOCHS=1 MOCHI_MOCHI_MIX_START_EPOCH=0 MOCHI_EVAL_KNN_EVERY=0 MOCHI_RUN_STATS_EVERY=0 MOCHI_DATA_WORKERS=1
mpi=(mpirun -np 2 --bind-to core --map-by core)
if ((EUID == 0)); then
	mpi+=(--allow-run-as-root)
fi

echo "# $(date -u '+%F %H:%M UTC') $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# $CONFIG, data.limit $IMAGES, model.shuffle_bn $SHUFFLE_BN, 1 epoch, MoCHi from step 1; 1 core and 1 BLAS thread per process; $ROUNDS interleaved rounds"
for ((r = 1; r <= ROUNDS; r++)); do
	one=$(TRAIN_BENCH_DIR="$work/$r-1" taskset -c 0 "$work/train.test")
	two=$(TRAIN_BENCH_DIR="$work/$r-2" "${mpi[@]}" "$work/train.test")
	echo "round $r $one"
	echo "round $r $two"
done | tee "$work/runs"

/usr/bin/python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = {1: [], 2: []}
for line in open(sys.argv[1]):
    r = json.loads(line.split(" ", 2)[2])
    runs[r["procs"]].append(r)
one, two = runs[1], runs[2]
def show(name, xs, fmt):
    print(f"{name}: median {fmt % statistics.median(xs)} (spread {fmt % min(xs)}–{fmt % max(xs)})")
speedup = [b["images_per_sec"] / a["images_per_sec"] for a, b in zip(one, two)]
show("1 process images/s", [a["images_per_sec"] for a in one], "%.1f")
show("2 processes images/s", [b["images_per_sec"] for b in two], "%.1f")
show("speed-up 2p/1p", speedup, "%.3f")
show("scaling efficiency 2p/(2·1p)", [s / 2 for s in speedup], "%.3f")
show("communication share of the 2-process step", [b["comm_share"] for b in two], "%.3f")
b = two[0]
print(f"payload per step and rank: {b['comm_bytes_per_step']} bytes; gradients {b['grad_bytes']} bytes "
      f"({b['comm_bytes_per_step'] / b['grad_bytes']:.2f}× the gradients)")
PY
