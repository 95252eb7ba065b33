package optim

import (
	"fmt"
	"math"
	"sort"
)

// Schedule maps a time t — an epoch or a step, as the caller counts; t may
// be fractional — to a learning rate.
type Schedule interface {
	LR(t float64) float64
}

// Cosine decays Base to 0 over Total: lr(t) = Base·½·(1+cos(π·t/Total)),
// and 0 from Total on. With t the epoch and Total the number of epochs it is
// MoCo's adjust_learning_rate (--cos); with t the global step and Total the
// number of steps it is the per-step variant.
type Cosine struct {
	Base  float64
	Total float64
}

// LR implements Schedule.
func (c Cosine) LR(t float64) float64 {
	if t >= c.Total {
		return 0
	}
	return c.Base * 0.5 * (1 + math.Cos(math.Pi*t/c.Total))
}

// MultiStep multiplies Base by Gamma at each milestone reached:
// lr(t) = Base·Gamma^#{m ∈ Milestones : m ≤ t}, like torch's MultiStepLR
// and MoCo's schedule without --cos (milestones 120, 160, γ 0.1).
type MultiStep struct {
	Base       float64
	Milestones []float64 // ascending
	Gamma      float64   // 0.1 in MoCo and its linear evaluation
}

// NewMultiStep checks the milestones and returns the schedule.
func NewMultiStep(base float64, milestones []float64, gamma float64) (MultiStep, error) {
	if !sort.Float64sAreSorted(milestones) {
		return MultiStep{}, fmt.Errorf("optim: step schedule milestones %v must be ascending", milestones)
	}
	if gamma <= 0 {
		return MultiStep{}, fmt.Errorf("optim: step schedule gamma %g must be > 0", gamma)
	}
	return MultiStep{Base: base, Milestones: append([]float64(nil), milestones...), Gamma: gamma}, nil
}

// LR implements Schedule.
func (s MultiStep) LR(t float64) float64 {
	passed := sort.Search(len(s.Milestones), func(i int) bool { return s.Milestones[i] > t })
	return s.Base * math.Pow(s.Gamma, float64(passed))
}

// Warmup ramps the learning rate linearly from 0 to Then.LR(0) over the
// first Length units of time, then follows Then shifted by Length:
//
//	lr(t) = Then.LR(0)·t/Length   for t < Length
//	lr(t) = Then.LR(t − Length)   afterwards
//
// as in MoCo v3. Then's own time (Cosine.Total, MultiStep.Milestones)
// therefore counts from the end of the warm-up. Feed fractional epochs or
// steps so that the first update does not get lr 0 for a whole epoch.
type Warmup struct {
	Length float64
	Then   Schedule
}

// LR implements Schedule.
func (w Warmup) LR(t float64) float64 {
	if t < w.Length {
		return w.Then.LR(0) * t / w.Length
	}
	return w.Then.LR(t - w.Length)
}
