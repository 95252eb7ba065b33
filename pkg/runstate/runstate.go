// Package runstate is what a pretraining checkpoint holds: both encoders'
// weights and BatchNorm statistics, the SGD momentum buffers, the queue, the
// random streams, the effective config and where the run stands, laid out
// as sections of a pkg/checkpoint file. pkg/train writes and resumes it;
// pkg/frozen reads the encoders for evaluation; SaveImported writes one
// from another framework's weights.
package runstate

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/queue"
)

// Progress is where a run stands; a checkpoint stores it as JSON.
type Progress struct {
	Epoch, Step, Global int      // the next step to run: step Step of epoch Epoch
	EpochLoss           float64  // sum of the losses of the epoch's steps so far
	KNNTop1             *float64 // last kNN monitor accuracy
	MetricsOffset       int64    // length of metrics.jsonl at the checkpoint
	// Changes lists every key changed with --allow-change since the run
	// began, oldest first.
	Changes []ConfigChange `json:",omitempty"`
}

// ConfigChange is a key a resumed run changed with --allow-change.
type ConfigChange struct {
	Key    string `json:"key"`
	From   string `json:"from"`
	To     string `json:"to"`
	Source string `json:"source"` // where the new value came from: "env MOCHI_OPTIM_LR", "flag --lr"
	Epoch  int    `json:"epoch"`  // it took effect at step InEpoch of this epoch
	Step   int    `json:"step"`   // global steps done when it took effect
}

func (c ConfigChange) String() string {
	return fmt.Sprintf("%s %s → %s (%s) from epoch %d, step %d", c.Key, c.From, c.To, c.Source, c.Epoch, c.Step)
}

// State is everything a run needs to continue exactly.
type State struct {
	Progress           Progress
	Spec               moco.Spec
	QWeights, KWeights map[string][]float32 // f_q, f_k parameters
	QStats, KStats     map[string][]float32 // BatchNorm running statistics
	Velocity           map[string][]float32 // SGD momentum buffers
	Queue              queue.State
	MixRNG, BNRNG      []byte // PCG states
	Config             []byte // the effective config, YAML
	// DataSHA256 identifies the training images by content, so a moved
	// copy resumes and another set does not; "" in checkpoints written
	// before it existed.
	DataSHA256 string
}

// Checkpoint section names: the prefixes of the tensors of each map.
const (
	PrefixQ        = "encoder_q/"
	PrefixK        = "encoder_k/"
	PrefixQStats   = "bn_q/"
	PrefixKStats   = "bn_k/"
	PrefixVelocity = "optim/"
)

// maps are st's tensor maps by section prefix.
func (st *State) maps() map[string]map[string][]float32 {
	return map[string]map[string][]float32{PrefixQ: st.QWeights, PrefixK: st.KWeights,
		PrefixQStats: st.QStats, PrefixKStats: st.KStats, PrefixVelocity: st.Velocity}
}

// Encode lays st out as checkpoint sections.
func (st *State) Encode() (*checkpoint.Checkpoint, error) {
	c := checkpoint.New()
	for prefix, m := range st.maps() {
		for name, v := range m {
			c.PutTensor(prefix+name, []int{len(v)}, v)
		}
	}
	if st.Queue.K > 0 { // an imported checkpoint may have no queue
		q, err := st.Queue.MarshalBinary()
		if err != nil {
			return nil, err
		}
		c.PutBlob("queue", q)
	}
	c.PutBlob("rng/mix", st.MixRNG)
	c.PutBlob("rng/shufflebn", st.BNRNG)
	c.PutBlob("config.yaml", st.Config)
	if st.DataSHA256 != "" {
		c.PutBlob("data.sha256", []byte(st.DataSHA256))
	}
	for name, v := range map[string]any{"progress.json": st.Progress, "spec.json": st.Spec} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		c.PutBlob(name, b)
	}
	return c, nil
}

// Decode reads the state of a checkpoint written by Encode.
func Decode(c *checkpoint.Checkpoint) (*State, error) {
	st := &State{QWeights: map[string][]float32{}, KWeights: map[string][]float32{},
		QStats: map[string][]float32{}, KStats: map[string][]float32{}, Velocity: map[string][]float32{}}
	maps := st.maps()
	for name, tensor := range c.Tensors {
		prefix, rest, _ := strings.Cut(name, "/")
		dst := maps[prefix+"/"]
		if dst == nil {
			return nil, fmt.Errorf("unknown tensor %q", name)
		}
		dst[rest] = tensor.Data
	}
	blob := func(name string) []byte {
		b, _ := c.Blob(name)
		return b
	}
	for _, name := range []string{"rng/mix", "rng/shufflebn", "config.yaml", "progress.json", "spec.json"} {
		if _, err := c.Blob(name); err != nil {
			return nil, fmt.Errorf("not a pretraining checkpoint: %w", err)
		}
	}
	if q, ok := c.Blobs["queue"]; ok {
		if err := st.Queue.UnmarshalBinary(q); err != nil {
			return nil, err
		}
	} else if _, imported := c.Blobs[originBlob]; !imported {
		return nil, fmt.Errorf("not a pretraining checkpoint: checkpoint has no section %q", "queue")
	}
	st.MixRNG, st.BNRNG, st.Config = blob("rng/mix"), blob("rng/shufflebn"), blob("config.yaml")
	st.DataSHA256 = string(blob("data.sha256"))
	if err := json.Unmarshal(blob("progress.json"), &st.Progress); err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	if err := json.Unmarshal(blob("spec.json"), &st.Spec); err != nil {
		return nil, fmt.Errorf("model spec: %w", err)
	}
	return st, nil
}

// ReadProgress reads where the run of the checkpoint at path stands.
func ReadProgress(path string) (*Progress, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	b, err := c.Blob("progress.json")
	if err != nil {
		return nil, err
	}
	p := &Progress{}
	return p, json.Unmarshal(b, p)
}

// ParseConfig reads the config saved in the checkpoint, as saved.
func (st *State) ParseConfig() (*config.Config, error) {
	cfg, err := config.ParseSaved("the checkpoint's config", st.Config)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint's config: %w", err)
	}
	return cfg, nil
}
