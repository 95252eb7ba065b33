package optim

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Param is one trainable tensor: its value and the gradient the backward
// pass writes, both Len() elements on the optimizer's backend.
type Param struct {
	Name  string
	Value device.Buffer
	Grad  device.Buffer
}

// SGDConfig holds torch.optim.SGD's hyper-parameters other than the
// learning rate, which a Schedule supplies at every step.
type SGDConfig struct {
	Momentum    float64 // μ; 0.9 in MoCo-v2
	WeightDecay float64 // added to the gradient as wd·p; 1e-4 (ImageNet), 5e-4 (CIFAR)
	Nesterov    bool
}

// SGD is stochastic gradient descent with momentum and weight decay, with
// exactly torch.optim.SGD's update (see the package comment). It owns one
// velocity buffer per parameter.
type SGD struct {
	backend  device.Core
	cfg      SGDConfig
	params   []Param
	velocity []device.Buffer // velocity[i] belongs to params[i]
}

// NewSGD returns an optimizer over params with zero velocities. Names must be
// unique and non-empty (they key the checkpointed state) and every gradient
// must be as long as its value.
func NewSGD(b device.Core, params []Param, cfg SGDConfig) (*SGD, error) {
	if cfg.Momentum < 0 || cfg.WeightDecay < 0 {
		return nil, fmt.Errorf("optim: momentum %g and weight decay %g must be ≥ 0", cfg.Momentum, cfg.WeightDecay)
	}
	if cfg.Nesterov && cfg.Momentum == 0 {
		return nil, fmt.Errorf("optim: Nesterov momentum needs momentum > 0 (as in torch.optim.SGD); set momentum or turn nesterov off")
	}
	seen := make(map[string]bool, len(params))
	o := &SGD{backend: b, cfg: cfg, params: append([]Param(nil), params...)}
	for _, p := range params {
		switch {
		case p.Name == "":
			return nil, fmt.Errorf("optim: a parameter has no name; names key the optimizer state in checkpoints")
		case seen[p.Name]:
			return nil, fmt.Errorf("optim: parameter %q listed twice", p.Name)
		case p.Value == nil || p.Grad == nil:
			return nil, fmt.Errorf("optim: parameter %q lacks its value or gradient buffer", p.Name)
		case p.Grad.Len() != p.Value.Len():
			return nil, fmt.Errorf("optim: parameter %q has %d values but %d gradients", p.Name, p.Value.Len(), p.Grad.Len())
		}
		seen[p.Name] = true
		o.velocity = append(o.velocity, b.Alloc(device.Float32, p.Value.Len()))
	}
	return o, nil
}

// Config returns the hyper-parameters the optimizer was built with.
func (o *SGD) Config() SGDConfig { return o.cfg }

// Step applies one update with learning rate lr to every parameter, reading
// the gradients currently in their Grad buffers.
func (o *SGD) Step(lr float64) {
	sp := device.SGDParams{
		LR:          float32(lr),
		Momentum:    float32(o.cfg.Momentum),
		WeightDecay: float32(o.cfg.WeightDecay),
		Nesterov:    o.cfg.Nesterov,
	}
	for i, p := range o.params {
		o.backend.SGDStep(sp, p.Value, p.Grad, o.velocity[i])
	}
}

// Velocity returns a host copy of every parameter's momentum buffer by name,
// for a checkpoint.
func (o *SGD) Velocity() map[string][]float32 {
	out := make(map[string][]float32, len(o.params))
	for i, p := range o.params {
		v := make([]float32, o.velocity[i].Len())
		o.backend.Download(v, o.velocity[i])
		out[p.Name] = v
	}
	return out
}

// LoadVelocity restores the momentum buffers written by Velocity. Every
// parameter must be present with its exact length; extra names are an error
// too, since they mean the checkpoint belongs to another model.
func (o *SGD) LoadVelocity(state map[string][]float32) error {
	if len(state) != len(o.params) {
		return fmt.Errorf("optim: checkpoint holds velocities for %d parameters, the model has %d; was it written for another model?", len(state), len(o.params))
	}
	for i, p := range o.params {
		v, ok := state[p.Name]
		if !ok {
			return fmt.Errorf("optim: checkpoint has no velocity for parameter %q", p.Name)
		}
		if len(v) != o.velocity[i].Len() {
			return fmt.Errorf("optim: checkpoint velocity for %q has %d values, the parameter has %d", p.Name, len(v), o.velocity[i].Len())
		}
	}
	for i, p := range o.params {
		o.backend.Upload(o.velocity[i], state[p.Name])
	}
	return nil
}

// Free releases the velocity buffers; the optimizer is unusable afterwards.
func (o *SGD) Free() {
	for _, v := range o.velocity {
		o.backend.Free(v)
	}
	o.velocity = nil
}
