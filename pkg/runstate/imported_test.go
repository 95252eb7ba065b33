package runstate

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// TestSaveImported writes an import without key encoder or queue: the key
// encoder is the query encoder, the origin is kept, the config is the one
// given, and it decodes.
func TestSaveImported(t *testing.T) {
	cfg := config.Default()
	im := Import{Net: resnet.Config{Depth: 18, Width: 4}, C: 3, H: 32, W: 32,
		Query:  Weights{Params: map[string][]float32{"conv1.weight": {1}}, Stats: map[string][]float32{"bn1.running_var": {2}}},
		Origin: Origin{From: "r18.pth", SHA256: "ff", Format: "torch (zip)", Layout: "torchvision"}, Config: &cfg, EpochsDone: 200}
	path := filepath.Join(t.TempDir(), "imported.ckpt")
	if err := SaveImported(path, im); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.KWeights, im.Query.Params) || !reflect.DeepEqual(st.KStats, im.Query.Stats) || st.Queue.K != 0 || st.Progress.Epoch != 200 {
		t.Errorf("imported state: key encoder %v %v, queue K %d, epoch %d", st.KWeights, st.KStats, st.Queue.K, st.Progress.Epoch)
	}
	if got, err := st.ParseConfig(); err != nil || got.MoCo.K != cfg.MoCo.K {
		t.Errorf("stored config: %v", err)
	}
	o, err := DecodeOrigin(c)
	if err != nil || o == nil || !reflect.DeepEqual(*o, im.Origin) {
		t.Errorf("origin %+v, %v; want %+v", o, err, im.Origin)
	}
}
