// Package optim holds mochi's optimizer and learning-rate schedules.
//
// # SGD
//
// SGD reproduces torch.optim.SGD with dampening 0, the optimizer of MoCo-v2
// (lr 0.03·batch/256, momentum 0.9, weight decay 1e-4):
//
//	g = ∇p + wd·p            // weight decay is added to the gradient
//	v = μ·v + g              // v starts at 0, so the first step has v = g
//	p = p − lr·(g + μ·v)     // Nesterov
//	p = p − lr·v             // otherwise
//
// Parameters, gradients and velocities live in device.Buffers and the update
// runs through device.Core.SGDStep, so one optimizer serves every backend.
// The velocities are exported and imported by parameter name for checkpoints.
//
// # Schedules
//
// A Schedule maps a time t (an epoch or a step, as the caller counts; t may be
// fractional) to a learning rate: Cosine (MoCo's per-epoch
// lr·½·(1+cos(π·epoch/epochs)), or per step), MultiStep (×γ at each
// milestone, the linear-evaluation schedule) and Warmup, a linear ramp in
// front of either.
package optim
