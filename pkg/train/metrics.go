package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// StepMetrics is one line of a run's metrics.jsonl: what happened at one
// optimisation step.
type StepMetrics struct {
	Epoch  int     `json:"epoch"`
	Step   int     `json:"step"` // global step, counted from 1
	Loss   float64 `json:"loss"`
	LR     float64 `json:"lr"`
	Mixing bool    `json:"mixing"` // MoCHi negatives were in the loss
	// *StepStats is nil on the steps run.stats_every skips; its fields are
	// then absent from the line (not 0).
	*StepStats
	ImagesSec float64 `json:"images_per_sec"` // B over the step's time, the wait for its batch included
	// DataWaitMS is how long the step waited for the data loader: near 0
	// when augmentation keeps up, most of the step when it is the bottleneck
	// (raise data.workers).
	DataWaitMS float64 `json:"data_wait_ms"`
}

// StepStats are the similarity and hardness statistics of a step
// (hardneg.Stats plus the positives), written inline in its metrics line.
type StepStats struct {
	PosSim    float64 `json:"pos_sim"`      // mean q·k
	NegSim    float64 `json:"neg_sim"`      // mean q·n over the queue
	NegSimMax float64 `json:"neg_sim_max"`  // max q·n over the queue
	TopNSim   float64 `json:"topn_sim"`     // mean q·n over Q̃_N
	SynthSim  float64 `json:"synth_sim"`    // mean q·h over the synthetic negatives
	Harder    float64 `json:"synth_harder"` // share of synthetic negatives harder than the hardest real one
	Top5Grad  float64 `json:"top5_grad"`    // share of the negatives' gradient carried by the hardest 5%
}

// EpochMetrics closes an epoch in metrics.jsonl.
type EpochMetrics struct {
	Epoch     int      `json:"epoch"`
	Loss      float64  `json:"epoch_loss"` // mean loss over the epoch
	KNNTop1   *float64 `json:"knn_top1,omitempty"`
	Seconds   float64  `json:"seconds"`
	ImagesSec float64  `json:"images_per_sec"`
	// DataWait is the share of the epoch's time spent waiting for the data
	// loader (0–1): augmentation is the bottleneck when it is large.
	DataWait float64 `json:"data_wait_share"`
}

// metricsLog appends JSON lines to a run's metrics file. Each line is
// flushed when written so a crashed run keeps its history up to the crash.
type metricsLog struct {
	f *os.File
	w *bufio.Writer
}

func openMetrics(path string, truncateTo int64) (*metricsLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening metrics log: %w", err)
	}
	// On resume the log is cut back to where the checkpoint was taken, so the
	// history matches a run that was never interrupted.
	if err := f.Truncate(truncateTo); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncating metrics log %s: %w", path, err)
	}
	if _, err := f.Seek(truncateTo, 0); err != nil {
		f.Close()
		return nil, err
	}
	return &metricsLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (m *metricsLog) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	return m.w.Flush()
}

// offset is the log's length, stored in checkpoints.
func (m *metricsLog) offset() (int64, error) {
	if err := m.w.Flush(); err != nil {
		return 0, err
	}
	return m.f.Seek(0, 1)
}

// close flushes the log and closes its file.
func (m *metricsLog) close() error {
	if err := m.w.Flush(); err != nil {
		m.f.Close()
		return err
	}
	return m.f.Close()
}
