#!/usr/bin/env bash
# gpu-check.sh runs on a GPU machine, from the repository root, with .gpu/
# built by scripts/build-gpu.sh carried there. No Go toolchain or network is
# needed. Every command has its own timeout (the caps below: all steps
# together at most 6 minutes). Logs go to $OUT (or .gpu/out when OUT is
# unset); each step, as it ends, adds its verdict and time to summary.txt
# and rewrites table.txt, so a run cut short keeps what it finished.
#
#   gpu-check.sh [STEP...]   the steps named (default: all, in this order)
#
# (Other files and docs/GPU.md number them: 1 kernels, 2 train, 3 bench,
# tf32 and profile, 4 pretrain, 5 move, 6 nccl.)
#
#   kernels   every GPU kernel against the conformance suite and its CPU
#             twin (relative error table, ≤ 1e-4 in float32)
#   train     20 training steps on CPU and GPU from the same weights and
#             batch (mochi-gpu bench --compare-cpu: losses per step, final
#             weights)
#   pretrain  MoCHi pretraining, 20 steps of `mochi-gpu pretrain` on the CPU
#             and on the GPU from the same seed (.gpu/check.yaml: the whole
#             step, loss and mixing included, on each device): per-step
#             loss table, max relative difference ≤ 1e-2, each run's images/s
#   move      a run moves between CPU and GPU through its checkpoint
#             (scripts/move-check.sh: two epochs straight on the CPU, and
#             stopped after one and resumed on the other device, both ways;
#             every step's loss within 1e-2 of the straight run's)
#   nccl      NCCL on one GPU: .gpu/nccl.test (the binding, as rank 0 of
#             1), then .gpu/check.yaml pretrained alone and under
#             `mpirun -np 1`, where gradients and keys go through NCCL: the
#             log must say so and the losses must equal the lone run's
#   bench     images/s for ResNet-18 (CIFAR, batch 256) and ResNet-50 (224²,
#             batch 64) with mochi-gpu bench, against
#             scripts/torch_gpu_bench.py on the same GPU when python3 has torch
#   tf32      the same with TF32 convolutions (--tf32 on both sides)
#   profile   profile.txt: the time per kernel of both fp32 steps
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"
gpu_dirs "$here" || exit 1
status=0

# Timeouts in seconds, per command. A step's commands run one after the
# other, so a step takes at most the sum of its caps (+5 s per command
# that ignores SIGTERM).
cap_kernels=50
cap_train=30
cap_pretrain=20        # per device
cap_move=12            # each of move-check.sh's five short runs
cap_bench=15           # ResNet-18; ResNet-50 gets 5 more
cap_torch=35           # torch_gpu_bench.py, both models
cap_profile=15         # ResNet-18; ResNet-50 gets 10 more
cap_nccl=30            # nccl.test, and the mpirun pretrain (NCCL's start
                       # included); the lone pretrain gets cap_pretrain

# limit CAP CMD...: CMD under a CAP-second timeout (killed 5 s later if it
# ignores SIGTERM); a timeout says so. Returns CMD's status.
limit() {
	local cap=$1 rc
	shift
	timeout -k 5 "$cap" "$@"
	rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "gpu-check: TIMEOUT: killed after $cap s: $*"
	fi
	return "$rc"
}

# record STEP RC START: the step's verdict (PASS, FAIL, TIMEOUT) and time,
# in check.log and summary.txt; any failure fails the run.
record() {
	local verdict=PASS
	case $2 in
	0) ;;
	124 | 137) verdict=TIMEOUT ;;
	*) verdict=FAIL ;;
	esac
	[ "$verdict" = PASS ] || status=1
	printf 'gpu-check %-8s %-7s %3d s\n' "$1" "$verdict" $((SECONDS - $3)) | tee -a "$out/check.log" "$out/summary.txt"
}

# worst RC...: the status of a step of several commands: a timeout if any
# timed out, else the last failure, else 0.
worst() {
	local rc w=0
	for rc in "$@"; do
		case $rc in
		124 | 137) w=124 ;;
		0) ;;
		*) [ "$w" = 124 ] || w=$rc ;;
		esac
	done
	echo "$w"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(kernels train pretrain move nccl bench tf32 profile)
