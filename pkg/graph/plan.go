package graph

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Plan is a graph compiled for one backend: the nodes in execution order,
// each bound to a buffer allocated once. Run executes one step without
// allocating; the buffers of inputs, constants and outputs keep their
// contents between runs, so a trainer uploads a batch into Buffer(x), calls
// Run and reads Buffer(loss) and the gradients' buffers.
//
// Memory: inputs, constants and outputs have buffers of their own; every
// other value lives in one arena per dtype, at an offset placed at compile
// time so that two values live at the same time never overlap (see place).
// A view (a slice of BatchNorm's backward output) shares its source's
// memory.
type Plan struct {
	be    device.Backend
	steps []step
	bufs  map[*gorgonia.Node]device.Buffer
	keep  map[*gorgonia.Node]bool // inputs, constants, outputs: Buffer returns these
	owned []device.Buffer         // everything Alloc returned, for Free
	elems int                     // elements allocated, all dtypes
	// arena holds the intermediate values, by dtype: its contents are dead
	// between runs, so a plan compiled with CompileBorrowing may use it too.
	arena map[device.DType]device.Buffer
}

// step is one kernel call of Run.
type step struct {
	node *gorgonia.Node
	k    Kernel
	in   []device.Buffer
	out  device.Buffer
	run  func() error // the bound call of a preparer, else nil
}

// preparer is implemented by kernels that derive buffers from their
// arguments (views) and would allocate doing so on every Exec: the plan
// binds them once and Run calls the bound function.
type preparer interface {
	prepare(be device.Backend, in []device.Buffer, out device.Buffer) func() error
}

// viewer is implemented by ops whose output is a part of one input (the
// slices of BatchNorm's backward); the plan gives them a view of that
// input's buffer instead of running them, unless the view is a plan output
// (dγ, dβ), which gets a buffer of its own and a copy, so that the input's
// buffer need not outlive the run.
type viewer interface {
	viewOf() (input, off int)
}

// gorgoniaAdd runs the elementwise + that gorgonia.Grad inserts to sum the
// gradients of a node used more than once (every residual connection).
type gorgoniaAdd struct{}

func (gorgoniaAdd) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Add(in[0], in[1], out)
	return nil
}

func (gorgoniaAdd) layoutSlots(n *gorgonia.Node, _ device.Blocked) ([]int, []layoutSlot) {
	return elementwiseSlots(n, 2)
}
func (k gorgoniaAdd) withBlocks([]int) Kernel { return k }

// name is the step's op as profiles list it: its kernel's String() (the
// op's, with the layouts chosen at compile time), except for Gorgonia's
// gradient sums, whose own ("+ false") says nothing.
func (s *step) name() string {
	if _, ok := s.k.(gorgoniaAdd); ok {
		return "AddGradients{" + shapeString(s.node.Shape()) + "}"
	}
	if k, ok := s.k.(fmt.Stringer); ok {
		return k.String()
	}
	return s.node.Op().String()
}

// kernelOf maps a node's op to its kernel. This package's ops are Kernels;
// Gorgonia's own ops are unexported types, recognised by type name and
// String: elemBinOp prints as "+ false" (operator, then whether the result
// keeps the operands' type), and only same-shape tensor addition is mapped.
func kernelOf(n *gorgonia.Node, children []*gorgonia.Node) (Kernel, error) {
	op := n.Op()
	if k, ok := op.(Kernel); ok {
		return k, nil
	}
	typ := reflect.TypeOf(op)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Name() == "elemBinOp" && strings.HasPrefix(op.String(), "+ ") && len(children) == 2 &&
		children[0].Shape().Eq(n.Shape()) && children[1].Shape().Eq(n.Shape()) && n.Dtype() == tensor.Float32 {
		return gorgoniaAdd{}, nil
	}
	return nil, fmt.Errorf("graph.Compile: node %v: Gorgonia op %q (%s) has no backend kernel; build the differentiable path from pkg/graph ops (only the same-shape + that Grad inserts is mapped)", n.Name(), op, typ)
}

// children returns n's inputs in argument order.
func children(g *gorgonia.ExprGraph, n *gorgonia.Node) []*gorgonia.Node {
	var ch []*gorgonia.Node
	it := g.From(n.ID())
	for it.Next() {
		ch = append(ch, it.Node().(*gorgonia.Node))
	}
	return ch
}

func dtypeOf(n *gorgonia.Node) (device.DType, error) {
	switch n.Dtype() {
	case tensor.Float32:
		return device.Float32, nil
	case tensor.Int32:
		return device.Int32, nil
	}
	return 0, fmt.Errorf("graph.Compile: node %v is %v: plans hold float32 and int32 values only", n.Name(), n.Dtype())
}

