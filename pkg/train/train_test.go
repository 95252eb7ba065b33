package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// mustPretrain runs Pretrain and ends t when it fails.
func mustPretrain(t *testing.T, cfg *config.Config, opts Options) *Summary {
	t.Helper()
	sum, err := Pretrain(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// ciConfig is configs/ci.yaml with the run directory in a test folder.
func ciConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	testenv.FashionMNIST(t)
	cfg, _, err := config.Load("../../configs/ci.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Run.OutputDir = dir
	return cfg
}

// readMetrics returns the run's metric lines without their timing fields,
// which differ between two runs of the same computation, after checking
// that every line has a known kind and a time, that each step's wait for
// data lies within the step (of batch images) and each epoch's share of
// waiting within [0, 1].
func readMetrics(t *testing.T, dir string, batch int) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		if ts, ok := m["time"].(string); !ok {
			t.Errorf("metrics line %q has no time", sc.Text())
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("metrics line %q: time: %v", sc.Text(), err)
		}
		switch m["kind"] {
		case "epoch":
			if share, ok := m["data_wait_share"].(float64); !ok || share < 0 || share > 1 {
				t.Errorf("metrics line %q: data_wait_share missing or outside [0, 1]", sc.Text())
			}
		case "eval", "resume":
		case "step":
			ips := m["images_per_sec"].(float64)
			// the step took batch/ips seconds, the wait for its batch included
			wait, ok := m["data_wait_ms"].(float64)
			if stepMS := 1000 * float64(batch) / ips; !ok || wait < 0 || wait > stepMS {
				t.Errorf("metrics line %q: data_wait_ms missing or outside [0, %.3g ms], the step's time", sc.Text(), stepMS)
			}
		default:
			t.Errorf("metrics line %q: kind %v, want step, epoch, eval or resume", sc.Text(), m["kind"])
		}
		delete(m, "images_per_sec")
		delete(m, "data_wait_ms")
		delete(m, "data_wait_share")
		delete(m, "seconds")
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func TestPretrainLearnsOnCIConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network for eight epochs")
	}
	dir := t.TempDir()
	cfg := ciConfig(t, dir)
	// Eight epochs at lr 0.06: epoch 0 is plain MoCo-v2 and fills the queue
	// with real keys (the loss rises as it does), epochs 1–7 mix.
	cfg.Optim.Epochs, cfg.Optim.LR, cfg.MoCHi.MixStartEpoch = 8, 0.48, 1
	sum := mustPretrain(t, cfg, Options{Progress: io.Discard})
	perEpoch := cfg.Data.Limit / cfg.Optim.Batch
	if sum.Epochs != cfg.Optim.Epochs || sum.Steps != cfg.Optim.Epochs*perEpoch {
		t.Errorf("summary reports %d epochs, %d steps", sum.Epochs, sum.Steps)
	}
	var steps, mixed, evals int
	var epochLoss []float64
	for _, m := range readMetrics(t, dir, cfg.Optim.Batch) {
		switch m["kind"] {
		case "epoch":
			epochLoss = append(epochLoss, m["epoch_loss"].(float64))
		case "eval":
			evals++
		case "step":
			if m["mixing"].(bool) {
				mixed++
			}
			steps++
		}
	}
	if evals != cfg.Optim.Epochs {
		t.Errorf("metrics hold %d kNN monitor (eval) lines, want one per epoch, %d", evals, cfg.Optim.Epochs)
	}
	if steps != sum.Steps || mixed != sum.Steps-perEpoch {
		t.Errorf("metrics hold %d steps, %d with mixing; want %d and %d", steps, mixed, sum.Steps, sum.Steps-perEpoch)
	}
	if len(epochLoss) != cfg.Optim.Epochs {
		t.Fatalf("metrics hold %d epoch lines, want %d", len(epochLoss), cfg.Optim.Epochs)
	}
	// Same logits (1 + K + s + s′) in epochs 1 and 7: the loss must fall.
	if first, last := epochLoss[1], epochLoss[len(epochLoss)-1]; !(last < first-0.02) {
		t.Errorf("loss did not decrease: epoch 1 %.4f, epoch %d %.4f (all epochs %v)", first, len(epochLoss)-1, last, epochLoss)
	}
	if sum.KNNTop1 == nil || *sum.KNNTop1 <= 0.2 {
		t.Errorf("kNN top-1 %v, want well above chance (0.1)", sum.KNNTop1)
	}
	// epochs count from 0 everywhere: the checkpoint of epoch 7, the last, is epoch-0007
	for _, f := range []string{"config.yaml", "summary.json", "checkpoints/last.ckpt", "checkpoints/epoch-0000.ckpt", "checkpoints/epoch-0007.ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}
}

// TestResumeIsExact trains two epochs straight, and one epoch, a stop and
// one more epoch from the checkpoint: weights, queue and metrics must agree.
func TestResumeIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network three times")
	}
	straight, split := t.TempDir(), t.TempDir()
	cfg := ciConfig(t, straight)
	cfg.Eval.KNNEvery = 0
	mustPretrain(t, cfg, Options{Progress: io.Discard})
	cfg1 := ciConfig(t, split)
	cfg1.Eval.KNNEvery = 0
	mustPretrain(t, cfg1, Options{Progress: io.Discard, StopAfter: 1})
	cfg2 := ciConfig(t, split)
	cfg2.Eval.KNNEvery = 0
	// the loader's parallelism may change on resume: results do not depend on it
	cfg2.Data.Workers, cfg2.Data.Prefetch = 1, cfg1.Data.Prefetch+1
	mustPretrain(t, cfg2, Options{Progress: io.Discard, Resume: filepath.Join(split, "checkpoints", "last.ckpt")})
	a, err := checkpoint.Load(filepath.Join(straight, "checkpoints", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := checkpoint.Load(filepath.Join(split, "checkpoints", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, ta := range a.Tensors {
		if !reflect.DeepEqual(ta.Data, b.Tensors[name].Data) {
			t.Errorf("tensor %s differs between the straight and the resumed run", name)
		}
	}
	for _, blob := range []string{"queue", "rng/mix", "rng/shufflebn"} {
		if string(a.Blobs[blob]) != string(b.Blobs[blob]) {
			t.Errorf("%s differs between the straight and the resumed run", blob)
		}
	}
	var pa, pb runstate.Progress
	if err := json.Unmarshal(a.Blobs["progress.json"], &pa); err != nil {
		t.Fatalf("straight run's progress.json: %v", err)
	}
	if err := json.Unmarshal(b.Blobs["progress.json"], &pb); err != nil {
		t.Fatalf("resumed run's progress.json: %v", err)
	}
	pa.MetricsOffset, pb.MetricsOffset = 0, 0 // byte lengths of timing figures differ
	if !reflect.DeepEqual(pa, pb) {
		t.Errorf("progress differs: straight %+v, resumed %+v", pa, pb)
	}
	if ma, mb := readMetrics(t, straight, cfg.Optim.Batch), readMetrics(t, split, cfg.Optim.Batch); !reflect.DeepEqual(ma, mb) {
		t.Errorf("metrics differ: straight run %d lines, resumed %d lines", len(ma), len(mb))
	}
}

// interruptedAtStart runs the CI config (kNN monitor off) in dir with a
// context cancelled before the first step and returns the config and the
// checkpoint the interrupted run saved at step 0.
func interruptedAtStart(t *testing.T, dir string) (*config.Config, string) {
	t.Helper()
	cfg := ciConfig(t, dir)
	cfg.Eval.KNNEvery = 0
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := Pretrain(ctx, cfg, Options{Progress: io.Discard})
	if !errors.Is(err, ErrInterrupted) || sum == nil || !sum.Interrupted {
		t.Fatalf("cancelled run: summary %+v, err %v; want ErrInterrupted", sum, err)
	}
	return cfg, filepath.Join(dir, "checkpoints", "last.ckpt")
}

func TestInterruptSavesAndResumeRefusesBadCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	dir := t.TempDir()
	cfg, last := interruptedAtStart(t, dir)
	good := testenv.ReadFile(t, last)

	truncated := filepath.Join(dir, "truncated.ckpt")
	os.WriteFile(truncated, good[:len(good)/2], 0o644)
	if _, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard, Resume: truncated}); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Errorf("truncated checkpoint: err = %v, want ErrCorrupt", err)
	}
	if now, _ := os.ReadFile(last); string(now) != string(good) {
		t.Error("a failed resume changed checkpoints/last.ckpt")
	}

	other := ciConfig(t, dir)
	other.MoCo.K = 128
	if _, err := Pretrain(context.Background(), other, Options{Progress: io.Discard, Resume: last}); err == nil || !strings.Contains(err.Error(), "moco.k") {
		t.Errorf("resume with another queue size: err = %v, want one naming moco.k", err)
	}
}

