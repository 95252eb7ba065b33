package data

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// LoaderEstimate is what a short trial of the two-view loader on an
// ImageFolder measured.
type LoaderEstimate struct {
	// Images is how many images the trial decoded and augmented (two views each).
	Images int
	// Workers is the number of goroutines it used.
	Workers int
	// PairsPerSec is the two-view pairs it made per second.
	PairsPerSec float64
	// MaxFileBytes and MaxDecodedBytes are the largest file and decoded
	// image (3 bytes a pixel, after any DCT reduction) among them.
	MaxFileBytes, MaxDecodedBytes int
	// MaxDecodedHeight is the tallest decoded image's height.
	MaxDecodedHeight int
}

// MeasureLoader decodes and augments (two views each) n images of d spread
// evenly over the index, with workers goroutines (0: one per core), as the
// loader's workers do, and times it.
func MeasureLoader(d *ImageFolder, aug AugmentConfig, n, workers int) (LoaderEstimate, error) {
	if err := aug.Validate(3); err != nil {
		return LoaderEstimate{}, err
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n = min(n, d.Len())
	workers = min(workers, n)
	est := LoaderEstimate{Images: n, Workers: workers}
	errs := make([]error, workers)
	maxFile, maxDecoded, maxHeight := make([]int, workers), make([]int, workers), make([]int, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			a, err := NewAugmenter(aug, 3, aug.CropSize, aug.CropSize)
			if err != nil {
				errs[w] = err
				return
			}
			src := &viewSource{d: d}
			view := a.OutputLen()
			q, k := make([]float32, view), make([]float32, view)
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < n; i += workers {
				if _, err := src.twoViews(q, k, i*d.Len()/n, a, rng); err != nil {
					errs[w] = err
					return
				}
				maxFile[w] = max(maxFile[w], len(src.dec.buf))
				maxDecoded[w] = max(maxDecoded[w], len(src.dec.img.pix))
				maxHeight[w] = max(maxHeight[w], src.dec.img.h)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return est, err
		}
	}
	for w := range workers {
		est.MaxFileBytes = max(est.MaxFileBytes, maxFile[w])
		est.MaxDecodedBytes = max(est.MaxDecodedBytes, maxDecoded[w])
		est.MaxDecodedHeight = max(est.MaxDecodedHeight, maxHeight[w])
	}
	est.PairsPerSec = float64(n) / elapsed.Seconds()
	return est, nil
}

// LoaderMemory is the most memory a TwoViewLoader of batch B with the given
// workers and prefetch holds for an ImageFolder, in bytes: the batches in
// flight, waiting or recycled (workers + prefetch + 2, two float32 views of
// B×3×S×S each) and each worker's file buffer, decoded image and resampling
// rows. It does not grow with the number of images.
func LoaderMemory(aug AugmentConfig, batch, workers, prefetch int, est LoaderEstimate) int64 {
	s := int64(aug.CropSize)
	batches := int64(workers+prefetch+2) * 2 * int64(batch) * 3 * s * s * 4
	rows := int64(est.MaxDecodedHeight) * s * 3 * 4 // the resampler's horizontal pass
	perWorker := int64(est.MaxFileBytes) + int64(est.MaxDecodedBytes) + rows + 3*s*s*4
	return batches + int64(workers)*perWorker
}
