package resnet

import (
	"fmt"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
)

// values returns the float32 backing of a parameter node's value.
func values(n *gorgonia.Node) []float32 {
	return n.Value().Data().([]float32)
}

// Bind makes the plan's buffers the home of the parameters: Compile
// uploads the node values once, after which the plan's copies are the ones
// a trainer updates. Weights, LoadWeights and CopyTo then go through the
// plan's backend; nil unbinds (TapeMachine use). Every parameter must be in
// the plan, as an input of it.
func (m *Model) Bind(p *graph.Plan) error {
	if p != nil {
		for _, q := range m.Params {
			if p.Buffer(q.Node) == nil {
				return fmt.Errorf("resnet: parameter %q is not in the plan; compile the graph that holds the model", q.Name)
			}
		}
	}
	m.plan = p
	return nil
}

// read returns a copy of a parameter's current values.
func (m *Model) read(n *gorgonia.Node) []float32 {
	if m.plan == nil {
		return append([]float32(nil), values(n)...)
	}
	v := make([]float32, n.Shape().TotalSize())
	m.plan.Backend().Download(v, m.plan.Buffer(n))
	return v
}

// write sets a parameter's values in its node and, when bound, in the plan.
func (m *Model) write(n *gorgonia.Node, v []float32) {
	copy(values(n), v)
	if m.plan != nil {
		m.plan.Backend().Upload(m.plan.Buffer(n), v)
	}
}

// OptimParams pairs every parameter's plan buffer with the buffer of its
// gradient node, grads[i] being ∂loss/∂Params[i] (gorgonia.Grad's result,
// compiled as outputs of p), for an optimizer.
func (m *Model) OptimParams(p *graph.Plan, grads gorgonia.Nodes) ([]optim.Param, error) {
	if len(grads) != len(m.Params) {
		return nil, fmt.Errorf("resnet: %d gradients for %d parameters", len(grads), len(m.Params))
	}
	out := make([]optim.Param, len(m.Params))
	for i, q := range m.Params {
		v, g := p.Buffer(q.Node), p.Buffer(grads[i])
		if v == nil || g == nil {
			return nil, fmt.Errorf("resnet: parameter %q or its gradient is not kept by the plan; pass the gradients to graph.Compile as outputs", q.Name)
		}
		out[i] = optim.Param{Name: q.Name, Value: v, Grad: g}
	}
	return out, nil
}

// ParamCount is the number of trainable values (torch's
// sum(p.numel() for p in model.parameters())).
func (m *Model) ParamCount() int {
	total := 0
	for _, p := range m.Params {
		total += p.Node.Shape().TotalSize()
	}
	return total
}

// Shapes returns every parameter's shape by name.
func (m *Model) Shapes() map[string][]int {
	out := make(map[string][]int, len(m.Params))
	for _, p := range m.Params {
		out[p.Name] = append([]int(nil), p.Node.Shape()...)
	}
	return out
}

// Weights returns a copy of every parameter by name (the parameter part of
// torch's state_dict), for checkpoints and export.
func (m *Model) Weights() map[string][]float32 {
	out := make(map[string][]float32, len(m.Params))
	for _, p := range m.Params {
		out[p.Name] = m.read(p.Node)
	}
	return out
}

// LoadWeights copies w into the parameters. Every parameter must be present
// with its exact size and no other name may appear, so that a checkpoint of
// another architecture is refused rather than half loaded.
func (m *Model) LoadWeights(w map[string][]float32) error {
	if len(w) != len(m.Params) {
		return fmt.Errorf("resnet: %d tensors given for a model with %d parameters (depth %d, width %d, head %d); was the checkpoint written for another configuration?",
			len(w), len(m.Params), m.Config.Depth, m.Config.Width, m.Config.EmbedDim)
	}
	for _, p := range m.Params {
		v, ok := w[p.Name]
		if !ok {
			return fmt.Errorf("resnet: no values for parameter %q", p.Name)
		}
		if n := p.Node.Shape().TotalSize(); len(v) != n {
			return fmt.Errorf("resnet: parameter %q has %d values, the model's shape %v needs %d", p.Name, len(v), p.Node.Shape(), n)
		}
	}
	for _, p := range m.Params {
		m.write(p.Node, w[p.Name])
	}
	return nil
}

// RunningStats returns every BatchNorm layer's running statistics under
// torch's state_dict names (bn1.running_mean, bn1.running_var, …).
func (m *Model) RunningStats() map[string][]float32 {
	out := make(map[string][]float32, 2*len(m.Norms))
	for _, n := range m.Norms {
		mean, variance := n.State.RunningStats()
		out[n.Name+".running_mean"] = mean
		out[n.Name+".running_var"] = variance
	}
	return out
}

// LoadRunningStats restores statistics written by RunningStats; every
// BatchNorm layer must be present.
func (m *Model) LoadRunningStats(stats map[string][]float32) error {
	if len(stats) != 2*len(m.Norms) {
		return fmt.Errorf("resnet: %d running statistics given for %d BatchNorm layers (2 each); was the checkpoint written for another configuration?", len(stats), len(m.Norms))
	}
	for _, n := range m.Norms {
		mean, ok1 := stats[n.Name+".running_mean"]
		variance, ok2 := stats[n.Name+".running_var"]
		if !ok1 || !ok2 {
			return fmt.Errorf("resnet: no running statistics for BatchNorm %q", n.Name)
		}
		if err := n.State.SetRunningStats(mean, variance); err != nil {
			return fmt.Errorf("resnet: %s: %w", n.Name, err)
		}
	}
	return nil
}

// SetTraining switches every BatchNorm between batch statistics (true,
// torch's model.train()) and running statistics (false, model.eval()).
func (m *Model) SetTraining(training bool) {
	for _, n := range m.Norms {
		n.State.Training = training
	}
}

// CopyTo copies m's parameters and BatchNorm running statistics into dst, a
// model of the same architecture (MoCo's initialisation of the key encoder,
// param_k.data.copy_(param_q.data)). The two share no memory afterwards.
func (m *Model) CopyTo(dst *Model) error {
	if err := dst.LoadWeights(m.Weights()); err != nil {
		return err
	}
	return dst.LoadRunningStats(m.RunningStats())
}

// Clone builds a second network of m's architecture on g with input x,
// node names prefixed by prefix (distinct from m's when g is m's graph),
// holding a deep copy of m's weights and running statistics.
func (m *Model) Clone(g *gorgonia.ExprGraph, x *gorgonia.Node, prefix string, be device.Backend) (*Model, error) {
	cfg := m.Config
	cfg.Prefix = prefix
	c, err := Build(g, x, cfg, be)
	if err != nil {
		return nil, err
	}
	if err := m.CopyTo(c); err != nil {
		return nil, err
	}
	return c, nil
}
