package resnet

import (
	"testing"

	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
)

// BenchmarkTrainStep times one compiled training step (forward, backward,
// SGD update) of the CIFAR ResNet-18 with MoCo's head at width 16 and batch
// 64; run with -benchmem for the bytes allocated per step after warm-up.
// The plan's own buffers (activations, gradients, parameters) are reported
// as plan-MiB, the scale the allocations are judged against.
func BenchmarkTrainStep(b *testing.B) {
	const width, batch = 16, 64
	lg := newLossGraph(b, Config{Depth: 18, Stem: SmallStem, Width: width, EmbedDim: 128, Seed: 1}, batch, 32, 32)
	tr, err := lg.m.CompileTraining(graph.Host(), lg.loss, optim.SGDConfig{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Free()
	plan := tr.Plan
	step := func() {
		if err := plan.Run(); err != nil {
			b.Fatal(err)
		}
		tr.Opt.Step(0.06)
		if err := plan.Backend().Sync(); err != nil {
			b.Fatal(err)
		}
	}
	step() // first use allocates the kernels' workspaces
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(plan.Elements())*4/(1<<20), "plan-MiB")
}
