package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// Every line of metrics.jsonl starts with its kind and the time it was
// written (RFC 3339, UTC, to the nanosecond).
const (
	kindStep   = "step"   // StepMetrics
	kindEpoch  = "epoch"  // EpochMetrics
	kindEval   = "eval"   // EvalMetrics
	kindResume = "resume" // ResumeRecord
)

// recordHead is the kind and time every metrics line starts with.
type recordHead struct {
	Kind string `json:"kind"`
	Time string `json:"time"`
}

func (h *recordHead) head() *recordHead { return h }

// record is a metrics line.
type record interface{ head() *recordHead }

// StepMetrics is one line of a run's metrics.jsonl: what happened at one
// optimisation step.
type StepMetrics struct {
	recordHead
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
	// CommMS and CommBytes are, on several processes, rank 0's time in the
	// step's collectives and their payload (the bytes each all-reduce sums,
	// each all-gather receives, each broadcast copies): the step's
	// communication share is CommMS·images_per_sec/(1000·batch). Absent on
	// one process.
	CommMS    float64 `json:"comm_ms,omitempty"`
	CommBytes int64   `json:"comm_bytes,omitempty"`
}

// StepStats are the similarity and hardness statistics of a step
// (hardneg.Stats plus the positives), written inline in its metrics line.
type StepStats struct {
	PosSim    float64 `json:"pos_sim"`     // mean q·k
	NegSim    float64 `json:"neg_sim"`     // mean q·n over the queue
	NegSimMax float64 `json:"neg_sim_max"` // max q·n over the queue
	// TopNSim and SynthSim exist only once mixing has started (nil, and
	// absent from the line, before).
	TopNSim  *float64 `json:"topn_sim,omitempty"`  // mean q·n over Q̃_N
	SynthSim *float64 `json:"synth_sim,omitempty"` // mean q·h over the synthetic negatives
	Harder   float64  `json:"synth_harder"`        // share of synthetic negatives harder than the hardest real one
	Top5Grad float64  `json:"top5_grad"`           // share of the negatives' gradient carried by the hardest 5%
}

// EpochMetrics closes an epoch in metrics.jsonl.
type EpochMetrics struct {
	recordHead
	Epoch int     `json:"epoch"`
	Loss  float64 `json:"epoch_loss"` // mean loss over the epoch
	// KNNTop1 is the kNN monitor's accuracy at the epoch's end, shown with
	// the epoch; metrics.jsonl has it on its own line (EvalMetrics).
	KNNTop1   *float64 `json:"-"`
	Seconds   float64  `json:"seconds"`
	ImagesSec float64  `json:"images_per_sec"`
	// DataWait is the share of the epoch's time spent waiting for the data
	// loader (0–1): augmentation is the bottleneck when it is large.
	DataWait float64 `json:"data_wait_share"`
	// Skipped counts the corrupt images the epoch's loader stepped over
	// (data.skip_corrupt); FirstSkipped is the first: its file and why.
	Skipped      int    `json:"skipped_images,omitempty"`
	FirstSkipped string `json:"first_skipped,omitempty"`
	// KNNSkipped and KNNFirstSkipped are the kNN monitor's, shown with the
	// epoch; metrics.jsonl has them on the eval line.
	KNNSkipped      int    `json:"-"`
	KNNFirstSkipped string `json:"-"`
}

// EvalMetrics is a kNN monitor result in metrics.jsonl.
type EvalMetrics struct {
	recordHead
	Epoch   int     `json:"epoch"` // evaluated at the end of this epoch
	Step    int     `json:"step"`  // global steps done
	KNNTop1 float64 `json:"knn_top1"`
	// Skipped counts the corrupt images of the train and test splits the
	// monitor left out (data.skip_corrupt); FirstSkipped is the first.
	Skipped      int    `json:"skipped_images,omitempty"`
	FirstSkipped string `json:"first_skipped,omitempty"`
}

// ResumeRecord marks where a resumed run continues: the first line of a
// metrics.jsonl begun in a new directory, or the line where a change
// allowed with --allow-change took effect.
type ResumeRecord struct {
	recordHead
	From    string                  `json:"from"`  // the checkpoint resumed
	Epoch   int                     `json:"epoch"` // the next step to run: step InEpoch of Epoch
	InEpoch int                     `json:"step_in_epoch"`
	Step    int                     `json:"step"` // global steps done
	Changes []runstate.ConfigChange `json:"changes,omitempty"`
}

// metricsLog appends JSON lines to a run's metrics file. Each line is
// flushed when written so a crashed run keeps its history up to the crash.
type metricsLog struct {
	f *os.File
	w *bufio.Writer
}

// openMetrics opens the metrics log of a run. A new run (resumeAt < 0)
// starts it empty. A resumed run cuts the log it continues back to the
// checkpoint's offset, so the history matches a run never interrupted; a
// log shorter than that is not the one the checkpoint was written with,
// and is refused rather than padded. continued says whether the log was
// there to continue.
func openMetrics(path string, resumeAt int64) (m *metricsLog, continued bool, err error) {
	flags := os.O_CREATE | os.O_RDWR
	if resumeAt < 0 {
		flags |= os.O_TRUNC
	}
	size := int64(-1)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	if resumeAt >= 0 && size >= 0 && size < resumeAt {
		return nil, false, fmt.Errorf("%s has %d bytes, fewer than the %d it had at the checkpoint: it is not this run's log; move it away (a new one is started) or resume into another --output-dir", path, size, resumeAt)
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening metrics log: %w", err)
	}
	continued = resumeAt >= 0 && size >= 0
	if continued {
		if err := f.Truncate(resumeAt); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("truncating metrics log %s: %w", path, err)
		}
		if _, err := f.Seek(resumeAt, 0); err != nil {
			f.Close()
			return nil, false, err
		}
	}
	return &metricsLog{f: f, w: bufio.NewWriter(f)}, continued, nil
}

// write appends one line of the given kind, stamped with the time.
func (m *metricsLog) write(kind string, r record) error {
	if m == nil { // a rank other than 0: it writes nothing
		return nil
	}
	h := r.head()
	h.Kind, h.Time = kind, time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	m.w.Write(b)
	m.w.WriteByte('\n')
	return m.w.Flush()
}

// offset is the log's length, stored in checkpoints.
func (m *metricsLog) offset() (int64, error) {
	if m == nil {
		return 0, nil
	}
	if err := m.w.Flush(); err != nil {
		return 0, err
	}
	return m.f.Seek(0, 1)
}

// close flushes the log and closes its file.
func (m *metricsLog) close() error {
	if m == nil {
		return nil
	}
	if err := m.w.Flush(); err != nil {
		m.f.Close()
		return err
	}
	return m.f.Close()
}

// stepStats computes a step's statistics from its logits.
func stepStats(l *moco.Logits) *StepStats {
	var lab hardneg.Labels
	if l.QLabel != nil {
		lab = hardneg.Labels{Query: l.QLabel, Queue: l.KLabel}
	}
	var pos float64
	for _, v := range l.LPos {
		pos += float64(v)
	}
	st := hardneg.ComputeStats(l.LPos, l.LNeg, l.TopN, l.Extra, lab, l.Dims, l.Tau)
	out := &StepStats{PosSim: pos / float64(len(l.LPos)), NegSim: st.QueueMean, NegSimMax: st.QueueMax,
		Harder: st.HarderThanHardestReal, Top5Grad: st.Top5GradShare}
	if l.TopN != nil { // mixing: Q̃_N and the synthetic negatives exist
		out.TopNSim, out.SynthSim = &st.TopNMean, &st.SynthMean
	}
	return out
}
