package graph

import (
	"fmt"
	"hash"
	"hash/fnv"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// Kernel is an operator that runs on a device.Backend: it reads the
// buffers of its inputs (in the order of the node's children) and writes
// its output buffer, whose size is the node's shape. Every op of this
// package and of pkg/hardneg implements it; Compile requires it of every
// node it executes.
type Kernel interface {
	Exec(be device.Backend, in []device.Buffer, out device.Buffer) error
}

// orderingInputs is implemented by kernels that take an input only to be
// ordered after the node that produces it (BatchNorm's backward reads the
// statistics its forward saved): the plan does not keep those buffers alive.
type orderingInputs interface {
	orderingOnly(i int) bool
}

var (
	hostOnce sync.Once
	host     *cpu.Backend
)

// Host is the CPU backend that every op's Do (the TapeMachine path) runs on,
// with one thread per available core: an op is implemented once, as its
// Exec, and the TapeMachine runs that Exec on host memory.
func Host() device.Backend {
	hostOnce.Do(func() { host = cpu.New(runtime.GOMAXPROCS(0)) })
	return host
}

// fnType is the hm type of an op over float tensors of the given ranks,
// inputs first, output last; rank 0 is a scalar.
func fnType(ranks ...int) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, len(ranks))
	for i, r := range ranks {
		ts[i] = rankType(r, a)
	}
	return hm.NewFnType(ts...)
}

func rankType(r int, of hm.Type) hm.Type {
	if r == 0 {
		return of
	}
	return gorgonia.TensorType{Dims: r, Of: of}
}

// hostDo is every op's Do: it wraps the input values' backing slices as host
// buffers, allocates the output value (of shape out and dtype dt, Float32 or
// Int32) and runs the kernel on Host.
func hostDo(k Kernel, out tensor.Shape, dt tensor.Dtype, inputs []gorgonia.Value) (gorgonia.Value, error) {
	be := Host()
	in := make([]device.Buffer, len(inputs))
	for i, v := range inputs {
		b, err := hostBuffer(v)
		if err != nil {
			return nil, fmt.Errorf("%v: input %d: %w", k, i, err)
		}
		in[i] = b
	}
	if out.IsScalar() {
		y := make([]float32, 1)
		if err := k.Exec(be, in, cpu.Wrap(y)); err != nil {
			return nil, err
		}
		return gorgonia.NewF32(y[0]), be.Sync()
	}
	y := tensor.New(tensor.WithShape(out.Clone()...), tensor.Of(dt))
	var yb device.Buffer
	switch d := y.Data().(type) {
	case []float32:
		yb = cpu.Wrap(d)
	case []int32:
		yb = cpu.WrapInt32(d)
	default:
		return nil, fmt.Errorf("%v: output of %v; mochi's ops write float32 or int32", k, dt)
	}
	if err := k.Exec(be, in, yb); err != nil {
		return nil, err
	}
	return y, be.Sync()
}

func hostBuffer(v gorgonia.Value) (device.Buffer, error) {
	switch d := v.Data().(type) {
	case []float32:
		return cpu.Wrap(d), nil
	case float32:
		return cpu.Wrap([]float32{d}), nil
	case []int32:
		return cpu.WrapInt32(d), nil
	case int32:
		return cpu.WrapInt32([]int32{d}), nil
	}
	return nil, fmt.Errorf("value of type %v: mochi's ops take float32 (labels int32) tensors", v.Dtype())
}

// checkRank returns an error naming the op when n is not of rank r.
func checkRank(op string, what string, n *gorgonia.Node, r int) error {
	if n.Dims() != r {
		return fmt.Errorf("%s: %s must have %d dimensions, got shape %v", op, what, r, n.Shape())
	}
	return nil
}

// Op is what Apply takes: a Kernel with a String that names every
// parameter, embedding OpBase, which supplies the rest of gorgonia.Op.
type Op interface {
	gorgonia.Op
	Kernel
	base() *OpBase
}

// Apply adds op to the graph of its children. Every op of mochi is added
// through it: it points the op's OpBase at the op, so that WriteHash hashes
// the op's String and Do runs its Exec.
func Apply(op Op, children ...*gorgonia.Node) (*gorgonia.Node, error) {
	op.base().self = op
	return gorgonia.ApplyOp(op, children...)
}

// shapeString writes a shape as 2×3×4.
func shapeString(s tensor.Shape) string {
	if len(s) == 0 {
		return "()"
	}
	str := ""
	for i, d := range s {
		if i > 0 {
			str += "×"
		}
		str += fmt.Sprint(d)
	}
	return str
}

// OpBase holds what every op of mochi shares, this package's and
// pkg/hardneg's: the static output shape (graphs are built with known
// shapes), its dtype, and the methods of gorgonia.Op that follow from the
// op's String and Exec — WriteHash writes String, which names every
// parameter of the op (shapes included), so that Gorgonia keeps ops with
// different parameters as distinct nodes; Do runs Exec on Host, so an op is
// implemented once; Arity counts Type's inputs. An op embeds it, implements
// Type, String and Exec (and SymDiff when differentiable), and is added
// with Apply.
type OpBase struct {
	out   tensor.Shape
	dtype tensor.Dtype
	self  interface {
		Kernel
		fmt.Stringer
		Type() hm.Type
	} // the op embedding this base, set by Apply
}

// NewOpBase returns the base of an op whose float32 output has shape out.
func NewOpBase(out tensor.Shape) OpBase { return OpBase{out: out, dtype: tensor.Float32} }

// NewInt32OpBase returns the base of an op whose output is int32 indices.
func NewInt32OpBase(out tensor.Shape) OpBase { return OpBase{out: out, dtype: tensor.Int32} }

func (b *OpBase) base() *OpBase { return b }

// Out is the output shape.
func (b *OpBase) Out() tensor.Shape { return b.out }

// Arity is the number of inputs of the op's Type, so the two cannot
// disagree.
func (b *OpBase) Arity() int {
	n := 0
	for t, ok := b.self.Type().(*hm.FunctionType); ok; t, ok = t.Ret(false).(*hm.FunctionType) {
		n++
	}
	return n
}

// InferShape returns the output shape computed when the node was built.
func (b *OpBase) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) { return b.out.Clone(), nil }

// WriteHash writes the op's String.
func (b *OpBase) WriteHash(h hash.Hash) { fmt.Fprint(h, b.self.String()) }

// Hashcode is the FNV hash of what WriteHash writes.
func (b *OpBase) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}

// Do runs the op's Exec on Host (the TapeMachine path).
func (b *OpBase) Do(in ...gorgonia.Value) (gorgonia.Value, error) {
	return hostDo(b.self, b.out, b.dtype, in)
}

// ReturnsPtr is false: Do returns a fresh value.
func (*OpBase) ReturnsPtr() bool { return false }

// CallsExtern is false: the kernels run in the Go process.
func (*OpBase) CallsExtern() bool { return false }

// OverwritesInput is -1: no op writes into an input.
func (*OpBase) OverwritesInput() int { return -1 }
