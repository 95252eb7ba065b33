package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/dist/disttest"
)

// The environment of a test binary started by mpirun as one rank of a
// test's job: rankDirEnv, when set, makes it train distConfig into that
// directory, with model.shuffle_bn rankModeEnv, configs/ci.yaml at
// rankConfigEnv (the ranks may run in other directories), and rank 1
// dying as rankDeathEnv says.
const (
	rankDirEnv    = "TRAIN_TEST_RANK_DIR"
	rankModeEnv   = "TRAIN_TEST_SHUFFLE_BN"
	rankConfigEnv = "TRAIN_TEST_CONFIG"
	rankDeathEnv  = "TRAIN_TEST_RANK_DEATH" // kill or exit
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(rankDirEnv); dir != "" {
		os.Exit(runRank(dir))
	}
	if dir := os.Getenv(benchDirEnv); dir != "" {
		os.Exit(benchRank(dir))
	}
	os.Exit(m.Run())
}

// distConfig is configs/ci.yaml on 256 images (8 steps of a global batch
// of 32 per epoch, epoch 0 without mixing and epoch 1 with it) at a
// learning rate so small that θ_q never moves in float32. Training is
// chaotic at the CI rate: a rounding difference in one step's gradient
// grows to 1e-4 in the loss within 16 steps, for two ranks as for two
// BLAS thread counts in one process. With θ_q fixed the losses compare at
// float32 rounding, and the momentum buffers, which sum the gradients of
// every step, check the gradients' all-reduce.
func distConfig(path, dir, shuffleBN string) (*config.Config, error) {
	cfg, _, err := config.Load(path, nil)
	if err != nil {
		return nil, err
	}
	cfg.Run.OutputDir, cfg.Data.Limit = dir, 256
	cfg.Optim.LR = 1e-20
	cfg.Model.ShuffleBN = shuffleBN
	return cfg, nil
}

const ciYAML = "../../configs/ci.yaml"

