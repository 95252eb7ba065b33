package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/frozen"
	"github.com/spf13/pflag"
)

// smallRun is the CI config cut to 4 steps per epoch, kNN monitor off.
func smallRun(t *testing.T, dir string) *config.Config {
	t.Helper()
	cfg := ciConfig(t, dir)
	cfg.Data.Limit, cfg.Eval.KNNEvery = 128, 0
	return cfg
}

// snapshotDir maps every file under dir to its bytes.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s was removed", what, p)
		} else if a != b {
			t.Errorf("%s: %s changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// metricsLines reads metrics.jsonl as JSON objects, failing on a line that
// is not one (a NUL byte, a torn line).
func metricsLines(t *testing.T, dir string) []map[string]any {
	t.Helper()
	raw := testenv.ReadFile(t, filepath.Join(dir, "metrics.jsonl"))
	if bytes.IndexByte(raw, 0) >= 0 {
		t.Fatalf("metrics.jsonl holds NUL bytes")
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestNewRunRefusesARunDirectory checks that a new run into a directory
// holding a run changes nothing and says how to go on, and that --force
// replaces it, old files first.
func TestNewRunRefusesARunDirectory(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	cfg.Optim.Epochs, cfg.MoCHi.MixStartEpoch = 1, 0
	mustPretrain(t, cfg, Options{Progress: io.Discard})
	// a later epoch file of a longer old run, and an evaluation's output
	stale := filepath.Join(dir, "checkpoints", "epoch-0005.ckpt")
	os.WriteFile(stale, []byte("old"), 0o644)
	os.MkdirAll(filepath.Join(dir, "features"), 0o755)
	os.WriteFile(filepath.Join(dir, "features", "x.feat"), []byte("old"), 0o644)
	before := snapshotDir(t, dir)

	again := smallRun(t, dir)
	again.Optim.Epochs, again.MoCHi.MixStartEpoch, again.Run.Seed = 1, 0, 7
	_, err := Pretrain(context.Background(), again, Options{Progress: io.Discard})
	if err == nil {
		t.Fatal("a new run into a finished run's directory succeeded")
	}
	testenv.Contains(t, "refusal", err.Error(), "finished run", "1 epochs, 4 steps", "--resume "+filepath.Join(dir, "checkpoints", "last.ckpt"), "--output-dir", "--force")
	sameFiles(t, "refused run", before, snapshotDir(t, dir))

	// --force with a run that cannot start (no data): the old run stays
	broken := *again
	broken.Data.Path = t.TempDir() // a directory without the dataset
	if _, err := Pretrain(context.Background(), &broken, Options{Progress: io.Discard, Force: true}); err == nil {
		t.Fatal("a run without data started")
	}
	sameFiles(t, "--force run that failed to start", before, snapshotDir(t, dir))

	mustPretrain(t, again, Options{Progress: io.Discard, Force: true})
	for _, gone := range []string{stale, filepath.Join(dir, "features")} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--force left the old run's %s", gone)
		}
	}
	if lines := metricsLines(t, dir); len(lines) != 5 { // 4 steps and the epoch
		t.Errorf("after --force metrics.jsonl has %d lines, want the new run's 5", len(lines))
	}
}

// TestLockRefusesASecondHolder checks the run directory lock within one
// process (flock locks are per open file): the second fails naming the PID.
func TestLockRefusesASecondHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := lockRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockRunDir(dir); err == nil || !strings.Contains(err.Error(), "PID") {
		t.Errorf("second lock: err = %v, want one naming the holder's PID", err)
	}
	l.unlock()
	l2, err := lockRunDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.unlock()
	if _, err := os.Stat(filepath.Join(dir, lockName)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the lock file outlives its holder")
	}
}

// TestResumeElsewhereStartsAValidLog resumes a run into another directory:
// its metrics.jsonl must start clean (no NUL padding up to the checkpoint's
// offset) with a line naming the checkpoint and position continued.
func TestResumeElsewhereStartsAValidLog(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	last := filepath.Join(dir, "checkpoints", "last.ckpt")
	moved := smallRun(t, other)
	mustPretrain(t, moved, Options{Progress: io.Discard, Resume: last})
	lines := metricsLines(t, other)
	if len(lines) != 6 { // resume, 4 steps, epoch
		t.Fatalf("resumed log has %d lines, want 6", len(lines))
	}
	if r := lines[0]; r["kind"] != "resume" || r["from"] != last || r["epoch"] != 1.0 || r["step"] != 4.0 {
		t.Errorf("first line %v, want a resume line from %s at epoch 1, 4 steps done", r, last)
	}
	if lines[1]["step"] != 5.0 {
		t.Errorf("second line %v, want global step 5", lines[1])
	}
}

// TestResumeIntoAnotherRunRefused: resuming run A's checkpoint into run B's
// directory would truncate B's log: refused, B unchanged.
func TestResumeIntoAnotherRunRefused(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		cfg := smallRun(t, dir)
		mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	}
	before := snapshotDir(t, b)
	_, err := Pretrain(context.Background(), smallRun(t, b), Options{Progress: io.Discard, Resume: filepath.Join(a, "checkpoints", "last.ckpt")})
	if err == nil || !strings.Contains(err.Error(), "not the run of") {
		t.Errorf("resume of A into B: err = %v, want a refusal", err)
	}
	sameFiles(t, "refused resume", before, snapshotDir(t, b))
}

