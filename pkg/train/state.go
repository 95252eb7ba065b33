package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/mochi-ssl/mochi/internal/atomicfile"
	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// snapshot copies the run's state out of the device.
func (t *trainer) snapshot() *runstate.State {
	m := t.model
	st := &runstate.State{
		Progress: runstate.Progress{Epoch: t.epoch, Step: t.step, Global: t.global, EpochLoss: t.epochLoss, KNNTop1: t.lastKNN},
		Spec:     t.spec,
		QWeights: m.EncoderQ.Weights(), KWeights: m.EncoderK.Weights(),
		QStats: m.EncoderQ.RunningStats(), KStats: m.EncoderK.RunningStats(),
		Velocity: m.Opt.Velocity(),
		Queue:    m.Queue.Snapshot(),
	}
	st.MixRNG, _ = t.mixSrc.MarshalBinary()
	st.BNRNG, _ = t.bnSrc.MarshalBinary()
	st.Config = configBytes(t.cfg, t.prov)
	st.DataSHA256 = t.dataSHA256
	st.Progress.Changes = t.changes
	return st
}

// restore puts a state into the run's model, optimizer and RNGs.
func (t *trainer) restore(st *runstate.State) error {
	m := t.model
	if err := m.EncoderQ.LoadWeights(st.QWeights); err != nil {
		return fmt.Errorf("query encoder: %w", err)
	}
	if err := m.EncoderK.LoadWeights(st.KWeights); err != nil {
		return fmt.Errorf("key encoder: %w", err)
	}
	if err := m.EncoderQ.LoadRunningStats(st.QStats); err != nil {
		return fmt.Errorf("query encoder: %w", err)
	}
	if err := m.EncoderK.LoadRunningStats(st.KStats); err != nil {
		return fmt.Errorf("key encoder: %w", err)
	}
	if err := m.Opt.LoadVelocity(st.Velocity); err != nil {
		return err
	}
	if err := m.Queue.Restore(st.Queue); err != nil {
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

// save writes the run's state to checkpoints/last.ckpt atomically and
// returns its path. With an epoch file name it writes that file first and
// makes last.ckpt a second name of it, so a kill between the two never
// loses the epoch file.
func (t *trainer) save(epochFile string) (string, error) {
	st := t.snapshot()
	off, err := t.metrics.offset()
	if err != nil {
		return "", err
	}
	st.Progress.MetricsOffset = off
	c, err := st.Encode()
	if err != nil {
		return "", err
	}
	last := filepath.Join(t.dir, ckptDir, lastName)
	if epochFile == "" {
		err = checkpoint.Save(last, c)
	} else {
		path := filepath.Join(t.dir, ckptDir, epochFile)
		if err = checkpoint.Save(path, c); err == nil {
			err = checkpoint.Link(path, last)
		}
	}
	if err != nil {
		return "", err
	}
	t.lastCkpt = last
	return last, nil
}

// readState reads a pretraining checkpoint.
func readState(path string) (*runstate.State, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	if o, err := runstate.DecodeOrigin(c); err != nil || o != nil {
		return nil, fmt.Errorf("%s was made by mochi import from %s: it holds no optimizer state and cannot be resumed; use it with linear-eval, knn or analyze-uniformity", path, o.File())
	}
	st, err := runstate.Decode(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// finishedSummary is the report of a resume that found its run finished:
// the run's summary.json when it has one, else what the checkpoint says.
func finishedSummary(path string, st *runstate.State) *Summary {
	sum := &Summary{}
	b, err := os.ReadFile(filepath.Join(checkpointRunDir(path), summaryName))
	if err != nil || json.Unmarshal(b, sum) != nil {
		sum = &Summary{Epochs: st.Progress.Epoch, Steps: st.Progress.Global, KNNTop1: st.Progress.KNNTop1, Checkpoint: path}
	}
	sum.AlreadyFinished = true
	return sum
}

// dataFingerprint is the SHA-256 of a dataset's content — shape, labels
// and pixels — which names the data wherever its files lie; an ImageFolder's
// is its index's (paths and labels), which needs no decoding.
func dataFingerprint(ds data.Dataset) string {
	if f, ok := ds.(*data.ImageFolder); ok {
		return f.Fingerprint()
	}
	h := sha256.New()
	le := binary.LittleEndian
	var head []byte
	for _, v := range []int{ds.Len(), ds.Channels(), ds.Height(), ds.Width(), ds.NumClasses()} {
		head = le.AppendUint64(head, uint64(v))
	}
	h.Write(head)
	label := make([]byte, 8)
	for i := range ds.Len() {
		le.PutUint64(label, uint64(ds.Label(i)))
		h.Write(label)
		h.Write(ds.Pixels(i))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// resumeFree are the keys a resume may change freely: how long the run is,
// where and on what it runs, and how its loader is parallelised — none
// changes what a step computes.
var resumeFree = map[string]bool{"optim.epochs": true, "data.workers": true, "data.prefetch": true,
	"run.output_dir": true, "run.device": true, "run.tf32": true, "run.checkpoint_every": true}

// ChangeableOnResume reports whether --allow-change may change key on a
// resume: the optimiser (but the batch, which is the data of each step),
// the temperature, the mixing, the statistics and evaluation settings —
// keys that change neither the model's shape nor the data.
func ChangeableOnResume(key string) bool {
	switch {
	case key == "optim.batch":
		return false
	case key == "moco.tau", key == "run.stats_every":
		return true
	}
	for _, prefix := range []string{"optim.", "mochi.", "eval."} {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// AllowableKeys names the keys ChangeableOnResume accepts, for messages.
const AllowableKeys = "optim.* (not optim.batch), moco.tau, mochi.*, run.stats_every, eval.*"

// resumeChanges compares the checkpoint's config with cfg, the one this
// invocation asks for with every layer applied (file, MOCHI_* environment,
// flags), key by key. A key that differs is refused, naming where its new
// value came from, unless it is free (resumeFree) or allowed; data.path is
// free when the checkpoint holds the data's fingerprint, which is checked
// once the data is open. The allowed changes are returned, stamped with
// the checkpoint's position.
func resumeChanges(st *runstate.State, cfg *config.Config, prov *config.Provenance, allow []string) ([]runstate.ConfigChange, error) {
	old, err := st.ParseConfig()
	if err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	for _, k := range allow {
		allowed[k] = true
	}
	var changes []runstate.ConfigChange
	var refused, fixed []string
	for _, k := range config.Keys() {
		a, b := old.Value(k.Name), cfg.Value(k.Name)
		if reflect.DeepEqual(a, b) || resumeFree[k.Name] || (k.Name == "data.path" && st.DataSHA256 != "") {
			continue
		}
		from, to := config.FormatValue(a), config.FormatValue(b)
		src := prov.Of(k.Name).String()
		if allowed[k.Name] {
			changes = append(changes, runstate.ConfigChange{Key: k.Name, From: from, To: to, Source: src,
				Epoch: st.Progress.Epoch, Step: st.Progress.Global})
			continue
		}
		line := fmt.Sprintf("%s: checkpoint %s, now %s (from %s)", k.Name, from, to, src)
		if ChangeableOnResume(k.Name) {
			refused = append(refused, line)
		} else {
			fixed = append(fixed, line)
		}
	}
	var msgs []string
	if len(fixed) > 0 {
		msgs = append(msgs, fmt.Sprintf("the run's model or data would change (%s): resume with the config the run started with (unset the variable or drop the flag named)",
			strings.Join(fixed, "; ")))
	}
	if len(refused) > 0 {
		var keys []string
		for _, l := range refused {
			k, _, _ := strings.Cut(l, ":")
			keys = append(keys, "--allow-change "+k)
		}
		msgs = append(msgs, fmt.Sprintf("the config differs from the checkpoint's (%s): to change it from here on, say so with %s (recorded in config.yaml and metrics.jsonl), or resume with the run's values",
			strings.Join(refused, "; "), strings.Join(keys, " ")))
	}
	if len(msgs) > 0 {
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return changes, nil
}

// configYAML is the run's config.yaml: the effective config with where
// each value came from, after the changes resumes made, if any.
func (t *trainer) configYAML() []byte {
	var b strings.Builder
	for i, c := range t.changes {
		if i == 0 {
			b.WriteString("# changed on resume (--allow-change):\n")
		}
		fmt.Fprintf(&b, "#   %s\n", c)
	}
	return append([]byte(b.String()), configBytes(t.cfg, t.prov)...)
}

// configBytes renders cfg as the YAML a run stores (config.yaml and its
// checkpoints), with where each value came from.
func configBytes(cfg *config.Config, prov *config.Provenance) []byte {
	var b bytes.Buffer
	cfg.WriteYAML(&b, prov)
	return b.Bytes()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}