func TestSymmetricLossEnqueuesBothViews(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	dir := t.TempDir()
	cfg := ciConfig(t, dir)
	cfg.MoCo.Symmetric, cfg.MoCo.K, cfg.MoCHi.MixStartEpoch = true, 320, 0
	cfg.Data.Limit, cfg.Optim.Epochs, cfg.Eval.KNNEvery = 128, 1, 0
	sum := mustPretrain(t, cfg, Options{Progress: io.Discard})
	c, err := checkpoint.Load(sum.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	st, err := runstate.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	// 4 steps × 2·32 keys = 256 keys written into a queue of 320
	if st.Queue.Ptr != 256 {
		t.Errorf("queue pointer %d after 4 symmetric steps of batch 32, want 256", st.Queue.Ptr)
	}
	seen := map[int64]int{}
	for _, m := range st.Queue.Meta[:256] {
		seen[m.Index]++
	}
	for idx, n := range seen {
		if n != 2 {
			t.Errorf("image %d has %d keys in the queue, want 2 (one per view)", idx, n)
		}
	}
	if len(seen) != 128 {
		t.Errorf("%d distinct images in the queue, want 128", len(seen))
	}
}

// TestNaNLossStops resumes from a checkpoint whose weights hold a NaN: the
// first step's loss is NaN, the run must stop with a clear error and leave
// the checkpoint as it was.
func TestNaNLossStops(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	cfg, last := interruptedAtStart(t, t.TempDir())
	c, err := checkpoint.Load(last)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Tensors[runstate.PrefixQ+"conv1.weight"]
	w.Data[0] = float32(math.NaN())
	if err := checkpoint.Save(last, c); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(last)
	_, err = Pretrain(context.Background(), cfg, Options{Progress: io.Discard, Resume: last})
	if err == nil || !strings.Contains(err.Error(), "NaN") || !strings.Contains(err.Error(), "last.ckpt") {
		t.Fatalf("NaN loss: err = %v, want an error naming NaN and the last good checkpoint", err)
	}
	if after, _ := os.ReadFile(last); string(after) != string(before) {
		t.Error("the NaN run overwrote the last checkpoint")
	}
}

// statsKeys are the metrics fields of StepStats, present only on the steps
// run.stats_every computes statistics on; before mixing starts only
// plainStatsKeys (no Q̃_N, no synthetic negatives).
var (
	statsKeys      = []string{"pos_sim", "neg_sim", "neg_sim_max", "topn_sim", "synth_sim", "synth_harder", "top5_grad"}
	plainStatsKeys = []string{"pos_sim", "neg_sim", "neg_sim_max", "synth_harder", "top5_grad"}
)

func TestStatsDue(t *testing.T) {
	tests := []struct {
		every, global, stepInEpoch, steps int
		want                              bool
	}{
		{1, 7, 2, 5, true},
		{0, 6, 1, 5, false},
		{0, 10, 5, 5, false}, // 0 = never, not even at the end of an epoch
		{3, 6, 1, 5, true},
		{3, 7, 2, 5, false},
		{3, 5, 5, 5, true}, // the epoch's last step
		{3, 4, 4, 5, false},
	}
	for _, tt := range tests {
		if got := statsDue(tt.every, tt.global, tt.stepInEpoch, tt.steps); got != tt.want {
			t.Errorf("statsDue(every %d, global step %d, step %d of %d) = %t, want %t", tt.every, tt.global, tt.stepInEpoch, tt.steps, got, tt.want)
		}
	}
}

// TestStatsEvery trains two epochs of 5 steps with run.stats_every 3, 0
// and 1: statistics on global steps 3, 6, 9 and on each epoch's last step
// (5 and 10), none with 0. Statistics only read the step's values, so the
// losses and the statistics computed must equal those of stats_every 1.
func TestStatsEvery(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network three times")
	}
	stepLines := func(every int) []map[string]any {
		dir := t.TempDir()
		cfg := ciConfig(t, dir)
		cfg.Data.Limit, cfg.Eval.KNNEvery, cfg.Run.StatsEvery = 160, 0, every
		mustPretrain(t, cfg, Options{Progress: io.Discard})
		var steps []map[string]any
		for _, m := range readMetrics(t, dir, cfg.Optim.Batch) {
			if m["kind"] == "step" {
				steps = append(steps, m)
			}
		}
		if len(steps) != 10 {
			t.Fatalf("stats_every %d: %d step lines, want 2 epochs × 5", every, len(steps))
		}
		return steps
	}
	all := stepLines(1)
	for _, tt := range []struct {
		every int
		want  []float64 // global steps with statistics
	}{
		{3, []float64{3, 5, 6, 9, 10}},
		{0, nil},
	} {
		var got []float64
		for i, m := range stepLines(tt.every) {
			step := m["step"].(float64)
			keys := statsKeys
			if !m["mixing"].(bool) {
				keys = plainStatsKeys
			}
			present := 0
			for _, k := range statsKeys {
				if _, ok := m[k]; ok {
					present++
				}
			}
			want := maps.Clone(all[i])
			switch present {
			case 0:
				for _, k := range statsKeys {
					delete(want, k)
				}
			case len(keys):
				got = append(got, step)
			default:
				t.Errorf("stats_every %d, step %v: %d of the %d statistics fields", tt.every, step, present, len(keys))
			}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("stats_every %d, step %v: %v, stats_every 1 gives %v", tt.every, step, m, want)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("stats_every %d: statistics on steps %v, want %v", tt.every, got, tt.want)
		}
	}
}

