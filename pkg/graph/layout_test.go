package graph

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// layoutNet is a residual net whose activations a backend with
// device.Blocked can keep blocked in part: an RGB stem (its input stays
// NCHW), a residual block and a max pooling at 16 channels, a convolution
// to 64 channels and one at 64 channels, which mochi's Winograd runs on
// NCHW in mode auto, then the pooling and a linear head.
type layoutNet struct {
	g            *gorgonia.ExprGraph
	loss, r2     *gorgonia.Node
	params       []*gorgonia.Node
	grads        gorgonia.Nodes
	stem, c2, c3 device.ConvShape
	wino         device.ConvShape
}

func newLayoutNet(tb testing.TB, n int) *layoutNet {
	tb.Helper()
	rng := rand.New(rand.NewSource(11))
	g := gorgonia.NewGraph()
	net := &layoutNet{g: g}
	param, must := paramMaker(g, rng, &net.params), mustNode(tb)
	bn := func(x *gorgonia.Node, c int, relu bool) *gorgonia.Node {
		st := NewBNState(Host(), c)
		st.Groups = 2
		if relu {
			return must(BatchNormReLU(x, param("γ", c), param("β", c), st))
		}
		return must(BatchNorm(x, param("γ", c), param("β", c), st))
	}
	const hw = 8
	net.stem = device.ConvShape{N: n, C: 3, H: hw, W: hw, K: 16, R: 3, S: 3, Stride: 1, Pad: 1}
	net.c2 = device.ConvShape{N: n, C: 16, H: hw, W: hw, K: 16, R: 3, S: 3, Stride: 1, Pad: 1}
	net.c3 = device.ConvShape{N: n, C: 16, H: hw / 2, W: hw / 2, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	net.wino = device.ConvShape{N: n, C: 64, H: hw / 2, W: hw / 2, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	x := input(g, "x", randomAwayFromZero(rng, n*3*hw*hw), n, 3, hw, hw)
	r1 := bn(must(Conv2D(x, param("w", 16, 3, 3, 3), 1, 1)), 16, true)
	b2 := bn(must(Conv2D(r1, param("w", 16, 16, 3, 3), 1, 1)), 16, false)
	net.r2 = must(ReLU(must(Add(b2, r1))))
	p := must(MaxPool2D(net.r2, 2, 2, 0))
	r3 := bn(must(Conv2D(p, param("w", 64, 16, 3, 3), 1, 1)), 64, true)
	r4 := must(ReLU(must(Conv2D(r3, param("w", 64, 64, 3, 3), 1, 1))))
	f := must(GlobalAvgPool(r4))
	logits := must(Linear(f, param("fc", 10, 64), nil))
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.Intn(10))
	}
	net.loss = must(SoftmaxCrossEntropy(logits, labelsNode(g, labels), 0.5))
	net.grads = must2(gorgonia.Grad(net.loss, net.params...))(tb)
	return net
}

// plainBackend hides a backend's device.Blocked (and keeps its fused
// batch-norm kernels): a plan compiled on it keeps every activation NCHW.
type plainBackend struct {
	device.Backend
	device.BatchNormReLU
	device.BatchNormAddReLU
}

// TestLayoutsChosen compiles layoutNet on a CPU backend in mode auto: the
// activations between oneDNN's convolutions (the stem's output, the
// residual block, the pooling, the input of the convolution to 64
// channels) are blocked; the network's input, the activations mochi's
// Winograd reads or writes, and with them the 64-channel stage, stay NCHW;
// and with an activation of the block (r2) asked for as a plan output, the
// whole group that shares its layout stays NCHW. The loss and every
// gradient match the plan compiled with every activation NCHW, and the
// blocked plan allocates nothing per run. (The purego build's ConvBlocks
// names no block: there the test checks that nothing is blocked.)
func TestLayoutsChosen(t *testing.T) {
	net := newLayoutNet(t, 4)
	be := cpu.New(2)
	if err := be.SetConvMode(cpu.ConvAuto); err != nil {
		t.Fatal(err)
	}
	block, _ := be.ConvBlocks(net.c2)
	outputs := append(gorgonia.Nodes{net.loss}, net.grads...)
	plan, err := Compile(net.g, be, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Free()
	// The blocks each convolution's x (dx) and y (dy) must get.
	want := map[device.ConvShape][2]int{
		net.stem: {0, block}, net.c2: {block, block}, net.c3: {block, 0}, net.wino: {0, 0},
	}
	var blockedBN, blockedPool int
	for _, s := range plan.steps {
		switch k := s.k.(type) {
		case *convOp:
			shape := k.s
			shape.XBlock, shape.YBlock = 0, 0
			if w := want[shape]; k.s.XBlock != w[0] || k.s.YBlock != w[1] {
				t.Errorf("%v: blocks %d, %d, want %d, %d", k, k.s.XBlock, k.s.YBlock, w[0], w[1])
			}
		case *bnOp:
			if wantBlock := map[int]int{16: block, 64: 0}[k.s.C]; k.s.Block != wantBlock {
				t.Errorf("%v: block %d, want %d", k, k.s.Block, wantBlock)
			} else if k.s.Block != 0 {
				blockedBN++
			}
		case *maxPoolOp:
			if k.s.Block != block {
				t.Errorf("%v: block %d, want %d", k, k.s.Block, block)
			} else if k.s.Block != 0 {
				blockedPool++
			}
		}
	}
	if block != 0 && (blockedBN != 4 || blockedPool != 2) {
		t.Errorf("%d blocked batch norms, %d blocked poolings; want the 16-channel ones' forwards and backwards, 4 and 2", blockedBN, blockedPool)
	}

	ref, err := Compile(net.g, plainBackend{be, be, be}, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Free()
	if k := blockedConv(ref); k != nil {
		t.Fatalf("%v on a backend without device.Blocked", k)
	}
	// The blocked BatchNorm sums each channel in float64 in another order,
	// which may move a float32 statistic by an ulp: 1e-5 of the largest
	// value bounds what that becomes through the network.
	for run := range 2 {
		if err := ref.Run(); err != nil {
			t.Fatal(err)
		}
		if err := plan.Run(); err != nil {
			t.Fatal(err)
		}
		got, want := download(be, plan, outputs), download(be, ref, outputs)
		for i, n := range outputs {
			closeTo(t, fmt.Sprintf("run %d %v", run+1, n.Name()), f64(got[i]), f64(want[i]), 1e-5)
		}
	}
	// (Without blocks, in the purego build, gonum's BLAS allocates.)
	if a := testing.AllocsPerRun(3, func() {
		if err := plan.Run(); err != nil {
			t.Fatal(err)
		}
	}); block != 0 && a != 0 {
		t.Errorf("a run of the blocked plan made %v heap allocations, want 0", a)
	}

	withR2, err := Compile(net.g, be, append(gorgonia.Nodes{net.r2}, outputs...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer withR2.Free()
	if k := blockedConv(withR2); k != nil {
		t.Errorf("%v: with r2 a plan output (NCHW for the host), its group and every group it joins must stay NCHW", k)
	}
}

// blockedConv returns a convolution of p with a blocked operand, or nil.
func blockedConv(p *Plan) *convOp {
	for _, s := range p.steps {
		if k, ok := s.k.(*convOp); ok && (k.s.XBlock != 0 || k.s.YBlock != 0) {
			return k
		}
	}
	return nil
}
