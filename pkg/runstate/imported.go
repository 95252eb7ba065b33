package runstate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Import describes an encoder from another framework to store as a
// checkpoint that evaluation reads like one of mochi's own.
type Import struct {
	Net        resnet.Config // the network; EmbedDim 0 when there is no head
	C, H, W    int           // input image shape
	Query      Weights
	Key        *Weights     // nil: the key encoder is a copy of the query encoder
	Queue      *queue.State // nil: no queue of negatives
	Origin     Origin
	Config     *config.Config     // the evaluation config stored with it
	Provenance *config.Provenance // where each of its values came from
	EpochsDone int
}

// Weights are one encoder's parameters and BatchNorm running statistics.
type Weights struct {
	Params, Stats map[string][]float32
}

// Origin says where an imported checkpoint's weights came from; the
// checkpoint stores it as origin.json.
type Origin struct {
	From    string   `json:"from"`    // the file imported
	SHA256  string   `json:"sha256"`  // of that file
	Format  string   `json:"format"`  // safetensors, torch (zip), torch (legacy)
	Layout  string   `json:"layout"`  // e.g. MoCo (module.encoder_q.)
	Ignored []string `json:"ignored"` // keys of the file not used, with why
}

// File names the file an imported checkpoint came from.
func (o *Origin) File() string {
	if o == nil {
		return "an unreadable origin"
	}
	return o.From
}

// SaveImported writes im as a checkpoint that linear-eval, knn and
// analyze-uniformity read. It holds no optimizer state or random streams,
// so pretrain --resume refuses it.
func SaveImported(path string, im Import) error {
	key := im.Key
	if key == nil {
		key = &im.Query
	}
	var cfg bytes.Buffer
	im.Config.WriteYAML(&cfg, im.Provenance)
	st := &State{
		Progress: Progress{Epoch: im.EpochsDone},
		Spec: moco.Spec{Net: im.Net, B: im.Config.KeysPerStep(), C: im.C, H: im.H, W: im.W, K: im.Config.MoCo.K, M: im.Config.MoCo.M,
			Mix: hardneg.Config{N: im.Config.MoCHi.N, S: im.Config.MoCHi.S, SPrime: im.Config.MoCHi.SPrime, Tau: im.Config.MoCo.Tau}},
		QWeights: im.Query.Params, QStats: im.Query.Stats,
		KWeights: key.Params, KStats: key.Stats,
		Velocity: map[string][]float32{},
		Config:   cfg.Bytes(),
	}
	if im.Queue != nil {
		st.Queue = *im.Queue
		st.Spec.K = im.Queue.K
	}
	c, err := st.Encode()
	if err != nil {
		return err
	}
	b, err := json.Marshal(im.Origin)
	if err != nil {
		return err
	}
	c.PutBlob(originBlob, b)
	return checkpoint.Save(path, c)
}

// originBlob marks an imported checkpoint.
const originBlob = "origin.json"

// DecodeOrigin returns the origin of an imported checkpoint, or nil for
// one written by pretraining.
func DecodeOrigin(c *checkpoint.Checkpoint) (*Origin, error) {
	b, ok := c.Blobs[originBlob]
	if !ok {
		return nil, nil
	}
	var o Origin
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", originBlob, err)
	}
	return &o, nil
}
