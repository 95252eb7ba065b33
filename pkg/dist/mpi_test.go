//go:build cgo

package dist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/dist/disttest"
)

// The MPI tests run this test binary under mpirun: with rankEnv set, TestMain
// runs that scenario as one rank instead of the tests.
const (
	rankEnv    = "DIST_TEST_RANK_SCENARIO"
	timeoutEnv = "DIST_TEST_TIMEOUT" // Options.Timeout of the ranks
	dirEnv     = "DIST_TEST_DIR"     // a folder the ranks share
)

func TestMain(m *testing.M) {
	if name := os.Getenv(rankEnv); name != "" {
		os.Exit(runRank(name))
	}
	os.Exit(m.Run())
}

// scenarios are what one rank does in each MPI test.
var scenarios = map[string]func(Comm) error{
	"collectives": rankCollectives,
	"config":      rankConfigMismatch,
	"dead":        rankDies,
	"stall":       rankStalls,
	"bench":       rankBench,
}

// runRank opens the communicator and runs a scenario; on an error it exits
// non-zero without Close, as mochi will.
func runRank(name string) int {
	var opts Options
	if v := os.Getenv(timeoutEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.Timeout = d
	}
	c, err := Open(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := scenarios[name](c); err != nil {
		if err != errReported {
			fmt.Fprintf(os.Stderr, "rank %d exits: %v\n", c.Rank(), err)
		}
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("rank %d of %d: %s passed\n", c.Rank(), c.Size(), name)
	return 0
}

// mpirun runs scenario on np ranks and returns their combined output, the
// error of mpirun and how long it ran.
func mpirun(t testing.TB, np int, scenario string, extraArgs []string, env ...string) (string, error, time.Duration) {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		testenv.Missing(t, "mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)")
	}
	args := []string{"-np", strconv.Itoa(np), "--oversubscribe"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	args = append(args, extraArgs...)
	args = append(args, os.Args[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), append([]string{rankEnv + "=" + scenario, dirEnv + "=" + t.TempDir()}, env...)...)
	// mpirun ends its ranks on SIGTERM; SIGKILL would orphan them.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mpirun %s hung for %v and was stopped:\n%s", strings.Join(args, " "), time.Since(start), out)
	}
	return string(out), err, time.Since(start)
}

// value is element i of rank r's test data: quarters between -250 and 250,
// whose sums over a few ranks float32 holds exactly in any order.
func value(r, i int) float32 { return float32((r*7919+i*31)%2001-1000) / 4 }

func values(r, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = value(r, i)
	}
	return v
}

// rankCollectives checks every collective against plain Go on data each
// rank can recompute for every other rank.
func rankCollectives(c Comm) error {
	r, p := c.Rank(), c.Size()
	// Go's own signal handling must survive MPI_Init (OpenMPI installs
	// handlers for SIGSEGV and others unless some are already there; a
	// handler without SA_ONSTACK makes Go crash on the signal).
	if err := nilDereference(); err == nil {
		return errors.New("a nil dereference did not panic")
	}
	if err := exec.Command("true").Run(); err != nil { // SIGCHLD reaches Go's handler
		return fmt.Errorf("running a child process after MPI_Init: %v", err)
	}
	for _, n := range []int{0, 1, 5, 1<<20 + 3} {
		buf := values(r, n)
		if err := c.AllReduceSum(buf); err != nil {
			return err
		}
		for i := range n {
			var want float32
			for q := range p {
				want += value(q, i)
			}
			if buf[i] != want {
				return fmt.Errorf("AllReduceSum of %d values: [%d] = %v, want %v", n, i, buf[i], want)
			}
		}
	}

	keys := values(r, 7)
	all := make([]float32, 7*p)
	if err := AllGather(c, keys, all); err != nil {
		return err
	}
	for q := range p {
		if !slices.Equal(all[q*7:(q+1)*7], values(q, 7)) {
			return fmt.Errorf("AllGather float32: rank %d's part is %v, want %v", q, all[q*7:(q+1)*7], values(q, 7))
		}
	}
	ints := make([]int, 3*p)
	if err := AllGather(c, []int{r, -r, r << 40}, ints); err != nil {
		return err
	}
	for q := range p {
		if !slices.Equal(ints[3*q:3*q+3], []int{q, -q, q << 40}) {
			return fmt.Errorf("AllGather int: rank %d's part is %v", q, ints[3*q:3*q+3])
		}
	}
	text := make([]byte, 4*p)
	if err := c.AllGatherBytes([]byte(fmt.Sprintf("r%03d", r)), text); err != nil {
		return err
	}
	var wantText strings.Builder
	for q := range p {
		fmt.Fprintf(&wantText, "r%03d", q)
	}
	if string(text) != wantText.String() {
		return fmt.Errorf("AllGatherBytes: %q, want %q", text, wantText.String())
	}

	root := p - 1 // not 0, so that a root ignored would show
	floats := values(r, 9)
	if err := Broadcast(c, floats, root); err != nil {
		return err
	}
	if !slices.Equal(floats, values(root, 9)) {
		return fmt.Errorf("Broadcast float32 from rank %d: %v, want %v", root, floats, values(root, 9))
	}
	idx := []int{r, 100 + r}
	if err := Broadcast(c, idx, root); err != nil {
		return err
	}
	if !slices.Equal(idx, []int{root, 100 + root}) {
		return fmt.Errorf("Broadcast int from rank %d: %v", root, idx)
	}
	msg := []byte(fmt.Sprintf("from %d", r))
	if err := c.BroadcastBytes(msg, root); err != nil {
		return err
	}
	if string(msg) != fmt.Sprintf("from %d", root) {
		return fmt.Errorf("BroadcastBytes from rank %d: %q", root, msg)
	}

	// Barrier: rank 0 marks its arrival late; nobody may leave before.
	mark := filepath.Join(os.Getenv(dirEnv), "rank0-arrived")
	if r == 0 {
		time.Sleep(300 * time.Millisecond)
		if err := os.WriteFile(mark, nil, 0o644); err != nil {
			return err
		}
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	if _, err := os.Stat(mark); err != nil {
		return fmt.Errorf("left the barrier before rank 0 arrived: %v", err)
	}
	return CheckConfig(c, []byte("moco:\n  k: 256\n"))
}

func nilDereference() (err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("recovered")
		}
	}()
	var p *int
	_ = *p
	return nil
}

