package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/checkpoint"
)

// runAsMain makes the test binary act as the mochi command when a test
// starts it as a child process (the process tests below): signals, locks
// held by a process and exit statuses need real processes.
const runAsMain = "MOCHI_TEST_RUN_MAIN"

func init() {
	if os.Getenv(runAsMain) == "1" {
		main()
		os.Exit(0)
	}
}

// mochiProcess starts `mochi args…` as a child process.
func mochiProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runAsMain+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// ciArgs are the pretrain arguments of a small CI run into dir.
func ciArgs(dir string, extra ...string) []string {
	return append([]string{"pretrain", "--config", ciConfigPath, "--output-dir", dir, "--limit", "128", "--set", "eval.knn_every=0"}, extra...)
}

// waitForSteps waits until dir's metrics.jsonl holds n lines.
func waitForSteps(t *testing.T, dir string, n int, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
		if bytes.Count(b, []byte("\n")) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %d metrics lines in %s after 2 minutes; output:\n%s", n, dir, out)
}

// exitStatus waits for cmd and returns its exit status.
func exitStatus(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode()
}

// TestTwoPretrainsOnOneDirectory starts a run, then a second pretrain on
// its directory: the second must fail at once naming the first's PID and
// leave the first's files alone. Ctrl-C then stops the first with status
// 130 and a loadable checkpoint; a resume stopped by SIGTERM exits 143.
func TestTwoPretrainsOnOneDirectory(t *testing.T) {
	testenv.FashionMNIST(t)
	dir := t.TempDir()
	first, firstOut := mochiProcess(t, ciArgs(dir, "--epochs", "200")...)
	waitForSteps(t, dir, 2, firstOut)
	config := testenv.ReadFile(t, filepath.Join(dir, "config.yaml"))

	start := time.Now()
	second, secondOut := mochiProcess(t, ciArgs(dir, "--epochs", "2", "--seed", "7")...)
	status := exitStatus(t, second)
	if status == 0 {
		t.Errorf("the second pretrain on %s succeeded:\n%s", dir, secondOut)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the second pretrain took %v to give up, want at once", took)
	}
	if first.ProcessState != nil {
		t.Fatal("the first run ended before the check")
	}
	testenv.Contains(t, "second pretrain", secondOut.String(), "in use by another mochi process", "PID "+strconv.Itoa(first.Process.Pid))
	if now, _ := os.ReadFile(filepath.Join(dir, "config.yaml")); !bytes.Equal(now, config) {
		t.Error("the second pretrain changed the first's config.yaml")
	}

	if err := first.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, first); code != 130 {
		t.Errorf("Ctrl-C: exit status %d, want 130; output:\n%s", code, firstOut)
	}
	// the first's log is its own: one line per step, in order, from step 1
	lines := strings.Split(strings.TrimSpace(string(testenv.ReadFile(t, filepath.Join(dir, "metrics.jsonl")))), "\n")
	for i, l := range lines {
		if !strings.Contains(l, `"kind":"step"`) && !strings.Contains(l, `"kind":"epoch"`) {
			t.Fatalf("metrics line %d is neither a step nor an epoch: %s", i, l)
		}
	}
	step := 0
	for _, l := range lines {
		if strings.Contains(l, `"kind":"step"`) {
			step++
			if !strings.Contains(l, `"step":`+strconv.Itoa(step)+",") {
				t.Fatalf("metrics step line %d is %s: lines of two runs interleaved", step, l)
			}
		}
	}
	last := filepath.Join(dir, "checkpoints", "last.ckpt")
	if _, err := checkpoint.Load(last); err != nil {
		t.Fatalf("after Ctrl-C: %v", err)
	}

	resumed, resumedOut := mochiProcess(t, ciArgs(dir, "--epochs", "200", "--resume", last)...)
	waitForSteps(t, dir, len(lines)+2, resumedOut)
	if err := resumed.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, resumed); code != 143 {
		t.Errorf("SIGTERM: exit status %d, want 143; output:\n%s", code, resumedOut)
	}
	if _, err := checkpoint.Load(last); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

