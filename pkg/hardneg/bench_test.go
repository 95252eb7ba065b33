package hardneg_test

import (
	"math/rand/v2"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// The paper's ImageNet-100 setting, MoCHi(1024, 1024, 256) with K = 16384.
const (
	benchB, benchK, benchD  = 256, 16384, 128
	benchN, benchS, benchSP = 1024, 1024, 256
)

func randomUnitRows32(rng *rand.Rand, rows, d int) []float32 {
	return numconv.Slice[float32](unitRows(rng, rows, d))
}

// BenchmarkMoCHiOverhead times, in each iteration, the B×K logits product
// q·Qᵀ and then MoCHi's extra work on top of it (top-N selection, mixing,
// extra logits) with the CPU backend's kernels, the ones training runs,
// and reports both and their ratio (target ≤ 0.5).
func BenchmarkMoCHiOverhead(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := device.MixShape{B: benchB, K: benchK, D: benchD, N: benchN, S: benchS, SPrime: benchSP}
	draw, err := hardneg.NewMixDraw(rng, benchB, benchN, benchS, benchSP)
	if err != nil {
		b.Fatal(err)
	}
	be := cpu.New(0)
	q := cpu.Wrap(randomUnitRows32(rng, benchB, benchD))
	queue := cpu.Wrap(randomUnitRows32(rng, benchK, benchD))
	drawBuf := cpu.Wrap(draw.Tensor().Data().([]float32))
	sim := be.Alloc(device.Float32, benchB*benchK)
	sel := be.Alloc(device.Int32, benchB*benchN)
	extra := be.Alloc(device.Float32, benchB*(benchS+benchSP))
	var tSim, tSel, tMix time.Duration
	for b.Loop() {
		t0 := time.Now()
		be.Gemm(false, true, benchB, benchK, benchD, 1, q, queue, 0, sim)
		t1 := time.Now()
		be.TopN(benchB, benchK, benchN, sim, sel)
		t2 := time.Now()
		be.MixLogits(s, q, queue, sim, sel, drawBuf, extra)
		tSim += t1.Sub(t0)
		tSel += t2.Sub(t1)
		tMix += time.Since(t2)
	}
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(b.N) }
	b.ReportMetric(ms(tSim), "qQt-ms/op")
	b.ReportMetric(ms(tSel), "topN-ms/op")
	b.ReportMetric(ms(tMix), "mix-ms/op")
	b.ReportMetric((tSel+tMix).Seconds()/tSim.Seconds(), "mochi/qQt")
}

// BenchmarkLossStep times the loss with its gradient w.r.t. q at the
// paper's size, MoCHi(1024, 1024, 256) with K = 16384: on the TapeMachine
// (each op's Exec on graph.Host, fresh values every run) and as the plan
// graph.Compile builds (here for the CPU backend; the GPU runs the same
// plan).
func BenchmarkLossStep(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := hardneg.Config{N: benchN, S: benchS, SPrime: benchSP, Tau: 0.2}
	draw, err := hardneg.NewMixDraw(rng, benchB, benchN, benchS, benchSP)
	if err != nil {
		b.Fatal(err)
	}
	pt := draw.Tensor()
	build := func() (*G.ExprGraph, *hardneg.LossGraph, *G.Node) {
		g := G.NewGraph()
		bound := func(name string, x []float32, shape ...int) *G.Node {
			return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
				G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(x))))
		}
		in := hardneg.Inputs{Query: bound("q", randomUnitRows32(rng, benchB, benchD), benchB, benchD),
			Key:   bound("k", randomUnitRows32(rng, benchB, benchD), benchB, benchD),
			Queue: bound("queue", randomUnitRows32(rng, benchK, benchD), benchK, benchD),
			Draw:  bound("draw", pt.Data().([]float32), pt.Shape()...)}
		l, err := hardneg.Loss(in, cfg, true)
		if err != nil {
			b.Fatal(err)
		}
		dq, err := G.Grad(l.Loss, in.Query)
		if err != nil {
			b.Fatal(err)
		}
		return g, l, dq[0]
	}
	b.Run("tape", func(b *testing.B) {
		g, _, _ := build()
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		for b.Loop() {
			if err := vm.RunAll(); err != nil {
				b.Fatal(err)
			}
			vm.Reset()
		}
	})
	b.Run("compiled", func(b *testing.B) {
		g, l, dq := build()
		p, err := graph.Compile(g, cpu.New(0), l.Loss, dq)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Free()
		for b.Loop() {
			if err := p.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkComputeStats times the per-step statistics at the paper's
// ImageNet-1K setting (B 256, K 65536, MoCHi(1024, 1024, 512)): they read
// every one of the B×K similarities on the host.
func BenchmarkComputeStats(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	dm := hardneg.Dims{B: 256, K: 65536, D: benchD, N: 1024, S: 1024, SPrime: 512}
	lpos := randomUnitRows32(rng, dm.B, 1)
	lneg := make([]float32, dm.B*dm.K)
	for i := range lneg {
		lneg[i] = float32(rng.NormFloat64() * 0.1)
	}
	sel := make([]int32, dm.B*dm.N)
	for i := range sel {
		sel[i] = int32(rng.IntN(dm.K))
	}
	extra := make([]float32, dm.B*dm.E())
	for i := range extra {
		extra[i] = float32(rng.NormFloat64() * 0.1)
	}
	for b.Loop() {
		hardneg.ComputeStats(lpos, lneg, sel, extra, hardneg.Labels{}, dm, 0.2)
	}
}
