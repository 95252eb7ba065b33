package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/eval"
)

// helpFlagLine returns the line of cmd's --help that documents --flag.
func helpFlagLine(t *testing.T, cmd, flag string) string {
	t.Helper()
	out, _ := mustRun(t, cmd, "--help")
	re := regexp.MustCompile(`(?m)^\s+(-\w, )?--` + regexp.QuoteMeta(flag) + `\b.*$`)
	line := re.FindString(out)
	if line == "" {
		t.Fatalf("mochi %s --help has no --%s line:\n%s", cmd, flag, out)
	}
	return line
}

// TestFlagHelp checks the flag help shows each flag's value type and
// mentions only what the command has.
func TestFlagHelp(t *testing.T) {
	for _, tt := range []struct{ cmd, flag, want string }{
		{"pretrain", "set", "--set key=value"},
		{"pretrain", "epochs", "--epochs int "},
		{"pretrain", "batch", "--batch int "},
		{"pretrain", "lr", "--lr float "},
		{"pretrain", "device", "--device string "},
		{"linear-eval", "epochs", "eval.linear_epochs"},
		{"knn", "json", ".knn.json"},
	} {
		if line := helpFlagLine(t, tt.cmd, tt.flag); !strings.Contains(line, tt.want) {
			t.Errorf("mochi %s --help: --%s line lacks %q:\n%s", tt.cmd, tt.flag, tt.want, line)
		}
	}
	if line := helpFlagLine(t, "analyze-uniformity", "config"); strings.Contains(line, "--baseline") {
		t.Errorf("analyze-uniformity's --config help names --baseline, which it lacks:\n%s", line)
	}
	if line := helpFlagLine(t, "knn", "json"); strings.Contains(line, "linear-eval.json") {
		t.Errorf("knn's --json help names linear-eval's report:\n%s", line)
	}
}

func TestVersionFlag(t *testing.T) {
	want, _ := mustRun(t, "version")
	for _, flag := range []string{"--version", "-v"} {
		out, _ := mustRun(t, flag)
		if out != want {
			t.Errorf("mochi %s printed %q, want what mochi version prints, %q", flag, out, want)
		}
	}
}

// TestKNNNeedsCheckpoint: mochi knn's own name in its error.
func TestKNNNeedsCheckpoint(t *testing.T) {
	_, _, err := run(t, "knn")
	if err == nil {
		t.Fatal("mochi knn without --checkpoint succeeded")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "knn needs --checkpoint") || strings.Contains(msg, "linear-eval") {
		t.Errorf("error %q: want it to say knn needs --checkpoint", msg)
	}
}

// TestLinearEvalProbeFlags: --epochs, --lr and --batch set the probe's
// training; flags a command does not use are refused.
func TestLinearEvalProbeFlags(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	_, errOut := mustRun(t, "linear-eval", "--checkpoint", ckpt, "--epochs", "3", "--lr", "0.5", "--batch", "64", "--json", jsonPath)
	testenv.Contains(t, "progress", errOut, "SGD lr 0.5,", "3 epochs", "batch 64;", "probe epoch 1/3  lr 0.5 ")
	rep, err := eval.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.Checkpoints[0].LinearLoss); n != 3 {
		t.Errorf("%d probe epochs, want 3 (--epochs 3)", n)
	}
	for _, args := range [][]string{
		{"linear-eval", "--checkpoint", ckpt, "--k", "64"},
		{"knn", "--checkpoint", ckpt, "--epochs", "5"},
		{"knn", "--checkpoint", ckpt, "--standardize"},
		{"analyze-uniformity", "--checkpoint", ckpt, "--lr", "0.1"},
	} {
		runFails(t, args, "leave it out")
	}
}

// TestCompletion asks cobra's completion entry point what the shell would
// offer.
func TestCompletion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"pretrain", "--set", "moco."}, []string{"moco.k=", "moco.tau="}},
		{[]string{"pretrain", "--set", "run.device=c"}, []string{"run.device=cpu", "run.device=cuda"}},
		{[]string{"pretrain", "--device", ""}, []string{"cpu\n", "cuda\n"}},
		{[]string{"linear-eval", "--checkpoint", ""}, []string{"ckpt\n", ":8\n"}}, // 8: filter by extension
		{[]string{"pretrain", "--resume", ""}, []string{"ckpt\n", ":8\n"}},
		{[]string{"config", "--config", ""}, []string{"yaml\n", ":8\n"}},
	} {
		out, _ := mustRun(t, append([]string{"__complete"}, tt.args...)...)
		testenv.Contains(t, "completion of "+strings.Join(tt.args, " "), out, tt.want...)
	}
}

// TestLinearEvalDivergence: a diverging probe is reported with what to do,
// learning rates print rounded.
func TestLinearEvalDivergence(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	_, errOut := mustRun(t, "linear-eval", "--checkpoint", ckpt, "--lr", "3e4", "--json", jsonPath)
	testenv.Contains(t, "progress", errOut, "warning: mochi/last: the linear probe diverged", "--standardize", "eval.linear_lr", "--lr 3000")
	rep, err := eval.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checkpoints[0].LinearDiverged == "" {
		t.Errorf("report: linear_diverged empty")
	}
	// lr 3 × 0.1 is 0.30000000000000004 in float64.
	_, errOut = mustRun(t, "linear-eval", "--checkpoint", ckpt, "--standardize", "--lr", "3", "--json", jsonPath)
	testenv.Contains(t, "progress", errOut, "probe epoch 2/2  lr 0.3 ")
	if strings.Contains(errOut, "0.30000000000000004") || strings.Contains(errOut, "diverged") {
		t.Errorf("unrounded lr or a divergence warning for a sane probe:\n%s", errOut)
	}
}
