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
type Plan struct {
	be    device.Backend
	steps []step
	bufs  map[*gorgonia.Node]device.Buffer
	keep  map[*gorgonia.Node]bool // inputs, constants, outputs: Buffer returns these
	owned []device.Buffer         // everything Alloc returned, for Free
	elems int                     // elements allocated, all dtypes
	// spare holds the buffers Alloc returned for intermediate values, by
	// (dtype, elements): their contents are dead between runs, so a plan
	// compiled with CompileBorrowing may use them too.
	spare map[[2]int][]device.Buffer
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
// input's buffer instead of running them.
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
// constants are uploaded now. An intermediate buffer is returned to a pool
// after its last reader runs and reused by a later node of the same size
// and type, so the plan holds roughly the live set, not the whole graph.
func Compile(g *gorgonia.ExprGraph, be device.Backend, outputs ...*gorgonia.Node) (*Plan, error) {
	return compile(g, be, nil, outputs)
}

// CompileBorrowing is Compile where the intermediate values may live in
// lender's intermediate buffers (those of the same size and type) before
// new ones are allocated. The two plans must never run at the same time,
// and no intermediate value of one may be read after the other ran: MoCo's
// key encoder, run before the loss plan in each step, then takes almost no
// memory of its own. Buffer still returns the plan's inputs, constants and
// outputs, which are always its own.
func CompileBorrowing(g *gorgonia.ExprGraph, be device.Backend, lender *Plan, outputs ...*gorgonia.Node) (*Plan, error) {
	return compile(g, be, lender, outputs)
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
		spare: make(map[[2]int][]device.Buffer)}
	for _, o := range outputs {
		p.keep[o] = true
	}

	// root: the node whose allocation a view shares; last: step index of
	// the last data read of each root.
	root := make(map[*gorgonia.Node]*gorgonia.Node, len(order))
	last := make(map[*gorgonia.Node]int, len(order))
	kernels := make(map[*gorgonia.Node]Kernel, len(order))
	for i, n := range order {
		root[n] = n
		if n.Op() == nil || isConstant(n) {
			p.keep[n] = true
			continue
		}
		k, err := kernelOf(n, kids[n])
		if err != nil {
			return nil, err
		}
		kernels[n] = k
		if v, ok := k.(viewer); ok {
			in, _ := v.viewOf()
			root[n] = root[kids[n][in]]
		}
		ord, _ := k.(orderingInputs)
		for j, c := range kids[n] {
			if ord == nil || !ord.orderingOnly(j) {
				last[root[c]] = i
			}
		}
	}
	for n := range p.keep {
		p.keep[root[n]] = true
	}

	pool := make(map[[2]int][]device.Buffer) // (dtype, elements) → free buffers
	if lender != nil {
		for k, bufs := range lender.spare {
			pool[k] = slices.Clone(bufs)
		}
	}
	released := make(map[*gorgonia.Node]bool)
	release := func(r *gorgonia.Node) {
		if p.keep[r] || kernels[r] == nil || released[r] {
			return
		}
		released[r] = true
		pool[poolKey(r)] = append(pool[poolKey(r)], p.bufs[r])
	}
	for i, n := range order {
		k := kernels[n]
		if v, ok := k.(viewer); ok {
			in, off := v.viewOf()
			p.bufs[n] = be.View(p.bufs[kids[n][in]], off, n.Shape().TotalSize())
		} else if err := p.allocate(n, pool); err != nil {
			return nil, err
		}
		if k == nil {
			if err := p.upload(n); err != nil {
				return nil, err
			}
			continue
		}
		if _, ok := k.(viewer); !ok {
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
		// Release the roots whose last reader is n, after n's output was
		// taken so that an output never aliases its own inputs, and n itself
		// when nothing reads it.
		for _, c := range kids[n] {
			if last[root[c]] == i {
				release(root[c])
			}
		}
		if _, read := last[n]; !read && root[n] == n {
			release(n)
		}
	}
	return p, nil
}

func poolKey(n *gorgonia.Node) [2]int {
	dt, _ := dtypeOf(n)
	return [2]int{int(dt), n.Shape().TotalSize()}
}

// allocate gives n a buffer: a free one of its size and type from pool, or
// a new one; inputs, constants and outputs always get their own.
func (p *Plan) allocate(n *gorgonia.Node, pool map[[2]int][]device.Buffer) error {
	dt, err := dtypeOf(n)
	if err != nil {
		return err
	}
	key := poolKey(n)
	if free := pool[key]; len(free) > 0 && !p.keep[n] {
		p.bufs[n], pool[key] = free[len(free)-1], free[:len(free)-1]
		return nil
	}
	b := p.be.Alloc(dt, key[1])
	p.bufs[n], p.owned, p.elems = b, append(p.owned, b), p.elems+key[1]
	if !p.keep[n] {
		p.spare[key] = append(p.spare[key], b)
	}
	return nil
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
	p.owned, p.bufs, p.steps, p.spare = nil, nil, nil, nil
}