for step in "${steps[@]}"; do
	case $step in
	kernels | train | pretrain | move | nccl | bench | tf32 | profile) ;;
	*)
		echo "gpu-check: unknown step $step (kernels, train, pretrain, move, nccl, bench, tf32, profile)" | tee -a "$out/check.log"
		exit 2
		;;
	esac
done
echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ), steps: ${*:-all}" | tee -a "$out/check.log"
gpu_env "$gpu" >"$out/env.log" 2>&1
env_rc=$?
tee -a "$out/check.log" <"$out/env.log"
[ "$env_rc" = 0 ] || exit 1
{ nvidia-smi || echo "gpu-check: nvidia-smi failed"; } >>"$out/check.log" 2>&1
for bin in cuda.test nccl.test mochi-gpu; do
	if [ ! -x "$gpu/$bin" ]; then
		echo "gpu-check: $gpu/$bin missing: run bash scripts/build-gpu.sh on the build machine and carry .gpu/" | tee -a "$out/check.log"
		exit 1
	fi
done

# ips prints the images/s of the line of file $1 that holds $2.
ips() { grep -F -- "$2" "$1" 2>/dev/null | grep -o '[0-9.]* images/s' | head -1 | cut -d' ' -f1; }

# write_table rewrites table.txt from the logs of the steps run so far: the
# kernel error table, the training verdicts, then images/s ("-" where a
# figure is missing).
write_table() {
	{
		grep -A40 'kernel (GPU vs CPU' "$out/kernels.log" 2>/dev/null | sed -n '1,/^---/p'
		grep -E '^max loss rel err|matches|does not match' "$out/train.log" 2>/dev/null
		grep -E '^pretrain ' "$out/pretrain.txt" 2>/dev/null
		grep -E '^(moved run|checkpoint move)' "$out/move.txt" 2>/dev/null
		grep -E '^nccl ' "$out/nccl.txt" 2>/dev/null
		echo
		printf '%-26s %6s %5s %14s %14s %7s\n' model batch math "mochi img/s" "torch img/s" ratio
		local mode files tag row name batch key m t r
		for mode in fp32 tf32; do
			files=("$out/bench.txt" "$out/torch.txt") tag=""
			[ "$mode" = tf32 ] && files=("$out/bench-tf32.txt" "$out/torch-tf32.txt") tag=" tf32"
			for row in "resnet18-cifar 32x32|256|resnet18-cifar 32x32 batch 256" "resnet50 224x224|64|resnet50 224x224 batch 64"; do
				IFS='|' read -r name batch key <<<"$row"
				m=$(ips "${files[0]}" "mochi $key$tag ")
				t=$(ips "${files[1]}" "torch $key$tag:")
				r=$(awk -v m="${m:-0}" -v t="${t:-0}" 'BEGIN { if (m > 0 && t > 0) printf "%.2f", m / t; else print "-" }')
				printf '%-26s %6s %5s %14s %14s %7s\n' "$name" "$batch" "$mode" "${m:--}" "${t:--}" "$r"
			done
		done
	} >"$out/table.txt"
}

has_torch() { [ -n "$py" ] && "$py" -c 'import torch, torchvision; assert torch.cuda.is_available()' 2>/dev/null; }

step_kernels() {
	ldd "$gpu/cuda.test" | grep -E 'cublas|cuda' | tee -a "$out/check.log"
	limit "$cap_kernels" "$gpu/cuda.test" -test.v -test.count=1 -test.timeout=$((cap_kernels - 5))s >"$out/kernels.log" 2>&1
}

step_train() {
	limit "$cap_train" "$gpu/mochi-gpu" bench --device cuda --compare-cpu --model resnet18-cifar \
		--width 16 --batch 32 --bn-groups 4 --steps 20 >"$out/train.log" 2>&1
}

