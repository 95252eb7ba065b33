package train

import (
	"bytes"
	"strings"
	"testing"
)

// TestProgressBarLines: after the bar fills, the epoch line starts a line
// of its own, and details print with spaces.
func TestProgressBarLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressTo(&buf, 4, 1, true)
	p.info("MoCHi mixing starts", "epoch", 1)
	for s := 1; s <= 4; s++ {
		p.step(StepMetrics{Epoch: 1, Step: s, Loss: 2, LR: 0.1, ImagesSec: 100})
	}
	p.epoch(EpochMetrics{Epoch: 1, Loss: 2, Seconds: 1, ImagesSec: 100})
	p.finish()
	out := buf.String()
	if !strings.Contains(out, "MoCHi mixing starts: epoch 1\n") {
		t.Errorf("no %q line in:\n%q", "MoCHi mixing starts: epoch 1", out)
	}
	i := strings.Index(out, "epoch 1: loss 2.0000")
	if i < 1 || out[i-1] != '\n' {
		t.Fatalf("the epoch line does not start a line after the finished bar:\n%q", out)
	}
	if !strings.Contains(out[:i], "(4/4") {
		t.Errorf("the bar never showed 4/4 before the epoch line:\n%q", out)
	}
	if strings.HasSuffix(out, "\n\n") || !strings.HasSuffix(out, "\n") {
		t.Errorf("output should end with exactly one newline:\n%q", out)
	}
}

// TestProgressPlainLines: off a terminal every line is plain text, as the
// commands' notes are, never JSON.
func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressTo(&buf, 4, 2, false)
	p.info("MoCHi mixing starts", "epoch", 1)
	for s := 1; s <= 4; s++ {
		p.step(StepMetrics{Epoch: 1, Step: s, Loss: 2, LR: 0.30000000000000004, Mixing: true, StepStats: &StepStats{PosSim: 0.5, NegSim: 0.1}, ImagesSec: 100})
	}
	p.epoch(EpochMetrics{Epoch: 1, Loss: 2, Seconds: 1, ImagesSec: 100})
	p.finish()
	want := []string{
		"MoCHi mixing starts: epoch 1",
		"step 2, epoch 1: loss 2.0000, lr 0.3, mixing, q·k 0.500, q·n 0.100, 100 img/s, data wait 0.0 ms",
		"step 4, epoch 1: loss 2.0000, lr 0.3, mixing, q·k 0.500, q·n 0.100, 100 img/s, data wait 0.0 ms",
		"epoch 1: loss 2.0000, 100 img/s",
	}
	if got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain progress:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

// TestProgressShowsLastStats: steps that skip the statistics show the last
// ones computed, none before the first.
func TestProgressShowsLastStats(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressTo(&buf, 3, 1, false)
	p.step(StepMetrics{Step: 1, Loss: 5})
	p.step(StepMetrics{Step: 2, Loss: 4, StepStats: &StepStats{PosSim: 0.75, NegSim: 0.125}})
	p.step(StepMetrics{Step: 3, Loss: 3, DataWaitMS: 12.5})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "q·k") {
		t.Errorf("step 1, before any statistics, shows q·k: %s", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "q·k 0.750, q·n 0.125") {
			t.Errorf("%q: want the last computed q·k 0.750, q·n 0.125", l)
		}
	}
	if !strings.Contains(lines[2], "data wait 12.5 ms") {
		t.Errorf("step 3: %q, want data wait 12.5 ms", lines[2])
	}
}
