package hardneg

import (
	"fmt"

	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// masked is the value the class oracle gives the similarity of a queue
// entry labelled like its query: exp(masked/τ) = 0, so the entry leaves
// the softmax exactly, and it is never among the top N while N entries
// remain. The host kernels skip such entries instead (Labels.excludes).
var masked = float32(math.Inf(-1))

// ---- Q̃_N: top-N selection ----

// topNOp selects Q̃_N: from l_neg (B×K), and with the class oracle the
// query labels (B) and queue labels (K), it returns B×N queue indices
// (int32) in queue-index order; see SelectTopN and device.Backend.TopN. It
// has no gradient: the selection is piecewise constant.
type topNOp struct {
	opBase
	b, k, n int
	oracle  bool
	ws      *workspace // with the oracle: the masked copy of l_neg, B×K
}

func newTopNOp(b, k, n int, oracle bool) topNOp {
	return topNOp{opBase{fmt.Sprintf("MoCHiTopN{B=%d, K=%d, N=%d, oracle=%t}", b, k, n, oracle)}, b, k, n, oracle, new(workspace)}
}

func (op topNOp) Arity() int {
	if op.oracle {
		return 3
	}
	return 1
}

func (op topNOp) Type() hm.Type {
	if op.oracle {
		return hm.NewFnType(matType, vecType, vecType, indexType)
	}
	return hm.NewFnType(matType, indexType)
}

func (op topNOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := []int{2}
	if op.oracle {
		ranks = []int{2, 1, 1}
	}
	s, err := shapes(op.name, in, ranks...)
	if err != nil {
		return nil, err
	}
	if k := s[0][1]; op.n > k {
		return nil, fmt.Errorf("hardneg: N = %d exceeds the queue size K = %d; Q̃_N must be a subset of the queue, so lower mochi n or raise queue_size", op.n, k)
	}
	if op.oracle && (s[1][0] != s[0][0] || s[2][0] != s[0][1]) {
		return nil, fmt.Errorf("hardneg: oracle labels are %v and %v for B×K = %v; pass one label per query and per queue entry", s[1], s[2], s[0])
	}
	return tensor.Shape{s[0][0], op.n}, nil
}

func (op topNOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return topNDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return topNDo[float64](op, in) })
}

func topNDo[T Float](op topNOp, in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	b, k := in[0].Shape()[0], in[0].Shape()[1]
	if op.n > k {
		return nil, fmt.Errorf("hardneg: N = %d exceeds the queue size K = %d; lower mochi n or raise queue_size", op.n, k)
	}
	var lab Labels
	if op.oracle {
		lab = Labels{Query: labels(x[1]), Queue: labels(x[2])}
	}
	sel := make([]int32, b*op.n)
	if err := SelectTopN(sel, x[0], lab.Query, lab.Queue, b, k, op.n); err != nil {
		return nil, err
	}
	return tensor.New(tensor.WithShape(b, op.n), tensor.WithBacking(sel)), nil
}

// Exec runs the backend's TopN; with the oracle on a copy of l_neg whose
// excluded entries are masked with −∞. A query left with fewer than N
// candidates would get masked entries in Q̃_N, where the host path fails
// with ErrTooFewCandidates; a GPU cannot report it without a host sync, so
// callers check the labels first with CheckCandidates.
func (op topNOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	sim := in[0]
	if op.oracle {
		sim = op.ws.get(be, func(be device.Backend) []device.Buffer {
			return []device.Buffer{be.Alloc(device.Float32, op.b*op.k)}
		})[0]
		be.Copy(sim, in[0])
		be.MaskEqual(op.b, op.k, in[1], in[2], sim, masked)
	}
	be.TopN(op.b, op.k, op.n, sim, out)
	return nil
}

// ---- extra logits [q·h, q·h′] ----

