#!/usr/bin/env bash
# cuda-setup.sh installs the tools that build mochi's GPU binary on a Debian
# bookworm machine without a GPU: nvcc, the CUDA 11.8 headers, libcuda (for
# linking) and libcublas.so.11 from Debian's contrib/non-free components
# (package nvidia-cuda-toolkit), plus patchelf. See docs/GPU.md, "CUDA build
# facts".
#
# Idempotent: it does nothing when nvcc and patchelf are already present.
# Needs root (or sudo). Usage: bash scripts/cuda-setup.sh
set -euo pipefail

if command -v nvcc >/dev/null 2>&1 && command -v patchelf >/dev/null 2>&1 \
	&& [ -e /usr/include/cuda.h ] && [ -e /usr/include/cublas_v2.h ]; then
	echo "cuda-setup: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), headers and patchelf already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi

# Reuse the mirror of the existing Debian sources (deb822 or one-line format)
# so the contrib/non-free packages come from the same snapshot as main.
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
	mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

codename=bookworm
if [ -r /etc/os-release ]; then
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
fi

list=/etc/apt/sources.list.d/mochi-cuda.sources
want="Types: deb
URIs: $mirror
Suites: $codename $codename-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ ! -f "$list" ] || [ "$(cat "$list")" != "$want" ]; then
	echo "cuda-setup: writing $list (mirror $mirror, $codename contrib non-free)"
	printf '%s\n' "$want" | $SUDO tee "$list" >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit patchelf
echo "cuda-setup: installed nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