// filesOf maps every file under dir to its content.
func filesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[path] = string(testenv.ReadFile(t, path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestPretrainRefusesAFinishedRun runs a fresh pretrain into a finished
// run's directory: refused, naming the run and the ways on, every file
// byte-identical; --force replaces the run.
func TestPretrainRefusesAFinishedRun(t *testing.T) {
	testenv.FashionMNIST(t)
	dir := t.TempDir()
	if _, _, err := run(t, ciArgs(dir, "--epochs", "1", "--mix-start-epoch", "0")...); err != nil {
		t.Fatal(err)
	}
	before := filesOf(t, dir)
	_, _, err := run(t, ciArgs(dir, "--epochs", "1", "--mix-start-epoch", "0", "--seed", "7")...)
	if err == nil {
		t.Fatal("a fresh pretrain into a finished run's directory succeeded")
	}
	testenv.Contains(t, "refusal", err.Error(), "holds a finished run (1 epochs, 4 steps)",
		"--resume "+filepath.Join(dir, "checkpoints", "last.ckpt"), "another --output-dir", "--force")
	after := filesOf(t, dir)
	if len(after) != len(before) {
		t.Errorf("the refused pretrain left %d files, there were %d", len(after), len(before))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("the refused pretrain changed %s", p)
		}
	}

	stdout, _ := mustRun(t, ciArgs(dir, "--resume", filepath.Join(dir, "checkpoints", "last.ckpt"), "--epochs", "1", "--mix-start-epoch", "0")...)
	testenv.Contains(t, "resume of a finished run", stdout, "already finished (1 epochs, 4 steps)", "nothing changed")
	for p, b := range before {
		if string(testenv.ReadFile(t, p)) != b {
			t.Errorf("resuming the finished run changed %s", p)
		}
	}

	if _, _, err := run(t, ciArgs(dir, "--epochs", "1", "--mix-start-epoch", "0", "--seed", "7", "--force")...); err != nil {
		t.Fatalf("--force: %v", err)
	}
	testenv.Contains(t, "config.yaml after --force", string(testenv.ReadFile(t, filepath.Join(dir, "config.yaml"))), "seed: 7")
}

// TestResumeChecksEveryLayer resumes with values from the environment and
// flags that differ from the checkpoint's config: each is refused, naming
// the key and its source, before anything is written.
func TestResumeChecksEveryLayer(t *testing.T) {
	testenv.FashionMNIST(t)
	dir := t.TempDir()
	if _, _, err := run(t, ciArgs(dir, "--stop-after-epochs", "1")...); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(dir, "checkpoints", "last.ckpt")
	before := filesOf(t, dir)
	for _, tt := range []struct {
		env, val string
		args     []string
		want     []string
	}{
		{env: "MOCHI_OPTIM_LR", val: "0.5", want: []string{"optim.lr: checkpoint 0.03, now 0.5 (from env MOCHI_OPTIM_LR)", "--allow-change optim.lr"}},
		{env: "MOCHI_MODEL_WIDTH", val: "16", want: []string{"model.width: checkpoint 8, now 16 (from env MOCHI_MODEL_WIDTH)"}},
		{args: []string{"--set", "moco.k=128"}, want: []string{"moco.k: checkpoint 256, now 128 (from flag --set moco.k)"}},
	} {
		if tt.env != "" {
			t.Setenv(tt.env, tt.val)
		}
		_, _, err := run(t, ciArgs(dir, append([]string{"--resume", last}, tt.args...)...)...)
		if err == nil {
			t.Errorf("resume with %s=%s %v succeeded", tt.env, tt.val, tt.args)
		} else {
			testenv.Contains(t, "resume error", err.Error(), tt.want...)
		}
		if tt.env != "" {
			os.Unsetenv(tt.env)
		}
	}
	after := filesOf(t, dir)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("a refused resume changed %s", p)
		}
	}
}

// TestRunConfigHasProvenance: the run's config.yaml says where each value
// came from, as `mochi config` prints it.
func TestRunConfigHasProvenance(t *testing.T) {
	testenv.FashionMNIST(t)
	dir := t.TempDir()
	if _, _, err := run(t, ciArgs(dir, "--epochs", "1", "--mix-start-epoch", "0")...); err != nil {
		t.Fatal(err)
	}
	yaml := string(testenv.ReadFile(t, filepath.Join(dir, "config.yaml")))
	testenv.Contains(t, "config.yaml", yaml, "defaults < "+ciConfigPath+" <", "k: 256", "# file "+ciConfigPath+":",
		"output_dir: "+dir, "# flag --output-dir", "epochs: 1", "# flag --epochs", "knn_every: 0", "# flag --set eval.knn_every")
	if strings.Contains(yaml, "(no file)") {
		t.Errorf("config.yaml says (no file):\n%s", yaml)
	}
}

// TestDryRunNotesTF32 : the note a run prints about run.tf32 on the CPU
// appears in --dry-run too.
func TestDryRunNotesTF32(t *testing.T) {
	fakeDataset(t, 100, 1, 28)
	_, stderr, err := run(t, "pretrain", "--dry-run", "--device", "cpu", "--set", "run.tf32=true", "--batch", "32", "--k", "256", "--n", "64",
		"--set", "data.path="+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Contains(t, "dry-run stderr", stderr, "run.tf32 has no effect on the cpu backend")
}
