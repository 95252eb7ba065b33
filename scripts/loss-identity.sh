#!/usr/bin/env bash
# loss-identity.sh checks that a change leaves training bit-identical: it
# builds mochi at git revision REV (default HEAD) and from the working tree,
# pretrains CONFIG (default configs/ci.yaml, fixed seed) with each on this
# machine, and compares every value of metrics.jsonl but the timings (each step's
# loss and mixing statistics, the kNN accuracies) to the last bit. Both runs use this machine's OpenBLAS, whose kernel choice (and so the
# float rounding) may differ between machines but not between two runs here.
# A refactoring that must not change behaviour passes it against the
# revision it started from. Both runs see the environment, so
# MOCHI_CPU_CONV=blas compares with a revision older than 2026-12-06, whose
# default convolutions were blas (auto since).
#
#   loss-identity.sh [REV] [CONFIG]
set -euo pipefail
rev=${1:-HEAD} config=${2:-configs/ci.yaml}
root=$(git rev-parse --show-toplevel)
cd "$root"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
(cd "$work/src" && go build -o "$work/before" ./cmd/mochi)
go build -o "$work/after" ./cmd/mochi
for side in before after; do
	if ! "$work/$side" pretrain --config "$config" --output-dir "$work/run-$side" >"$work/$side.log" 2>&1; then
		echo "loss-identity: the $side run failed; last lines:" >&2
		tail -5 "$work/$side.log" >&2
		exit 1
	fi
done
python3 - "$work/run-before/metrics.jsonl" "$work/run-after/metrics.jsonl" "$rev" <<'PY'
import json, sys

TIMINGS = {"images_per_sec", "data_wait_ms", "data_wait_share", "seconds", "time"}

def values(path):
    # every value but the timings; repr keeps every bit of a float64
    out = []
    with open(path) as f:
        for m in map(json.loads, f):
            for key, v in sorted(m.items()):
                if key not in TIMINGS:
                    out.append((m.get("epoch"), m.get("step"), key, repr(v)))
    return out

before, after = values(sys.argv[1]), values(sys.argv[2])
if not before:
    sys.exit("loss-identity: no losses in the %s run" % sys.argv[3])
bad = [(b, a) for b, a in zip(before, after) if b != a]
if len(before) != len(after) or bad:
    print("loss-identity: %d values, %d differ (runs of %d and %d values)" % (len(before), len(bad), len(before), len(after)))
    for b, a in bad[:10]:
        print("  epoch %s step %s %s: %s at %s, %s now" % (b[0], b[1], b[2], b[3], sys.argv[3], a[3]))
    sys.exit(1)
print("loss-identity: %d values bit-identical to %s" % (len(before), sys.argv[3]))
PY
