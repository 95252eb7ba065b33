package resnet

import (
	"fmt"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
)

// Training is a model compiled for training: Plan computes the loss, the
// other outputs asked for and the gradients, and holds the parameters θ
// (the model is bound to it); Opt updates θ in place from the gradients.
type Training struct {
	Plan  *graph.Plan
	Grads gorgonia.Nodes // ∂loss/∂θ, in Params order
	Opt   *optim.SGD
}

// CompileTraining is the one build sequence of a trained model: the
// gradients of loss with respect to m's parameters (gorgonia.Grad), a plan
// of loss, outputs and gradients on be, m bound to it, and SGD over its
// parameters.
func (m *Model) CompileTraining(be device.Backend, loss *gorgonia.Node, sgd optim.SGDConfig, outputs ...*gorgonia.Node) (*Training, error) {
	params := make(gorgonia.Nodes, len(m.Params))
	for i, p := range m.Params {
		params[i] = p.Node
	}
	grads, err := gorgonia.Grad(loss, params...)
	if err != nil {
		return nil, fmt.Errorf("gradient of the loss: %w", err)
	}
	plan, err := graph.Compile(loss.Graph(), be, append(append(gorgonia.Nodes{loss}, outputs...), grads...)...)
	if err != nil {
		return nil, err
	}
	t := &Training{Plan: plan, Grads: grads}
	err = m.Bind(plan) // the plan's buffers hold θ from now on
	var ps []optim.Param
	if err == nil {
		ps, err = m.OptimParams(plan, grads)
	}
	if err == nil {
		t.Opt, err = optim.NewSGD(be, ps, sgd)
	}
	if err != nil {
		plan.Free()
		return nil, err
	}
	return t, nil
}

// Free releases the plan's and the optimizer's device memory.
func (t *Training) Free() {
	t.Opt.Free()
	t.Plan.Free()
}
