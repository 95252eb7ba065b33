//go:build cgo

package dist

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/resnet"
)

const (
	benchFloatsEnv = "DIST_BENCH_FLOATS" // values per all-reduce
	benchCallsEnv  = "DIST_BENCH_CALLS"  // timed all-reduces
)

// BenchmarkAllReduceResNet18Width16 all-reduces a buffer the size of the
// gradient of the CPU demo's model (configs/fashion-mnist.yaml: ResNet-18
// of width 16, 3×3 stem, one input channel, MoCo-v2 head to 128) across
// 2 processes bound to one core each (GOMAXPROCS=1), b.N times. It reports
// the time per call, the gradient's size, what a bandwidth-optimal (ring)
// all-reduce sends per rank, 2(P−1)/P of the gradient, and that amount per
// second (nccl-tests' "bus bandwidth").
func BenchmarkAllReduceResNet18Width16(b *testing.B) {
	const np = 2
	n := demoGradientSize(b)
	out, err, _ := mpirun(b, np, "bench", []string{"--bind-to", "core"},
		benchFloatsEnv+"="+strconv.Itoa(n), benchCallsEnv+"="+strconv.Itoa(b.N), "GOMAXPROCS=1")
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	var calls int
	var ns int64
	if _, err := fmt.Sscanf(out, "bench: %d calls in %d ns", &calls, &ns); err != nil || calls != b.N {
		b.Fatalf("no timing in the ranks' output (%v):\n%s", err, out)
	}
	perCall := float64(ns) / float64(calls)
	grad := 4 * float64(n)
	ring := 2 * float64(np-1) / np * grad
	b.ReportMetric(perCall, "ns/op")
	b.ReportMetric(grad/1e6, "grad-MB")
	b.ReportMetric(ring/1e6, "ring-MB/rank")
	b.ReportMetric(ring/perCall, "bus-GB/s")
}

// demoGradientSize counts the trainable parameters of the CPU demo's query
// encoder: the values its gradient all-reduce moves.
func demoGradientSize(b *testing.B) int {
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(2, 1, 28, 28), gorgonia.WithName("x"))
	m, err := resnet.Build(g, x, resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 16, InChannels: 1, EmbedDim: 128}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m.ParamCount()
}

// rankBench times DIST_BENCH_CALLS all-reduces of DIST_BENCH_FLOATS values
// after a warm-up; rank 0 prints the total.
func rankBench(c Comm) error {
	n, err := strconv.Atoi(os.Getenv(benchFloatsEnv))
	if err != nil {
		return err
	}
	calls, err := strconv.Atoi(os.Getenv(benchCallsEnv))
	if err != nil {
		return err
	}
	buf := make([]float32, n)
	for range 3 { // connections and MPI's internal buffers
		if err := c.AllReduceSum(buf); err != nil {
			return err
		}
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	start := time.Now()
	for range calls {
		if err := c.AllReduceSum(buf); err != nil {
			return err
		}
	}
	if c.Rank() == 0 {
		fmt.Printf("bench: %d calls in %d ns\n", calls, time.Since(start).Nanoseconds())
	}
	return nil
}
