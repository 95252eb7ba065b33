package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
)

// loaderTrialImages is how many images the dry run decodes and augments to
// project the loader's throughput.
const loaderTrialImages = 256

// gpuResNet50PairsPerSec is the two-view pairs per second one GPU trains
// ResNet-50 at 224² in this project: README's H200 figure of 780 images/s
// for a training step (forward and backward), ×3/4 for MoCo's pair (query
// forward and backward, key forward, a third of the former). It sets the
// rate the loader must reach to keep such a GPU busy.
const gpuResNet50PairsPerSec = 780 * 3 / 4

// writeLoaderPlan adds the streaming loader's lines to the dry-run plan of an
// ImageFolder: size on disk, memory bound, and a projected throughput
// measured on loaderTrialImages images with the configured workers, with a
// warning when it cannot keep a GPU busy.
func writeLoaderPlan(w io.Writer, cfg *config.Config, p *plan) error {
	folder, ok := p.train.(*data.ImageFolder)
	if !ok {
		return nil
	}
	workers := cfg.Data.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	est, err := data.MeasureLoader(folder, p.augment, loaderTrialImages, workers)
	if err != nil {
		return fmt.Errorf("loader trial on %s: %w", folder.Name(), err)
	}
	b := cfg.Optim.Batch
	mem := data.LoaderMemory(p.augment, b, workers, cfg.Data.Prefetch, est)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("loader", "streamed: %s on disk in %d images (mean %s each), decoded by %d workers with %s",
		bytesText(folder.Bytes()), folder.Len(), bytesText(folder.Bytes()/int64(max(folder.Len(), 1))), workers, data.JPEGDecoder)
	line("", "memory bound %s: %d batches of 2×%d×3×%d² float32 in flight plus each worker's file and decoded image (largest tried: %s, %s), whatever the number of images",
		bytesText(mem), workers+cfg.Data.Prefetch+2, b, p.cropSize, bytesText(int64(est.MaxFileBytes)), bytesText(int64(est.MaxDecodedBytes)))
	line("", "projected %.0f pairs/s (%.1f per worker, measured on %d images here): %.2f s of loading per step of %d",
		est.PairsPerSec, est.PairsPerSec/float64(workers), est.Images, float64(b)/est.PairsPerSec, b)
	if warn := loaderWarning(cfg, p.cropSize, est.PairsPerSec, workers); warn != "" {
		line("warning", "%s", warn)
	}
	return nil
}

// loaderWarning says, for ResNet-50 on a GPU, when the loader's pairs/s
// with the given workers is below what the GPU trains at, and how many
// workers would do; "" otherwise (a CPU step is far slower than its loader).
func loaderWarning(cfg *config.Config, cropSize int, pairsPerSec float64, workers int) string {
	if cfg.Run.Device != "cuda" || cfg.Model.Backbone != "resnet50" {
		return ""
	}
	// the model's work scales with the pixels of a view
	gpu := gpuResNet50PairsPerSec * (224.0 / float64(cropSize)) * (224.0 / float64(cropSize))
	if pairsPerSec >= gpu {
		return ""
	}
	need := int(gpu/(pairsPerSec/float64(workers))) + 1
	return fmt.Sprintf("the loader, not the model, will bound the step: one GPU trains ResNet-50 at %d² at about %.0f pairs/s (from an H200's 224² figure in this project), the loader makes %.0f; give it about %d workers (data.workers, one core each)",
		cropSize, gpu, pairsPerSec, need)
}

// bytesText writes n bytes in KB, MB or GB (powers of 1000).
func bytesText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.0f KB", float64(n)/1e3)
	}
}