# step_pretrain: the two runs share the seed, so the same weights, batches,
# augmentations, ShuffleBN permutations and mixing plans; they differ only by
# float32 rounding (GEMM and reduction order, as in step train), compounded
# over 20 SGD steps and through the top-N selection, where rounding can swap
# two nearly tied similarities and so mix another queue entry. Hence 1e-2,
# not 1e-4.
step_pretrain() {
	local dev r rc=0
	rm -rf "$out/pretrain-cpu" "$out/pretrain-cuda" "$out/pretrain.txt"
	for dev in cpu cuda; do
		limit "$cap_pretrain" "$gpu/mochi-gpu" pretrain --config "$gpu/check.yaml" --device "$dev" \
			--output-dir "$out/pretrain-$dev" >"$out/pretrain-$dev.log" 2>&1
		r=$?
		if [ "$r" != 0 ]; then
			rc=$(worst "$rc" "$r")
			echo "gpu-check: pretrain --device $dev failed; last lines of $out/pretrain-$dev.log:"
			tail -5 "$out/pretrain-$dev.log"
		fi
	done
	[ "$rc" = 0 ] || return "$rc"
	python3 - "$out/pretrain-cpu" "$out/pretrain-cuda" <<'PY' >"$out/pretrain.txt" 2>&1
import json, sys

def run(d):
    steps, ips = {}, None
    with open(d + "/metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if m.get("kind") == "step":
                steps[m["step"]] = m["loss"]
    with open(d + "/summary.json") as f:
        ips = json.load(f)["images_per_sec"]
    return steps, ips

(cpu, cpu_ips), (gpu, gpu_ips) = run(sys.argv[1]), run(sys.argv[2])
print(f"{'step':>4} {'cpu loss':>12} {'gpu loss':>12} {'rel diff':>10}")
worst = 0.0
for s in sorted(cpu):
    if s not in gpu:
        print(f"{s:>4} {cpu[s]:>12.6f} {'missing':>12}")
        worst = float("inf")
        continue
    d = abs(gpu[s] - cpu[s]) / max(abs(cpu[s]), 1e-12)
    d = d if d == d else float("inf")  # NaN counts as a failure
    worst = max(worst, d)
    print(f"{s:>4} {cpu[s]:>12.6f} {gpu[s]:>12.6f} {d:>10.2e}")
if len(gpu) != len(cpu) or not cpu:
    worst = float("inf")
ok = worst <= 1e-2
print(f"pretrain max loss rel diff {worst:.3g} over {len(cpu)} steps (tolerance 1e-2): {'matches' if ok else 'does not match'}")
print(f"pretrain images/s: cpu {cpu_ips:.0f}, cuda {gpu_ips:.0f}")
sys.exit(0 if ok else 1)
PY
}

step_move() {
	# The cap goes to move-check's own timeouts: a timeout around the script
	# would leave its running child behind in another process group.
	MOVE_TIMEOUT=$cap_move bash scripts/move-check.sh "$gpu/mochi-gpu" cpu cuda "$out/move" "$gpu/check.yaml" >"$out/move.txt" 2>&1
}

# step_nccl: NCCL on one GPU. nccl.test runs with CI=true, so that a
# missing libnccl.so.2 fails it instead of skipping. Then the lone run and
# the 1-rank mpirun run of check.yaml compute the same thing — a sum over
# one rank and a gather of one are copies — so their losses must agree:
# bit for bit on a deterministic GPU (no float atomics in mochi's kernels;
# cuBLAS repeats itself on one GPU), 1e-6 relative allowed.
step_nccl() {
	local a b c args=(-np 1)
	rm -rf "$out/nccl-alone" "$out/nccl-mpirun" "$out/nccl.txt"
	CI=true limit "$cap_nccl" "$gpu/nccl.test" -test.v -test.count=1 -test.timeout=$((cap_nccl - 5))s >"$out/nccl.log" 2>&1
	a=$?
	[ "$a" = 0 ] || { echo "gpu-check: nccl.test failed; last lines of $out/nccl.log:"; tail -5 "$out/nccl.log"; }
	if ! command -v mpirun >/dev/null 2>&1; then
		echo "nccl pretrain not run: mpirun not found (apt-get install openmpi-bin)" | tee -a "$out/nccl.txt"
		return "$(worst "$a" 1)"
	fi
	[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
	limit "$cap_pretrain" "$gpu/mochi-gpu" pretrain --config "$gpu/check.yaml" --device cuda \
		--output-dir "$out/nccl-alone" >"$out/nccl-alone.log" 2>&1
	b=$?
	limit "$cap_nccl" mpirun "${args[@]}" "$gpu/mochi-gpu" pretrain --config "$gpu/check.yaml" --device cuda \
		--output-dir "$out/nccl-mpirun" >"$out/nccl-mpirun.log" 2>&1
	c=$?
	if [ "$b" != 0 ] || [ "$c" != 0 ]; then
		echo "gpu-check: nccl pretrain failed (alone: exit $b, mpirun -np 1: exit $c); last lines of $out/nccl-mpirun.log:"
		tail -5 "$out/nccl-mpirun.log"
		return "$(worst "$a" "$b" "$c")"
	fi
	if ! grep -q '^NCCL .* on the GPU' "$out/nccl-mpirun.log"; then
		{
			echo "nccl pretrain: the mpirun log does not say that NCCL carried the collectives:"
			grep -i nccl "$out/nccl-mpirun.log" || echo "(no line mentions NCCL)"
		} | tee -a "$out/nccl.txt"
		return 1
	fi
	grep '^NCCL ' "$out/nccl-mpirun.log" | sed 's/^/nccl pretrain: /' >>"$out/nccl.txt"
	python3 - "$out/nccl-alone" "$out/nccl-mpirun" <<'PY' >>"$out/nccl.txt" 2>&1
import json, sys

def losses(d):
    with open(d + "/metrics.jsonl") as f:
        return {m["step"]: m["loss"] for m in map(json.loads, f) if m.get("kind") == "step"}

alone, ranked = losses(sys.argv[1]), losses(sys.argv[2])
worst = 0.0 if alone and alone.keys() == ranked.keys() else float("inf")
for s in sorted(alone.keys() & ranked.keys()):
    d = abs(ranked[s] - alone[s]) / max(abs(alone[s]), 1e-12)
    worst = max(worst, d if d == d else float("inf"))
same = worst == 0.0
ok = worst <= 1e-6
print(f"nccl pretrain: {len(alone)} steps alone vs mpirun -np 1 with NCCL: max loss rel diff {worst:.3g}"
      f" ({'bit-identical' if same else 'tolerance 1e-6'}): {'matches' if ok else 'does not match'}")
sys.exit(0 if ok else 1)
PY
	return "$(worst "$a" $?)"
}

# step_bench MODE: mochi's two steps, then PyTorch's, in fp32 or with TF32
# convolutions (run.tf32, --tf32) against PyTorch with cuDNN's default TF32
# convolutions; matrix products stay fp32 on both.
step_bench() {
	local flag="" sfx="" a b c=0
	[ "$1" = tf32 ] && flag=--tf32 sfx=-tf32
	: >"$out/bench$sfx.txt"
	: >"$out/torch$sfx.txt"
	limit "$cap_bench" "$gpu/mochi-gpu" bench --device cuda $flag --model resnet18-cifar --size 32 --batch 256 \
		--warmup 5 --steps 30 >>"$out/bench$sfx.txt" 2>&1
	a=$?
	limit $((cap_bench + 5)) "$gpu/mochi-gpu" bench --device cuda $flag --model resnet50 --size 224 --batch 64 \
		--warmup 3 --steps 20 >>"$out/bench$sfx.txt" 2>&1
	b=$?
	if has_torch; then
		limit "$cap_torch" "$py" scripts/torch_gpu_bench.py $flag >"$out/torch$sfx.txt" 2>&1
		c=$?
	else
		echo "gpu-check: no python3 with torch, torchvision and CUDA; PyTorch column left empty" | tee -a "$out/check.log"
	fi
	return "$(worst $a $b $c)"
}

# step_profile: where the fp32 step's time goes, kernel by kernel (a sync
# after each).
step_profile() {
	local a
	limit "$cap_profile" "$gpu/mochi-gpu" bench --device cuda --model resnet18-cifar --size 32 --batch 256 \
		--warmup 3 --steps 5 --profile >"$out/profile.txt" 2>&1
	a=$?
	limit $((cap_profile + 10)) "$gpu/mochi-gpu" bench --device cuda --model resnet50 --size 224 --batch 64 \
		--warmup 2 --steps 3 --profile >>"$out/profile.txt" 2>&1
	return "$(worst "$a" $?)"
}

for step in "${steps[@]}"; do
	echo "== $step" | tee -a "$out/check.log"
	t0=$SECONDS
	case $step in
	kernels) step_kernels ;;
	train) step_train ;;
	pretrain) step_pretrain ;;
	move) step_move ;;
	nccl) step_nccl ;;
	bench | tf32) step_bench "$step" ;;
	profile) step_profile ;;
	esac
	record "$step" $? "$t0"
	write_table
done
cat "$out/table.txt"
echo "gpu-check: overall $([ $status = 0 ] && echo PASS || echo FAIL)" | tee -a "$out/check.log"
exit $status
