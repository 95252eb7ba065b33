package runstate

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// sample is a state with every field set.
func sample() *State {
	knn := 0.5
	return &State{
		Progress: Progress{Epoch: 2, Step: 3, Global: 19, EpochLoss: 7.25, KNNTop1: &knn, MetricsOffset: 1234,
			Changes: []ConfigChange{{Key: "optim.lr", From: "0.03", To: "0.01", Source: "flag --lr", Epoch: 1, Step: 8}}},
		Spec: moco.Spec{Net: resnet.Config{Depth: 18, Width: 4, EmbedDim: 2}, B: 4, C: 1, H: 8, W: 8, K: 2, M: 0.99,
			Mix: hardneg.Config{N: 2, S: 1, SPrime: 1, Tau: 0.2}, QueueSeed: 5},
		QWeights: map[string][]float32{"conv1.weight": {1, 2}}, KWeights: map[string][]float32{"conv1.weight": {3, 4}},
		QStats: map[string][]float32{"bn1.running_mean": {5}}, KStats: map[string][]float32{"bn1.running_mean": {6}},
		Velocity: map[string][]float32{"conv1.weight": {7, 8}},
		Queue:    queue.State{K: 2, D: 2, Ptr: 1, Keys: []float32{1, 0, 0, 1}, Meta: []queue.Meta{{Index: 3, Label: 1}, {Index: -1, Label: -1}}},
		MixRNG:   []byte("mix"), BNRNG: []byte("bn"), Config: []byte("moco:\n  k: 2\n"), DataSHA256: "abc",
	}
}

func TestEncodeDecode(t *testing.T) {
	want := sample()
	c, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.ckpt")
	if err := checkpoint.Save(path, c); err != nil {
		t.Fatal(err)
	}
	if c, err = checkpoint.Load(path); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded state differs:\n got %+v\nwant %+v", got, want)
	}
	p, err := ReadProgress(path)
	if err != nil || !reflect.DeepEqual(*p, want.Progress) {
		t.Errorf("ReadProgress = %+v, %v; want %+v", p, err, want.Progress)
	}

	// Without a queue, only an imported checkpoint (origin.json) decodes.
	delete(c.Blobs, "queue")
	if _, err := Decode(c); err == nil || !strings.Contains(err.Error(), `no section "queue"`) {
		t.Errorf("pretraining checkpoint without its queue: error %v", err)
	}
	c.PutTensor("head/x", []int{1}, []float32{1})
	if _, err := Decode(c); err == nil || !strings.Contains(err.Error(), `unknown tensor "head/x"`) {
		t.Errorf("unknown section: error %v", err)
	}
}
