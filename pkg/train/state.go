package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/queue"
)

// progressState is where a run stands; a checkpoint stores it as JSON.
type progressState struct {
	Epoch, Step, Global int      // the next step to run: step Step of epoch Epoch
	EpochLoss           float64  // sum of the losses of the epoch's steps so far
	KNNTop1             *float64 // last kNN monitor accuracy
	MetricsOffset       int64    // length of metrics.jsonl at the checkpoint
}

// state is everything a run needs to continue exactly.
type state struct {
	Progress           progressState
	Spec               MoCoSpec
	QWeights, KWeights map[string][]float32 // f_q, f_k parameters
	QStats, KStats     map[string][]float32 // BatchNorm running statistics
	Velocity           map[string][]float32 // SGD momentum buffers
	Queue              queue.State
	MixRNG, BNRNG      []byte // PCG states
	Config             []byte // the effective config, YAML
}

// Checkpoint section names.
const (
	prefixQ        = "encoder_q/"
	prefixK        = "encoder_k/"
	prefixQStats   = "bn_q/"
	prefixKStats   = "bn_k/"
	prefixVelocity = "optim/"
)

// snapshot copies the run's state out of the device.
func (t *trainer) snapshot() *state {
	m := t.model
	st := &state{
		Progress: progressState{Epoch: t.epoch, Step: t.step, Global: t.global, EpochLoss: t.epochLoss, KNNTop1: t.lastKNN},
		Spec:     t.spec,
		QWeights: m.qNet.Weights(), KWeights: m.keyNet.Weights(),
		QStats: m.qNet.RunningStats(), KStats: m.keyNet.RunningStats(),
		Velocity: t.opt.Velocity(),
		Queue:    m.queue.Snapshot(),
	}
	st.MixRNG, _ = t.mixSrc.MarshalBinary()
	st.BNRNG, _ = t.bnSrc.MarshalBinary()
	st.Config = configBytes(t.cfg)
	return st
}

// restore puts a state into the run's model, optimizer and RNGs.
func (t *trainer) restore(st *state) error {
	m := t.model
	if err := m.qNet.LoadWeights(st.QWeights); err != nil {
		return fmt.Errorf("query encoder: %w", err)
	}
	if err := m.keyNet.LoadWeights(st.KWeights); err != nil {
		return fmt.Errorf("key encoder: %w", err)
	}
	if err := m.qNet.LoadRunningStats(st.QStats); err != nil {
		return fmt.Errorf("query encoder: %w", err)
	}
	if err := m.keyNet.LoadRunningStats(st.KStats); err != nil {
		return fmt.Errorf("key encoder: %w", err)
	}
	if err := t.opt.LoadVelocity(st.Velocity); err != nil {
		return err
	}
	if err := m.queue.Restore(st.Queue); err != nil {
		return err
	}
	if err := t.mixSrc.UnmarshalBinary(st.MixRNG); err != nil {
		return fmt.Errorf("mixing RNG state: %w", err)
	}
	if err := t.bnSrc.UnmarshalBinary(st.BNRNG); err != nil {
		return fmt.Errorf("ShuffleBN RNG state: %w", err)
	}
	return t.be.Sync()
}

// save writes the run's state to checkpoints/name atomically and returns
// its path.
func (t *trainer) save(name string) (string, error) {
	st := t.snapshot()
	off, err := t.metrics.offset()
	if err != nil {
		return "", err
	}
	st.Progress.MetricsOffset = off
	c, err := st.encode()
	if err != nil {
		return "", err
	}
	path := filepath.Join(t.dir, "checkpoints", name)
	return path, checkpoint.Save(path, c)
}

func (st *state) encode() (*checkpoint.Checkpoint, error) {
	c := checkpoint.New()
	for prefix, m := range map[string]map[string][]float32{prefixQ: st.QWeights, prefixK: st.KWeights,
		prefixQStats: st.QStats, prefixKStats: st.KStats, prefixVelocity: st.Velocity} {
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
	for name, v := range map[string]any{"progress.json": st.Progress, "spec.json": st.Spec} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		c.PutBlob(name, b)
	}
	return c, nil
}

// decodeState reads a checkpoint written by save.
func decodeState(c *checkpoint.Checkpoint) (*state, error) {
	st := &state{QWeights: map[string][]float32{}, KWeights: map[string][]float32{},
		QStats: map[string][]float32{}, KStats: map[string][]float32{}, Velocity: map[string][]float32{}}
	for name, tensor := range c.Tensors {
		prefix, rest, _ := strings.Cut(name, "/")
		dst := map[string]map[string][]float32{prefixQ: st.QWeights, prefixK: st.KWeights,
			prefixQStats: st.QStats, prefixKStats: st.KStats, prefixVelocity: st.Velocity}[prefix+"/"]
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
	if err := json.Unmarshal(blob("progress.json"), &st.Progress); err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	if err := json.Unmarshal(blob("spec.json"), &st.Spec); err != nil {
		return nil, fmt.Errorf("model spec: %w", err)
	}
	return st, nil
}

// loadState reads a checkpoint to resume the run of cfg, refusing one
// written for another model, batch or queue.
func loadState(path string, cfg *config.Config) (*state, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	if o, err := decodeOrigin(c); err != nil || o != nil {
		return nil, fmt.Errorf("%s was made by mochi import from %s: it holds no optimizer state and cannot be resumed; use it with linear-eval, knn or analyze-uniformity", path, originFrom(o))
	}
	st, err := decodeState(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := sameRun(st.Config, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// sameRun checks that a checkpoint's config describes the run cfg asks
// for: everything but the epochs, the run section, the evaluation settings
// and the loader's parallelism (results do not depend on it) must be equal,
// so that resuming continues the same computation.
func sameRun(saved []byte, cfg *config.Config) error {
	old, err := parseConfig(saved)
	if err != nil {
		return err
	}
	free := map[string]bool{"optim.epochs": true, "data.workers": true, "data.prefetch": true}
	var diffs []string
	for _, k := range config.Keys() {
		if strings.HasPrefix(k.Name, "run.") || strings.HasPrefix(k.Name, "eval.") || free[k.Name] {
			continue
		}
		a, b := old.Value(k.Name), cfg.Value(k.Name)
		if !reflect.DeepEqual(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s: checkpoint %v, config %v", k.Name, a, b))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the checkpoint was written by a different run (%s); resume with the config the run started with", strings.Join(diffs, "; "))
	}
	return nil
}

func writeConfig(path string, cfg *config.Config) error {
	return writeFileAtomic(path, configBytes(cfg))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes through a temporary file and a rename, so readers
// never see a half-written file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