func TestStatsEveryNegativeFails(t *testing.T) {
	cfg := ciConfig(t, t.TempDir())
	cfg.Run.StatsEvery = -1
	_, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "run.stats_every") {
		t.Fatalf("run.stats_every = -1: err = %v, want an error naming run.stats_every", err)
	}
}

// TestClassOracleTooFewCandidatesFails checks that a class oracle leaving a
// query fewer than N queue entries stops the run with the keys to change,
// rather than mixing excluded entries on the device.
func TestClassOracleTooFewCandidatesFails(t *testing.T) {
	cfg := ciConfig(t, t.TempDir())
	// K 256 = 8 batches: once the queue holds real keys, each of the 10
	// classes fills ~26 of its entries, leaving ~230 < N for its queries.
	cfg.MoCHi.ClassOracle, cfg.MoCHi.N, cfg.MoCHi.MixStartEpoch, cfg.Eval.KNNEvery = true, 250, 0, 0
	_, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "fewer than N = 250") || !strings.Contains(err.Error(), "mochi.n") {
		t.Fatalf("class oracle with N 250 of K 256: err = %v, want the too-few-candidates error", err)
	}
}

// TestPretrainClosesItsFiles checks that a run leaves no file of its run
// directory open behind it (the metrics log was never closed once): a
// process that trains several times, a sweep or a test binary, would run
// out of descriptors.
func TestPretrainClosesItsFiles(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd to list open files")
	}
	dir := t.TempDir()
	cfg := ciConfig(t, dir)
	cfg.Optim.Epochs, cfg.Data.Limit, cfg.Eval.KNNEvery, cfg.MoCHi.MixStartEpoch = 1, 96, 0, 0
	mustPretrain(t, cfg, Options{Progress: io.Discard})
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir) {
			t.Errorf("%s is still open after the run", target)
		}
	}
}

func TestEpochLineNamesASlowLoader(t *testing.T) {
	knn := 0.8125
	for _, c := range []struct {
		m    EpochMetrics
		want string
		slow bool
	}{
		{EpochMetrics{Epoch: 2, Loss: 4.5, ImagesSec: 310, DataWait: 0.04}, "epoch 2: loss 4.5000, 310 img/s", false},
		{EpochMetrics{Epoch: 3, Loss: 4.25, ImagesSec: 120, KNNTop1: &knn, DataWait: 0.35}, "epoch 3: loss 4.2500, 120 img/s, kNN top-1 81.25%, 35% of the time waiting for data", true},
	} {
		got := epochLine(c.m)
		if !strings.HasPrefix(got, c.want) || strings.Contains(got, "data.workers") != c.slow {
			t.Errorf("epochLine(%+v) = %q, want %q (advice on the loader: %v)", c.m, got, c.want, c.slow)
		}
	}
}