// Compile sorts g, keeps the nodes that outputs depend on (all of g when no
// output is given), allocates their buffers on be and returns the plan.
// Input nodes with a bound value (gorgonia.Let, NewTensor WithValue) and
// constants are uploaded now. The intermediate values share one arena,
// placed by lifetime, so the plan holds about the largest set of values
// live at one time, not the whole graph.
func Compile(g *gorgonia.ExprGraph, be device.Backend, outputs ...*gorgonia.Node) (*Plan, error) {
	return compile(g, be, nil, outputs)
}

// CompileBorrowing is Compile where the intermediate values live in
// lender's arena when it is large enough. The two plans must never run at
// the same time, and no intermediate value of one may be read after the
// other ran: MoCo's key encoder, run before the loss plan in each step,
// then takes almost no memory of its own. Buffer still returns the plan's
// inputs, constants and outputs, which are always its own.
func CompileBorrowing(g *gorgonia.ExprGraph, be device.Backend, lender *Plan, outputs ...*gorgonia.Node) (*Plan, error) {
	return compile(g, be, lender, outputs)
}

// alias is where a node's value lives: in root's buffer, from element off.
type alias struct {
	root *gorgonia.Node
	off  int
}

func compile(g *gorgonia.ExprGraph, be device.Backend, lender *Plan, outputs []*gorgonia.Node) (*Plan, error) {
	sorted, err := gorgonia.Sort(g)
	if err != nil {
		return nil, fmt.Errorf("graph.Compile: %w", err)
	}
	order := make([]*gorgonia.Node, 0, len(sorted))
	for i := len(sorted) - 1; i >= 0; i-- { // Sort puts the roots first
		order = append(order, sorted[i])
	}
	kids := make(map[*gorgonia.Node][]*gorgonia.Node, len(order))
	for _, n := range order {
		kids[n] = children(g, n)
	}
	if len(outputs) > 0 {
		order = needed(order, kids, outputs)
	}
	p := &Plan{be: be, bufs: make(map[*gorgonia.Node]device.Buffer), keep: make(map[*gorgonia.Node]bool),
		arena: make(map[device.DType]device.Buffer)}
	for _, o := range outputs {
		p.keep[o] = true
	}

	// lastRead: step index of the last data read of each node.
	kernels := make(map[*gorgonia.Node]Kernel, len(order))
	lastRead := make(map[*gorgonia.Node]int, len(order))
	for i, n := range order {
		if n.Op() == nil || isConstant(n) {
			p.keep[n] = true
			continue
		}
		k, err := kernelOf(n, kids[n])
		if err != nil {
			return nil, err
		}
		kernels[n] = k
		ord, _ := k.(orderingInputs)
		for j, c := range kids[n] {
			if ord == nil || !ord.orderingOnly(j) {
				lastRead[c] = i
			}
		}
	}

	if bl, ok := be.(device.Blocked); ok {
		chooseLayouts(bl, order, kids, kernels, p.keep)
	}

	// Where each value lives: a root has memory of its own, a view lives
	// in its input's root. born and dies bound the steps during which a
	// root's memory holds a value still to be read.
	at := make(map[*gorgonia.Node]alias, len(order))
	born := make(map[*gorgonia.Node]int, len(order))
	dies := make(map[*gorgonia.Node]int, len(order))
	for i, n := range order {
		at[n] = alias{n, 0}
		if v, ok := kernels[n].(viewer); ok && !p.keep[n] {
			in, off := v.viewOf()
			src := at[kids[n][in]]
			at[n] = alias{src.root, src.off + off}
		}
		r := at[n].root
		if r == n {
			born[n], dies[n] = i, i
		}
		if last, ok := lastRead[n]; ok {
			dies[r] = max(dies[r], last)
		}
	}

	// Memory: the kept roots their own buffers, the others the arena.
	var values []lifetime
	var roots []*gorgonia.Node
	for _, n := range order {
		if at[n].root != n {
			continue
		}
		dt, err := dtypeOf(n)
		if err != nil {
			return nil, err
		}
		size := n.Shape().TotalSize()
		if p.keep[n] || kernels[n] == nil {
			b := be.Alloc(dt, size)
			p.bufs[n], p.owned, p.elems = b, append(p.owned, b), p.elems+size
			continue
		}
		values = append(values, lifetime{dt: dt, size: size, born: born[n], dies: dies[n]})
		roots = append(roots, n)
	}
	offs, need := place(values)
	for _, dt := range []device.DType{device.Float32, device.Int32} {
		size, ok := need[dt]
		if !ok {
			continue
		}
		if lender != nil && lender.arena[dt] != nil && lender.arena[dt].Len() >= size {
			p.arena[dt] = lender.arena[dt]
			continue
		}
		b := be.Alloc(dt, size)
		p.arena[dt], p.owned, p.elems = b, append(p.owned, b), p.elems+size
	}
	for i, n := range roots {
		p.bufs[n] = be.View(p.arena[values[i].dt], offs[i], values[i].size)
	}

	for _, n := range order {
		if a := at[n]; a.root != n { // a view: no step of its own
			p.bufs[n] = be.View(p.bufs[a.root], a.off, n.Shape().TotalSize())
			continue
		}
		k := kernels[n]
		if k == nil {
			if err := p.upload(n); err != nil {
				return nil, err
			}
			continue
		}
		in := make([]device.Buffer, len(kids[n]))
		for j, c := range kids[n] {
			in[j] = p.bufs[c]
		}
		st := step{node: n, k: k, in: in, out: p.bufs[n]}
		if pr, ok := k.(preparer); ok {
			st.run = pr.prepare(be, in, st.out)
		}
		p.steps = append(p.steps, st)
	}
	return p, nil
}

