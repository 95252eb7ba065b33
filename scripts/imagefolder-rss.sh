#!/usr/bin/env bash
# scripts/imagefolder-rss.sh — peak RSS of pretraining on a streamed ImageFolder
# as the dataset grows: it must not grow with the number of images.
#
#   scripts/imagefolder-rss.sh [N ...]        (default: 5000 50000)
#
# For each N, writes N synthetic JPEGs (SIZE, default 500x375, quality 90, 100
# classes; scripts/make-imagefolder.py) into $DIR/N (default
# /tmp/mochi-rss/N; kept for the next run), then pretrains one epoch of a
# width-16 ResNet-18 (ImageNet stem) at data.image_size 64 on it — configs/ci.yaml
# otherwise: batch 32, K 256, MoCHi from epoch 0, 2 workers — with the kNN
# monitor off (its feature bank is the one part that grows with the data, by
# D floats an image), and prints the peak RSS of the process (getrusage).
# Needs bin/mochi's dependencies, python3-pil and python3-numpy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"

sizes=("$@")
((${#sizes[@]})) || sizes=(5000 50000)
base=${DIR:-/tmp/mochi-rss}
python=/usr/bin/python3
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/mochi" ./cmd/mochi

for n in "${sizes[@]}"; do
	dir=$base/$n
	if [[ ! -d $dir/train ]]; then
		echo "writing $n JPEGs into $dir" >&2
		"$python" scripts/make-imagefolder.py "$dir" --train "$n" --classes 100 --size "${SIZE:-500x375}" --quality 90
	fi
	"$python" - "$bin/mochi" "$dir" "$n" <<'PY'
import resource, subprocess, sys, tempfile, time
mochi, data, n = sys.argv[1:4]
with tempfile.TemporaryDirectory() as out:
    cmd = [mochi, "pretrain", "--config", "configs/ci.yaml", "--output-dir", out,
           "--set", "data.kind=imagefolder", "--set", "data.path=" + data, "--set", "data.limit=0",
           "--set", "data.image_size=64", "--set", "model.width=16", "--set", "model.stem=imagenet",
           "--set", "eval.knn_every=0", "--set", "optim.epochs=1", "--set", "mochi.mix_start_epoch=0"]
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("%6s images: peak RSS %.0f MiB (one epoch, %.0f s)" % (n, rss, time.time() - start))
PY
done
