#!/usr/bin/env bash
# gpu-check.sh runs on a GPU machine, from the repository root, with .gpu/
# built by scripts/build-gpu.sh carried there. No Go toolchain or network is
# needed. It finishes well within 8 minutes and writes its logs to $OUT (or
# .gpu/out when OUT is unset).
#
#   1. every GPU kernel against the conformance suite and its CPU twin
#      (relative error table, ≤ 1e-4 in float32)
#   2. 20 training steps on CPU and GPU from the same weights and batch
#      (mochi-gpu bench --compare-cpu: losses per step, final weights)
#   3. images/s for ResNet-18 (CIFAR, batch 256) and ResNet-50 (224², batch
#      64) with mochi-gpu bench, against scripts/torch_gpu_bench.py on the
#      same GPU when python3 has torch, in fp32 and again with TF32
#      convolutions (--tf32 on both sides); the table is printed last;
#      profile.txt holds the time per kernel of both fp32 steps
#   4. MoCHi pretraining, 20 steps of `mochi-gpu pretrain` on the CPU and on
#      the GPU from the same seed (.gpu/check.yaml: the whole step, loss and
#      mixing included, on each device): per-step loss table, max relative
#      difference ≤ 1e-2, and each run's images/s
#   5. a run moves between CPU and GPU through its checkpoint
#      (scripts/move-check.sh: two epochs straight on the CPU, and stopped
#      after one and resumed on the other device, both ways; every step's
#      loss within 1e-2 of the straight run's)
set -uo pipefail
cd "$(dirname "$0")/.."
gpu=.gpu
out=${OUT:-$gpu/out}
mkdir -p "$out"
status=0

# find_lib prints the folder of the first file named $1 under the folders
# given after it.
find_lib() {
	local name=$1 dir f
	shift
	for dir in "$@"; do
		[ -d "$dir" ] || continue
		f=$(find -L "$dir" -maxdepth 6 -name "$name" -print -quit 2>/dev/null)
		if [ -n "$f" ]; then
			dirname "$f"
			return 0
		fi
	done
	return 1
}

py=""
for p in /opt/torch/.venv/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1; then
		py=$p
		break
	fi
done
roots=()
if [ -n "$py" ]; then
	nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__) if nvidia.__file__ else list(nvidia.__path__)[0])' 2>/dev/null || true)
	[ -n "$nv" ] && roots+=("$nv")
fi
roots+=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib)

cublas_dir=$(find_lib libcublas.so.13 "${roots[@]}") || {
	echo "gpu-check: libcublas.so.13 not found under ${roots[*]}: install nvidia-cublas (pip) or a CUDA 13 toolkit" | tee "$out/check.log"
	exit 1
}
cuda_dir=$(find_lib libcuda.so.1 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib) || {
	echo "gpu-check: libcuda.so.1 (the NVIDIA driver) not found" | tee "$out/check.log"
	exit 1
}
lt_dir=$(find_lib libcublasLt.so.13 "$cublas_dir" "${roots[@]}") || lt_dir=$cublas_dir
export LD_LIBRARY_PATH="$cublas_dir:$lt_dir:$cuda_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

{
	echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "gpu-check: libcublas.so.13 in $cublas_dir, libcuda.so.1 in $cuda_dir"
	nvidia-smi || echo "gpu-check: nvidia-smi failed"
} 2>&1 | tee "$out/check.log"

echo "== step 1: kernels (conformance suite + GPU vs CPU table)" | tee -a "$out/check.log"
if [ ! -x "$gpu/cuda.test" ]; then
	echo "gpu-check: $gpu/cuda.test missing: run bash scripts/build-gpu.sh on the build machine and carry .gpu/" | tee -a "$out/check.log"
	exit 1
fi
ldd "$gpu/cuda.test" | grep -E 'cublas|cuda' | tee -a "$out/check.log"
timeout 300 "$gpu/cuda.test" -test.v -test.count=1 -test.timeout=290s 2>&1 | tee "$out/kernels.log"
rc=${PIPESTATUS[0]}
echo "gpu-check: step 1 exit status $rc" | tee -a "$out/check.log"
[ "$rc" = 0 ] || status=1

echo "== step 2: 20 training steps, CPU vs GPU (same weights, same batch)" | tee -a "$out/check.log"
if [ ! -x "$gpu/mochi-gpu" ]; then
	echo "gpu-check: $gpu/mochi-gpu missing: run bash scripts/build-gpu.sh and carry .gpu/" | tee -a "$out/check.log"
	exit 1
fi
timeout 240 "$gpu/mochi-gpu" bench --device cuda --compare-cpu --model resnet18-cifar \
	--width 16 --batch 32 --bn-groups 4 --steps 20 2>&1 | tee "$out/train.log"
rc=${PIPESTATUS[0]}
echo "gpu-check: step 2 exit status $rc" | tee -a "$out/check.log"
[ "$rc" = 0 ] || status=1

echo "== step 3: training images/s, mochi vs PyTorch" | tee -a "$out/check.log"
: >"$out/bench.txt"
timeout 120 "$gpu/mochi-gpu" bench --device cuda --model resnet18-cifar --size 32 --batch 256 \
	--warmup 5 --steps 30 2>&1 | tee -a "$out/bench.txt" || status=1
