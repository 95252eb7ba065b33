#!/usr/bin/env bash
# dnnl-profile.sh — what oneDNN spends a training step on: the time of its
# convolution primitives against the reorders between mochi's plain layouts
# (NCHW activations, OIHW filters) and the blocked ones the primitives use,
# which `mochi bench --profile` cannot see (they run inside each
# convolution call). Runs scripts/benchstep with DNNL_VERBOSE=1 for WARMUP
# untimed steps and one more, and sums oneDNN's own timings of that last
# step per primitive kind and direction.
#
#   scripts/dnnl-profile.sh                   # width 64, cpu.conv direct
#   WIDTH=16 CONV=auto scripts/dnnl-profile.sh
#
# The times are oneDNN's wall times per primitive, summed over the parts of
# the batch that run at once: read the shares, not the sum.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
width=${WIDTH:-64} conv=${CONV:-direct} warmup=${WARMUP:-1} threads=${THREADS:-2}

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/benchstep" ./scripts/benchstep
DNNL_VERBOSE=1 OMP_NUM_THREADS=$threads "$bin/benchstep" -width "$width" -conv "$conv" -threads "$threads" \
	-warmup "$warmup" -steps 1 >"$bin/verbose.txt"
echo "# width $width, cpu.conv $conv, $threads threads: oneDNN's primitives in the step after $warmup warm-up steps"
python3 - "$bin/verbose.txt" "$warmup" <<'PY'
import collections, sys

lines = [l.strip().split(",") for l in open(sys.argv[1]) if l.startswith("onednn_verbose,exec,")]
steps = int(sys.argv[2]) + 1
lines = lines[len(lines) * (steps - 1) // steps:]  # every step runs the same primitives
time, calls = collections.Counter(), collections.Counter()
for f in lines:
    kind, impl, prop, mds, ms = f[3], f[4], f[5], f[6].split(), float(f[-1])
    if kind == "reorder":
        src, dst = mds[0].split(":")[3], mds[1].split(":")[3]
        what = "filter" if src[0] == "A" or dst[0] == "A" else "activation"
        key = f"reorder {what} {src} → {dst}"
    else:
        key = f"{kind} {prop} {impl}"
    time[key] += ms
    calls[key] += 1
total = sum(time.values())
print(f"{'ms':>9} {'share':>6} {'calls':>6}  primitive")
for key, ms in time.most_common():
    print(f"{ms:9.1f} {100 * ms / total:5.1f}% {calls[key]:6d}  {key}")
print(f"{total:9.1f} total")
PY
