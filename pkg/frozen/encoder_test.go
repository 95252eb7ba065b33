package frozen

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// TestFeaturesBatchInvariant: the features of 10 images through an encoder
// of batch 4 (the last batch zero-padded) are those of one batch of 10, row
// for row with their labels, and Embed of the first 3 images gives their
// rows: in evaluation mode images do not interact.
func TestFeaturesBatchInvariant(t *testing.T) {
	rc := resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 4, InChannels: 1, EmbedDim: 8, Seed: 1}
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(2, 1, 8, 8))
	net, err := resnet.Build(g, x, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	pixels, labels := make([]uint8, 10*64), make([]int, 10)
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
	}
	for i := range labels {
		labels[i] = rng.IntN(3)
	}
	ds, err := data.NewInMemory("tiny", 1, 8, 8, 3, pixels, labels)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := []float32{0.5}, []float32{0.25}
	features := func(batch int, head bool) ([]float32, []int, *Encoder) {
		enc, err := NewEncoder(cpu.New(1), rc, net.Weights(), net.RunningStats(), batch, 1, 8, 8, head)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(enc.Free)
		m, lab, err := enc.Features(ds, mean, std)
		if err != nil {
			t.Fatal(err)
		}
		return m.Data, lab, enc
	}
	for _, head := range []bool{false, true} {
		want, wantLab, _ := features(10, head)
		got, gotLab, enc := features(4, head)
		for i := range wantLab {
			if gotLab[i] != wantLab[i] || wantLab[i] != labels[i] {
				t.Fatalf("head %v: label %d is %d in batches of 4, %d in one batch, %d in the data", head, i, gotLab[i], wantLab[i], labels[i])
			}
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("head %v: value %d (image %d) is %v in batches of 4, %v in one batch", head, i, i/enc.OutputDim(), got[i], want[i])
			}
		}
		pix, _, err := PixelFeatures(ds, mean, std)
		if err != nil {
			t.Fatal(err)
		}
		emb, err := enc.Embed(pix.Data, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range emb {
			if math.Abs(float64(emb[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("head %v: Embed value %d is %v, Features %v", head, i, emb[i], want[i])
			}
		}
	}
}