// runRank trains distConfig as one rank and then checks that every rank
// holds the same queue (keys and metadata): each rank's SHA-256 of it is
// all-gathered and compared with rank 0's.
func runRank(dir string) int {
	c, err := dist.Open(dist.Options{Timeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if how := os.Getenv(rankDeathEnv); how != "" && c.Rank() == 1 {
		c = &dyingComm{Comm: c, how: how, at: 5}
	}
	if err := rankPretrain(c, dir); err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", c.Rank(), err)
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// dyingComm is a rank that dies at its at-th all-reduce, in the middle of
// training: killed (how = kill) or returning an error, so that the rank
// exits non-zero (exit).
type dyingComm struct {
	dist.Comm
	how   string
	at, n int
}

func (d *dyingComm) AllReduceSum(buf []float32) error {
	if d.n++; d.n == d.at {
		if d.how == "kill" {
			return syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return fmt.Errorf("rank %d dies at its all-reduce %d, as the test asks", d.Rank(), d.n)
	}
	return d.Comm.AllReduceSum(buf)
}

func rankPretrain(c dist.Comm, dir string) error {
	cfg, err := distConfig(os.Getenv(rankConfigEnv), dir, os.Getenv(rankModeEnv))
	if err != nil {
		return err
	}
	return trainAsRank(c, cfg, func(t *trainer) error { return checkSameQueue(c, t) })
}

// trainAsRank runs Pretrain's steps for cfg as rank c of its job, then
// after on the trainer, before its model is freed.
func trainAsRank(c dist.Comm, cfg *config.Config, after func(t *trainer) error) error {
	opts := Options{Comm: c, Progress: io.Discard}
	if err := checkRanks(cfg, opts); err != nil {
		return err
	}
	if err := dist.CheckConfig(c, configBytes(cfg, nil)); err != nil {
		return err
	}
	t, err := newTrainer(cfg, opts, nil, nil, nil)
	if err != nil {
		return err
	}
	defer func() { t.model.Free() }() // the model of the end: build replaces it when mixing starts
	if _, err := t.run(context.Background()); err != nil {
		return err
	}
	if err := t.metrics.close(); err != nil {
		return err
	}
	return after(t)
}

// checkSameQueue fails on rank 0 when another rank's queue differs from
// its own.
func checkSameQueue(c dist.Comm, t *trainer) error {
	q, err := t.model.Queue.Snapshot().MarshalBinary()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(q)
	all := make([]byte, c.Size()*len(sum))
	if err := dist.AllGather(c, sum[:], all); err != nil {
		return err
	}
	for r := 1; r < c.Size(); r++ {
		if got := all[r*len(sum) : (r+1)*len(sum)]; !bytes.Equal(got, sum[:]) && c.Rank() == 0 {
			return fmt.Errorf("rank %d's queue differs from rank 0's (SHA-256 %x…, rank 0's %x…)", r, got[:6], sum[:6])
		}
	}
	return nil
}

// twoRanks runs the test binary as a job of two ranks training distConfig
// into dir with model.shuffle_bn mode, each rank in its own working and
// temporary directory (work[r], tmp[r]), and returns mpirun's output, its
// error and how long it ran.
func twoRanks(t *testing.T, dir, mode string, work, tmp [2]string, env ...string) (string, error, time.Duration) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)")
	}
	conf, err := filepath.Abs(ciYAML)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--oversubscribe"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	for r := range 2 { // one application context per rank: mpirun's "a : b"
		if r > 0 {
			args = append(args, ":")
		}
		args = append(args, "-np", "1", "-wdir", work[r], "-x", "TMPDIR="+tmp[r], os.Args[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, args...)
	cmd.Env = append(os.Environ(), append([]string{rankDirEnv + "=" + dir, rankModeEnv + "=" + mode, rankConfigEnv + "=" + conf}, env...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // mpirun ends its ranks on SIGTERM
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mpirun hung for %v and was stopped:\n%s", time.Since(start), out)
	}
	return string(out), err, time.Since(start)
}

// rankDirs are fresh working and temporary directories for two ranks.
func rankDirs(t *testing.T) (work, tmp [2]string) {
	for r := range 2 {
		work[r], tmp[r] = t.TempDir(), t.TempDir()
	}
	return work, tmp
}

// files lists the files under dir, relative to it, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stepLosses is the loss of every step line of a run's metrics, by step.
func stepLosses(t *testing.T, dir string) map[float64]float64 {
	t.Helper()
	out := map[float64]float64{}
	for _, m := range readMetrics(t, dir, 32) {
		if m["kind"] == "step" {
			out[m["step"].(float64)] = m["loss"].(float64)
		}
	}
	return out
}

// Tolerances of two ranks against one process. With θ_q fixed each rank
// computes its images' keys, queries and logits exactly as one process
// does (the same split-BN groups, per-image convolutions), with either
// ShuffleBN: within each rank's slice against one process shuffling in
// two slices, or across the ranks (each rank encodes its rows of the
// shuffled global batch) against one process shuffling the whole batch.
// The loss alone is summed in another order (the mean of two means of
// 16), a rounding of relative 2⁻²⁴ ≈ 6e-8 per add: lossTol allows a few.
// A BLAS kernel may round a row of a 16-row product differently from the
// same row of a 32-row one (other blocking, fused multiply-adds at the
// edges): keyTol allows some ulps of a unit key's components. A gradient
// element is a float32 sum of up to 32·28·28 ≈ 25,000 terms, which two
// ranks add as two partial sums: the difference grows like √n·2⁻²⁴
// relative to the sum of the terms' magnitudes, ~1e-5 at most relative to
// the buffers' norm (1.5e-6 measured). A fault moves these by far more: an
// un-averaged gradient by 100% (momentum buffers), a misplaced mixing
// draw, BN group or key by 1e-3 or more (losses).
const (
	lossTol = 1e-6
	gradTol = 1e-4
	keyTol  = 1e-5
)

// TestTwoRanksTrainAsOneProcess runs configs/ci.yaml (256 images) under
// `mpirun -np 2` and as one process with the same global batch, for both
// model.shuffle_bn: split against one process with ShuffleBN kept within
// the two ranks' slices (Options.ShuffleBlocks), ranks against one process
// as it is. It compares every step's loss, the queue (every rank's is
// checked equal in the job; rank 0's against the one process's) and the
// resume of the two-rank run's epoch-0 checkpoint on one process; rank 0
// must write the one process's files and rank 1 nothing, neither in the
// run directory nor in its working or temporary directory.
func TestTwoRanksTrainAsOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("six small training runs, two under mpirun")
	}
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist"); err != nil {
		testenv.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh)")
	}
	for _, tc := range []struct {
		mode   string
		blocks int // the one process's Options.ShuffleBlocks
	}{{"split", 2}, {"ranks", 0}} {
		t.Run(tc.mode, func(t *testing.T) { twoRanksAsOne(t, tc.mode, tc.blocks) })
	}
}

