package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/eval"
)

// newFormatMetrics is a metrics.jsonl with record kinds and timestamps, the
// mixing statistics null or absent before mixing, a separate eval record,
// an unknown record kind, a NUL-filled line and a last line cut short.
const newFormatMetrics = `{"kind":"step","ts":"2026-12-06T05:00:00Z","epoch":0,"step":1,"loss":9.5,"lr":0.03,"mixing":false,"pos_sim":0.9,"neg_sim":0.1,"topn_sim":null,"images_per_sec":100,"data_wait_ms":1}
{"kind":"step","ts":"2026-12-06T05:00:01Z","epoch":0,"step":2,"loss":9.0,"lr":0.03,"mixing":false,"images_per_sec":110,"data_wait_ms":1}
{"kind":"epoch","ts":"2026-12-06T05:00:02Z","epoch":0,"epoch_loss":9.25,"seconds":2,"images_per_sec":105,"data_wait_share":0}
{"kind":"eval","ts":"2026-12-06T05:00:03Z","epoch":0,"step":2,"knn_top1":0.25}
{"kind":"resume","ts":"2026-12-06T05:00:04Z","from":"x/last.ckpt","step":2}
` + "\x00\x00\x00\x00" + `
{"kind":"step","ts":"2026-12-06T05:00:05Z","epoch":1,"step":3,"loss":8.5,"lr":0.003,"mixing":true,"pos_sim":0.8,"neg_sim":0.2,"topn_sim":0.5,"synth_sim":0.4,"images_per_sec":90,"data_wait_ms":2}
{"kind":"step","ts":"2026-12-06T05:00:06Z","epoch":1,"st`

// oldFormatMetrics is the format without kinds: step lines with zero
// mixing statistics, epoch lines carrying the kNN accuracy.
const oldFormatMetrics = `{"epoch":0,"step":1,"loss":1.44,"lr":0.00375,"mixing":false,"pos_sim":0.94,"neg_sim":-0.02,"neg_sim_max":0.54,"topn_sim":0,"synth_sim":0,"synth_harder":0,"top5_grad":0.23,"images_per_sec":244.5,"data_wait_ms":1.9}
{"epoch":0,"step":2,"loss":3.55,"lr":0.00375,"mixing":false,"images_per_sec":327,"data_wait_ms":0.001}
{"epoch":0,"epoch_loss":2.5,"knn_top1":0.293,"seconds":2.3,"images_per_sec":222,"data_wait_share":0.01}
`

func writeMetrics(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadMetricsFormats(t *testing.T) {
	rc, err := readMetrics(filepath.Join(writeMetrics(t, newFormatMetrics), "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []float64
	}{
		{"loss steps", rc.lossX, []float64{1, 2, 3}},
		{"loss", rc.loss, []float64{9.5, 9.0, 8.5}},
		{"lr", rc.lr, []float64{0.03, 0.03, 0.003}},
		{"similarity steps (step 2 has none)", rc.simX, []float64{1, 3}},
		{"q·k", rc.posSim, []float64{0.9, 0.8}},
		{"q·n", rc.negSim, []float64{0.1, 0.2}},
		{"images/s (step lines only)", rc.speed, []float64{100, 110, 90}},
		{"kNN steps", rc.knnX, []float64{2}},
		{"kNN %", rc.knn, []float64{25}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("new format: %s %v, want %v", c.name, c.got, c.want)
		}
	}
	if rc.skipped != 2 {
		t.Errorf("new format: %d lines skipped, want 2 (the NUL line and the cut one)", rc.skipped)
	}

	rc, err = readMetrics(filepath.Join(writeMetrics(t, oldFormatMetrics), "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rc.lossX, []float64{1, 2}) || !slices.Equal(rc.knnX, []float64{2}) || len(rc.knn) != 1 || !near(rc.knn[0], 29.3, 1e-12) {
		t.Errorf("old format: loss steps %v, kNN %v at %v; want steps 1, 2 and kNN 29.3%% at step 2", rc.lossX, rc.knn, rc.knnX)
	}
	if !slices.Equal(rc.speed, []float64{244.5, 327}) || rc.skipped != 0 {
		t.Errorf("old format: images/s %v (the epoch line's must not join), %d skipped", rc.speed, rc.skipped)
	}

	if _, err := readMetrics(filepath.Join(writeMetrics(t, "\x00\x00\n"), "metrics.jsonl")); err == nil || !strings.Contains(err.Error(), "no training steps") {
		t.Errorf("a file without records: error %v, want one saying it holds no steps", err)
	}
}

// TestPlotCommand plots a real configs/ci.yaml run beside a new-format file.
func TestPlotCommand(t *testing.T) {
	testenv.FashionMNIST(t)
	runDir := filepath.Join(t.TempDir(), "ci-run")
	if _, errOut, err := run(t, "pretrain", "--config", ciConfigPath, "--limit", "128", "--batch", "32", "--k", "64", "--n", "16",
		"--s", "8", "--s-prime", "4", "--output-dir", runDir); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	other := writeMetrics(t, newFormatMetrics)
	out, errOut := mustRun(t, "plot", runDir, filepath.Join(other, "metrics.jsonl"))
	png := filepath.Join(runDir, "curves.png")
	testenv.Contains(t, "stdout", out, "plot: "+png)
	testenv.Contains(t, "stderr", errOut, "skipped 2 lines")
	img := decodePNG(t, png)
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 3*360 {
		t.Errorf("figure %d×%d, want 1200×1080 (5 panels, 2 columns)", b.Dx(), b.Dy())
	}
	for run := range 2 {
		if n := countColor(img, eval.SeriesColor(run)); n < 500 {
			t.Errorf("run %d: %d pixels of its colour %v, want its curves drawn", run, n, eval.SeriesColor(run))
		}
	}
	for _, args := range [][]string{{"plot"}, {"plot", t.TempDir()}, {"plot", filepath.Join(t.TempDir(), "absent")}} {
		runFails(t, args)
	}
}
