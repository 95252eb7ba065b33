package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// SoftmaxCrossEntropy returns the scalar mean over rows of
// −log softmax(logits[r]/tau)[labels[r]] (InfoNCE with τ = tau):
// logits rows×cols float32, labels a rows int32 tensor node (tensor.Int32,
// bound per step with gorgonia.Let or through Plan.Buffer and UploadInt32).
// The loss is not differentiable in labels.
func SoftmaxCrossEntropy(logits, labels *gorgonia.Node, tau float32) (*gorgonia.Node, error) {
	if err := checkRank("SoftmaxCrossEntropy", "logits", logits, 2); err != nil {
		return nil, err
	}
	ls := logits.Shape()
	if labels.Dims() != 1 || labels.Shape()[0] != ls[0] || labels.Dtype() != tensor.Int32 {
		return nil, fmt.Errorf("SoftmaxCrossEntropy: labels must be an int32 vector of %d elements, got %v of %v", ls[0], labels.Dtype(), labels.Shape())
	}
	if !(tau > 0) {
		return nil, fmt.Errorf("SoftmaxCrossEntropy: temperature tau must be positive, got %v", tau)
	}
	op := &softmaxCEOp{OpBase: NewOpBase(tensor.ScalarShape()), rows: ls[0], cols: ls[1], tau: tau, ws: new(Workspace)}
	return Apply(op, logits, labels)
}

// softmaxCEOp is (logits, labels) → mean loss, or with backward set
// (logits, labels, dloss) → dlogits. The backward recomputes the softmax
// rather than keeping the forward's, so both are functions of their inputs;
// the two share one workspace (per-row losses, probabilities, and the
// unscaled gradient).
type softmaxCEOp struct {
	OpBase
	rows, cols int
	tau        float32
	backward   bool
	ws         *Workspace
}

func (op *softmaxCEOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	logits, labels := gorgonia.TensorType{Dims: 2, Of: a}, gorgonia.TensorType{Dims: 1, Of: tensor.Int32}
	if op.backward {
		return hm.NewFnType(logits, labels, a, logits)
	}
	return hm.NewFnType(logits, labels, a)
}

func (op *softmaxCEOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op *softmaxCEOp) String() string {
	name := "SoftmaxCrossEntropy"
	if op.backward {
		name += "Backward"
	}
	return fmt.Sprintf("%s{%d×%d τ=%v}", name, op.rows, op.cols, op.tau)
}

// Exec computes the mean loss, or dlogits = dloss·(prob − onehot)/(τ·rows).
func (op *softmaxCEOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	n := op.rows * op.cols
	ws := op.ws.Float32s(be, op.rows, n, n)
	loss, prob, grad := ws[0], ws[1], ws[2]
	be.SoftmaxCrossEntropy(op.rows, op.cols, op.tau, in[0], in[1], loss, prob)
	if !op.backward {
		be.Sum(loss, out)
		be.Scale(1/float32(op.rows), out)
		return nil
	}
	be.SoftmaxCrossEntropyBackward(op.rows, op.cols, op.tau, 1/float32(op.rows), prob, in[1], grad)
	be.Gemm(false, false, n, 1, 1, 1, grad, in[2], 0, out) // dlogits = grad·dloss, dloss stays on the device
	return nil
}

// SymDiff: ∂L/∂logits from the recomputed softmax; labels get no gradient.
func (op *softmaxCEOp) SymDiff(in gorgonia.Nodes, _, dloss *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	b := *op
	b.backward, b.out = true, tensor.Shape{op.rows, op.cols}
	dlogits, err := Apply(&b, in[0], in[1], dloss)
	return gorgonia.Nodes{dlogits, nil}, err
}
