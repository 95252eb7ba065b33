package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// BNState is the state of one BatchNorm node: its running statistics, its
// hyper-parameters, and the batch statistics that the forward saves for the
// backward. Its buffers live on the backend given to NewBNState, which must
// be of the same kind ("cpu", "cuda") as the backend that runs the graph.
type BNState struct {
	C        int     // channels (features for N×C input)
	Momentum float32 // weight of the batch statistic in the running average (PyTorch's momentum, 0.1)
	Eps      float32 // added to the variance (1e-5)
	// Groups splits the batch into that many consecutive groups normalised
	// separately (split-BN); it is read when the BatchNorm node is built.
	Groups int
	// Training is read at every execution: true normalises with the batch
	// statistics and updates the running ones, false uses the running ones.
	Training bool

	RunMean, RunVar device.Buffer // C each: PyTorch's running_mean, running_var

	be          device.Backend
	mean, inv   device.Buffer // Groups×C: batch mean and 1/√(σ²+eps) of the last training forward
	statsGroups int           // Groups the saved statistics were allocated for
}

// NewBNState returns the state of a BatchNorm over c channels on be, with
// PyTorch's defaults: running mean 0, running variance 1, momentum 0.1,
// eps 1e-5, one group, training mode.
func NewBNState(be device.Backend, c int) *BNState {
	st := &BNState{C: c, Momentum: 0.1, Eps: 1e-5, Groups: 1, Training: true, be: be,
		RunMean: be.Alloc(device.Float32, c), RunVar: be.Alloc(device.Float32, c)}
	be.Fill(st.RunVar, 1)
	return st
}

// RunningStats copies the running mean and variance to the host.
func (st *BNState) RunningStats() (mean, variance []float32) {
	mean, variance = make([]float32, st.C), make([]float32, st.C)
	st.be.Download(mean, st.RunMean)
	st.be.Download(variance, st.RunVar)
	return mean, variance
}

// SetRunningStats uploads a running mean and variance (from a checkpoint).
func (st *BNState) SetRunningStats(mean, variance []float32) error {
	if len(mean) != st.C || len(variance) != st.C {
		return fmt.Errorf("BatchNorm running statistics: got %d means and %d variances for %d channels", len(mean), len(variance), st.C)
	}
	st.be.Upload(st.RunMean, mean)
	st.be.Upload(st.RunVar, variance)
	return nil
}

// BatchNorm returns γ·(x − μ)/√(σ² + eps) + β per channel for x N×C×H×W or
// N×C, with γ, β of C elements, as torch.nn.BatchNorm2d/1d: in training mode
// μ, σ² are the (biased) statistics of each of st.Groups consecutive groups
// of the batch and the running statistics are updated; in evaluation mode
// they are st's running statistics. Each BatchNorm node needs its own st.
func BatchNorm(x, gamma, beta *gorgonia.Node, st *BNState) (*gorgonia.Node, error) {
	return batchNorm(x, gamma, beta, nil, st, false)
}

// BatchNormReLU returns ReLU(BatchNorm(x, γ, β)) as one node, the same
// float32 values and gradients as the two nodes: a backend with the
// device.BatchNormReLU ability runs the ReLU inside the batch norm's passes
// over memory, any other runs its BatchNorm and ReLU kernels in turn.
func BatchNormReLU(x, gamma, beta *gorgonia.Node, st *BNState) (*gorgonia.Node, error) {
	return batchNorm(x, gamma, beta, nil, st, true)
}

// BatchNormAddReLU returns ReLU(BatchNorm(x, γ, β) + r) as one node (a
// residual connection's end), the same float32 values and gradients as
// the three nodes: a backend with the device.BatchNormAddReLU ability
// runs the sum and the ReLU inside the batch norm's passes over memory,
// any other runs its BatchNorm, Add and ReLU kernels in turn.
func BatchNormAddReLU(x, gamma, beta, r *gorgonia.Node, st *BNState) (*gorgonia.Node, error) {
	if !r.Shape().Eq(x.Shape()) {
		return nil, fmt.Errorf("BatchNormAddReLU: x %v and the residual r %v must have the same shape", x.Shape(), r.Shape())
	}
	return batchNorm(x, gamma, beta, r, st, true)
}

