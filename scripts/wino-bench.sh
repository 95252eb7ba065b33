#!/usr/bin/env bash
# wino-bench.sh — mochi's Winograd F(4×4, 3×3) against oneDNN's direct
# kernels, per convolution: the three kernels of the CIFAR ResNet-18's 3×3
# stride-1 convolutions and stems at batch 64 on 2 threads
# (BenchmarkConv2D* of pkg/device/cpu, modes winograd and direct).
#
# The modes run interleaved — winograd, direct, winograd, direct … for
# ROUNDS rounds — so both see the same machine state. The script prints per
# kernel and shape the median time of each mode and the median of the
# per-round speed-ups direct/winograd with their spread (min–max), in wall
# time and in CPU time (GFLOP/cpu-s: on a shared machine, where another
# process may take a core away for a while, the steadier of the two).
#
#   scripts/wino-bench.sh                          # all shapes, 5 rounds
#   ROUNDS=7 ITERS=10 SHAPES='64x64x32x32|256x256x8x8' scripts/wino-bench.sh
#
# On a CPU with AVX-512, winograd runs oneDNN's own Winograd kernels where
# it has them, not mochi's. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
ITERS=${ITERS:-5}
SHAPES=${SHAPES:-.}
if ((ROUNDS < 5)); then
	echo "wino-bench.sh: ROUNDS=$ROUNDS; a ratio needs at least 5 interleaved rounds" >&2
	exit 2
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/cpu.test" ./pkg/device/cpu/
echo "# $(date -u '+%F %H:%M UTC') $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
	for mode in winograd direct; do
		GOMAXPROCS=2 "$bin/cpu.test" -test.run '^$' -test.bench "Conv2D(Forward|BackwardData|BackwardFilter)/$mode/($SHAPES)" \
			-test.benchtime "${ITERS}x" | awk -v r="$r" -v m="$mode" '/^Benchmark/ {print r, m, $1, $3, $5}'
	done
done | python3 -c '
import sys, statistics as st, collections
t = collections.defaultdict(dict)  # (kernel, shape) -> {(round, mode): (ns, GFLOP/cpu-s)}
for line in sys.stdin:
    r, mode, name, ns, cpu = line.split()
    kernel, _, shape = name.split("/")
    t[(kernel.removeprefix("BenchmarkConv2D"), shape.rsplit("-", 1)[0])][(r, mode)] = (float(ns), float(cpu))
print("%-15s %-14s %11s %10s %9s %13s %9s %13s" % ("kernel", "C×K×H×W", "winograd ms", "direct ms", "speed-up", "(min–max)", "cpu-s", "(min–max)"))
for (kernel, shape), v in t.items():
    rounds = [r for r in sorted({r for r, _ in v}) if (r, "direct") in v and (r, "winograd") in v]
    wall = [v[(r, "direct")][0] / v[(r, "winograd")][0] for r in rounds]
    cpu = [v[(r, "winograd")][1] / v[(r, "direct")][1] for r in rounds]
    w = st.median(v[(r, "winograd")][0] for r in rounds) / 1e6
    d = st.median(v[(r, "direct")][0] for r in rounds) / 1e6
    print("%-15s %-14s %11.2f %10.2f %8.2f× %13s %8.2f× %13s" % (kernel, shape, w, d, st.median(wall), "(%.2f–%.2f)" % (min(wall), max(wall)),
          st.median(cpu), "(%.2f–%.2f)" % (min(cpu), max(cpu))))
'
