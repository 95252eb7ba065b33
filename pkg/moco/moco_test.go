package moco

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// tinyModel is a width-4 ResNet-18 on 4 images of 1×8×8, D = 8, K = 16,
// without mixing, and a random batch for it.
func tinyModel(t *testing.T) (*Model, []float32, []float32) {
	t.Helper()
	spec := Spec{Net: resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 4, InChannels: 1, EmbedDim: 8, Seed: 3},
		B: 4, C: 1, H: 8, W: 8, K: 16, M: 0.9, Mix: hardneg.Config{N: 4, Tau: 0.2}, QueueSeed: 5}
	m, err := New(cpu.New(1), spec, false, optim.SGDConfig{Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Free)
	rng := rand.New(rand.NewPCG(1, 2))
	xq, xk := make([]float32, 4*64), make([]float32, 4*64)
	for i := range xq {
		xq[i], xk[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	return m, xq, xk
}

// TestMomentumUpdate: a step moves f_k to m·θ_k + (1−m)·θ_q of the
// weights before it (checked in float64), once SGD has made θ_q differ.
func TestMomentumUpdate(t *testing.T) {
	m, xq, xk := tinyModel(t)
	id := []int{0, 1, 2, 3}
	if _, err := m.Step(xq, xk, id, nil, nil); err != nil {
		t.Fatal(err)
	}
	m.Opt.Step(0.5)
	q0, k0 := m.EncoderQ.Weights(), m.EncoderK.Weights()
	if _, err := m.Step(xq, xk, id, nil, nil); err != nil {
		t.Fatal(err)
	}
	k1 := m.EncoderK.Weights()
	moved := false
	for name, want := range k0 {
		for i := range want {
			w := m.Spec.M*float64(k0[name][i]) + (1-m.Spec.M)*float64(q0[name][i])
			if d := math.Abs(float64(k1[name][i]) - w); d > 1e-6*math.Max(1, math.Abs(w)) {
				t.Fatalf("%s[%d]: θ_k = %v, want m·θ_k + (1−m)·θ_q = %v", name, i, k1[name][i], w)
			}
			moved = moved || q0[name][i] != k0[name][i]
		}
	}
	if !moved {
		t.Fatal("θ_q equals θ_k: the check would pass for any m")
	}
}

// TestShuffleBNKeysInBatchOrder: with one BatchNorm group (statistics
// independent of the row order) the keys of a shuffled key batch, put back
// in order on the device, are the keys of the batch in order.
func TestShuffleBNKeysInBatchOrder(t *testing.T) {
	m, xq, xk := tinyModel(t)
	keys := func(perm []int) []float32 {
		if _, err := m.Step(xq, xk, perm, nil, nil); err != nil {
			t.Fatal(err)
		}
		k := make([]float32, m.Spec.B*m.Spec.Net.EmbedDim)
		m.be.Download(k, m.train.Plan.Buffer(m.k))
		return k
	}
	want := keys([]int{0, 1, 2, 3})
	got := keys([]int{2, 0, 3, 1}) // not its own inverse: a transposed unshuffle fails
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("key value %d (row %d): %v shuffled, %v in order", i, i/m.Spec.Net.EmbedDim, got[i], want[i])
		}
	}
}
