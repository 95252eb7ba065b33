package optim

import (
	"math"
	"testing"
)

func TestCosine(t *testing.T) {
	c := Cosine{Base: 0.06, Total: 200}
	for _, tc := range []struct{ t, want float64 }{
		{0, 0.06},
		{50, 0.06 * (1 + math.Sqrt2/2) / 2},
		{100, 0.03},
		{150, 0.06 * (1 - math.Sqrt2/2) / 2},
		{200, 0},
		{250, 0},
	} {
		if got := c.LR(tc.t); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("Cosine.LR(%g) = %.17g, want %.17g", tc.t, got, tc.want)
		}
	}
	// MoCo's adjust_learning_rate, one value per epoch.
	for epoch := range 200 {
		want := 0.06 * 0.5 * (1 + math.Cos(math.Pi*float64(epoch)/200))
		if got := c.LR(float64(epoch)); got != want {
			t.Fatalf("epoch %d: %v, MoCo's formula gives %v", epoch, got, want)
		}
	}
}

func TestMultiStep(t *testing.T) {
	s, err := NewMultiStep(30, []float64{60, 80}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ t, want float64 }{
		{0, 30}, {59, 30}, {59.99, 30}, {60, 3}, {79, 3}, {80, 0.3}, {99, 0.3},
	} {
		if got := s.LR(tc.t); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("MultiStep.LR(%g) = %g, want %g", tc.t, got, tc.want)
		}
	}
	if _, err := NewMultiStep(1, []float64{80, 60}, 0.1); err == nil {
		t.Error("NewMultiStep accepted descending milestones")
	}
	if _, err := NewMultiStep(1, []float64{60}, 0); err == nil {
		t.Error("NewMultiStep accepted gamma 0")
	}
}

func TestWarmup(t *testing.T) {
	w := Warmup{Length: 10, Then: Cosine{Base: 0.5, Total: 90}}
	for _, tc := range []struct{ t, want float64 }{
		{0, 0},
		{2.5, 0.125},
		{9, 0.45},
		{10, 0.5},
		{55, 0.25},
		{100, 0},
	} {
		if got := w.LR(tc.t); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Warmup.LR(%g) = %g, want %g", tc.t, got, tc.want)
		}
	}
	ms, err := NewMultiStep(1, []float64{5}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	ws := Warmup{Length: 4, Then: ms}
	for _, tc := range []struct{ t, want float64 }{{1, 0.25}, {4, 1}, {8.9, 1}, {9, 0.1}} {
		if got := ws.LR(tc.t); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Warmup(MultiStep).LR(%g) = %g, want %g", tc.t, got, tc.want)
		}
	}
}
