package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Pretrained is the query encoder f_q of a pretraining checkpoint, with
// what evaluation needs to know about the run that made it.
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
	Origin     *Origin // where an imported checkpoint came from; nil for mochi's own
}

// LoadPretrained reads the query encoder of a pretraining checkpoint.
func LoadPretrained(path string) (*Pretrained, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	c, err := checkpoint.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := decodeState(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := parseConfig(st.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	origin, err := decodeOrigin(c)
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
		return nil, fmt.Errorf("%s has no projection head (imported from %s without MoCo-v2's fc.0/fc.2), and the embeddings need one; linear-eval and knn use the backbone alone", p.Path, originFrom(p.Origin))
	}
	return NewEncoder(be, p.Net, p.Weights, p.Stats, batch, p.C, p.H, p.W, head)
}

// CheckModel reports whether cfg describes the same network as the
// checkpoint, naming the first key that differs.
func (p *Pretrained) CheckModel(cfg *config.Config) error {
	rc, err := ResNetConfig(cfg, p.C)
	if err != nil {
		return err
	}
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

// parseConfig reads a config saved in a checkpoint, as saved.
func parseConfig(yaml []byte) (*config.Config, error) {
	cfg, err := config.ParseSaved("the checkpoint's config", yaml)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint's config: %w", err)
	}
	return cfg, nil
}

// configBytes renders cfg as the YAML a run stores (config.yaml and its
// checkpoints), with where each value came from.
func configBytes(cfg *config.Config, prov *config.Provenance) []byte {
	var b bytes.Buffer
	cfg.WriteYAML(&b, prov)
	return b.Bytes()
}