// mixOp computes MoCHi's extra logits (B×(s+s′)) from q (B×D), the queue
// (K×D), l_neg (B×K, = q·Qᵀ), Q̃_N (int32 B×N, topNOp) and the draw
// (B×(3s+2s′), MixDraw.Tensor); see MixLogits. Only q gets a gradient.
type mixOp struct {
	opBase
	dm                Dims
	gradThroughHPrime bool
}

func newMixOp(dm Dims, gradThroughHPrime bool) mixOp {
	return mixOp{opBase{fmt.Sprintf("MoCHiMix{B=%d, K=%d, D=%d, N=%d, s=%d, s′=%d, gradThroughHPrime=%t}",
		dm.B, dm.K, dm.D, dm.N, dm.S, dm.SPrime, gradThroughHPrime)}, dm, gradThroughHPrime}
}

func (mixOp) Arity() int { return 5 }

func (mixOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, matType, indexType, matType, matType)
}

// shape is the op's device.MixShape.
func (op mixOp) shape() device.MixShape {
	d := op.dm
	return device.MixShape{B: d.B, D: d.D, K: d.K, N: d.N, S: d.S, SPrime: d.SPrime}
}

// Exec runs the backend's MixLogits.
func (op mixOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.MixLogits(op.shape(), in[0], in[1], in[2], in[3], in[4], out)
	return nil
}

func (mixOp) DiffWRT(int) []bool { return []bool{true, false, false, false, false} }

func (op mixOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	q, queue, sim, sel, draw := s[0], s[1], s[2], s[3], s[4]
	b, k := q[0], queue[0]
	switch {
	case q[1] != queue[1]:
		return nil, fmt.Errorf("hardneg: q is %v but the queue is %v; both need D columns", q, queue)
	case !sim.Eq(tensor.Shape{b, k}):
		return nil, fmt.Errorf("hardneg: similarities are %v, want B×K = %d×%d", sim, b, k)
	case !sel.Eq(tensor.Shape{b, op.dm.N}):
		return nil, fmt.Errorf("hardneg: Q̃_N is %v, want B×N = %d×%d", sel, b, op.dm.N)
	case !draw.Eq(tensor.Shape{b, drawCols(op.dm.S, op.dm.SPrime)}):
		return nil, fmt.Errorf("hardneg: the mixing draw is %v, want B×(3s+2s′) = %d×%d; draw it with NewMixDraw(rng, B, N, s, s′)", draw, b, drawCols(op.dm.S, op.dm.SPrime))
	}
	return tensor.Shape{b, op.dm.E()}, nil
}

func (op mixOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return mixDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return mixDo[float64](op, in) })
}

// selection returns Q̃_N's indices and checks them, and the draw's ranks
// against N, so a draw made for another N fails instead of indexing out of
// range.
func selection[T Float](v G.Value, draw []T, dm Dims) ([]int32, error) {
	sel, ok := v.Data().([]int32)
	if !ok {
		return nil, fmt.Errorf("hardneg: Q̃_N of %v, want int32 queue indices", v.Dtype())
	}
	for _, i := range sel {
		if i < 0 || int(i) >= dm.K {
			return nil, fmt.Errorf("hardneg: Q̃_N holds %v, not a queue index in [0, %d)", i, dm.K)
		}
	}
	cols := drawCols(dm.S, dm.SPrime)
	for b := range dm.B {
		ri, rj, _, rjq, _ := drawRow(draw[b*cols:(b+1)*cols], dm.S, dm.SPrime)
		for _, ranks := range [][]T{ri, rj, rjq} {
			for _, r := range ranks {
				if r < 0 || int(r) >= dm.N || T(int(r)) != r {
					return nil, fmt.Errorf("hardneg: mixing draw rank %v outside [0, N = %d); make the draw with the op's N", r, dm.N)
				}
			}
		}
	}
	return sel, nil
}

