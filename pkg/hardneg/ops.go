package hardneg

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// The Gorgonia ops of the MoCo/MoCHi loss. Each has two implementations of
// the same function: Do, the TapeMachine path in float32 or float64, runs
// the host kernels of kernels.go (the readable reference); Exec
// (graph.Kernel) runs device.Backend kernels over float32 buffers, so a
// plan compiled by graph.Compile runs the loss on the CPU or the GPU with
// its values staying in the backend's memory. Each differentiable op has its
// own backward op (DESIGN §5: Gorgonia's multi-axis reductions and several
// of its gradients are wrong, so the loss is built from these ops only).
// Every op is a pure function of its inputs and writes all its parameters,
// shapes included, in WriteHash, so ops with different parameters stay
// distinct nodes.

var (
	dtypeVar = hm.TypeVariable('a')
	vecType  = G.TensorType{Dims: 1, Of: dtypeVar}
	matType  = G.TensorType{Dims: 2, Of: dtypeVar}
	// indexType is Q̃_N's type: queue indices, int32 in float32 and float64
	// graphs alike.
	indexType = G.TensorType{Dims: 2, Of: tensor.Int32}
)

// opBase gives an op the methods common to all ops here, from its String.
type opBase struct{ name string }

func (o opBase) String() string            { return o.name }
func (o opBase) WriteHash(h hash.Hash)     { fmt.Fprint(h, o.name) }
func (o opBase) ReturnsPtr() bool          { return false }
func (o opBase) CallsExtern() bool         { return false }
func (o opBase) OverwritesInput() int      { return -1 }
func (o opBase) Hashcode() uint32          { h := fnv.New32a(); o.WriteHash(h); return h.Sum32() }
func (o opBase) DiffWRT(inputs int) []bool { return make([]bool, inputs) }
func (o opBase) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("hardneg: %s has no gradient", o.name)
}

// shapes converts InferShape's arguments, checking their ranks.
func shapes(op string, in []G.DimSizer, ranks ...int) ([]tensor.Shape, error) {
	if len(in) != len(ranks) {
		return nil, fmt.Errorf("hardneg: %s takes %d inputs, got %d", op, len(ranks), len(in))
	}
	out := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok || len(s) != ranks[i] {
			return nil, fmt.Errorf("hardneg: %s input %d has shape %v, want rank %d", op, i, d, ranks[i])
		}
		out[i] = s
	}
	return out, nil
}

// data returns a tensor value's backing slice.
func data[T Float](v G.Value) ([]T, error) {
	x, ok := v.Data().([]T)
	if !ok {
		return nil, fmt.Errorf("hardneg: input of %v (%T), want a %T tensor of the graph's dtype", v.Dtype(), v.Data(), x)
	}
	return x, nil
}

// datas returns the backing slices of several tensor values.
func datas[T Float](vs []G.Value) ([][]T, error) {
	out := make([][]T, len(vs))
	for i, v := range vs {
		var err error
		if out[i], err = data[T](v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scalar returns the value of a scalar (the gradient Grad seeds with).
func scalar(v G.Value) (float64, error) {
	switch x := v.Data().(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case []float64:
		if len(x) == 1 {
			return x[0], nil
		}
	case []float32:
		if len(x) == 1 {
			return float64(x[0]), nil
		}
	}
	return 0, fmt.Errorf("hardneg: gradient %v is not a scalar", v)
}

// labels converts float-coded labels (exact integers) to int32.
func labels[T Float](x []T) []int32 {
	out := make([]int32, len(x))
	for i, v := range x {
		out[i] = int32(math.Round(float64(v)))
	}
	return out
}

// dense wraps a kernel's output.
func dense[T Float](x []T, shape ...int) G.Value {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(x))
}

// dispatch runs the float32 or float64 instance of an op's body.
func dispatch(in []G.Value, f32 func([]G.Value) (G.Value, error), f64 func([]G.Value) (G.Value, error)) (G.Value, error) {
	switch dt := in[0].Dtype(); dt {
	case tensor.Float32:
		return f32(in)
	case tensor.Float64:
		return f64(in)
	default:
		return nil, fmt.Errorf("hardneg: %v inputs; the MoCHi ops run on Float32 or Float64", dt)
	}
}

// ---- l_pos = q·k per row ----

// positiveOp computes l_pos (B) = rowwise q·k from q, k (B×D).
type positiveOp struct {
	opBase
	b, d int
}

func newPositiveOp(b, d int) positiveOp {
	return positiveOp{opBase{fmt.Sprintf("MoCoPositiveLogits{B=%d, D=%d}", b, d)}, b, d}
}
func (positiveOp) Arity() int            { return 2 }
func (positiveOp) Type() hm.Type         { return hm.NewFnType(matType, matType, vecType) }
func (op positiveOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op positiveOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, positiveDo[float32], positiveDo[float64])
}

func (op positiveOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(s[1]) {
		return nil, fmt.Errorf("hardneg: q is %v but k is %v; both must be B×D", s[0], s[1])
	}
	return tensor.Shape{s[0][0]}, nil
}

func positiveDo[T Float](in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	b, d := in[0].Shape()[0], in[0].Shape()[1]
	out := make([]T, b)
	RowDots(out, x[0], x[1], b, d)
	return dense(out, b), nil
}

// Exec: l_pos = RowDot(q, k).
func (op positiveOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.RowDot(op.b, op.d, in[0], in[1], out)
	return nil
}

// SymDiff: ∂/∂q = g_b k_b, ∂/∂k = g_b q_b.
func (op positiveOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := G.ApplyOp(newScaleRowsOp(op.b, op.d), grad, in[1])
	if err != nil {
		return nil, err
	}
	dk, err := G.ApplyOp(newScaleRowsOp(op.b, op.d), grad, in[0])
	return G.Nodes{dq, dk}, err
}

// scaleRowsOp computes g_b x_b (B×D) from g (B) and x (B×D).
type scaleRowsOp struct {
	opBase
	b, d int
}

func newScaleRowsOp(b, d int) scaleRowsOp {
	return scaleRowsOp{opBase{fmt.Sprintf("MoCoPositiveLogitsGrad{B=%d, D=%d}", b, d)}, b, d}
}
func (scaleRowsOp) Arity() int    { return 2 }
func (scaleRowsOp) Type() hm.Type { return hm.NewFnType(vecType, matType, matType) }
func (op scaleRowsOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 1, 2)
	if err != nil {
		return nil, err
	}
	return s[1].Clone(), nil
}
func (op scaleRowsOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, scaleRowsDo[float32], scaleRowsDo[float64])
}

