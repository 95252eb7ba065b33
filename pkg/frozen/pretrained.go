package frozen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// Pretrained is the query encoder f_q of a pretraining checkpoint, with
// what evaluation needs to know about the run that made it
// (LoadPretrained reads it).
type Pretrained struct {
	Path    string
	SHA256  string         // of the checkpoint file: keys feature caches
	Config  *config.Config // the run's effective config, as saved
	Net     resnet.Config
	C, H, W int // input image shape
	// Epoch is the last epoch the checkpoint's run completed, counted from
	// 0 as in progress lines and checkpoint names (epoch-0001.ckpt: 1);
	// -1 before the first epoch ended.
	Epoch   int
	Weights map[string][]float32
	Stats   map[string][]float32 // BatchNorm running statistics
	Queue   queue.State          // the queue at the checkpoint: a queue-sized set of real negatives; K = 0 for an import without one
	Steps   int                  // training steps completed (BatchNorm updates of the query encoder)

	KeyWeights map[string][]float32 // the momentum key encoder f_k
	KeyStats   map[string][]float32
	Origin     *runstate.Origin // where an imported checkpoint came from; nil for mochi's own
}

// LoadPretrained reads the query encoder of a pretraining checkpoint (or
// of one mochi import wrote).
func LoadPretrained(path string) (*Pretrained, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	c, err := checkpoint.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := runstate.Decode(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := st.ParseConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	origin, err := runstate.DecodeOrigin(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(raw)
	return &Pretrained{Path: path, SHA256: hex.EncodeToString(sum[:]), Config: cfg, Net: st.Spec.Net,
		C: st.Spec.C, H: st.Spec.H, W: st.Spec.W, Epoch: st.Progress.Epoch - 1, Steps: st.Progress.Global,
		Weights: st.QWeights, Stats: st.QStats, Queue: st.Queue,
		KeyWeights: st.KWeights, KeyStats: st.KStats, Origin: origin}, nil
}

// Encoder builds f_q (backbone only, or with the head) in evaluation mode.
func (p *Pretrained) Encoder(be device.Backend, batch int, head bool) (*Encoder, error) {
	if head && p.Net.EmbedDim == 0 {
		return nil, fmt.Errorf("%s has no projection head (imported from %s without MoCo-v2's fc.0/fc.2), and the embeddings need one; linear-eval and knn use the backbone alone", p.Path, p.Origin.File())
	}
	return NewEncoder(be, p.Net, p.Weights, p.Stats, batch, p.C, p.H, p.W, head)
}

// CheckModel reports whether rc (a config's model section) is the
// checkpoint's network, naming the first config key that differs.
func (p *Pretrained) CheckModel(rc resnet.Config) error {
	want := p.Net.WithDefaults()
	got := rc.WithDefaults()
	switch {
	case got.Depth != want.Depth:
		return fmt.Errorf("model.backbone: the config says resnet%d, the checkpoint %s holds resnet%d", got.Depth, p.Path, want.Depth)
	case got.Stem != want.Stem:
		return fmt.Errorf("model.stem: the config says %v, the checkpoint %s holds %v", got.Stem, p.Path, want.Stem)
	case got.Width != want.Width:
		return fmt.Errorf("model.width: the config says %d, the checkpoint %s holds %d", got.Width, p.Path, want.Width)
	case got.EmbedDim != want.EmbedDim && want.EmbedDim != 0: // 0: an imported backbone without head
		return fmt.Errorf("model.embed_dim: the config says %d, the checkpoint %s holds %d", got.EmbedDim, p.Path, want.EmbedDim)
	}
	return nil
}

// Name names the checkpoint in tables and plots: its run folder and file
// stem, e.g. "fmnist-mochi/last".
func (p *Pretrained) Name() string {
	stem := strings.TrimSuffix(filepath.Base(p.Path), filepath.Ext(p.Path))
	return filepath.Base(RunDir(p.Path)) + "/" + stem
}

// RunDir is the run directory of a checkpoint: the folder above
// checkpoints/, or the checkpoint's own folder when it lies elsewhere.
func RunDir(ckpt string) string {
	dir := filepath.Dir(ckpt)
	if filepath.Base(dir) == "checkpoints" {
		return filepath.Dir(dir)
	}
	return dir
}
