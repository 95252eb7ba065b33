// Package frozen evaluates a pretrained encoder: the query encoder f_q of
// a checkpoint (LoadPretrained) with frozen weights and BatchNorm in
// evaluation mode, its features (or embeddings) of whole dataset splits
// through an on-disk cache, and of freshly augmented views for the linear
// probe. The eval commands (linear-eval, knn, analyze-uniformity) and the
// trainer's kNN monitor use it.
package frozen

import (
	"fmt"
	"io"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Encoder maps images to backbone features (the global average pool, before
// the projection head) or to embeddings (normalize(head(features)), the q of
// MoCo) with frozen weights and BatchNorm in evaluation mode, using its
// running statistics, as MoCo's linear evaluation and kNN monitor do.
type Encoder struct {
	be      device.Backend
	x       *gorgonia.Node
	net     *resnet.Model
	out     *gorgonia.Node // net.Features or net.Embedding
	plan    *graph.Plan
	batch   int
	c, h, w int
	feat    []float32 // batch×FeatureDim
	padded  []float32 // batch×C×H×W, for the last partial batch
}

// NewEncoder builds the network of rc for batches of batch images C×H×W,
// with the given parameters and running statistics. Without head it is the
// backbone alone (head entries in weights are ignored) and outputs
// features; with head it outputs the L2-normalised embeddings.
func NewEncoder(be device.Backend, rc resnet.Config, weights, stats map[string][]float32, batch, c, h, w int, head bool) (*Encoder, error) {
	rc.BNGroups, rc.InChannels = 1, c
	if !head {
		rc.EmbedDim = 0
	}
	g := gorgonia.NewGraph()
	e := &Encoder{be: be, batch: batch, c: c, h: h, w: w}
	e.x = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(batch, c, h, w), gorgonia.WithName("x"))
	net, err := resnet.Build(g, e.x, rc, be)
	if err != nil {
		return nil, err
	}
	e.net = net
	backbone := make(map[string][]float32, len(net.Params))
	for _, p := range net.Params {
		backbone[p.Name] = weights[p.Name]
	}
	if err := net.LoadWeights(backbone); err != nil {
		return nil, err
	}
	bn := make(map[string][]float32, 2*len(net.Norms))
	for _, n := range net.Norms {
		for _, s := range []string{".running_mean", ".running_var"} {
			bn[n.Name+s] = stats[n.Name+s]
		}
	}
	if err := net.LoadRunningStats(bn); err != nil {
		return nil, err
	}
	net.SetTraining(false)
	e.out = net.Features
	if head {
		e.out = net.Embedding
	}
	if e.plan, err = graph.Compile(g, be, e.out); err != nil {
		return nil, err
	}
	e.feat = make([]float32, batch*e.OutputDim())
	e.padded = make([]float32, batch*c*h*w)
	return e, nil
}

// OutputDim is the length of an output vector: the feature dimension, or D
// with the head.
func (e *Encoder) OutputDim() int { return e.out.Shape()[1] }

// Features returns the outputs for every image of ds (n×OutputDim) and
// their labels, normalising pixels with mean and std.
func (e *Encoder) Features(ds data.Dataset, mean, std []float32) (eval.Matrix, []int, error) {
	if ds.Channels() != e.c || ds.Height() != e.h || ds.Width() != e.w {
		return eval.Matrix{}, nil, fmt.Errorf("%s has %d×%d×%d images; the encoder was built for %d×%d×%d", ds.Name(), ds.Channels(), ds.Height(), ds.Width(), e.c, e.h, e.w)
	}
	batches := func(f batchFunc) error { return data.EvalBatches(ds, mean, std, e.batch, f) }
	return stack(ds.Len(), e.OutputDim(), batches, e.run)
}

// Free releases the encoder's device memory.
func (e *Encoder) Free() { e.plan.Free() }

// Embed returns the outputs for a batch of n ≤ batch normalised images x
// (n×C×H×W) — the building block for positive pairs in the analysis.
func (e *Encoder) Embed(x []float32, n int) ([]float32, error) {
	if n > e.batch || len(x) < n*e.c*e.h*e.w {
		return nil, fmt.Errorf("encoder: %d images (%d values) for a batch of %d", n, len(x), e.batch)
	}
	out, err := e.run(x, n)
	return append([]float32(nil), out...), err
}

// run encodes the first n images of x and returns their outputs (n×OutputDim),
// valid until the next run.
func (e *Encoder) run(x []float32, n int) ([]float32, error) {
	img := e.c * e.h * e.w
	x = x[:n*img]
	if n < e.batch { // zero-pad: in evaluation mode rows do not interact
		copy(e.padded, x)
		clear(e.padded[n*img:])
		x = e.padded
	}
	e.be.Upload(e.plan.Buffer(e.x), x)
	if err := e.plan.Run(); err != nil {
		return nil, err
	}
	e.be.Download(e.feat, e.plan.Buffer(e.out))
	return e.feat[:n*e.OutputDim()], nil
}

// batchFunc is what a batch source calls with each batch (data.EvalBatches,
// data.AugmentedBatches).
type batchFunc = func(x []float32, labels []int, idx []int) error

// stack runs rows on every batch of each (n images in all) and stacks the d
// values per image it returns into an n×d matrix, with the labels.
func stack(n, d int, each func(batchFunc) error, rows func(x []float32, n int) ([]float32, error)) (eval.Matrix, []int, error) {
	out := make([]float32, 0, n*d)
	labels := make([]int, 0, n)
	err := each(func(x []float32, lab []int, _ []int) error {
		r, err := rows(x, len(lab))
		if err != nil {
			return err
		}
		out = append(out, r...)
		labels = append(labels, lab...)
		return nil
	})
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	m, err := eval.NewMatrix(out, len(labels), d)
	return m, labels, err
}

// PositivePairs embeds n pairs of augmented views of ds's images (the
// pretraining's positive pairs): row i of x and row i of y are two views of
// one image. Epochs of the two-view loader (seed, workers and prefetch as
// data.NewTwoViewLoader's) are drawn until n pairs are in; corrupt images
// stepped over (data.skip_corrupt) are noted in log.
func (e *Encoder) PositivePairs(ds data.Dataset, aug data.AugmentConfig, n, batch int, seed uint64, workers, prefetch int, log io.Writer) (x, y eval.Matrix, err error) {
	loader, err := data.NewTwoViewLoader(ds, aug, batch, seed, workers, prefetch)
	if err != nil {
		return x, y, err
	}
	d := e.OutputDim()
	xs, ys := make([]float32, 0, n*d), make([]float32, 0, n*d)
	for epoch, have := 0, 0; have < n; epoch++ {
		it := loader.Epoch(epoch)
		got := have
		for have < n {
			b, ok := it.Next()
			if !ok {
				if err := it.Err(); err != nil {
					it.Close()
					return x, y, fmt.Errorf("%s: positive pairs: %w", ds.Name(), err)
				}
				break
			}
			take := min(b.B, n-have)
			qe, err := e.Embed(b.Query, take)
			if err == nil {
				var ke []float32
				if ke, err = e.Embed(b.Key, take); err == nil {
					xs, ys = append(xs, qe...), append(ys, ke...)
				}
			}
			loader.Release(b)
			if err != nil {
				it.Close()
				return x, y, err
			}
			have += take
		}
		it.Close()
		if k, first := data.SkipSummary(it.Skipped()); k > 0 {
			fmt.Fprintf(log, "%s: positive pairs: the loader stepped over %d corrupt images (data.skip_corrupt), first %s\n", ds.Name(), k, first)
		}
		if have == got {
			return x, y, fmt.Errorf("%s: the two-view loader made no batch of %d images", ds.Name(), batch)
		}
	}
	if x, err = eval.NewMatrix(xs, n, d); err != nil {
		return x, y, err
	}
	y, err = eval.NewMatrix(ys, n, d)
	return x, y, err
}