// batchNorm builds the BatchNorm node, with ReLU after it (relu) and r
// added before that (r not nil).
func batchNorm(x, gamma, beta, r *gorgonia.Node, st *BNState, relu bool) (*gorgonia.Node, error) {
	xs := x.Shape()
	if len(xs) != 2 && len(xs) != 4 {
		return nil, fmt.Errorf("BatchNorm: x must be N×C or N×C×H×W, got shape %v", xs)
	}
	s := device.BNShape{N: xs[0], C: xs[1], HW: 1, Groups: st.Groups}
	if len(xs) == 4 {
		s.HW = xs[2] * xs[3]
	}
	if s.C != st.C || gamma.Dims() != 1 || beta.Dims() != 1 || gamma.Shape()[0] != s.C || beta.Shape()[0] != s.C {
		return nil, fmt.Errorf("BatchNorm: x %v, γ %v, β %v and a state of %d channels disagree (γ, β must be vectors of C)", xs, gamma.Shape(), beta.Shape(), st.C)
	}
	if s.Groups < 1 || s.N%s.Groups != 0 {
		return nil, fmt.Errorf("BatchNorm: batch %d is not a multiple of Groups %d", s.N, s.Groups)
	}
	if st.mean == nil || st.statsGroups != s.Groups {
		st.mean, st.inv, st.statsGroups = st.be.Alloc(device.Float32, s.Groups*s.C), st.be.Alloc(device.Float32, s.Groups*s.C), s.Groups
	}
	op := &bnOp{OpBase: NewOpBase(xs), x: xs, s: s, st: st, relu: relu, add: r != nil}
	if r != nil {
		return Apply(op, x, gamma, beta, r)
	}
	if relu {
		op.ws = new(Workspace)
	}
	return Apply(op, x, gamma, beta)
}

// bnOp is (x, γ, β) → y, or with backward set (x, y, dy, γ) → [dx | dγ | dβ]
// flattened into one vector (an op has one output; slice nodes take the
// three apart). Without relu the backward takes y only to be ordered after
// the forward whose statistics it reads; with relu it reads y's signs.
// With add the forward takes the residual r too, (x, γ, β, r), and the
// backward's vector is [dx | dr | dγ | dβ].
type bnOp struct {
	OpBase
	x        tensor.Shape
	s        device.BNShape
	st       *BNState
	relu     bool       // y = ReLU(BatchNorm(x))
	add      bool       // y = ReLU(BatchNorm(x) + r)
	ws       *Workspace // with relu but not add, the ReLU's gradient on a backend without device.BatchNormReLU
	backward bool
}

func (op *bnOp) Type() hm.Type {
	r := len(op.x)
	switch {
	case op.backward:
		return fnType(r, r, r, 1, 1)
	case op.add:
		return fnType(r, 1, 1, r, r)
	}
	return fnType(r, 1, 1, r)
}

func (op *bnOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}
func (op *bnOp) orderingOnly(i int) bool { return op.backward && i == 1 && !op.relu }
func (op *bnOp) String() string {
	name := "BatchNorm"
	if op.add {
		name += "Add"
	}
	if op.relu {
		name += "ReLU"
	}
	if op.backward {
		name += "Backward"
	}
	return fmt.Sprintf("%s{%+v state=%p}", name, op.s, op.st)
}

// layoutSlots: x, y (and r, dy, dx, dr) of an N×C×H×W batch norm share
// any layout; γ, β are vectors.
func (op *bnOp) layoutSlots(n *gorgonia.Node, _ device.Blocked) ([]int, []layoutSlot) {
	operands := make([]int, op.Arity()+1)
	for i := range operands {
		operands[i] = plainOperand
	}
	if len(op.x) != 4 {
		return operands, nil
	}
	shared := []int{0, len(operands) - 1} // x and y, or x and [dx | dr | dγ | dβ]
	switch {
	case op.backward: // (x, y, dy, γ)
		shared = append(shared, 1, 2)
	case op.add: // (x, γ, β, r)
		shared = append(shared, 3)
	}
	for _, i := range shared {
		operands[i] = 0
	}
	return operands, []layoutSlot{{channels: op.s.C, want: -1}}
}

func (op *bnOp) withBlocks(blocks []int) Kernel {
	b := *op
	b.s.Block = blocks[0]
	return &b
}

// activationGrads is the length of the backward vector before dγ: dx, and
// dr with add.
func (op *bnOp) activationGrads() int {
	n := op.s.N * op.s.C * op.s.HW
	if op.add {
		return 2 * n
	}
	return n
}

// Exec normalises with batch or running statistics, or runs the backward.
func (op *bnOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	return op.prepare(be, in, out)()
}

