package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/internal/torchpy"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// sgdProblem is a few named parameters with a gradient per step and a
// learning rate per step, drawn from a seeded RNG.
type sgdProblem struct {
	names  []string
	params map[string][]float64
	grads  []map[string][]float64 // grads[step][name]
	lrs    []float64
}

func newSGDProblem(seed uint64, steps int) sgdProblem {
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := map[string]int{"conv1.weight": 27, "bn1.weight": 5, "fc.0.bias": 11}
	pr := sgdProblem{params: map[string][]float64{}}
	for name, n := range sizes {
		pr.names = append(pr.names, name)
		pr.params[name] = randVec(rng, n)
	}
	for s := 0; s < steps; s++ {
		g := map[string][]float64{}
		for name, n := range sizes {
			g[name] = randVec(rng, n)
		}
		pr.grads = append(pr.grads, g)
		pr.lrs = append(pr.lrs, 0.1*(1+rng.Float64()))
	}
	return pr
}

func randVec(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// torchSGD is torch.optim.SGD's step loop (dampening 0) in float64, written
// from torch/optim/sgd.py: the momentum buffer is created as a copy of the
// first decayed gradient rather than starting from zero.
func torchSGD(pr sgdProblem, cfg SGDConfig) (params, velocity map[string][]float64) {
	params, velocity = map[string][]float64{}, map[string][]float64{}
	for name, p := range pr.params {
		params[name] = append([]float64(nil), p...)
	}
	for s, lr := range pr.lrs {
		for _, name := range pr.names {
			p, grad := params[name], pr.grads[s][name]
			d := make([]float64, len(p))
			for i := range p {
				d[i] = grad[i] + cfg.WeightDecay*p[i]
			}
			if cfg.Momentum != 0 {
				buf, ok := velocity[name]
				if !ok {
					buf = append([]float64(nil), d...)
					velocity[name] = buf
				} else {
					for i := range buf {
						buf[i] = cfg.Momentum*buf[i] + d[i]
					}
				}
				for i := range d {
					if cfg.Nesterov {
						d[i] += cfg.Momentum * buf[i]
					} else {
						d[i] = buf[i]
					}
				}
			}
			for i := range p {
				p[i] -= lr * d[i]
			}
		}
	}
	return params, velocity
}

// runSGD runs the problem through SGD on the CPU backend and returns the
// final parameters and velocities.
func runSGD(t *testing.T, pr sgdProblem, cfg SGDConfig) (params, velocity map[string][]float32) {
	t.Helper()
	be := cpu.New(1)
	var ps []Param
	for _, name := range pr.names {
		ps = append(ps, Param{Name: name, Value: cpu.Wrap(f32(pr.params[name])), Grad: be.Alloc(device.Float32, len(pr.params[name]))})
	}
	opt, err := NewSGD(be, ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for s, lr := range pr.lrs {
		for _, p := range ps {
			be.Upload(p.Grad, f32(pr.grads[s][p.Name]))
		}
		opt.Step(lr)
	}
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	params = map[string][]float32{}
	for _, p := range ps {
		params[p.Name] = append([]float32(nil), cpu.Float32s(p.Value)...)
	}
	return params, opt.Velocity()
}

var f32 = numconv.Slice[float32, float64]

// maxRelErr is max |got−want| / max(|want|, 1) over the elements.
func maxRelErr(got []float32, want []float64) float64 {
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-want[i])/math.Max(math.Abs(want[i]), 1))
	}
	return worst
}

var sgdConfigs = []struct {
	name string
	cfg  SGDConfig
}{
	{"plain", SGDConfig{}},
	{"momentum", SGDConfig{Momentum: 0.9}},
	{"momentum+wd", SGDConfig{Momentum: 0.9, WeightDecay: 5e-4}},
	{"nesterov+wd", SGDConfig{Momentum: 0.9, WeightDecay: 1e-2, Nesterov: true}},
	{"wd only", SGDConfig{WeightDecay: 1e-1}},
}

func TestSGDMatchesTorchAlgorithm(t *testing.T) {
	// 6 float32 updates of O(1) values: the error stays a few ulps per step.
	const tol = 1e-5
	for i, tc := range sgdConfigs {
		t.Run(tc.name, func(t *testing.T) {
			pr := newSGDProblem(uint64(i+1), 6)
			wantP, wantV := torchSGD(pr, tc.cfg)
			gotP, gotV := runSGD(t, pr, tc.cfg)
			for _, name := range pr.names {
				if e := maxRelErr(gotP[name], wantP[name]); e > tol {
					t.Errorf("%s: parameter relative error %.3g > %g", name, e, tol)
				}
				if tc.cfg.Momentum == 0 {
					continue
				}
				if e := maxRelErr(gotV[name], wantV[name]); e > tol {
					t.Errorf("%s: velocity relative error %.3g > %g", name, e, tol)
				}
			}
		})
	}
}

