package graph

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// smallNet is a residual conv net with every op of the package:
// conv-BatchNormReLU (split-BN), a residual block (so Grad inserts its + to sum the two
// gradients of r1), max pooling, a strided conv, global average pooling, an
// MLP head with a 1-d BatchNorm, L2 normalisation, logits against a fixed
// "queue" and the softmax cross-entropy.
type smallNet struct {
	g      *gorgonia.ExprGraph
	loss   *gorgonia.Node
	params []*gorgonia.Node
	grads  []*gorgonia.Node
}

func newSmallNet(tb testing.TB, rng *rand.Rand, n, hw, width int) *smallNet {
	tb.Helper()
	g := gorgonia.NewGraph()
	net := &smallNet{g: g}
	param, must := paramMaker(g, rng, &net.params), mustNode(tb)
	bn := func(x *gorgonia.Node, c, groups int) *gorgonia.Node {
		st := NewBNState(Host(), c)
		st.Groups = groups
		return must(BatchNorm(x, param("γ", c), param("β", c), st))
	}
	const queue, dim = 10, 8
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.Intn(queue))
	}
	x := input(g, "x", randomAwayFromZero(rng, n*3*hw*hw), n, 3, hw, hw) // x: N×3×H×W
	st1 := NewBNState(Host(), width)
	st1.Groups = 2
	r1 := must(BatchNormReLU(must(Conv2D(x, param("w1", width, 3, 3, 3), 1, 1)), param("γ", width), param("β", width), st1))
	b2 := bn(must(Conv2D(r1, param("w2", width, width, 3, 3), 1, 1)), width, 2)
	r2 := must(ReLU(must(Add(b2, r1))))                                        // residual
	p := must(MaxPool2D(r2, 2, 2, 0))                                          // N×W×H/2×W/2
	r3 := must(ReLU(must(Conv2D(p, param("w3", 2*width, width, 3, 3), 2, 1)))) // N×2W×H/4×W/4
	f := must(GlobalAvgPool(r3))                                               // N×2W
	h := must(ReLU(bn(must(Linear(f, param("fc1", 2*width, 2*width), param("b1", 2*width))), 2*width, 1)))
	q := must(L2Normalize(must(Linear(h, param("fc2", dim, 2*width), nil))))                          // q: N×D
	logits := must(Linear(q, input(g, "queue", randomAwayFromZero(rng, queue*dim), queue, dim), nil)) // N×K
	net.loss = must(SoftmaxCrossEntropy(logits, labelsNode(g, labels), 0.2))
	net.grads = must2(gorgonia.Grad(net.loss, net.params...))(tb)
	return net
}

func must2(ns gorgonia.Nodes, err error) func(testing.TB) gorgonia.Nodes {
	return func(tb testing.TB) gorgonia.Nodes {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return ns
	}
}

