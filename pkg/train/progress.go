package train

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a run's advance: a progress bar when the output is a
// terminal, structured log lines (one every logEvery steps) otherwise.
type progress struct {
	bar      *progressbar.ProgressBar
	w        io.Writer
	log      *slog.Logger
	logEvery int
	// stats are the last step statistics computed (run.stats_every may
	// skip steps), nil before the first
	stats *StepStats
}

func newProgress(w io.Writer, totalSteps, logEvery int) *progress {
	p := &progress{w: w, logEvery: logEvery}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(totalSteps,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("pretrain"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
		)
		return p
	}
	p.log = slog.New(slog.NewJSONHandler(w, nil))
	return p
}

// skip advances the bar over steps done before a resume.
func (p *progress) skip(steps int) {
	if p.bar != nil && steps > 0 {
		p.bar.Set(steps)
	}
}

// step shows a step, with the last statistics computed up to it.
func (p *progress) step(m StepMetrics) {
	if m.StepStats != nil {
		p.stats = m.StepStats
	}
	if p.bar != nil {
		desc := fmt.Sprintf("epoch %d loss %.4f", m.Epoch, m.Loss)
		if p.stats != nil {
			desc += fmt.Sprintf(" q·k %.3f q·n %.3f", p.stats.PosSim, p.stats.NegSim)
		}
		p.bar.Describe(desc + fmt.Sprintf(" %.0f img/s", m.ImagesSec))
		p.bar.Set(m.Step)
		return
	}
	if m.Step%p.logEvery == 0 {
		args := []any{"epoch", m.Epoch, "step", m.Step, "loss", m.Loss, "lr", m.LR, "mixing", m.Mixing}
		if p.stats != nil {
			args = append(args, "pos_sim", p.stats.PosSim, "neg_sim", p.stats.NegSim)
		}
		p.log.Info("step", append(args, "images_per_sec", m.ImagesSec, "data_wait_ms", m.DataWaitMS)...)
	}
}

// slowLoader is the share of an epoch spent waiting for data above which
// the progress bar says so.
const slowLoader = 0.1

// epochLine is the progress bar's line for an epoch.
func epochLine(m EpochMetrics) string {
	msg := fmt.Sprintf("epoch %d: loss %.4f, %.0f img/s", m.Epoch, m.Loss, m.ImagesSec)
	if m.KNNTop1 != nil {
		msg += fmt.Sprintf(", kNN top-1 %.2f%%", 100**m.KNNTop1)
	}
	if m.DataWait >= slowLoader {
		msg += fmt.Sprintf(", %.0f%% of the time waiting for data (raise data.workers)", 100*m.DataWait)
	}
	return msg
}

func (p *progress) epoch(m EpochMetrics) {
	if p.bar != nil {
		progressbar.Bprintln(p.bar, epochLine(m))
		return
	}
	args := []any{"epoch", m.Epoch, "loss", m.Loss, "seconds", m.Seconds, "images_per_sec", m.ImagesSec, "data_wait_share", m.DataWait}
	if m.KNNTop1 != nil {
		args = append(args, "knn_top1", *m.KNNTop1)
	}
	p.log.Info("epoch", args...)
}

func (p *progress) info(msg string, args ...any) {
	if p.bar != nil {
		progressbar.Bprintln(p.bar, msg+" "+fmt.Sprint(args...))
		return
	}
	p.log.Info(msg, args...)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