// TestSGDVelocityRoundTrip checks that stopping after k steps, exporting the
// velocity and resuming in a fresh optimizer gives the uninterrupted result.
func TestSGDVelocityRoundTrip(t *testing.T) {
	cfg := SGDConfig{Momentum: 0.9, WeightDecay: 1e-4, Nesterov: true}
	pr := newSGDProblem(7, 5)
	wantP, _ := runSGD(t, pr, cfg)

	first := pr
	first.lrs = pr.lrs[:2]
	midP, midV := runSGD(t, first, cfg)

	be := cpu.New(1)
	var ps []Param
	for _, name := range pr.names {
		ps = append(ps, Param{Name: name, Value: cpu.Wrap(append([]float32(nil), midP[name]...)), Grad: be.Alloc(device.Float32, len(midP[name]))})
	}
	opt, err := NewSGD(be, ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := opt.LoadVelocity(midV); err != nil {
		t.Fatal(err)
	}
	for s := 2; s < len(pr.lrs); s++ {
		for _, p := range ps {
			be.Upload(p.Grad, f32(pr.grads[s][p.Name]))
		}
		opt.Step(pr.lrs[s])
	}
	for _, p := range ps {
		got, want := cpu.Float32s(p.Value), wantP[p.Name]
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s[%d]: resumed %v, uninterrupted %v", p.Name, i, got[i], want[i])
			}
		}
	}

	delete(midV, pr.names[0])
	if err := opt.LoadVelocity(midV); err == nil {
		t.Error("LoadVelocity accepted a state with a parameter missing")
	}
}

func TestNewSGDRejects(t *testing.T) {
	be := cpu.New(1)
	a := Param{Name: "a", Value: be.Alloc(device.Float32, 3), Grad: be.Alloc(device.Float32, 3)}
	short := Param{Name: "b", Value: be.Alloc(device.Float32, 3), Grad: be.Alloc(device.Float32, 2)}
	for _, tc := range []struct {
		name   string
		params []Param
		cfg    SGDConfig
	}{
		{"duplicate name", []Param{a, a}, SGDConfig{Momentum: 0.9}},
		{"unnamed", []Param{{Value: a.Value, Grad: a.Grad}}, SGDConfig{}},
		{"gradient length", []Param{short}, SGDConfig{}},
		{"nesterov without momentum", []Param{a}, SGDConfig{Nesterov: true}},
		{"negative decay", []Param{a}, SGDConfig{WeightDecay: -1}},
	} {
		if _, err := NewSGD(be, tc.params, tc.cfg); err == nil {
			t.Errorf("%s: NewSGD returned no error", tc.name)
		}
	}
}

// TestSGDMatchesTorch runs scripts/torch_sgd.py and compares 5 steps of
// torch.optim.SGD with ours. Without Debian's python3-torch it skips (fails
// under CI=true).
func TestSGDMatchesTorch(t *testing.T) {
	type torchCase struct {
		name string
		cfg  SGDConfig
		pr   sgdProblem
	}
	var cases []torchCase
	var in []map[string]any
	for i, tc := range sgdConfigs {
		if tc.cfg.Momentum == 0 {
			continue // torch keeps no momentum buffer to compare
		}
		pr := newSGDProblem(uint64(100+i), 5)
		cases = append(cases, torchCase{tc.name, tc.cfg, pr})
		in = append(in, map[string]any{
			"momentum": tc.cfg.Momentum, "weight_decay": tc.cfg.WeightDecay, "nesterov": tc.cfg.Nesterov,
			"lrs": pr.lrs, "params": pr.params, "grads": pr.grads,
		})
	}
	var want []struct{ Params, Velocity map[string][]float64 }
	torchpy.Run(t, "torch_sgd.py", in, &want)
	if len(want) != len(cases) {
		t.Fatalf("torch_sgd.py answered %d cases, asked %d", len(want), len(cases))
	}
	for i, tc := range cases {
		gotP, gotV := runSGD(t, tc.pr, tc.cfg)
		// Both sides compute in float32 with possibly different operation
		// order (torch fuses the decay with addcmul): a few ulps per step.
		const tol = 1e-5
		for _, name := range tc.pr.names {
			if e := maxRelErr(gotP[name], want[i].Params[name]); e > tol {
				t.Errorf("%s %s: parameter relative error vs torch %.3g > %g", tc.name, name, e, tol)
			}
			if e := maxRelErr(gotV[name], want[i].Velocity[name]); e > tol {
				t.Errorf("%s %s: velocity relative error vs torch %.3g > %g", tc.name, name, e, tol)
			}
		}
	}
}