func mixDo[T Float](op mixOp, in []G.Value) (G.Value, error) {
	x, err := datas[T]([]G.Value{in[0], in[1], in[2], in[4]})
	if err != nil {
		return nil, err
	}
	dm := op.dm
	sel, err := selection(in[3], x[3], dm)
	if err != nil {
		return nil, err
	}
	out := make([]T, dm.B*dm.E())
	MixLogits(out, x[0], x[1], x[2], sel, x[3], dm)
	return dense(out, dm.B, dm.E()), nil
}

// SymDiff: ∂/∂q from mixGradOp (h, h′ constant unless gradThroughHPrime).
func (op mixOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := G.ApplyOp(mixGradOp{opBase{op.name + "Grad"}, op}, in[0], in[1], in[3], in[4], grad)
	return G.Nodes{dq, nil, nil, nil, nil}, err
}

// mixGradOp computes ∂(Σ g⊙extra)/∂q (B×D) from q, the queue, Q̃_N, the
// draw and g (B×(s+s′)); see MixGrad.
type mixGradOp struct {
	opBase
	fwd mixOp
}

func (mixGradOp) Arity() int { return 5 }

func (mixGradOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, indexType, matType, matType, matType)
}

// Exec runs the backend's MixLogitsBackward.
func (op mixGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.MixLogitsBackward(op.fwd.shape(), in[0], in[1], in[2], in[3], in[4], op.fwd.gradThroughHPrime, out)
	return nil
}

func (op mixGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

func (op mixGradOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return mixGradDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return mixGradDo[float64](op, in) })
}

func mixGradDo[T Float](op mixGradOp, in []G.Value) (G.Value, error) {
	x, err := datas[T]([]G.Value{in[0], in[1], in[3], in[4]})
	if err != nil {
		return nil, err
	}
	dm := op.fwd.dm
	sel, err := selection(in[2], x[2], dm)
	if err != nil {
		return nil, err
	}
	dq := make([]T, dm.B*dm.D)
	MixGrad(dq, x[0], x[1], sel, x[2], x[3], dm, op.fwd.gradThroughHPrime)
	return dense(dq, dm.B, dm.D), nil
}

// ---- InfoNCE ----

// infoNCEOp is the fused log-softmax + NLL with label 0 over the logits
// [l_pos, l_neg, extra]/τ, averaged over the batch. Inputs: l_pos (B),
// l_neg (B×K), extra (B×E, when hasExtra), and with the class oracle the
// query labels (B) and queue labels (K). Output: a scalar.
type infoNCEOp struct {
	opBase
	b, k, e          int // E = 0 without extra
	tau              float64
	hasExtra, oracle bool
	ws               *workspace // shared with the gradient ops; see infoNCEBuffers
}

func newInfoNCEOp(b, k, e int, tau float64, hasExtra, oracle bool) infoNCEOp {
	return infoNCEOp{opBase{fmt.Sprintf("InfoNCE{B=%d, K=%d, E=%d, τ=%v, extra=%t, oracle=%t}", b, k, e, tau, hasExtra, oracle)},
		b, k, e, tau, hasExtra, oracle, new(workspace)}
}

// width is the number of logits per query, 1 + K + E.
func (op infoNCEOp) width() int { return 1 + op.k + op.e }

// infoNCEBuffers are the backend scratch of the InfoNCE ops.
type infoNCEBuffers struct {
	logits device.Buffer // B×(1+K+E): [l_pos | l_neg | extra], then the backward's dlogits
	prob   device.Buffer // B×(1+K+E): softmax(logits/τ)
	loss   device.Buffer // B: per-query loss
	zeros  device.Buffer // Int32 B: the labels, all 0 (the positive)
	// With the oracle, colLabels (1+K+E) holds −1 at l_pos and the extra
	// logits and the queue labels in between (written by assemble through
	// queueLabels, its view of those K elements).
	colLabels, queueLabels device.Buffer
}

