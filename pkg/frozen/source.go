package frozen

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/eval"
)

// Source extracts a checkpoint's features of whole dataset splits
// through an eval.FeatureCache, building the encoder only when a split is
// not cached.
type Source struct {
	P       *Pretrained
	Backend device.Backend
	Config  *config.Config // its data section names the data in the cache key
	Head    bool           // embeddings (normalize(head(·))) instead of backbone features
	Cache   eval.FeatureCache
	Mean    []float32 // the pixels' normalisation
	Std     []float32
	Log     io.Writer // progress lines
	// WarnAfter is the estimated time of the augmented probe's feature
	// passes on the CPU above which Augmented warns.
	WarnAfter time.Duration

	enc   *Encoder
	batch int // the encoder's batch
}

// key names everything the features depend on: the checkpoint's bytes, the
// dataset and split, and the output (backbone or embedding).
func (s *Source) key(ds data.Dataset, split string) string {
	d := s.Config.Data
	path, err := filepath.Abs(d.Path)
	if err != nil {
		path = d.Path
	}
	output := "backbone"
	if s.Head {
		output = "embedding"
	}
	key := fmt.Sprintf("checkpoint sha256 %s\ndata %s %s split %s limit %d image_size %d %d×%d×%d mean %v std %v\noutput %s",
		s.P.SHA256, d.Kind, path, split, d.Limit, d.ImageSize, ds.Channels(), ds.Height(), ds.Width(), s.Mean, s.Std, output)
	if f, ok := ds.(*data.ImageFolder); ok { // its images are read through a transform, and files come and go
		key += fmt.Sprintf("\nimagefolder %d images, %s", f.Len(), f.EvalTransform())
	}
	return key
}

// Encoder returns the checkpoint's frozen encoder, building it on first use.
func (s *Source) Encoder(batch int) (*Encoder, error) {
	if s.enc == nil {
		enc, err := s.P.Encoder(s.Backend, batch, s.Head)
		if err != nil {
			return nil, fmt.Errorf("building the encoder of %s: %w", s.P.Path, err)
		}
		s.enc, s.batch = enc, batch
	}
	return s.enc, nil
}

// Features returns the outputs for every image of ds, from the cache when
// it holds them; otherwise it extracts and caches them.
func (s *Source) Features(ds data.Dataset, split string) (eval.Matrix, []int, error) {
	key := s.key(ds, split)
	feats, labels, n, d, found, err := s.Cache.Load(key)
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	if found {
		fmt.Fprintf(s.Log, "%s: cached features %d×%d from %s\n", ds.Name(), n, d, s.Cache.Path(key))
		if n < ds.Len() {
			fmt.Fprintf(s.Log, "%s: the cache holds %d of %d images: %d corrupt images were left out when it was written (data.skip_corrupt)\n", ds.Name(), n, ds.Len(), ds.Len()-n)
		}
		m, err := eval.NewMatrix(feats, n, d)
		return m, labels, err
	}
	enc, err := s.Encoder(min(256, ds.Len()))
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	start := time.Now()
	m, labels, err := enc.Features(ds, s.Mean, s.Std)
	if err != nil {
		return eval.Matrix{}, nil, fmt.Errorf("extracting features of %s: %w", ds.Name(), err)
	}
	if err := s.Cache.Save(key, m.Data, labels, m.N, m.D); err != nil {
		return eval.Matrix{}, nil, err
	}
	fmt.Fprintf(s.Log, "%s: extracted features %d×%d in %.1fs, cached in %s\n", ds.Name(), m.N, m.D, time.Since(start).Seconds(), s.Cache.Path(key))
	NoteSkipped(s.Log, ds)
	return m, labels, nil
}

// NoteSkipped says how many corrupt images of ds the evaluation reads have
// left out so far (data.skip_corrupt) and which was first: a split is never
// silently smaller.
func NoteSkipped(log io.Writer, ds data.Dataset) {
	if n, first := data.SkipSummary(data.EvalSkipped(ds)); n > 0 {
		fmt.Fprintf(log, "%s: left out %d corrupt images (data.skip_corrupt), first %s\n", ds.Name(), n, first)
	}
}

// AugmentedViews feeds the linear probe the backbone features of freshly
// augmented train images, one set per epoch.
type AugmentedViews struct {
	Features eval.TrainFeatures
	Last     time.Duration // what the latest epoch's features took
}

// Augmented returns the per-epoch provider for the probe of the
// checkpoint called name: epoch e's features are the backbone's outputs for
// the views of ds that data.AugmentedBatches draws from (seed, e). After the
// first epoch it prints the estimated cost of all epochs, as a warning when
// it is long on the CPU.
func (s *Source) Augmented(name string, ds data.Dataset, aug data.AugmentConfig, seed uint64, workers, epochs int, device string) *AugmentedViews {
	v := &AugmentedViews{}
	v.Features = func(epoch int) (eval.Matrix, []int, error) {
		enc, err := s.Encoder(min(256, ds.Len()))
		if err != nil {
			return eval.Matrix{}, nil, err
		}
		start := time.Now()
		batches := func(f batchFunc) error { return data.AugmentedBatches(ds, aug, seed, epoch, s.batch, workers, f) }
		m, labels, err := stack(ds.Len(), enc.OutputDim(), batches, enc.run)
		if err != nil {
			return eval.Matrix{}, nil, fmt.Errorf("augmented features of %s, epoch %d: %w", ds.Name(), epoch, err)
		}
		v.Last = time.Since(start)
		if epoch == 0 {
			NoteSkipped(s.Log, ds)
			total := v.Last * time.Duration(epochs)
			fmt.Fprintf(s.Log, "%s: augmented train features: %d images through the backbone in %.1fs per probe epoch, about %s for %d epochs\n",
				name, ds.Len(), v.Last.Seconds(), roughDuration(total), epochs)
			if device == "cpu" && total > s.WarnAfter {
				fmt.Fprintf(s.Log, "warning: --augment on the CPU runs the backbone over all %d train images every probe epoch: about %s in all; use run.device cuda, fewer eval.linear_epochs or a smaller data.limit, or leave out --augment to probe the cached features\n",
					ds.Len(), total.Round(time.Minute))
			}
		}
		return m, labels, nil
	}
	return v
}

// roughDuration prints d to a tenth of a second below a minute, to the
// second above.
func roughDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// Free releases the encoder, if one was built.
func (s *Source) Free() {
	if s.enc != nil {
		s.enc.Free()
	}
}

// PixelFeatures flattens every normalised image of ds into a row: the input
// the encoder would see, as an n×(C·H·W) matrix.
func PixelFeatures(ds data.Dataset, mean, std []float32) (eval.Matrix, []int, error) {
	d := ds.Channels() * ds.Height() * ds.Width()
	batches := func(f batchFunc) error { return data.EvalBatches(ds, mean, std, 256, f) }
	return stack(ds.Len(), d, batches, func(x []float32, n int) ([]float32, error) { return x[:n*d], nil })
}