func TestMPICollectives(t *testing.T) {
	for _, np := range []int{2, 3} {
		out, err, _ := mpirun(t, np, "collectives", nil)
		if err != nil {
			t.Fatalf("mpirun -np %d: %v\n%s", np, err, out)
		}
		for r := range np {
			if want := fmt.Sprintf("rank %d of %d: collectives passed", r, np); !strings.Contains(out, want) {
				t.Errorf("mpirun -np %d: no %q in the output:\n%s", np, want, out)
			}
		}
	}
}

// rankConfigMismatch: rank 1 runs with a different batch.
func rankConfigMismatch(c Comm) error {
	cfg := "moco:\n  k: 256\noptim:\n  batch: 64\n"
	if c.Rank() == 1 {
		cfg = "moco:\n  k: 256\noptim:\n  batch: 32\n"
	}
	err := CheckConfig(c, []byte(cfg))
	if err == nil {
		return nil
	}
	// Every rank prints its error before any exits: mpirun ends the job
	// when the first rank exits non-zero, which could cut off another
	// rank's message. CheckConfig's failure leaves the communicator usable.
	fmt.Fprintf(os.Stderr, "rank %d exits: %v\n", c.Rank(), err)
	if berr := c.Barrier(); berr != nil {
		return berr
	}
	return errReported
}

// errReported is a scenario's error that the scenario printed itself.
var errReported = errors.New("reported")

func TestMPIConfigMismatch(t *testing.T) {
	out, err, _ := mpirun(t, 3, "config", nil)
	if err == nil {
		t.Fatalf("ranks with different configs ran on:\n%s", out)
	}
	for _, want := range []string{
		`rank 0 exits: dist: rank 0: the effective config of rank 1 differs from rank 0's`,
		`rank 1 exits: dist: rank 1's effective config differs from rank 0's at line 4 ("  batch: 32" here, "  batch: 64" on rank 0; ranks that differ: 1)`,
		`rank 2 exits: dist: rank 2: the effective config of rank 1 differs from rank 0's`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}
}

const deathEnv = "DIST_TEST_DEATH" // how rank 1 dies: kill, exit or panic

// rankDies: rank 1 dies in the middle of training-like all-reduces (killed,
// exiting with an error, or panicking); the others would go on for ever.
func rankDies(c Comm) error {
	buf := make([]float32, 1000)
	for step := 0; ; step++ {
		if c.Rank() == 1 && step == 5 {
			switch how := os.Getenv(deathEnv); how {
			case "kill":
				return syscall.Kill(os.Getpid(), syscall.SIGKILL)
			case "exit":
				return errors.New("cannot read the next batch")
			case "panic":
				panic("rank 1 panics")
			default:
				return fmt.Errorf("%s=%q: want kill, exit or panic", deathEnv, how)
			}
		}
		if err := c.AllReduceSum(buf); err != nil {
			return err
		}
	}
}

// TestMPIDeadRank: when a rank dies, mpirun ends the others within seconds
// and names the rank: "process rank 1" after a signal, "Process name:
// [[job,1],1]" (the last number is the rank) after a non-zero exit.
func TestMPIDeadRank(t *testing.T) {
	for _, how := range []string{"kill", "exit", "panic"} {
		out, err, took := mpirun(t, 2, "dead", nil, deathEnv+"="+how)
		disttest.DeadRank1(t, how, out, err, took)
	}
}

// rankStalls: rank 1 lives on without ever joining; rank 0's barrier must
// time out, and the Comm stay broken.
func rankStalls(c Comm) error {
	if c.Rank() == 1 {
		time.Sleep(time.Hour)
	}
	err := c.Barrier()
	if err == nil {
		return errors.New("the barrier passed without rank 1")
	}
	start := time.Now()
	again := c.AllReduceSum(make([]float32, 4))
	if again != err || time.Since(start) > time.Second {
		return fmt.Errorf("after %v, a second call returned %v in %v: want the same error at once", err, again, time.Since(start))
	}
	return err
}

func TestMPIStalledRank(t *testing.T) {
	out, err, took := mpirun(t, 2, "stall", nil, timeoutEnv+"=2s")
	disttest.Stopped(t, "rank 1 stalled", out, err, took)
	want := "rank 0 exits: dist: rank 0 of 2: Barrier (collective 1) waited 2s for the other ranks"
	if !strings.Contains(out, want) {
		t.Errorf("no %q in the output:\n%s", want, out)
	}
}

// TestABIMatchesMPIHeader compiles testdata/abi_check.c against the real
// mpi.h and runs it (see mpi_abi.h).
func TestABIMatchesMPIHeader(t *testing.T) {
	mpicc, err := exec.LookPath("mpicc")
	if err != nil {
		testenv.Missing(t, "mpicc not found: install libopenmpi-dev (scripts/setup.sh does)")
	}
	bin := filepath.Join(t.TempDir(), "abi_check")
	if out, err := exec.Command(mpicc, "-o", bin, filepath.Join("testdata", "abi_check.c"), "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("mpi_abi.h does not match mpi.h: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