func twoRanksAsOne(t *testing.T, mode string, blocks int) {
	root := t.TempDir()
	one, two, resumed := filepath.Join(root, "one"), filepath.Join(root, "two"), filepath.Join(root, "resumed")

	cfg, err := distConfig(ciYAML, one, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pretrain(context.Background(), cfg, Options{ShuffleBlocks: blocks, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}

	work, tmp := rankDirs(t)
	if out, err, _ := twoRanks(t, two, mode, work, tmp); err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	if got, want := files(t, two), files(t, one); !slices.Equal(got, want) {
		t.Errorf("the two ranks wrote %q in the run directory, one process %q", got, want)
	}
	for _, d := range []string{work[1], tmp[1]} {
		if got := files(t, d); len(got) > 0 {
			t.Errorf("rank 1 wrote %q in %s", got, d)
		}
	}

	want, got := stepLosses(t, one), stepLosses(t, two)
	if len(want) != 16 || len(got) != len(want) {
		t.Fatalf("%d step lines from two ranks, %d from one process; want 16 each", len(got), len(want))
	}
	worst := 0.0
	for step, w := range want {
		d := math.Abs(got[step]-w) / math.Abs(w)
		worst = max(worst, d)
		if d > lossTol {
			t.Errorf("step %v: loss %.7g on two ranks, %.7g on one process: relative difference %.2g > %.0e", step, got[step], w, d, lossTol)
		}
	}
	t.Logf("largest relative loss difference over 16 steps: %.2g", worst)

	// rank 0's queue is the one process's: the same images in the same
	// slots (the keys all-gathered in rank order), keys within rounding
	stOne, err := readState(filepath.Join(one, "checkpoints", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	stTwo, err := readState(filepath.Join(two, "checkpoints", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stOne.Queue.Meta, stTwo.Queue.Meta) || stOne.Queue.Ptr != stTwo.Queue.Ptr {
		t.Errorf("the queue's images differ between two ranks and one process")
	}
	checkCommMetrics(t, two, mode, stOne.Velocity)
	for _, m := range readMetrics(t, one, 32) {
		if _, ok := m["comm_ms"]; ok {
			t.Fatalf("one process's metrics line has comm_ms: %v", m)
		}
	}
	var num, den float64
	for name, v := range stOne.Velocity {
		w := stTwo.Velocity[name]
		if len(w) != len(v) {
			t.Fatalf("momentum buffer %s: %d values on two ranks, %d on one process", name, len(w), len(v))
		}
		for i := range v {
			d := float64(w[i] - v[i])
			num, den = num+d*d, den+float64(v[i])*float64(v[i])
		}
	}
	rel := math.Sqrt(num / den)
	t.Logf("momentum buffers: relative difference %.2g", rel)
	if rel > gradTol {
		t.Errorf("momentum buffers (the steps' gradients summed): relative difference %.2g between two ranks and one process > %.0e", rel, gradTol)
	}
	worstKey := 0.0
	for i, w := range stOne.Queue.Keys {
		worstKey = max(worstKey, math.Abs(float64(stTwo.Queue.Keys[i]-w)))
	}
	t.Logf("queue keys: largest difference %.2g", worstKey)
	if worstKey > keyTol {
		t.Errorf("the queue's keys differ between two ranks and one process by up to %.2g > %.0e", worstKey, keyTol)
	}

	// the two-rank run's epoch-0 checkpoint resumed on one process gives
	// epoch 1 as the one process's run
	cfg, err = distConfig(ciYAML, resumed, mode)
	if err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(two, "checkpoints", epochName(0))
	if _, err := Pretrain(context.Background(), cfg, Options{Resume: from, ShuffleBlocks: blocks, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	res := stepLosses(t, resumed)
	if len(res) != 8 {
		t.Fatalf("the resumed run logged %d steps, want epoch 1's 8", len(res))
	}
	for step, l := range res {
		if d := math.Abs(l-want[step]) / math.Abs(want[step]); d > lossTol {
			t.Errorf("step %v after resuming on one process: loss %.7g, the one process's run %.7g: relative difference %.2g > %.0e", step, l, want[step], d, lossTol)
		}
	}
}

// checkCommMetrics checks the communication of each step in rank 0's
// metrics: some time, and the payload of distConfig's collectives (global
// batch 32, D = 32, 1×28×28 images) with a gradient of velocity's size.
func checkCommMetrics(t *testing.T, dir, mode string, velocity map[string][]float32) {
	t.Helper()
	const b, d, img = 32, 32, 28 * 28
	grad := 0
	for _, v := range velocity {
		grad += 4 * len(v)
	}
	int := int(unsafe.Sizeof(0))
	want := 4 + grad + 2*int*b + 4*b*d // loss, gradients, image indices and labels, keys
	if mode == "ranks" {
		want += int*b + 4*b*img // the permutation, the key images
	}
	for _, m := range readMetrics(t, dir, b) {
		if m["kind"] != "step" {
			continue
		}
		if ms, _ := m["comm_ms"].(float64); ms <= 0 || m["comm_bytes"] != float64(want) {
			t.Fatalf("step %v: comm_ms %v, comm_bytes %v; want > 0 and %d", m["step"], m["comm_ms"], m["comm_bytes"], want)
		}
	}
}

// TestTwoRanksRankDies: a rank that dies in the middle of training, killed
// or exiting on an error, ends the job within a bound, mpirun naming the
// rank ("process rank 1" after a signal, "Process name: [[job,1],1]" after
// a non-zero exit), and rank 0 does not finish the run.
func TestTwoRanksRankDies(t *testing.T) {
	if testing.Short() {
		t.Skip("a small training run under mpirun")
	}
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist"); err != nil {
		testenv.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh)")
	}
	for _, how := range []string{"kill", "exit"} {
		dir := filepath.Join(t.TempDir(), "run")
		work, tmp := rankDirs(t)
		out, err, took := twoRanks(t, dir, "ranks", work, tmp, rankDeathEnv+"="+how)
		disttest.DeadRank1(t, how, out, err, took)
		if _, err := os.Stat(filepath.Join(dir, summaryName)); err == nil {
			t.Errorf("%s: rank 0 finished the run without rank 1", how)
		}
	}
}

func TestBlockShuffleKeepsSlices(t *testing.T) {
	perm := []int{5, 2, 7, 0, 3, 6, 1, 4}
	if got := blockShuffle(perm, 1, nil); !slices.Equal(got, perm) {
		t.Errorf("one block: %v, want the permutation itself %v", got, perm)
	}
	// slice [5 2 7 0] ranks to [2 1 3 0]; slice [3 6 1 4] to [1 3 0 2], +4
	if got, want := blockShuffle(perm, 2, nil), []int{2, 1, 3, 0, 5, 7, 4, 6}; !slices.Equal(got, want) {
		t.Errorf("two blocks: %v, want %v", got, want)
	}
}