func (op infoNCEOp) buffers(be device.Backend) infoNCEBuffers {
	b := op.ws.get(be, func(be device.Backend) []device.Buffer {
		w := op.width()
		bufs := []device.Buffer{be.Alloc(device.Float32, op.b*w), be.Alloc(device.Float32, op.b*w),
			be.Alloc(device.Float32, op.b), be.Alloc(device.Int32, op.b)}
		if op.oracle {
			cl := be.Alloc(device.Float32, w)
			be.Fill(cl, -1) // l_pos and extra: never a query's class
			bufs = append(bufs, cl, be.View(cl, 1, op.k))
		}
		return bufs
	})
	ws := infoNCEBuffers{logits: b[0], prob: b[1], loss: b[2], zeros: b[3]}
	if op.oracle {
		ws.colLabels, ws.queueLabels = b[4], b[5]
	}
	return ws
}

// forward assembles logits = [l_pos | l_neg | extra] (B×(1+K+E)) from the
// op's inputs, masks the oracle's exclusions with −∞, and computes the
// softmax and the per-query losses.
func (op infoNCEOp) forward(be device.Backend, in []device.Buffer) infoNCEBuffers {
	ws, w := op.buffers(be), op.width()
	be.CopyCols(op.b, 1, 0, w, 0, 1, in[0], ws.logits)
	be.CopyCols(op.b, op.k, 0, w, 1, op.k, in[1], ws.logits)
	if op.hasExtra {
		be.CopyCols(op.b, op.e, 0, w, 1+op.k, op.e, in[2], ws.logits)
	}
	if op.oracle {
		labels := in[op.logitBlocks():]
		be.Copy(ws.queueLabels, labels[1])
		be.MaskEqual(op.b, w, labels[0], ws.colLabels, ws.logits, masked)
	}
	be.SoftmaxCrossEntropy(op.b, w, float32(op.tau), ws.logits, ws.zeros, ws.loss, ws.prob)
	return ws
}

// Exec: loss = Σ_b loss_b / B.
func (op infoNCEOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	ws := op.forward(be, in)
	be.Sum(ws.loss, out)
	be.Scale(1/float32(op.b), out)
	return nil
}

// inputTypes are the types of the op's inputs, in order.
func (op infoNCEOp) inputTypes() []hm.Type {
	t := []hm.Type{vecType, matType}
	if op.hasExtra {
		t = append(t, matType)
	}
	if op.oracle {
		t = append(t, vecType, vecType)
	}
	return t
}

func (op infoNCEOp) Arity() int { return len(op.inputTypes()) }

func (op infoNCEOp) Type() hm.Type {
	return hm.NewFnType(append(op.inputTypes(), dtypeVar)...)
}

func (op infoNCEOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range op.logitBlocks() {
		d[i] = true
	}
	return d
}

// logitBlocks is the number of logit inputs: l_pos, l_neg and maybe extra.
func (op infoNCEOp) logitBlocks() int {
	if op.hasExtra {
		return 3
	}
	return 2
}

func (op infoNCEOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := make([]int, 0, 5)
	for _, t := range op.inputTypes() {
		ranks = append(ranks, t.(G.TensorType).Dims)
	}
	s, err := shapes(op.name, in, ranks...)
	if err != nil {
		return nil, err
	}
	b, k := s[0][0], s[1][1]
	if s[1][0] != b || (op.hasExtra && s[2][0] != b) {
		return nil, fmt.Errorf("hardneg: logit blocks %v disagree on the batch size", s[:op.logitBlocks()])
	}
	if op.oracle {
		if l := s[op.logitBlocks():]; l[0][0] != b || l[1][0] != k {
			return nil, fmt.Errorf("hardneg: oracle labels are %v and %v for B×K = %d×%d; pass one label per query and per queue entry", l[0], l[1], b, k)
		}
	}
	return tensor.ScalarShape(), nil
}