// Exec: ScaleRows(g, x).
func (op scaleRowsOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.ScaleRows(op.b, op.d, in[0], in[1], out)
	return nil
}

func scaleRowsDo[T Float](in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	b, d := in[1].Shape()[0], in[1].Shape()[1]
	out := make([]T, b*d)
	ScaleRows(out, x[0], x[1], b, d)
	return dense(out, b, d), nil
}

// ---- l_neg = q·Qᵀ ----

// negativeOp computes l_neg (B×K) = q·Qᵀ from q (B×D) and the queue (K×D).
// The queue is a constant: only q gets a gradient.
type negativeOp struct {
	opBase
	b, k, d int
}

func newNegativeOp(b, k, d int) negativeOp {
	return negativeOp{opBase{fmt.Sprintf("MoCoNegativeLogits{B=%d, K=%d, D=%d}", b, k, d)}, b, k, d}
}
func (negativeOp) Arity() int         { return 2 }
func (negativeOp) Type() hm.Type      { return hm.NewFnType(matType, matType, matType) }
func (negativeOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op negativeOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, negativeDo[float32], negativeDo[float64])
}

func (op negativeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2)
	if err != nil {
		return nil, err
	}
	if s[0][1] != s[1][1] {
		return nil, fmt.Errorf("hardneg: q is %v but the queue is %v; both need D columns", s[0], s[1])
	}
	return tensor.Shape{s[0][0], s[1][0]}, nil
}

func negativeDo[T Float](in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	b, d, k := in[0].Shape()[0], in[0].Shape()[1], in[1].Shape()[0]
	out := make([]T, b*k)
	Similarities(out, x[0], x[1], b, k, d)
	return dense(out, b, k), nil
}

// Exec: l_neg = q·Qᵀ, one GEMM (cuBLAS on the GPU).
func (op negativeOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Gemm(false, true, op.b, op.k, op.d, 1, in[0], in[1], 0, out)
	return nil
}

// SymDiff: ∂/∂q = g·Q.
func (op negativeOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := G.ApplyOp(newNegativeGradOp(op.b, op.k, op.d), in[1], grad)
	return G.Nodes{dq, nil}, err
}

// negativeGradOp computes g·Q (B×D) from the queue (K×D) and g (B×K).
type negativeGradOp struct {
	opBase
	b, k, d int
}

func newNegativeGradOp(b, k, d int) negativeGradOp {
	return negativeGradOp{opBase{fmt.Sprintf("MoCoNegativeLogitsGrad{B=%d, K=%d, D=%d}", b, k, d)}, b, k, d}
}
func (negativeGradOp) Arity() int    { return 2 }
func (negativeGradOp) Type() hm.Type { return hm.NewFnType(matType, matType, matType) }
func (op negativeGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[1][0], s[0][1]}, nil
}
func (op negativeGradOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, negativeGradDo[float32], negativeGradDo[float64])
}

// Exec: dq = g·Q, one GEMM.
func (op negativeGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Gemm(false, false, op.b, op.d, op.k, 1, in[1], in[0], 0, out)
	return nil
}

func negativeGradDo[T Float](in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	k, d, b := in[0].Shape()[0], in[0].Shape()[1], in[1].Shape()[0]
	out := make([]T, b*d)
	SimilaritiesGrad(out, x[1], x[0], b, k, d)
	return dense(out, b, d), nil
}
