#!/usr/bin/env bash
# scripts/setup.sh — prepare this machine to build, test and run mochi. Idempotent:
# a second run installs nothing and only rebuilds bin/mochi.
#
#   scripts/setup.sh          apt packages (when missing), Go modules, bin/mochi
#   scripts/setup.sh build    bin/mochi only (what `make build` runs)
#
# Environment:
#   MOCHI_SETUP_TORCH=1   also install the references that the parity tests and
#                         the benchmarks in scripts/ compare with: Debian's
#                         PyTorch 1.13 CPU and torchvision (python3-torch,
#                         python3-torchvision) and python3-sklearn, whose two
#                         sample photographs a JPEG test decodes. Without them
#                         those tests skip; CI (.ci/run) installs them and
#                         fails on any such skip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Apt packages: cgo's C compiler for the OpenBLAS CPU backend, OpenBLAS,
# oneDNN (the CPU convolutions, cpu.conv), libjpeg-turbo's TurboJPEG API for
# the ImageFolder loader, Fashion-MNIST (/usr/share/datasets/fashion-mnist),
# make for the Makefile, git for the version stamp, OpenMPI for `mpirun -np P
# bin/mochi …` and pkg/dist's tests (mpirun; mpicc and mpi.h to check
# pkg/dist's declarations).
packages=(gcc libc6-dev make git ca-certificates libopenblas-dev libdnnl-dev libturbojpeg0-dev dataset-fashion-mnist openmpi-bin libopenmpi-dev)
if [[ "${MOCHI_SETUP_TORCH:-0}" == 1 ]]; then
	packages+=(python3 python3-torch python3-torchvision python3-pil python3-sklearn)
fi

install_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		log "apt packages present: ${packages[*]}"
		return
	fi
	if ! command -v apt-get >/dev/null; then
		log "missing packages ${missing[*]} and no apt-get: install their equivalents by hand"
		exit 1
	fi
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		sudo=(sudo)
	fi
	log "installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# find_go puts a Go toolchain on PATH; go.mod asks for Go 1.26 (Debian's golang
# package is older).
find_go() {
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	if ! command -v go >/dev/null; then
		log "no Go toolchain: install Go 1.26 or newer from https://go.dev/dl (into /usr/local/go)"
		exit 1
	fi
}

build() {
	local version commit
	version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
	commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	mkdir -p bin
	go build -trimpath -ldflags "-X main.version=$version -X main.commit=$commit" -o bin/mochi ./cmd/mochi
	log "built bin/mochi ($version)"
}

case "${1:-all}" in
all)
	install_packages
	find_go
	go mod download
	build
	bin/mochi version
	;;
build)
	find_go
	build
	;;
*)
	log "unknown argument $1: use no argument (full setup) or build"
	exit 2
	;;
esac
