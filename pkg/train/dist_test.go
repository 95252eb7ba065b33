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

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/dist"
)

// rankDirEnv, when set, makes the test binary one rank of
// TestTwoRanksTrainAsOneProcess's mpirun job, training into that directory.
const rankDirEnv = "TRAIN_TEST_RANK_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(rankDirEnv); dir != "" {
		os.Exit(runRank(dir))
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
func distConfig(dir string) (*config.Config, error) {
	cfg, _, err := config.Load("../../configs/ci.yaml", nil)
	if err != nil {
		return nil, err
	}
	cfg.Run.OutputDir, cfg.Data.Limit = dir, 256
	cfg.Optim.LR = 1e-20
	return cfg, nil
}

// runRank trains distConfig as one rank and then checks that every rank
// holds the same queue (keys and metadata): each rank's SHA-256 of it is
// all-gathered and compared with rank 0's.
func runRank(dir string) int {
	c, err := dist.Open(dist.Options{Timeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
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

func rankPretrain(c dist.Comm, dir string) error {
	cfg, err := distConfig(dir)
	if err != nil {
		return err
	}
	opts := Options{Comm: c, Progress: io.Discard}
	if err := checkRanks(cfg, opts); err != nil {
		return err
	}
	if err := dist.CheckConfig(c, configBytes(cfg, nil)); err != nil {
		return err
	}
	// Pretrain's steps, keeping the trainer to read its queue afterwards
	t, err := newTrainer(cfg, opts, nil, nil, nil)
	if err != nil {
		return err
	}
	defer t.model.Free()
	if _, err := t.run(context.Background()); err != nil {
		return err
	}
	if err := t.metrics.close(); err != nil {
		return err
	}
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
// does (the same split-BN groups, per-image convolutions); the loss alone
// is summed in another order (the mean of two means of 16), a rounding of
// relative 2⁻²⁴ ≈ 6e-8 per add: lossTol allows a few. A BLAS kernel may
// round a row of a 16-row product differently from the same row of a
// 32-row one (other blocking, fused multiply-adds at the edges): keyTol
// allows some ulps of a unit key's components. A gradient element
// is a float32 sum of up to 32·28·28 ≈ 25,000 terms, which two ranks add as
// two partial sums: the difference grows like √n·2⁻²⁴ relative to the sum
// of the terms' magnitudes, ~1e-5 at most relative to the buffers' norm
// (1.5e-6 measured). A fault moves these by far more: an un-averaged
// gradient by 100% (momentum buffers), a misplaced mixing draw, BN group
// or key by 1e-3 or more (losses).
const (
	lossTol = 1e-6
	gradTol = 1e-4
	keyTol  = 1e-5
)

// TestTwoRanksTrainAsOneProcess runs configs/ci.yaml (256 images) under
// `mpirun -np 2` and as one process with the same global batch and
// ShuffleBN kept within the two ranks' slices (Options.ShuffleBlocks), and
// compares every step's loss, the queue (every rank's is checked equal in
// the job; rank 0's against the one process's) and the resume of the
// two-rank run's epoch-0 checkpoint on one process.
func TestTwoRanksTrainAsOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("three small training runs, one under mpirun")
	}
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist"); err != nil {
		testenv.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh)")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)")
	}
	root := t.TempDir()
	one, two, resumed := filepath.Join(root, "one"), filepath.Join(root, "two"), filepath.Join(root, "resumed")

	cfg, err := distConfig(one)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pretrain(context.Background(), cfg, Options{ShuffleBlocks: 2, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}

	args := []string{"-np", "2", "--oversubscribe"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, append(args, os.Args[0])...)
	cmd.Env = append(os.Environ(), rankDirEnv+"="+two)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // mpirun ends its ranks on SIGTERM
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpirun -np 2: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(two, "checkpoints", "last.ckpt")); err != nil {
		t.Fatalf("rank 0 wrote no checkpoint: %v", err)
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
	cfg, err = distConfig(resumed)
	if err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(two, "checkpoints", epochName(0))
	if _, err := Pretrain(context.Background(), cfg, Options{Resume: from, ShuffleBlocks: 2, Progress: io.Discard}); err != nil {
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
