#!/usr/bin/env bash
# scripts/loader-bench.sh — two-view MoCo-v2 loader throughput at 224²: mochi's
# streaming ImageFolder (libjpeg-turbo, and the pure-Go build) against
# torchvision's DataLoader with the same transforms and the same number of
# workers, on the same files, pinned to the same cores.
#
#   scripts/loader-bench.sh [DIR]
#
# DIR (default /tmp/mochi-loader-bench) gets IMAGES synthetic 500×375
# quality-90 JPEGs over 100 classes (scripts/make-imagefolder.py) unless it
# already holds train/. Then ROUNDS rounds, each running the three loaders in
# turn (the order rotates from round to round, so that a slow spell of the
# machine does not always hit the same one), each for EPOCHS timed epochs after
# a warm-up epoch. It prints every measurement and, over the rounds, the median
# and the range of mochi/torchvision and pure-Go/torchvision pairs/s ratios.
# Pairs/s per core is pairs/s divided by WORKERS: each side gets WORKERS cores
# (taskset) and WORKERS workers (goroutines; DataLoader processes).
#
# Environment: IMAGES (2000), WORKERS (number of cores), ROUNDS (5), EPOCHS (2).
# Needs Go, python3-torchvision, python3-pil and python3-numpy (Debian's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=${1:-/tmp/mochi-loader-bench}
images=${IMAGES:-2000}
workers=${WORKERS:-$(nproc)}
rounds=${ROUNDS:-5}
epochs=${EPOCHS:-2}
python=/usr/bin/python3
export PATH="/usr/local/go/bin:$PATH"

if [[ ! -d $dir/train ]]; then
	echo "writing $images JPEGs into $dir" >&2
	"$python" scripts/make-imagefolder.py "$dir" --train "$images" --classes 100 --size 500x375 --quality 90
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/data.test" ./pkg/data
go test -c -tags purego -o "$bin/data-purego.test" ./pkg/data
cores="0-$((workers - 1))"

# Each prints one pairs/s figure.
run_mochi() { # $1: test binary
	MOCHI_BENCH_IMAGEFOLDER="$dir" MOCHI_BENCH_WORKERS="$workers" GOMAXPROCS="$workers" \
		taskset -c "$cores" "$1" -test.run '^$' -test.bench '^BenchmarkImageFolderPairs$' -test.benchtime "${epochs}x" |
		awk '/^BenchmarkImageFolderPairs/ { for (i = 2; i < NF; i++) if ($(i + 1) == "pairs/s") print $i }'
}
run_torch() {
	taskset -c "$cores" "$python" scripts/torch_loader_bench.py "$dir" --workers "$workers" --epochs $((epochs + 1)) |
		"$python" -c 'import json, sys; print(json.load(sys.stdin)["pairs_per_sec"])'
}

results=$(mktemp)
names=(mochi purego torch)
for ((r = 0; r < rounds; r++)); do
	for ((k = 0; k < 3; k++)); do
		name=${names[(r + k) % 3]}
		case $name in
		mochi) v=$(run_mochi "$bin/data.test") ;;
		purego) v=$(run_mochi "$bin/data-purego.test") ;;
		torch) v=$(run_torch) ;;
		esac
		printf 'round %d %-7s %8.1f pairs/s  %6.1f pairs/s/core\n' "$r" "$name" "$v" "$(awk -v v="$v" -v w="$workers" 'BEGIN { print v / w }')"
		echo "$r $name $v" >>"$results"
	done
done
"$python" - "$results" "$workers" "$images" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, name, v in rows:
    by.setdefault(int(r), {})[name] = float(v)
for side in ("mochi", "purego"):
    ratios = sorted(by[r][side] / by[r]["torch"] for r in by)
    print("%-6s / torchvision pairs/s: median %.2f×, range %.2f–%.2f× over %d rounds (%s workers, %s images, 224², batch 64)"
          % (side, statistics.median(ratios), ratios[0], ratios[-1], len(ratios), sys.argv[2], sys.argv[3]))
PY
rm -f "$results"
