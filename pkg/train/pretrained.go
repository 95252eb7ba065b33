package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/frozen"
)

// LoadPretrained reads the query encoder of a pretraining checkpoint.
func LoadPretrained(path string) (*frozen.Pretrained, error) {
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
	return &frozen.Pretrained{Path: path, SHA256: hex.EncodeToString(sum[:]), Config: cfg, Net: st.Spec.Net,
		C: st.Spec.C, H: st.Spec.H, W: st.Spec.W, Epoch: st.Progress.Epoch - 1, Steps: st.Progress.Global,
		Weights: st.QWeights, Stats: st.QStats, Queue: st.Queue,
		KeyWeights: st.KWeights, KeyStats: st.KStats, Origin: origin}, nil
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
