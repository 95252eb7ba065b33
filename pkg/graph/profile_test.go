package graph

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

func TestProfileGroupsAndSorts(t *testing.T) {
	p := NewProfile()
	p.Add("Conv2DForward{N:2 C:3}", 3*time.Millisecond)
	p.Add("Conv2DForward{N:2 C:8}", 5*time.Millisecond)
	p.Add("ReLU{2×8}", 1*time.Millisecond)
	p.Add("Conv2DForward{N:2 C:3}", 4*time.Millisecond)
	p.Add("SGDStep", 2*time.Millisecond)
	wantOps := []ProfileEntry{
		{"Conv2DForward{N:2 C:3}", 2, 7 * time.Millisecond},
		{"Conv2DForward{N:2 C:8}", 1, 5 * time.Millisecond},
		{"SGDStep", 1, 2 * time.Millisecond},
		{"ReLU{2×8}", 1, 1 * time.Millisecond},
	}
	if got := p.Entries(); !reflect.DeepEqual(got, wantOps) {
		t.Errorf("Entries() = %v, want %v", got, wantOps)
	}
	wantKinds := []ProfileEntry{
		{"Conv2DForward", 3, 12 * time.Millisecond},
		{"SGDStep", 1, 2 * time.Millisecond},
		{"ReLU", 1, 1 * time.Millisecond},
	}
	if got := p.ByKind(); !reflect.DeepEqual(got, wantKinds) {
		t.Errorf("ByKind() = %v, want %v", got, wantKinds)
	}
	if p.Total() != 15*time.Millisecond {
		t.Errorf("Total() = %v, want 15ms", p.Total())
	}
}

// TestRunProfiledMatchesRun checks that a profiled run computes what Run
// does and records every step once per run under its op.
func TestRunProfiledMatchesRun(t *testing.T) {
	net := newSmallNet(t, rand.New(rand.NewSource(7)), 4, 8, 4)
	be := cpu.New(2)
	outs := append(gorgonia.Nodes{net.loss}, net.grads...)
	plan, err := Compile(net.g, be, outs...)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Free()
	results := func() [][]float32 {
		var r [][]float32
		for _, n := range outs {
			v := make([]float32, n.Shape().TotalSize())
			be.Download(v, plan.Buffer(n))
			r = append(r, v)
		}
		return r
	}
	if err := plan.Run(); err != nil {
		t.Fatal(err)
	}
	want := results()
	prof := NewProfile()
	for range 2 {
		if err := plan.RunProfiled(prof); err != nil {
			t.Fatal(err)
		}
	}
	if got := results(); !reflect.DeepEqual(got, want) {
		t.Error("a profiled run computed other values than Run")
	}
	if prof.Runs() != 2 {
		t.Errorf("Runs() = %d, want 2", prof.Runs())
	}
	calls := map[string]int{}
	for _, s := range plan.steps {
		calls[s.name()] += 2
	}
	got := map[string]int{}
	for _, e := range prof.Entries() {
		got[e.Op] = e.Calls
		if e.Time <= 0 {
			t.Errorf("%s: time %v, want > 0", e.Op, e.Time)
		}
	}
	if !reflect.DeepEqual(got, calls) {
		t.Errorf("profiled calls %v, want every step twice: %v", got, calls)
	}
	kinds := map[string]bool{}
	for _, k := range prof.ByKind() {
		kinds[k.Op] = true
		if strings.Contains(k.Op, "{") {
			t.Errorf("kind %q keeps its shape", k.Op)
		}
		if strings.HasPrefix(k.Op, "+") {
			t.Errorf("kind %q: Gorgonia's name for its gradient sums, not AddGradients", k.Op)
		}
	}
	for _, k := range []string{"Conv2D", "Conv2DBackwardFilter", "BatchNorm", "BatchNormBackward", "ReLU", "SoftmaxCrossEntropy", "AddGradients"} {
		if !kinds[k] {
			t.Errorf("no %s among the kinds %v", k, kinds)
		}
	}
}
