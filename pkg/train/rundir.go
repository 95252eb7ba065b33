package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mochi-ssl/mochi/internal/atomicfile"
	"github.com/mochi-ssl/mochi/pkg/checkpoint"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// The files of a run directory.
const (
	lockName    = "mochi.lock"
	configName  = "config.yaml"
	metricsName = "metrics.jsonl"
	summaryName = "summary.json"
	ckptDir     = "checkpoints"
	lastName    = "last.ckpt"
)

// runFiles are the names a run writes into its directory (and the
// evaluation commands beside it): what --force removes.
var runFiles = []string{configName, metricsName, summaryName, ckptDir, "features", "analysis"}

// epochName is the checkpoint file of the end of epoch e, counted from 0
// as everywhere else (progress, logs, config).
func epochName(e int) string { return fmt.Sprintf("epoch-%04d.ckpt", e) }

// runLock is the exclusive lock of a run directory: an flock on its lock
// file, which the kernel releases when the process ends however it ends, so
// a killed run never leaves a stale lock.
type runLock struct {
	f    *os.File
	path string
}

// lockRunDir creates dir if needed and locks it for this process, or fails
// at once naming the process that holds it.
func lockRunDir(dir string) (*runLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	path := filepath.Join(dir, lockName)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("run directory lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			b, _ := os.ReadFile(path)
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				pid := strings.TrimSpace(string(b))
				if pid == "" { // the holder has just taken the lock
					pid = "not written yet"
				}
				return nil, fmt.Errorf("run directory %s is in use by another mochi process (PID %s); wait for it to end or stop it, or pass another --output-dir",
					dir, pid)
			}
			return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
		}
		// A holder that was ending removed the file after we opened it:
		// our lock is on a name no one else sees. Take the new file's.
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(held, named) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return &runLock{f: f, path: path}, nil
	}
}

// unlock removes the lock file while still holding the lock (a process
// waiting on the old file then sees that it is gone) and releases it.
func (l *runLock) unlock() {
	os.Remove(l.path)
	l.f.Close()
}

// foundRun describes a run already in a directory.
type foundRun struct {
	dir      string
	progress *runstate.Progress // nil without a readable last.ckpt
	finished bool               // summary.json exists
	files    []string           // the run's files present
}

// findRun reports the run in dir, nil when dir holds none (absent, empty,
// or only a lock file).
func findRun(dir string) *foundRun {
	r := &foundRun{dir: dir}
	for _, name := range runFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			r.files = append(r.files, name)
		}
	}
	if len(r.files) == 0 {
		return nil
	}
	if st, err := runstate.ReadProgress(filepath.Join(dir, ckptDir, lastName)); err == nil {
		r.progress = st
	}
	if _, err := os.Stat(filepath.Join(dir, summaryName)); err == nil {
		r.finished = true
	}
	return r
}

func (r *foundRun) String() string {
	var what string
	switch p := r.progress; {
	case p == nil:
		what = fmt.Sprintf("a run without a readable checkpoint (%s)", strings.Join(r.files, ", "))
	case r.finished:
		what = fmt.Sprintf("a finished run (%d epochs, %d steps)", p.Epoch, p.Global)
	default:
		what = fmt.Sprintf("a run at epoch %d step %d (%d steps done)", p.Epoch, p.Step, p.Global)
	}
	return fmt.Sprintf("%s holds %s", r.dir, what)
}

// refuse is the error for a new run asked into r's directory.
func (r *foundRun) refuse() error {
	ways := "continue it with --resume " + filepath.Join(r.dir, ckptDir, lastName)
	if r.progress == nil {
		ways = "keep it"
	}
	return fmt.Errorf("%s: nothing was changed; %s, or pass another --output-dir (--force replaces the run, deleting its files)", r, ways)
}

// clear removes the run's files (not the lock, nor files a run never writes).
func (r *foundRun) clear() error {
	for _, name := range r.files {
		if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
			return fmt.Errorf("--force: removing the old run: %w", err)
		}
	}
	return nil
}

// checkpointRunDir is the run directory a checkpoint belongs to
// (DIR/checkpoints/x.ckpt), "" when it lies elsewhere.
func checkpointRunDir(path string) string {
	d := filepath.Dir(path)
	if filepath.Base(d) != ckptDir {
		return ""
	}
	return filepath.Dir(d)
}

// sameDir reports whether two paths name one existing directory.
func sameDir(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// removeStaleTemps deletes the temporary files a killed run left in dir:
// partial checkpoints and half-written config or summary files. Only the
// lock holder calls it, so none of them is being written.
func removeStaleTemps(dir string) error {
	var stale []string
	// "*.tmp": the temporary names of config.yaml and summary.json before
	// they were written by atomicfile.
	for _, pattern := range []string{filepath.Join(dir, ckptDir, checkpoint.TempPattern), filepath.Join(dir, atomicfile.TempPattern), filepath.Join(dir, "*.tmp")} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		stale = append(stale, m...)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing a stale temporary file: %w", err)
		}
	}
	return nil
}
