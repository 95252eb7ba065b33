package data

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user+system CPU time of the process so far: a figure that,
// unlike wall time, holds when other jobs share the cores.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainEpochs resets b's timer and reads b.N epochs of l, returning the pairs
// read and the CPU time spent.
func drainEpochs(b *testing.B, l *TwoViewLoader) (pairs int, cpu time.Duration) {
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for e := range b.N {
		it := l.Epoch(e)
		for bt, ok := it.Next(); ok; bt, ok = it.Next() {
			pairs += bt.B
			l.Release(bt)
		}
		it.Close()
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
	}
	return pairs, cpuTime(b) - cpu0
}

// BenchmarkTwoViewPipeline measures two-view pairs per second through the
// whole pipeline (shuffle, MoCo-v2 augmentation of both views, batching) on an
// in-memory dataset, with 2 workers as on the 2-core CI machine. cpu-µs/pair is the CPU time
// per pair over all threads; 2 cores give at most 2e6/cpu-µs pairs/s.
func BenchmarkTwoViewPipeline(b *testing.B) {
	const (
		images   = 2048
		batch    = 256
		workers  = 2
		prefetch = 4
	)
	for _, tc := range []struct {
		name          string
		c, src, out   int // channels, stored side, crop side
		images, batch int
	}{
		{"28x28-gray", 1, 28, 28, images, batch},
		{"32x32-rgb", 3, 32, 32, images, batch},
		// the ImageNet crop: gpu-mochi-cost.sh's 28×28 images upscaled, and
		// a 256×256 photo; fewer images, these are 60× the pixels
		{"28x28-gray-to-224", 1, 28, 224, 256, 64},
		{"256x256-rgb-to-224", 3, 256, 224, 128, 64},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ds := syntheticDataset(b, tc.images, tc.c, tc.src)
			l, err := NewTwoViewLoader(ds, MoCoV2Augment(tc.c, tc.out), tc.batch, 1, workers, prefetch)
			if err != nil {
				b.Fatal(err)
			}
			pairs, cpu := drainEpochs(b, l)
			b.ReportMetric(float64(pairs)/b.Elapsed().Seconds(), "pairs/s")
			b.ReportMetric(float64(cpu)/1e3/float64(pairs), "cpu-µs/pair")
		})
	}
}

// benchFolder is the ImageFolder split BenchmarkImageFolderPairs reads:
// $MOCHI_BENCH_IMAGEFOLDER (a folder holding train/, e.g. written by
// scripts/make-imagefolder.py), else 64 generated 500×375 quality-90 JPEGs.
func benchFolder(b *testing.B) string {
	if dir := os.Getenv("MOCHI_BENCH_IMAGEFOLDER"); dir != "" {
		return dir
	}
	root := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 64 {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, picture(rng, 500, 375), &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(root, "train", fmt.Sprintf("c%d", i%4), fmt.Sprintf("%03d.jpg", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkImageFolderPairs measures two-view MoCo-v2 pairs per second at
// 224² through the streaming loader: read, decode (libjpeg-turbo, or Go's
// decoder under -tags purego), crop, resize, augment, batch of 64, with
// $MOCHI_BENCH_WORKERS workers (default: one per core). pairs/s/core divides
// by the workers; cpu-µs/pair is the CPU time per pair over all threads.
// scripts/loader-bench.sh runs it against torchvision's DataLoader.
func BenchmarkImageFolderPairs(b *testing.B) {
	ds, err := Open(Spec{Kind: "imagefolder", Path: benchFolder(b), Split: "train", ImageSize: 224})
	if err != nil {
		b.Fatal(err)
	}
	workers := runtime.GOMAXPROCS(0)
	if w := os.Getenv("MOCHI_BENCH_WORKERS"); w != "" {
		if workers, err = strconv.Atoi(w); err != nil || workers < 1 {
			b.Fatalf("MOCHI_BENCH_WORKERS=%q: want a positive count", w)
		}
	}
	const batch = 64
	l, err := NewTwoViewLoader(ds, MoCoV2Augment(3, 224), batch, 1, workers, 2)
	if err != nil {
		b.Fatal(err)
	}
	pairs, cpu := drainEpochs(b, l)
	rate := float64(pairs) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "pairs/s")
	b.ReportMetric(rate/float64(workers), "pairs/s/core")
	b.ReportMetric(float64(cpu)/1e3/float64(pairs), "cpu-µs/pair")
}
