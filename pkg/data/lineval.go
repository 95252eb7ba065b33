package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
)

// LinearEvalScaleMin is the smallest area fraction of the linear
// evaluation's RandomResizedCrop: torchvision's default, which MoCo's
// main_lincls.py uses.
const LinearEvalScaleMin = 0.08

// LinearEvalAugment returns the training augmentation of MoCo's linear
// evaluation (main_lincls.py) for size×size views: RandomResizedCrop with
// scale [LinearEvalScaleMin, 1] and ratio [3/4, 4/3], horizontal flip p=0.5,
// then normalisation with mean and std. Unlike pretraining there is no
// colour jitter, grayscale or blur.
func LinearEvalAugment(size int, mean, std []float32) AugmentConfig {
	return AugmentConfig{
		CropSize: size,
		ScaleMin: LinearEvalScaleMin, ScaleMax: 1,
		FlipProb: 0.5,
		Mean:     append([]float32(nil), mean...),
		Std:      append([]float32(nil), std...),
	}
}

// linevalSalt separates the linear evaluation's random streams from the
// pretraining loader's under the same run seed.
const linevalSalt = 0x6c696e6576616c31 // "lineval1"

// AugmentedBatches is EvalBatches with augmentation: it calls fn on every
// image of ds in order, batch at a time (the last batch may be smaller), as
// one view augmented by aug (x is n×C×S×S with S = aug.CropSize); corrupt
// images are left out as in EvalBatches. Image i of
// epoch e draws its random numbers from its own stream, seeded from (seed,
// e, i), so the views depend on neither the batch size nor the number of
// worker goroutines, and change from epoch to epoch. The slices are reused
// between calls; copy what you keep.
func AugmentedBatches(ds Dataset, aug AugmentConfig, seed uint64, epoch, batch, workers int, fn func(x []float32, labels []int, idx []int) error) error {
	if err := aug.Validate(ds.Channels()); err != nil {
		return fmt.Errorf("%s: %w", ds.Name(), err)
	}
	switch {
	case batch < 1:
		return fmt.Errorf("augmented batches: batch %d: must be at least 1", batch)
	case workers < 1:
		return fmt.Errorf("augmented batches: workers %d: must be at least 1", workers)
	}
	workers = min(workers, batch)
	augs := make([]*Augmenter, workers)
	for w := range augs {
		a, err := NewAugmenter(aug, ds.Channels(), ds.Height(), ds.Width())
		if err != nil {
			return fmt.Errorf("%s: %w", ds.Name(), err)
		}
		augs[w] = a
	}
	view := augs[0].OutputLen()
	x := make([]float32, batch*view)
	labels, idx := make([]int, batch), make([]int, batch)
	streamSeed := splitmix64(seed ^ linevalSalt)
	var srcs []*viewSource
	folder, _ := ds.(*ImageFolder)
	if folder != nil {
		srcs = make([]*viewSource, workers)
		for w := range srcs {
			srcs[w] = &viewSource{d: folder}
		}
	}
	skip := make([]bool, batch)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for start := 0; start < ds.Len(); start += batch {
		n := min(batch, ds.Len()-start)
		clear(skip)
		per := (n + workers - 1) / workers
		for w, a := range augs {
			lo, hi := w*per, min((w+1)*per, n)
			if lo >= hi {
				break
			}
			wg.Go(func() {
				pcg := rand.NewPCG(0, 0)
				rng := rand.New(pcg)
				for i := lo; i < hi; i++ {
					pcg.Seed(sampleSeeds(streamSeed, epoch, start+i))
					if srcs != nil { // crop the full-resolution image
						if err := srcs[w].oneView(x[i*view:(i+1)*view], start+i, a, rng); err != nil {
							if skip[i] = folder.skipEval(start+i, err); !skip[i] {
								errs[w] = err
								return
							}
						}
						continue
					}
					a.Apply(x[i*view:(i+1)*view], ds.Pixels(start+i), rng)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		kept := 0
		for i := range n {
			if skip[i] {
				continue
			}
			copy(x[kept*view:(kept+1)*view], x[i*view:(i+1)*view])
			labels[kept] = ds.Label(start + i)
			idx[kept] = start + i
			kept++
		}
		if kept == 0 {
			continue
		}
		if err := fn(x[:kept*view], labels[:kept], idx[:kept]); err != nil {
			return err
		}
	}
	return nil
}
