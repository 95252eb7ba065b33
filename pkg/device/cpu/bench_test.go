package cpu

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// benchBatch is the CIFAR training batch the benchmarks use.
const benchBatch = 64

// resnetConvs are the 3×3 stride-1 convolutions of each stage of the CIFAR
// ResNet-18 (widths 64–512) and of its width-16 variant (16–128), and the
// two stems (RGB to 64 and 16 channels).
var resnetConvs = []device.ConvShape{
	{N: benchBatch, C: 64, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 128, H: 16, W: 16, K: 128, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 256, H: 8, W: 8, K: 256, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 512, H: 4, W: 4, K: 512, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 16, H: 32, W: 32, K: 16, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 32, H: 16, W: 16, K: 32, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 64, H: 8, W: 8, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 128, H: 4, W: 4, K: 128, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 3, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: benchBatch, C: 3, H: 32, W: 32, K: 16, R: 3, S: 3, Stride: 1, Pad: 1},
}

func benchRandom(n int) device.Buffer {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	return Wrap(x)
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportGFLOPS reports flops per operation as GFLOP/s.
func reportGFLOPS(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// benchConv runs one convolution kernel on a warm backend in each
// convolution mode (cpu.conv): -bench 'Conv2DForward/winograd/' picks one.
func benchConv(b *testing.B, kernel func(be *Backend, s device.ConvShape, x, w, y device.Buffer)) {
	for _, mode := range ConvModes {
		b.Run(string(mode), func(b *testing.B) { benchConvMode(b, mode, kernel) })
	}
}

func benchConvMode(b *testing.B, mode ConvMode, kernel func(be *Backend, s device.ConvShape, x, w, y device.Buffer)) {
	for _, s := range resnetConvs {
		b.Run(fmt.Sprintf("%dx%dx%dx%d", s.C, s.K, s.H, s.W), func(b *testing.B) {
			be := New(0)
			if err := be.SetConvMode(mode); err != nil {
				b.Skip(err)
			}
			x := benchRandom(s.N * s.C * s.H * s.W)
			w := benchRandom(s.K * s.C * s.R * s.S)
			y := benchRandom(s.N * s.K * s.OutH() * s.OutW())
			kernel(be, s, x, w, y) // grow the workspaces, create the primitives
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				kernel(be, s, x, w, y)
			}
			flops := 2 * float64(s.N*s.K*s.OutH()*s.OutW()*s.C*s.R*s.S)
			reportGFLOPS(b, flops)
			// Per CPU-second: steadier than wall time on a shared machine,
			// where other processes take the cores away.
			b.ReportMetric(flops*float64(b.N)/(cpuTime(b)-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkConv2DForward(b *testing.B) {
	benchConv(b, func(be *Backend, s device.ConvShape, x, w, y device.Buffer) { be.Conv2DForward(s, x, w, y) })
}

func BenchmarkConv2DBackwardData(b *testing.B) {
	benchConv(b, func(be *Backend, s device.ConvShape, x, w, y device.Buffer) { be.Conv2DBackwardData(s, y, w, x) })
}

func BenchmarkConv2DBackwardFilter(b *testing.B) {
	benchConv(b, func(be *Backend, s device.ConvShape, x, w, y device.Buffer) { be.Conv2DBackwardFilter(s, x, y, w) })
}

// BenchmarkGemm: square products and the MoCo similarity q·queueᵀ
// (B = 256, D = 128, K = 16384).
func BenchmarkGemm(b *testing.B) {
	for _, sz := range [][3]int{{256, 256, 256}, {1024, 1024, 1024}, {256, 16384, 128}} {
		m, n, k := sz[0], sz[1], sz[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			be := New(0)
			a, bb, c := benchRandom(m*k), benchRandom(k*n), benchRandom(m*n)
			transB := n > m // the similarity multiplies by the stored queue's transpose
			be.Gemm(false, transB, m, n, k, 1, a, bb, 0, c)
			b.ReportAllocs()
			for b.Loop() {
				be.Gemm(false, transB, m, n, k, 1, a, bb, 0, c)
			}
			reportGFLOPS(b, 2*float64(m*n*k))
		})
	}
}

// BenchmarkBatchNorm: training forward and backward at the first ResNet-18
// stage (64×64×32×32), ordinary and split into 4 groups.
func BenchmarkBatchNorm(b *testing.B) {
	for _, g := range []int{1, 4} {
		s := device.BNShape{N: benchBatch, C: 64, HW: 32 * 32, Groups: g}
		n := s.N * s.C * s.HW
		be := New(0)
		x, y, dy, dx := benchRandom(n), benchRandom(n), benchRandom(n), benchRandom(n)
		gamma, beta, rm, rv := benchRandom(s.C), benchRandom(s.C), benchRandom(s.C), benchRandom(s.C)
		mean, inv, dg, db := benchRandom(g*s.C), benchRandom(g*s.C), benchRandom(s.C), benchRandom(s.C)
		b.Run(fmt.Sprintf("Train/groups=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				be.BatchNormTrain(s, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5)
			}
		})
		b.Run(fmt.Sprintf("Backward/groups=%d", g), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(12 * n))
			for b.Loop() {
				be.BatchNormBackward(s, x, dy, gamma, mean, inv, dx, dg, db)
			}
		})
		// With the ReLU that follows: the fused kernels against BatchNorm's
		// then ReLU's (dz a scratch buffer), the same float32 results.
		dz := benchRandom(n)
		b.Run(fmt.Sprintf("TrainReLU/groups=%d", g), func(b *testing.B) {
			for b.Loop() {
				be.BatchNormReLUTrain(s, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5)
			}
		})
		b.Run(fmt.Sprintf("TrainThenReLU/groups=%d", g), func(b *testing.B) {
			for b.Loop() {
				be.BatchNormTrain(s, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5)
				be.ReLU(y, y)
			}
		})
		b.Run(fmt.Sprintf("BackwardReLU/groups=%d", g), func(b *testing.B) {
			for b.Loop() {
				be.BatchNormReLUBackward(s, x, y, dy, gamma, mean, inv, dx, dg, db)
			}
		})
		b.Run(fmt.Sprintf("ReLUThenBackward/groups=%d", g), func(b *testing.B) {
			for b.Loop() {
				be.ReLUBackward(y, dy, dz)
				be.BatchNormBackward(s, x, dz, gamma, mean, inv, dx, dg, db)
			}
		})
	}
}