// upload copies the value bound to an input or constant node, if any.
func (p *Plan) upload(n *gorgonia.Node) error {
	v := n.Value()
	if v == nil {
		return nil
	}
	switch d := v.Data().(type) {
	case []float32:
		p.be.Upload(p.bufs[n], d)
	case float32:
		p.be.Upload(p.bufs[n], []float32{d})
	case []int32:
		p.be.UploadInt32(p.bufs[n], d)
	case int32:
		p.be.UploadInt32(p.bufs[n], []int32{d})
	default:
		return fmt.Errorf("graph.Compile: node %v holds %T: bind float32 or int32 values", n.Name(), d)
	}
	return nil
}

// isConstant reports whether n is a Gorgonia constant (such as the 1 that
// Grad seeds the backward pass with).
func isConstant(n *gorgonia.Node) bool {
	_, ok := n.Op().(interface{ Value() gorgonia.Value })
	return ok
}

// needed returns the nodes of order that outputs depend on, in order.
func needed(order []*gorgonia.Node, kids map[*gorgonia.Node][]*gorgonia.Node, outputs []*gorgonia.Node) []*gorgonia.Node {
	want := make(map[*gorgonia.Node]bool)
	var visit func(n *gorgonia.Node)
	visit = func(n *gorgonia.Node) {
		if want[n] {
			return
		}
		want[n] = true
		for _, c := range kids[n] {
			visit(c)
		}
	}
	for _, o := range outputs {
		visit(o)
	}
	var keep []*gorgonia.Node
	for _, n := range order {
		if want[n] {
			keep = append(keep, n)
		}
	}
	return keep
}

// Run executes every step once and returns the backend's first error.
func (p *Plan) Run() error {
	for i := range p.steps {
		s := &p.steps[i]
		var err error
		if s.run != nil {
			err = s.run()
		} else {
			err = s.k.Exec(p.be, s.in, s.out)
		}
		if err != nil {
			return err
		}
	}
	return p.be.Sync()
}

// Buffer returns the buffer of an input, constant or output node of the
// plan (nil for any other node, whose buffer is reused by later nodes).
func (p *Plan) Buffer(n *gorgonia.Node) device.Buffer {
	if !p.keep[n] {
		return nil
	}
	return p.bufs[n]
}

// Backend returns the backend the plan runs on.
func (p *Plan) Backend() device.Backend { return p.be }

// Elements returns the number of elements the plan allocated (4 bytes
// each), kernel workspaces excluded.
func (p *Plan) Elements() int { return p.elems }

// Steps returns the number of kernels Run executes.
func (p *Plan) Steps() int { return len(p.steps) }

// Free releases every buffer of the plan; it must not be used afterwards.
func (p *Plan) Free() {
	for _, b := range p.owned {
		p.be.Free(b)
	}
	p.owned, p.bufs, p.steps, p.arena = nil, nil, nil, nil
}

// lifetime is an arena value: size elements of dt, written at step born
// and read last at step dies.
type lifetime struct {
	dt         device.DType
	size       int
	born, dies int
}

// align is the granule of arena offsets, in elements (256 bytes): every
// value starts where a fresh allocation would be aligned for vector loads.
const align = 64

// place gives each value an offset in the arena of its dtype such that two
// values whose steps [born, dies] intersect never overlap, and returns the
// offsets with each arena's size. Values are placed largest first, each at
// the lowest offset clear of the values placed before it that live at the
// same time: the activations, which are the largest values, pack first and
// the smaller ones fill the gaps between them.
func place(values []lifetime) (offs []int, need map[device.DType]int) {
	order := make([]int, len(values))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return values[b].size - values[a].size })
	offs = make([]int, len(values))
	need = make(map[device.DType]int)
	var placed, clash []int
	for _, i := range order {
		v := values[i]
		size := (v.size + align - 1) / align * align
		clash = clash[:0]
		for _, j := range placed {
			w := values[j]
			if w.dt == v.dt && w.born <= v.dies && v.born <= w.dies {
				clash = append(clash, j)
			}
		}
		slices.SortFunc(clash, func(a, b int) int { return offs[a] - offs[b] })
		off := 0
		for _, j := range clash {
			if off+size <= offs[j] {
				break
			}
			off = max(off, (offs[j]+values[j].size+align-1)/align*align)
		}
		offs[i] = off
		need[v.dt] = max(need[v.dt], off+size)
		placed = append(placed, i)
	}
	return offs, need
}
