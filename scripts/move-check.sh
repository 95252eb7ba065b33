#!/usr/bin/env bash
# move-check.sh checks that a run moves between two devices through its
# checkpoint: it pretrains CONFIG for two epochs straight on DEV_A, then
# twice with a stop after the first epoch and a resume on the other device
# (DEV_A → DEV_B and DEV_B → DEV_A), and compares every step's loss of the
# moved runs with the straight run's (relative 1e-2, the float32 drift of
# gpu-check.sh step 4). gpu-check.sh step 5 runs it with cpu and cuda;
# `bash scripts/move-check.sh bin/mochi cpu cpu runs/move CONFIG` runs it on
# a CPU-only machine.
#
#   move-check.sh MOCHI DEV_A DEV_B OUT CONFIG
#
# Each of the five pretraining runs is killed after $MOVE_TIMEOUT seconds
# (default 200; gpu-check.sh sets a tighter one to fit a GPU session).
set -uo pipefail
[ $# = 5 ] || { echo "usage: move-check.sh MOCHI DEV_A DEV_B OUT CONFIG" >&2; exit 2; }
mochi=$1 a=$2 b=$3 out=$4 config=$5
mkdir -p "$out"
pretrain() { # pretrain DIR DEVICE [flags...]: two epochs of CONFIG into DIR
	local dir=$1 dev=$2
	shift 2
	local rc
	timeout -k 5 "${MOVE_TIMEOUT:-200}" "$mochi" pretrain --config "$config" --epochs 2 --device "$dev" --output-dir "$dir" "$@" >>"$dir.log" 2>&1
	rc=$?
	case $rc in
	0) return 0 ;;
	124 | 137) echo "move-check: pretrain --device $dev $* timed out after ${MOVE_TIMEOUT:-200} s; last lines of $dir.log:" ;;
	*) echo "move-check: pretrain --device $dev $* failed (exit $rc); last lines of $dir.log:" ;;
	esac
	tail -5 "$dir.log"
	return "$rc"
}
rm -rf "$out/straight" "$out/$a-$b" "$out/$b-$a" "$out"/*.log
pretrain "$out/straight" "$a" || exit
for pair in "$a $b" "$b $a"; do
	read -r first second <<<"$pair"
	dir="$out/$first-$second"
	rm -rf "$dir" # with DEV_A = DEV_B both orders use one directory: a new run needs it empty
	pretrain "$dir" "$first" --stop-after-epochs 1 || exit
	pretrain "$dir" "$second" --resume "$dir/checkpoints/last.ckpt" || exit
done
python3 - "$out/straight" "$out/$a-$b" "$out/$b-$a" <<'PY'
import json, sys

def losses(d):
    with open(d + "/metrics.jsonl") as f:
        return {m["step"]: m["loss"] for m in map(json.loads, f) if m.get("kind") == "step"}

want = losses(sys.argv[1])
ok = bool(want)
for d in sys.argv[2:]:
    got = losses(d)
    worst = max((abs(got[s] - want[s]) / max(abs(want[s]), 1e-12) if s in got else float("inf")) for s in want)
    worst = worst if worst == worst else float("inf")
    steps_ok = sorted(got) == sorted(want)
    print(f"moved run {d.rsplit('/', 1)[1]}: {len(got)} steps (straight: {len(want)}), max loss rel diff {worst:.3g} (tolerance 1e-2)")
    ok = ok and steps_ok and worst <= 1e-2
print(f"checkpoint move: {'matches' if ok else 'does not match'}")
sys.exit(0 if ok else 1)
PY
