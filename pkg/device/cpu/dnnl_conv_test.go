//go:build !purego

package cpu

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// convImpl returns oneDNN's name for the implementation that ran part 0 of
// a convolution in the backend's current mode, or "" when oneDNN has not
// run it.
func (b *Backend) convImpl(op convOp, s device.ConvShape) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dnnl.convs == nil || b.dnnl.mode == ConvBLAS {
		return ""
	}
	part := s
	part.N = s.N / b.workers.parts(s.N, 1)
	p, ok := b.dnnl.convs.prims[dnnlKey{op: op, s: part, mode: b.dnnl.mode, part: 0}]
	if !ok {
		return ""
	}
	return p.impl
}

// winogradAnyChannels lets mochi's Winograd run shapes with fewer than
// winoMinChannels channels.
func (b *Backend) winogradAnyChannels() { b.dnnl.winoAnyChannels = true }

// convImplName is what ran a result of TestConvPathsAgree, for its log.
func (b *Backend) convImplName(result string, s device.ConvShape) string {
	op := map[string]convOp{"y": convForward, "dx": convBackwardData, "dw": convBackwardFilter}[result]
	if impl := b.convImpl(op, s); impl != "" {
		return impl
	}
	return "im2col + BLAS"
}

// TestWinogradWhereOffered: winograd mode runs a Winograd kernel for a 3×3
// stride-1 convolution — oneDNN's where oneDNN has one (avx512_core only in
// oneDNN 2.x), mochi's elsewhere, so always mochi's on a CPU without
// AVX-512 — and none for a strided one, nor for the RGB stem (fewer than
// winoMinChannels channels); auto mode runs mochi's for the same shapes on
// every CPU; direct mode never runs one. Which Winograd ran in winograd
// mode on an AVX-512 CPU is logged: no AVX-512 machine has run this code
// yet.
func TestWinogradWhereOffered(t *testing.T) {
	wino := device.ConvShape{N: 4, C: 64, H: 16, W: 16, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	strided := device.ConvShape{N: 4, C: 64, H: 16, W: 16, K: 64, R: 3, S: 3, Stride: 2, Pad: 1}
	stem := device.ConvShape{N: 4, C: 3, H: 16, W: 16, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	for _, m := range []ConvMode{ConvAuto, ConvWinograd, ConvDirect} {
		be := modeBackend(t, 2, m)
		for _, s := range []device.ConvShape{wino, strided, stem} {
			c := newConvCase(s, 3)
			be.Conv2DForward(s, Wrap(c.x), Wrap(c.w), Wrap(make([]float32, len(c.y64))))
			be.Conv2DBackwardData(s, Wrap(c.dy), Wrap(c.w), Wrap(make([]float32, len(c.x))))
			be.Conv2DBackwardFilter(s, Wrap(c.x), Wrap(c.dy), Wrap(make([]float32, len(c.w))))
			if err := be.Sync(); err != nil {
				t.Fatal(err)
			}
			for _, op := range []convOp{convForward, convBackwardData, convBackwardFilter} {
				impl := be.convImpl(op, s)
				want := m != ConvDirect && s == wino
				switch ran := strings.Contains(impl, "wino"); {
				case impl == "" || ran != want:
					t.Errorf("%s %s %+v ran %q; want Winograd: %v", m, opName(op), s, impl, want)
				case want && m == ConvAuto && impl != winoImpl:
					t.Errorf("auto %s %+v ran %q: want mochi's %q on every CPU", opName(op), s, impl, winoImpl)
				case want && !hasAVX512() && impl != winoImpl:
					t.Errorf("%s %s %+v ran %q on a CPU without AVX-512, where oneDNN has no Winograd kernel: want %q", m, opName(op), s, impl, winoImpl)
				}
				t.Logf("%s %s C=%d stride %d: %s (AVX-512: %v)", m, opName(op), s.C, s.Stride, impl, hasAVX512())
			}
		}
	}
}

// TestNoSpinningOpenMPThreads: oneDNN's OpenMP runtime starts no thread
// team, so no OpenMP thread spins while Go's workers run. A child test
// process runs convolutions under OMP_WAIT_POLICY=active and
// OMP_NUM_THREADS=2, where any team's idle threads would spin without end,
// and must then use almost no CPU while it sleeps.
func TestNoSpinningOpenMPThreads(t *testing.T) {
	const child = "MOCHI_TEST_OPENMP_CHILD"
	if os.Getenv(child) == "" {
		if testing.Short() {
			t.Skip("starts a child process and sleeps (-short)")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoSpinningOpenMPThreads$", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1", "OMP_WAIT_POLICY=active", "OMP_NUM_THREADS=2")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child test process: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "CPU time") {
				t.Log(strings.TrimSpace(line))
			}
		}
		return
	}
	// One worker: a single master thread, whose team would not exceed the
	// CPUs, where libgomp would cut its spinning short.
	be := New(1)
	for _, s := range []device.ConvShape{
		{N: 4, C: 64, H: 16, W: 16, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
		{N: 4, C: 3, H: 16, W: 16, K: 16, R: 3, S: 3, Stride: 1, Pad: 1},
	} {
		c := newConvCase(s, 5)
		for range 3 {
			be.Conv2DForward(s, Wrap(c.x), Wrap(c.w), Wrap(make([]float32, len(c.y64))))
			be.Conv2DBackwardData(s, Wrap(c.dy), Wrap(c.w), Wrap(make([]float32, len(c.x))))
			be.Conv2DBackwardFilter(s, Wrap(c.x), Wrap(c.dy), Wrap(make([]float32, len(c.w))))
		}
	}
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	const idle = 300 * time.Millisecond
	before := cpuTime(t)
	time.Sleep(idle)
	used := cpuTime(t) - before
	t.Logf("CPU time while idle for %v after oneDNN convolutions: %v", idle, used)
	if used > idle/10 {
		t.Errorf("the process used %v of CPU while idle for %v: OpenMP threads are spinning", used, idle)
	}
}

// hasAVX512 reports the AVX-512 subsets of oneDNN's avx512_core ISA,
// enabled by the operating system.
func hasAVX512() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
}