// TestPlanMatchesTapeMachine runs the small net's loss and every gradient
// through Gorgonia's TapeMachine and through a compiled plan.
func TestPlanMatchesTapeMachine(t *testing.T) {
	net := newSmallNet(t, rand.New(rand.NewSource(5)), 4, 8, 4)
	runTape(t, net.g)
	want := [][]float64{values(t, net.loss)}
	for _, gn := range net.grads {
		want = append(want, values(t, gn))
	}

	be := cpu.New(2)
	plan, err := Compile(net.g, be, append(gorgonia.Nodes{net.loss}, net.grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Free()
	adds, total := 0, 0
	for _, s := range plan.steps {
		if _, ok := s.k.(gorgoniaAdd); ok {
			adds++
		}
	}
	for _, n := range net.g.AllNodes() {
		total += n.Shape().TotalSize()
	}
	if adds != 1 {
		t.Fatalf("the plan ran %d gradient accumulations, want 1 (r1 feeds conv2 and the residual Add)", adds)
	}
	if plan.Elements() >= total {
		t.Fatalf("the plan allocated %d elements, no fewer than the graph's %d: buffers are not reused", plan.Elements(), total)
	}
	t.Logf("%d steps (%d Gorgonia +), %d of %d elements allocated", plan.Steps(), adds, plan.Elements(), total)

	for run := 0; run < 2; run++ { // the second run checks that reused buffers start clean
		if err := plan.Run(); err != nil {
			t.Fatal(err)
		}
		for i, n := range append(gorgonia.Nodes{net.loss}, net.grads...) {
			got := make([]float32, n.Shape().TotalSize())
			be.Download(got, plan.Buffer(n))
			closeTo(t, "run "+string(rune('1'+run))+" "+n.Name(), f64(got), want[i], 1e-4)
		}
	}
}

// TestPlanMemory: a plan's own buffers are its inputs', constants' and
// outputs' and nothing else — BatchNorm's backward writes [dx | dγ | dβ]
// into one value whose dγ and dβ are outputs, and that value must still
// live in the arena, dγ and dβ copied out — and every other value lives in
// the arena, which no kept buffer overlaps. Run allocates nothing.
func TestPlanMemory(t *testing.T) {
	net := newSmallNet(t, rand.New(rand.NewSource(5)), 4, 8, 4)
	be := cpu.New(2)
	plan, err := Compile(net.g, be, append(gorgonia.Nodes{net.loss}, net.grads...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Free()
	kept := 0
	for n := range plan.keep {
		kept += n.Shape().TotalSize()
	}
	arena := plan.arena[device.Float32]
	if arena == nil || len(plan.arena) != 1 {
		t.Fatalf("arenas %v, want one of float32 (the small net has no int32 intermediate)", plan.arena)
	}
	if own := plan.Elements() - arena.Len(); own != kept {
		t.Errorf("the plan owns %d elements besides its arena; its inputs, constants and outputs have %d", own, kept)
	}
	lo, hi := span(arena)
	for n, buf := range plan.bufs {
		if n.Dtype() != gorgonia.Float32 || buf.Len() == 0 {
			continue
		}
		b0, b1 := span(buf)
		inArena := lo <= b0 && b1 <= hi
		overlaps := b0 <= hi && lo <= b1
		if plan.keep[n] && overlaps {
			t.Errorf("kept %v lies in the arena", n.Name())
		}
		if !plan.keep[n] && !inArena {
			t.Errorf("intermediate %v lies outside the arena", n.Name())
		}
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(3, func() { _ = plan.Run() }); n != 0 {
		t.Errorf("Run allocates %v times", n)
	}
}

// span returns the addresses of a CPU buffer's first and last elements.
func span(buf device.Buffer) (first, last uintptr) {
	b := cpu.Float32s(buf)
	return uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[len(b)-1]))
}

// TestPlaceKeepsLiveValuesApart: place never overlaps two values of a
// dtype whose lifetimes share a step (an op's output never aliases its
// inputs, which are read at the step that writes it), aligns every
// offset, and reuses memory: a chain of values each read only by the next
// needs two values' room.
func TestPlaceKeepsLiveValuesApart(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	values := make([]lifetime, 200)
	for i := range values {
		born := rng.Intn(50)
		values[i] = lifetime{dt: device.DType(rng.Intn(2)), size: 1 + rng.Intn(300), born: born, dies: born + rng.Intn(6)}
	}
	offs, need := place(values)
	for i, v := range values {
		if offs[i]%align != 0 || offs[i] < 0 || offs[i]+v.size > need[v.dt] {
			t.Fatalf("value %d (%+v) at offset %d of an arena of %d", i, v, offs[i], need[v.dt])
		}
		for j, w := range values[:i] {
			if v.dt == w.dt && v.born <= w.dies && w.born <= v.dies && offs[i] < offs[j]+w.size && offs[j] < offs[i]+v.size {
				t.Fatalf("values %d %+v and %d %+v live at the same time at offsets %d and %d", i, v, j, w, offs[i], offs[j])
			}
		}
	}
	chain := make([]lifetime, 10)
	for i := range chain {
		chain[i] = lifetime{size: 100, born: i, dies: i + 1}
	}
	if _, need := place(chain); need[device.Float32] != 2*128 {
		t.Errorf("a chain of 100-element values, each read by the next, needs %d elements, want 256 (two values, aligned)", need[device.Float32])
	}
}

// TestCompileRejectsForeignOps checks that an op without a kernel is named
// at compile time.
func TestCompileRejectsForeignOps(t *testing.T) {
	g := gorgonia.NewGraph()
	x := input(g, "x", []float32{0.5, -0.25}, 2)
	y := gorgonia.Must(gorgonia.Tanh(x))
	_, err := Compile(g, cpu.New(1), y)
	if err == nil || !strings.Contains(err.Error(), "tanh") {
		t.Fatalf("Compile of a tanh node: error %v, want one naming tanh", err)
	}
}

// TestGradInsertedAddIsRecognised pins what kernelOf relies on: the node
// gorgonia.Grad inserts to sum the gradients of a value used twice is
// Gorgonia's unexported type elemBinOp and prints as "+ …". A Gorgonia
// upgrade that renames either makes every residual network fail to
// compile; this test says so by name.
func TestGradInsertedAddIsRecognised(t *testing.T) {
	g := gorgonia.NewGraph()
	x := input(g, "x", []float32{0.5, -0.25, 1}, 3)
	r := gorgonia.Must(ReLU(x))
	s := gorgonia.Must(Add(r, gorgonia.Must(ReLU(r)))) // r is used twice
	loss := gorgonia.Must(Dot(s, s))
	if _, err := gorgonia.Grad(loss, x); err != nil {
		t.Fatal(err)
	}
	var foreign int
	for _, n := range g.AllNodes() {
		if _, ok := n.Op().(Kernel); ok || n.Op() == nil || isConstant(n) {
			continue
		}
		foreign++
		if _, err := kernelOf(n, children(g, n)); err != nil {
			t.Errorf("Gorgonia's inserted op %T prints %q: no longer the elemBinOp \"+ …\" that graph.kernelOf maps to Backend.Add; update kernelOf for this Gorgonia version (%v)", n.Op(), n.Op(), err)
		}
	}
	if foreign == 0 {
		t.Fatal("gorgonia.Grad inserted no op of its own to sum r's two gradients; the plan's mapping of + is untested")
	}
}

// The benchmark net: batch 16 of 16×16 images, width 16.
const benchN, benchHW, benchWidth = 16, 16, 16

// BenchmarkStep measures one forward+backward of the small net with the
// compiled plan and with Gorgonia's TapeMachine (both on the CPU backend).
func BenchmarkStep(b *testing.B) {
	b.Run("plan", func(b *testing.B) {
		net := newSmallNet(b, rand.New(rand.NewSource(6)), benchN, benchHW, benchWidth)
		plan, err := Compile(net.g, Host(), append(gorgonia.Nodes{net.loss}, net.grads...)...)
		if err != nil {
			b.Fatal(err)
		}
		if err := plan.Run(); err != nil { // warm-up: workspaces
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := plan.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tape", func(b *testing.B) {
		net := newSmallNet(b, rand.New(rand.NewSource(6)), benchN, benchHW, benchWidth)
		m := gorgonia.NewTapeMachine(net.g)
		defer m.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m.Reset()
			if err := m.RunAll(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBatchNormBackwardNeedsTraining checks that differentiating a BatchNorm
// in evaluation mode is an error that says what to do, not a wrong gradient.
func TestBatchNormBackwardNeedsTraining(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	g := gorgonia.NewGraph()
	x := input(g, "x", randomAwayFromZero(rng, 4*2), 4, 2)
	gamma, beta := input(g, "γ", randomAwayFromZero(rng, 2), 2), input(g, "β", randomAwayFromZero(rng, 2), 2)
	st := NewBNState(Host(), 2)
	y, err := BatchNorm(x, gamma, beta, st)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := Dot(y, input(g, "R", randomAwayFromZero(rng, 4*2), 4, 2))
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gorgonia.Grad(loss, x)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(g, cpu.New(1), append(grads, loss)...)
	if err != nil {
		t.Fatal(err)
	}
	st.Training = false
	if err := plan.Run(); err == nil || !strings.Contains(err.Error(), "Training = true") {
		t.Fatalf("backward in evaluation mode: error %v, want one asking for Training = true", err)
	}
	st.Training = true
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
}

// TestCompileBorrowing: a plan compiled with CompileBorrowing keeps its
// intermediate values in the lender's intermediate buffers, allocating
// less, while both compute what they compute alone: the lender's inputs,
// parameters and outputs survive the borrower's runs.
func TestCompileBorrowing(t *testing.T) {
	be := cpu.New(2)
	a := newSmallNet(t, rand.New(rand.NewSource(5)), 4, 8, 4)
	aOut := append(gorgonia.Nodes{a.loss}, a.grads...)
	lender, err := Compile(a.g, be, aOut...)
	if err != nil {
		t.Fatal(err)
	}
	defer lender.Free()
	run := func(p *Plan, outs gorgonia.Nodes) [][]float32 {
		t.Helper()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		return download(be, p, outs)
	}
	b := newSmallNet(t, rand.New(rand.NewSource(6)), 4, 8, 4) // the same shapes, other values
	alone, err := Compile(b.g, be, b.loss)
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Free()
	want := run(alone, gorgonia.Nodes{b.loss})
	borrower, err := CompileBorrowing(b.g, be, lender, b.loss)
	if err != nil {
		t.Fatal(err)
	}
	defer borrower.Free()
	if borrower.Elements() >= alone.Elements() {
		t.Fatalf("the borrowing plan allocated %d elements, the plan alone %d: nothing was borrowed", borrower.Elements(), alone.Elements())
	}
	first := run(lender, aOut)
	for round := range 2 {
		if got := run(borrower, gorgonia.Nodes{b.loss}); !slices.Equal(got[0], want[0]) {
			t.Fatalf("round %d: the borrowing plan's loss %v, alone %v", round, got[0], want[0])
		}
		for i, got := range download(be, lender, aOut) {
			if !slices.Equal(got, first[i]) {
				t.Fatalf("round %d: the borrower's run changed the lender's output %v", round, aOut[i].Name())
			}
		}
		for i, got := range run(lender, aOut) {
			if !slices.Equal(got, first[i]) {
				t.Fatalf("round %d: after the borrower ran, the lender computes another %v", round, aOut[i].Name())
			}
		}
	}
	l0, l1 := span(lender.arena[device.Float32])
	// What a plan lends is its arena, which holds no input, parameter or
	// output (TestPlanMemory); the borrower uses it.
	if b, l := span(borrower.arena[device.Float32]); b != l0 || l != l1 {
		t.Errorf("the borrowing plan has an arena of its own")
	}
	t.Logf("borrowing plan: %d elements of its own, %d alone", borrower.Elements(), alone.Elements())
}

// download copies the values of nodes out of plan p.
func download(be device.Backend, p *Plan, nodes gorgonia.Nodes) [][]float32 {
	out := make([][]float32, len(nodes))
	for i, n := range nodes {
		out[i] = make([]float32, n.Shape().TotalSize())
		be.Download(out[i], p.Buffer(n))
	}
	return out
}
