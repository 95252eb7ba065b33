# shellcheck shell=bash
# gpu-env.sh is sourced (`. scripts/gpu-env.sh`) by the scripts that run the
# GPU binaries on a GPU machine (gpu-check.sh, gpu-mochi-cost.sh). It finds
# the driver's libcuda.so.1 and a libcublas the driver can run, and puts
# them first on LD_LIBRARY_PATH.
#
# The binaries need "libcublas.so" without a version (scripts/build-gpu.sh),
# so one build runs on CUDA 12 and CUDA 13 machines: gpu_env links the
# chosen libcublas.so.N to $gpu/lib/libcublas.so. libcublas.so.N needs a
# driver for CUDA N or newer, so N is the highest of 13 and 12 that the
# driver supports (nvidia-smi's "CUDA Version"; 13, then 12, when nvidia-smi
# says nothing) and that is installed: under $MOCHI_CUDA_LIBS (folders,
# colon-separated), the nvidia/ folder of python3's packages (PyTorch's
# wheels), a CUDA toolkit or the system's library folders.
# MOCHI_CUBLAS=/path/to/libcublas.so.N takes that file instead.
#
# gpu_dirs SCRIPT_DIR moves to the repository root, the folder above the
# calling script's (scripts/ or its copy in .gpu/), and sets gpu (.gpu) and
# out ($OUT, or .gpu/out when OUT is unset), which it creates.
#
# gpu_env GPU_DIR prints what it chose, or an error, and returns non-zero
# when a library is missing. It sets py (a python3 with torch when one is
# found, else python3 or empty), cublas_file, nccl_file (libnccl.so.2, or
# empty: NCCL is optional) and LD_LIBRARY_PATH.

gpu_dirs() {
	cd "$1/.." || return 1
	gpu=.gpu
	out=${OUT:-$gpu/out}
	mkdir -p "$out"
}

# find_lib prints the first file named $1 in, else under, the folders given
# after it, in their order.
find_lib() {
	local name=$1 dir f
	shift
	for dir in "$@"; do
		[ -d "$dir" ] || continue
		f=$dir/$name
		[ -e "$f" ] || f=$(find -L "$dir" -maxdepth 6 -name "$name" -print -quit 2>/dev/null)
		if [ -n "$f" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# driver_cuda_major prints the CUDA major version the driver supports, or
# nothing.
driver_cuda_major() {
	command -v nvidia-smi >/dev/null 2>&1 || return 0
	nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\).*/\1/p' | head -1
}

gpu_env() {
	local gpu=$1 roots=() nv major v versions cuda lt dir
	py=""
	for p in /opt/torch/.venv/bin/python3 python3; do
		if command -v "$p" >/dev/null 2>&1; then
			py=$p
			break
		fi
	done
	if [ -n "${MOCHI_CUDA_LIBS:-}" ]; then
		IFS=: read -r -a roots <<<"$MOCHI_CUDA_LIBS"
	fi
	if [ -n "$py" ]; then
		nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__) if nvidia.__file__ else list(nvidia.__path__)[0])' 2>/dev/null || true)
		[ -n "$nv" ] && roots+=("$nv")
	fi
	roots+=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib)

	major=$(driver_cuda_major)
	if [ -z "$major" ]; then
		versions="13 12"
	elif [ "$major" -ge 13 ]; then
		versions="13 12"
	elif [ "$major" = 12 ]; then
		versions="12"
	else
		echo "gpu-env: the driver supports CUDA $major (nvidia-smi); mochi's GPU build needs a driver for CUDA 12 or 13" >&2
		return 1
	fi
	cublas_file=${MOCHI_CUBLAS:-}
	if [ -n "$cublas_file" ] && [ ! -e "$cublas_file" ]; then
		echo "gpu-env: MOCHI_CUBLAS=$cublas_file does not exist" >&2
		return 1
	fi
	if [ -z "$cublas_file" ]; then
		for v in $versions; do
			cublas_file=$(find_lib "libcublas.so.$v" "${roots[@]}") && break
		done
	fi
	if [ -z "$cublas_file" ]; then
		echo "gpu-env: no libcublas.so.${versions// /, .so.} under ${roots[*]} (driver: CUDA ${major:-unknown}): install nvidia-cublas-cu12 (pip) or a CUDA 12/13 toolkit, or set MOCHI_CUDA_LIBS or MOCHI_CUBLAS" >&2
		return 1
	fi
	cuda=$(find_lib libcuda.so.1 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib) || {
		echo "gpu-env: libcuda.so.1 (the NVIDIA driver) not found" >&2
		return 1
	}
	# libcublas.so.N loads libcublasLt.so.N; a wheel finds it through its
	# $ORIGIN, which the link in $gpu/lib hides, so its folder goes on the path.
	v=${cublas_file##*/libcublas.so.}
	v=${v%%.*}
	dir=$(dirname "$cublas_file")
	lt=$(find_lib "libcublasLt.so.$v" "$dir" "${roots[@]}") || lt=$cublas_file
	mkdir -p "$gpu/lib"
	ln -sfn "$(realpath "$cublas_file")" "$gpu/lib/libcublas.so"
	LD_LIBRARY_PATH="$(realpath "$gpu/lib"):$dir:$(dirname "$lt"):$(dirname "$cuda")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	# NCCL is optional: without it a GPU run under mpirun moves gradients
	# and keys through host memory (and gpu-check.sh's nccl step fails).
	nccl_file=$(find_lib libnccl.so.2 "${roots[@]}") || nccl_file=""
	if [ -n "$nccl_file" ]; then
		LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$nccl_file")"
	fi
	export LD_LIBRARY_PATH
	echo "gpu-env: driver CUDA ${major:-unknown (no nvidia-smi)}; $gpu/lib/libcublas.so -> $cublas_file; libcuda.so.1 in $(dirname "$cuda"); libnccl.so.2: ${nccl_file:-not found (pip install nvidia-nccl-cu12, or set MOCHI_CUDA_LIBS)}"
}