// TestAllowChangeIsRecorded resumes with another lr: refused without
// --allow-change (naming the key and its source), accepted with it and
// recorded in config.yaml, metrics.jsonl and the checkpoint; a key that
// changes the model cannot be allowed.
func TestAllowChangeIsRecorded(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	last := filepath.Join(dir, "checkpoints", "last.ckpt")
	fs := pflagWithLR(t, "0.01")
	changed, prov, err := config.Load("../../configs/ci.yaml", fs)
	if err != nil {
		t.Fatal(err)
	}
	changed.Run.OutputDir, changed.Data.Limit, changed.Eval.KNNEvery = dir, 128, 0
	_, err = Pretrain(context.Background(), changed, Options{Progress: io.Discard, Resume: last, Provenance: prov})
	if err == nil || !strings.Contains(err.Error(), "optim.lr: checkpoint 0.03, now 0.01 (from flag --lr)") || !strings.Contains(err.Error(), "--allow-change optim.lr") {
		t.Fatalf("resume with --lr 0.01: err = %v, want the key, both values, the source and --allow-change optim.lr", err)
	}
	if _, err := Pretrain(context.Background(), changed, Options{Progress: io.Discard, Resume: last, Provenance: prov, AllowChange: []string{"model.width"}}); err == nil || !strings.Contains(err.Error(), "--allow-change model.width") {
		t.Errorf("--allow-change model.width: err = %v, want a refusal", err)
	}
	mustPretrain(t, changed, Options{Progress: io.Discard, Resume: last, Provenance: prov, AllowChange: []string{"optim.lr"}})
	yaml, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	testenv.Contains(t, "config.yaml", string(yaml), "optim.lr 0.03 → 0.01 (flag --lr) from epoch 1, step 4", "lr: 0.01", "# flag --lr")
	var rec map[string]any
	for _, m := range metricsLines(t, dir) {
		if m["kind"] == "resume" {
			rec = m
		}
	}
	if rec == nil || rec["step"] != 4.0 || !strings.Contains(mustJSON(t, rec["changes"]), `"from":"0.03","key":"optim.lr"`) || !strings.Contains(mustJSON(t, rec["changes"]), `"to":"0.01"`) {
		t.Errorf("metrics.jsonl resume line %v, want the optim.lr change at step 4", rec)
	}
	st, err := readState(last)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Progress.Changes) != 1 || st.Progress.Changes[0].Key != "optim.lr" {
		t.Errorf("the checkpoint records changes %+v, want the optim.lr change", st.Progress.Changes)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNaNBeforeAnyCheckpoint: a run that diverges in its first epoch has
// no checkpoint to name; the message must say so.
func TestNaNBeforeAnyCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	cfg.Optim.LR = 1e12
	_, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("lr 1e6: err = %v, want divergence", err)
	}
	if !strings.Contains(err.Error(), "none exists") || strings.Contains(err.Error(), "last.ckpt") {
		t.Errorf("divergence without a checkpoint: %q, want it to say none exists, naming no last.ckpt", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "checkpoints", "last.ckpt")); statErr == nil {
		t.Error("the diverged run wrote a checkpoint")
	}
}

// TestStaleTempsRemoved: temporary files a kill left are removed when the
// run resumes.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	stale := []string{filepath.Join(dir, "checkpoints", "last.ckpt.tmp-123456"), filepath.Join(dir, "checkpoints", "epoch-0001.ckpt.tmp-9"), filepath.Join(dir, "summary.json.tmp"), filepath.Join(dir, "config.yaml.tmp-77")}
	for _, p := range stale {
		os.WriteFile(p, make([]byte, 1000), 0o600)
	}
	mustPretrain(t, cfg, Options{Progress: io.Discard, Resume: filepath.Join(dir, "checkpoints", "last.ckpt")})
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s survived the resume", p)
		}
	}
}

