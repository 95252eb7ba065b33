package train

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a run's advance: a progress bar when the output is a
// terminal, plain text lines (a step line every logEvery steps) otherwise —
// the same plain lines as the command's other notes, so the stream has one
// format. metrics.jsonl is the machine-readable record.
type progress struct {
	bar      *progressbar.ProgressBar
	barEnded bool // the finished bar's line has been closed with a newline
	w        io.Writer
	logEvery int
	// stats are the last step statistics computed (run.stats_every may
	// skip steps), nil before the first
	stats *StepStats
}

func newProgress(w io.Writer, totalSteps, logEvery int) *progress {
	f, ok := w.(*os.File)
	return newProgressTo(w, totalSteps, logEvery, ok && term.IsTerminal(int(f.Fd())))
}

// newProgressTo is newProgress with the choice of a bar made by the caller.
func newProgressTo(w io.Writer, totalSteps, logEvery int, bar bool) *progress {
	p := &progress{w: w, logEvery: logEvery}
	if bar {
		p.bar = progressbar.NewOptions(totalSteps,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("pretrain"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
		)
	}
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
		line := fmt.Sprintf("step %d, epoch %d: loss %.4f, lr %.4g", m.Step, m.Epoch, m.Loss, m.LR)
		if m.Mixing {
			line += ", mixing"
		}
		if p.stats != nil {
			line += fmt.Sprintf(", q·k %.3f, q·n %.3f", p.stats.PosSim, p.stats.NegSim)
		}
		p.println(line + fmt.Sprintf(", %.0f img/s, data wait %.1f ms", m.ImagesSec, m.DataWaitMS))
	}
}

// slowLoader is the share of an epoch spent waiting for data above which
// the progress says so.
const slowLoader = 0.1

// epochLine is the progress line for an epoch.
func epochLine(m EpochMetrics) string {
	msg := fmt.Sprintf("epoch %d: loss %.4f, %.0f img/s", m.Epoch, m.Loss, m.ImagesSec)
	if m.KNNTop1 != nil {
		msg += fmt.Sprintf(", kNN top-1 %.2f%%", 100**m.KNNTop1)
	}
	if m.DataWait >= slowLoader {
		msg += fmt.Sprintf(", %.0f%% of the time waiting for data (raise data.workers)", 100*m.DataWait)
	}
	if m.Skipped > 0 {
		msg += fmt.Sprintf(", skipped %d corrupt %s (data.skip_corrupt), first %s", m.Skipped, plural(m.Skipped, "image"), m.FirstSkipped)
	}
	if m.KNNSkipped > 0 {
		msg += fmt.Sprintf(", kNN monitor skipped %d corrupt %s, first %s", m.KNNSkipped, plural(m.KNNSkipped, "image"), m.KNNFirstSkipped)
	}
	return msg
}

// plural is word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (p *progress) epoch(m EpochMetrics) {
	p.println(epochLine(m))
}

// info shows a message with key–value details: info("MoCHi mixing
// starts", "epoch", 1) prints "MoCHi mixing starts: epoch 1".
func (p *progress) info(msg string, args ...any) {
	var details []string
	for i := 0; i+1 < len(args); i += 2 {
		details = append(details, fmt.Sprintf("%v %v", args[i], args[i+1]))
	}
	if len(details) > 0 {
		msg += ": " + strings.Join(details, ", ")
	}
	p.println(msg)
}

// println writes a line of its own: above a running bar, after a finished
// one (whose line it first ends), or plainly.
func (p *progress) println(line string) {
	switch {
	case p.bar == nil:
		fmt.Fprintln(p.w, line)
	case p.bar.IsFinished():
		p.endBarLine()
		fmt.Fprintln(p.w, line)
	default:
		progressbar.Bprintln(p.bar, line)
	}
}

// endBarLine ends the finished bar's line, once.
func (p *progress) endBarLine() {
	if !p.barEnded {
		fmt.Fprintln(p.w)
		p.barEnded = true
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		p.endBarLine()
	}
}
