package hardneg

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// MoCo-v2's InfoNCE loss lives here, beside the mixing, because MoCHi only
// widens its softmax: the synthetic logits are one more block of negatives
// next to l_neg. Without mixing the same op is plain MoCo-v2's loss.

// infoNCEOp is the fused log-softmax + NLL with label 0 over the logits
// [l_pos, l_neg, extra]/τ, averaged over the batch. Inputs: l_pos (B),
// l_neg (B×K), extra (B×E, when hasExtra), and with the class oracle the
// query labels (B) and queue labels (K). Output: a scalar.
type infoNCEOp struct {
	graph.OpBase
	b, k, e          int // E = 0 without extra
	tau              float64
	hasExtra, oracle bool
	ws               *graph.Workspace // shared with the gradient op; see infoNCEBuffers
}

func newInfoNCEOp(b, k, e int, tau float64, hasExtra, oracle bool) *infoNCEOp {
	return &infoNCEOp{graph.NewOpBase(tensor.ScalarShape()), b, k, e, tau, hasExtra, oracle, new(graph.Workspace)}
}

func (op *infoNCEOp) String() string {
	return fmt.Sprintf("InfoNCE{B=%d, K=%d, E=%d, τ=%v, extra=%t, oracle=%t}", op.b, op.k, op.e, op.tau, op.hasExtra, op.oracle)
}

// width is the number of logits per query, 1 + K + E.
func (op *infoNCEOp) width() int { return 1 + op.k + op.e }

// infoNCEBuffers are the backend scratch of the InfoNCE ops.
type infoNCEBuffers struct {
	logits device.Buffer // B×(1+K+E): [l_pos | l_neg | extra]
	prob   device.Buffer // B×(1+K+E): softmax(logits/τ)
	loss   device.Buffer // B: per-query loss
	zeros  device.Buffer // Int32 B: the labels, all 0 (the positive)
	// With the oracle, colLabels (1+K+E) holds −1 at l_pos and the extra
	// logits and the queue labels in between (written by forward through
	// queueLabels, its view of those K elements).
	colLabels, queueLabels device.Buffer
}

func (op *infoNCEOp) buffers(be device.Backend) infoNCEBuffers {
	b := op.ws.Get(be, func(be device.Backend) []device.Buffer {
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
func (op *infoNCEOp) forward(be device.Backend, in []device.Buffer) infoNCEBuffers {
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
func (op *infoNCEOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	ws := op.forward(be, in)
	be.Sum(ws.loss, out)
	be.Scale(1/float32(op.b), out)
	return nil
}

// inputTypes are the types of the op's inputs, in order.
func (op *infoNCEOp) inputTypes() []hm.Type {
	t := []hm.Type{vecType, matType}
	if op.hasExtra {
		t = append(t, matType)
	}
	if op.oracle {
		t = append(t, vecType, vecType)
	}
	return t
}

func (op *infoNCEOp) Type() hm.Type {
	return hm.NewFnType(append(op.inputTypes(), dtypeVar)...)
}

func (op *infoNCEOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range op.logitBlocks() {
		d[i] = true
	}
	return d
}

// logitBlocks is the number of logit inputs: l_pos, l_neg and maybe extra.
func (op *infoNCEOp) logitBlocks() int {
	if op.hasExtra {
		return 3
	}
	return 2
}

func (op *infoNCEOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := make([]int, 0, 5)
	for _, t := range op.inputTypes() {
		ranks = append(ranks, t.(G.TensorType).Dims)
	}
	s, err := shapes(op, in, ranks...)
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
	return op.OpBase.InferShape()
}

// SymDiff: one infoNCEGradOp computes ∂loss/∂logits for the whole
// B×(1+K+E) row block, and one infoNCEBlockOp per logit input takes its
// columns out, so the backward computes the softmax once.
func (op *infoNCEOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dlogits, err := graph.Apply(&infoNCEGradOp{graph.NewOpBase(tensor.Shape{op.b, op.width()}), op}, append(append(G.Nodes{}, in...), grad)...)
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, len(in))
	for i := range op.logitBlocks() {
		if out[i], err = graph.Apply(newInfoNCEBlockOp(op, i, in[i].Shape()), dlogits); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// infoNCEGradOp is ∂loss/∂logits (B×(1+K+E)); its inputs are the forward
// op's inputs and the scalar output gradient g. It recomputes the softmax
// (the op stays a function of its inputs), writes g·(p − onehot(0))/(Bτ)
// over the whole row, scaled by g, which stays in the backend's memory
// (ScaleRows with one row: no host sync).
type infoNCEGradOp struct {
	graph.OpBase
	fwd *infoNCEOp
}

func (op *infoNCEGradOp) Type() hm.Type {
	return hm.NewFnType(append(op.fwd.inputTypes(), dtypeVar, matType)...)
}

func (op *infoNCEGradOp) String() string { return op.fwd.String() + "Grad" }

// Exec writes g·(p − onehot(0))/(Bτ).
func (op *infoNCEGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	f := op.fwd
	g := in[len(in)-1]
	ws := f.forward(be, in[:len(in)-1])
	w := f.width()
	be.SoftmaxCrossEntropyBackward(f.b, w, float32(f.tau), 1/float32(f.b), ws.prob, ws.zeros, out)
	be.ScaleRows(1, f.b*w, g, out, out)
	return nil
}

// infoNCEBlockOp takes one logit block's columns out of ∂loss/∂logits
// (B×(1+K+E)): block 0 is l_pos (B), 1 is l_neg (B×K), 2 the extra logits
// (B×E).
type infoNCEBlockOp struct {
	graph.OpBase
	fwd    *infoNCEOp
	block  int
	off, n int // the block's first column and width in the logits
}

func newInfoNCEBlockOp(fwd *infoNCEOp, block int, shape tensor.Shape) *infoNCEBlockOp {
	off, n := 0, 1
	switch block {
	case 1:
		off, n = 1, fwd.k
	case 2:
		off, n = 1+fwd.k, fwd.e
	}
	return &infoNCEBlockOp{graph.NewOpBase(shape.Clone()), fwd, block, off, n}
}

func (op *infoNCEBlockOp) Type() hm.Type {
	return hm.NewFnType(matType, op.fwd.inputTypes()[op.block])
}

func (op *infoNCEBlockOp) String() string {
	return fmt.Sprintf("%sGrad{block=%d}", op.fwd, op.block)
}

// Exec copies the block's columns.
func (op *infoNCEBlockOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	f := op.fwd
	be.CopyCols(f.b, f.width(), op.off, op.n, 0, op.n, in[0], out)
	return nil
}