// TestEpochCheckpointsFirstAndZeroBased: with checkpoint_every 1 the
// epoch files are named from 0 as epochs are everywhere, and last.ckpt is
// made from the newest one (the same file), so no kill can leave last.ckpt
// newer than every epoch file. Every file of the run is 0644.
func TestEpochCheckpointsFirstAndZeroBased(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard})
	ckpts, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*"))
	var names []string
	for _, c := range ckpts {
		names = append(names, filepath.Base(c))
	}
	if strings.Join(names, " ") != "epoch-0000.ckpt epoch-0001.ckpt last.ckpt" {
		t.Errorf("checkpoints %v, want epoch-0000.ckpt epoch-0001.ckpt last.ckpt", names)
	}
	a, err1 := os.Stat(filepath.Join(dir, "checkpoints", "epoch-0001.ckpt"))
	b, err2 := os.Stat(filepath.Join(dir, "checkpoints", "last.ckpt"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("last.ckpt is not made from epoch-0001.ckpt (%v, %v)", err1, err2)
	}
	p, err := frozen.LoadPretrained(filepath.Join(dir, "checkpoints", "epoch-0001.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Epoch != 1 {
		t.Errorf("epoch-0001.ckpt reports epoch %d, want 1", p.Epoch)
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o644 {
				t.Errorf("%s has mode %v, want 0644", path, fi.Mode().Perm())
			}
		}
		return err
	})
}

// TestResumeFinishedRunChangesNothing resumes a finished run: it says so
// and every file stays as it was (summary.json was rewritten with zeros).
func TestResumeFinishedRunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	first := mustPretrain(t, cfg, Options{Progress: io.Discard})
	before := snapshotDir(t, dir)
	sum := mustPretrain(t, cfg, Options{Progress: io.Discard, Resume: filepath.Join(dir, "checkpoints", "last.ckpt")})
	if !sum.AlreadyFinished || sum.FinalLoss != first.FinalLoss || sum.Steps != first.Steps || sum.Checkpoint != first.Checkpoint {
		t.Errorf("resume of a finished run: summary %+v, want the run's own %+v marked already finished", sum, first)
	}
	sameFiles(t, "resume of a finished run", before, snapshotDir(t, dir))
}

// TestMovedDataResumes: the data is known by content, so a copy at another
// path resumes, and other images (a checkpoint fingerprint that does not
// match) are refused.
func TestMovedDataResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	moved := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(cfg.Data.Path, "*"))
	for _, f := range files {
		b := testenv.ReadFile(t, f)
		os.WriteFile(filepath.Join(moved, filepath.Base(f)), b, 0o644)
	}
	last := filepath.Join(dir, "checkpoints", "last.ckpt")
	keep, _ := os.ReadFile(last)
	cfg.Data.Path = moved
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1, Resume: last})

	// the same checkpoint, its data fingerprint changed: other images
	c, err := checkpoint.Decode(keep)
	if err != nil {
		t.Fatal(err)
	}
	c.PutBlob("data.sha256", []byte(strings.Repeat("0", 64)))
	if err := checkpoint.Save(last, c); err != nil {
		t.Fatal(err)
	}
	if _, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard, Resume: last}); err == nil || !strings.Contains(err.Error(), "other training images") {
		t.Errorf("resume on other images: err = %v, want a refusal naming the data", err)
	}
}

// TestMetricsKindsAndMixingStats: every line has a kind and a time
// (readMetrics checks them); the Q̃_N and synthetic similarities exist
// only on mixing steps; the kNN monitor writes eval lines.
func TestMetricsKindsAndMixingStats(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	cfg.Eval.KNNEvery = 1
	mustPretrain(t, cfg, Options{Progress: io.Discard})
	kinds := map[any]int{}
	for _, m := range readMetrics(t, dir, cfg.Optim.Batch) {
		kinds[m["kind"]]++
		if m["kind"] != "step" {
			continue
		}
		for _, k := range []string{"topn_sim", "synth_sim"} {
			if _, ok := m[k]; ok != m["mixing"].(bool) {
				t.Errorf("step %v (mixing %v) has %s: %v", m["step"], m["mixing"], k, ok)
			}
		}
	}
	if kinds["step"] != 8 || kinds["epoch"] != 2 || kinds["eval"] != 2 {
		t.Errorf("metrics kinds %v, want 8 step, 2 epoch, 2 eval lines", kinds)
	}
}

// pflagWithLR is a flag set with --lr set, as the command line gives it.
func pflagWithLR(t *testing.T, lr string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.AddFlags(fs)
	if err := fs.Parse([]string{"--lr", lr}); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestResumeRefusesAShortLog: a metrics.jsonl shorter than at the
// checkpoint is not the run's log; the resume refuses it rather than pad it
// with NUL bytes up to the checkpoint's offset, and leaves it as it is.
func TestResumeRefusesAShortLog(t *testing.T) {
	dir := t.TempDir()
	cfg := smallRun(t, dir)
	mustPretrain(t, cfg, Options{Progress: io.Discard, StopAfter: 1})
	log := filepath.Join(dir, "metrics.jsonl")
	short := []byte(`{"kind":"step"}` + "\n")
	os.WriteFile(log, short, 0o644)
	before := snapshotDir(t, dir)
	_, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard, Resume: filepath.Join(dir, "checkpoints", "last.ckpt")})
	if err == nil || !strings.Contains(err.Error(), "not this run's log") {
		t.Errorf("resume over a short metrics.jsonl: err = %v, want a refusal", err)
	}
	sameFiles(t, "refused resume over a short log", before, snapshotDir(t, dir))
}