// unpack splits the op's inputs into logit blocks, sizes and labels.
func unpackInfoNCE[T Float](op infoNCEOp, in []G.Value) (lpos, lneg, extra []T, lab Labels, b, k, e int, err error) {
	x, err := datas[T](in)
	if err != nil {
		return
	}
	lpos, lneg = x[0], x[1]
	b, k = in[1].Shape()[0], in[1].Shape()[1]
	if op.hasExtra {
		extra, e = x[2], in[2].Shape()[1]
	}
	if op.oracle {
		l := x[op.logitBlocks():]
		lab = Labels{Query: labels(l[0]), Queue: labels(l[1])}
	}
	return
}

func (op infoNCEOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) {
		lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[float32](op, in)
		if err != nil {
			return nil, err
		}
		return G.NewF32(float32(InfoNCE(lpos, lneg, extra, lab, b, k, e, op.tau))), nil
	}, func(in []G.Value) (G.Value, error) {
		lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[float64](op, in)
		if err != nil {
			return nil, err
		}
		return G.NewF64(InfoNCE(lpos, lneg, extra, lab, b, k, e, op.tau)), nil
	})
}

// SymDiff: one infoNCEGradOp per logit block.
func (op infoNCEOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(in))
	args := append(append(G.Nodes{}, in...), grad)
	for i := range op.logitBlocks() {
		var err error
		if out[i], err = G.ApplyOp(infoNCEGradOp{opBase{fmt.Sprintf("%sGrad{block=%d}", op.name, i)}, op, i}, args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// infoNCEGradOp is the gradient of infoNCEOp w.r.t. one logit block; its
// inputs are the forward op's inputs and the scalar output gradient. On a
// backend it recomputes the softmax (the op stays a function of its
// inputs), writes ∂/∂logits = (p − onehot(0))/(Bτ) over the whole row and
// copies its block out, scaled by the upstream gradient g, which stays in
// the backend's memory (ScaleRows with one row: no host sync).
type infoNCEGradOp struct {
	opBase
	fwd   infoNCEOp
	block int // 0: l_pos, 1: l_neg, 2: extra
}

func (op infoNCEGradOp) Arity() int { return op.fwd.Arity() + 1 }

func (op infoNCEGradOp) Type() hm.Type {
	t := op.fwd.inputTypes()
	return hm.NewFnType(append(t, dtypeVar, t[op.block])...)
}

func (op infoNCEGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[op.block].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("hardneg: %s input %d has no shape", op.name, op.block)
	}
	return s.Clone(), nil
}

func (op infoNCEGradOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return infoNCEGradDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return infoNCEGradDo[float64](op, in) })
}

// blockCols returns the first column and the width of the op's block in
// the logits [l_pos | l_neg | extra].
func (op infoNCEGradOp) blockCols() (off, n int) {
	switch op.block {
	case 0:
		return 0, 1
	case 1:
		return 1, op.fwd.k
	}
	return 1 + op.fwd.k, op.fwd.e
}

// Exec writes the block's gradient g·(p − onehot(0))/(Bτ).
func (op infoNCEGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	f := op.fwd
	g := in[len(in)-1]
	ws := f.forward(be, in[:len(in)-1])
	w := f.width()
	// dlogits into the logits buffer, which the backward no longer reads
	be.SoftmaxCrossEntropyBackward(f.b, w, float32(f.tau), 1/float32(f.b), ws.prob, ws.zeros, ws.logits)
	off, n := op.blockCols()
	be.CopyCols(f.b, w, off, n, 0, n, ws.logits, out)
	be.ScaleRows(1, f.b*n, g, out, out)
	return nil
}

func infoNCEGradDo[T Float](op infoNCEGradOp, in []G.Value) (G.Value, error) {
	g, err := scalar(in[len(in)-1])
	if err != nil {
		return nil, err
	}
	lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[T](op.fwd, in[:len(in)-1])
	if err != nil {
		return nil, err
	}
	out := make([]T, in[op.block].Shape().TotalSize())
	blocks := [3][]T{}
	blocks[op.block] = out
	InfoNCEGrad(blocks[0], blocks[1], blocks[2], lpos, lneg, extra, lab, b, k, e, op.fwd.tau, g)
	return dense(out, in[op.block].Shape()...), nil
}