timeout 180 "$gpu/mochi-gpu" bench --device cuda --model resnet50 --size 224 --batch 64 \
	--warmup 3 --steps 20 2>&1 | tee -a "$out/bench.txt" || status=1
: >"$out/torch.txt"
if [ -n "$py" ] && "$py" -c 'import torch, torchvision; assert torch.cuda.is_available()' 2>/dev/null; then
	timeout 180 "$py" scripts/torch_gpu_bench.py 2>&1 | tee "$out/torch.txt"
else
	echo "gpu-check: no python3 with torch, torchvision and CUDA; PyTorch column left empty" | tee -a "$out/check.log"
fi
# Where the fp32 step's time goes, kernel by kernel (a sync after each).
timeout 120 "$gpu/mochi-gpu" bench --device cuda --model resnet18-cifar --size 32 --batch 256 \
	--warmup 3 --steps 5 --profile >"$out/profile.txt" 2>&1 || status=1
timeout 180 "$gpu/mochi-gpu" bench --device cuda --model resnet50 --size 224 --batch 64 \
	--warmup 2 --steps 3 --profile >>"$out/profile.txt" 2>&1 || status=1
# The same with TF32 convolutions (run.tf32, --tf32), against PyTorch with
# cuDNN's default TF32 convolutions; matrix products stay fp32 on both.
: >"$out/bench-tf32.txt"
timeout 120 "$gpu/mochi-gpu" bench --device cuda --tf32 --model resnet18-cifar --size 32 --batch 256 \
	--warmup 5 --steps 30 2>&1 | tee -a "$out/bench-tf32.txt" || status=1
timeout 180 "$gpu/mochi-gpu" bench --device cuda --tf32 --model resnet50 --size 224 --batch 64 \
	--warmup 3 --steps 20 2>&1 | tee -a "$out/bench-tf32.txt" || status=1
: >"$out/torch-tf32.txt"
if [ -s "$out/torch.txt" ]; then
	timeout 180 "$py" scripts/torch_gpu_bench.py --tf32 2>&1 | tee "$out/torch-tf32.txt"
fi

echo "== step 4: MoCHi pretraining, CPU vs GPU (20 steps, same seed)" | tee -a "$out/check.log"
# The two runs share the seed, so the same weights, batches, augmentations,
# ShuffleBN permutations and mixing plans; they differ only by float32
# rounding (GEMM and reduction order, as in step 2), compounded over 20 SGD
# steps and through the top-N selection, where rounding can swap two nearly
# tied similarities and so mix another queue entry. Hence 1e-2, not 1e-4.
rm -rf "$out/pretrain-cpu" "$out/pretrain-cuda" "$out/pretrain.txt"
step4=ok
for dev in cpu cuda; do
	if ! timeout 150 "$gpu/mochi-gpu" pretrain --config "$gpu/check.yaml" --device "$dev" \
		--output-dir "$out/pretrain-$dev" >"$out/pretrain-$dev.log" 2>&1; then
		echo "gpu-check: step 4: pretrain --device $dev failed; last lines of $out/pretrain-$dev.log:" | tee -a "$out/check.log"
		tail -5 "$out/pretrain-$dev.log" | tee -a "$out/check.log"
		step4=fail
	fi
done
if [ "$step4" = ok ] && ! command -v python3 >/dev/null 2>&1; then
	echo "gpu-check: step 4 needs python3 to compare the metrics files" | tee -a "$out/check.log"
	step4=fail
fi
if [ "$step4" = ok ]; then
	python3 - "$out/pretrain-cpu" "$out/pretrain-cuda" <<'PY' 2>&1 | tee "$out/pretrain.txt"
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
	[ "${PIPESTATUS[0]}" = 0 ] || step4=fail
fi
echo "gpu-check: step 4 $step4" | tee -a "$out/check.log"
[ "$step4" = ok ] || status=1

echo "== step 5: a run moves between CPU and GPU through its checkpoint" | tee -a "$out/check.log"
bash scripts/move-check.sh "$gpu/mochi-gpu" cpu cuda "$out/move" "$gpu/check.yaml" 2>&1 | tee "$out/move.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

# ips prints the images/s of the line of file $1 that holds $2.
ips() { grep -F -- "$2" "$1" | grep -o '[0-9.]* images/s' | head -1 | cut -d' ' -f1; }

# The tables, last: step 1's error table, then throughput.
{
	grep -A40 'kernel (GPU vs CPU' "$out/kernels.log" | sed -n '1,/^---/p'
	grep -E '^max loss rel err|matches|does not match' "$out/train.log"
	grep -E '^pretrain ' "$out/pretrain.txt" 2>/dev/null
	grep -E '^(moved run|checkpoint move)' "$out/move.txt" 2>/dev/null
	echo
	printf '%-26s %6s %5s %14s %14s %7s\n' model batch math "mochi img/s" "torch img/s" ratio
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
} | tee "$out/table.txt"
echo "gpu-check: overall $([ $status = 0 ] && echo PASS || echo FAIL)" | tee -a "$out/check.log"
exit $status