// prepare binds the kernel call to its buffers once; the backward's three
// outputs are views of out, made here so that a Plan's Run allocates nothing.
func (op *bnOp) prepare(be device.Backend, in []device.Buffer, out device.Buffer) func() error {
	st := op.st
	check := func() error {
		if be.Name() != st.be.Name() {
			return fmt.Errorf("%v: state allocated on backend %q, graph run on %q: create the BNState on the backend that runs the graph", op, st.be.Name(), be.Name())
		}
		if op.backward && !st.Training {
			return fmt.Errorf("%v: the backward needs batch statistics: differentiate BatchNorm only with Training = true", op)
		}
		return nil
	}
	// The fused kernel of be for this node, where be has one: with add
	// device.BatchNormAddReLU, with relu alone device.BatchNormReLU.
	fusedAdd, _ := be.(device.BatchNormAddReLU)
	fusedReLU, _ := be.(device.BatchNormReLU)
	if !op.add {
		fusedAdd = nil
	}
	if !op.relu || op.add {
		fusedReLU = nil
	}
	if !op.backward {
		return func() error {
			if err := check(); err != nil {
				return err
			}
			switch {
			case fusedAdd != nil && st.Training:
				fusedAdd.BatchNormAddReLUTrain(op.s, in[0], in[1], in[2], in[3], out, st.mean, st.inv, st.RunMean, st.RunVar, st.Momentum, st.Eps)
			case fusedAdd != nil:
				fusedAdd.BatchNormAddReLUInfer(op.s, in[0], in[1], in[2], in[3], st.RunMean, st.RunVar, out, st.Eps)
			case fusedReLU != nil && st.Training:
				fusedReLU.BatchNormReLUTrain(op.s, in[0], in[1], in[2], out, st.mean, st.inv, st.RunMean, st.RunVar, st.Momentum, st.Eps)
			case fusedReLU != nil:
				fusedReLU.BatchNormReLUInfer(op.s, in[0], in[1], in[2], st.RunMean, st.RunVar, out, st.Eps)
			default: // the kernels in turn
				if st.Training {
					be.BatchNormTrain(op.s, in[0], in[1], in[2], out, st.mean, st.inv, st.RunMean, st.RunVar, st.Momentum, st.Eps)
				} else {
					be.BatchNormInfer(op.s, in[0], in[1], in[2], st.RunMean, st.RunVar, out, st.Eps)
				}
				if op.add {
					be.Add(out, in[3], out)
				}
				if op.relu {
					be.ReLU(out, out)
				}
			}
			return nil
		}
	}
	// out is [dx | dγ | dβ], or [dx | dr | dγ | dβ] with add.
	n, c, xn := op.s.N*op.s.C*op.s.HW, op.s.C, op.activationGrads()
	dx, dgamma, dbeta := be.View(out, 0, n), be.View(out, xn, c), be.View(out, xn+c, c)
	dz := in[2] // the batch norm's upstream gradient: dy, or the ReLU's gradient
	switch {
	case op.add:
		dz = be.View(out, n, n) // dr: the residual's gradient too
	case op.relu && fusedReLU == nil:
		dz = op.ws.Float32s(be, n)[0]
	}
	return func() error {
		if err := check(); err != nil {
			return err
		}
		// in: x, y, dy, γ
		switch {
		case fusedAdd != nil:
			fusedAdd.BatchNormAddReLUBackward(op.s, in[0], in[1], in[2], in[3], st.mean, st.inv, dx, dz, dgamma, dbeta)
			return nil
		case fusedReLU != nil:
			fusedReLU.BatchNormReLUBackward(op.s, in[0], in[1], in[2], in[3], st.mean, st.inv, dx, dgamma, dbeta)
			return nil
		case op.relu:
			be.ReLUBackward(in[1], in[2], dz)
		}
		be.BatchNormBackward(op.s, in[0], dz, in[3], st.mean, st.inv, dx, dgamma, dbeta)
		return nil
	}
}

// SymDiff: one backward node computes dx, dγ, dβ (and dr); slices take
// them apart.
func (op *bnOp) SymDiff(in gorgonia.Nodes, y, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	n, c, xn := op.s.N*op.s.C*op.s.HW, op.s.C, op.activationGrads()
	b := *op
	b.backward, b.out = true, tensor.Shape{xn + 2*c}
	all, err := Apply(&b, in[0], y, dy, in[1])
	if err != nil {
		return nil, err
	}
	dx, err := slice(all, 0, op.x)
	if err != nil {
		return nil, err
	}
	dgamma, err := slice(all, xn, tensor.Shape{c})
	if err != nil {
		return nil, err
	}
	dbeta, err := slice(all, xn+c, tensor.Shape{c})
	if err != nil || !op.add {
		return gorgonia.Nodes{dx, dgamma, dbeta}, err
	}
	dr, err := slice(all, n, op.x)
	return gorgonia.Nodes{dx, dgamma, dbeta, dr}, err
}
