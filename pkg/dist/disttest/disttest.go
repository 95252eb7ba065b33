// Package disttest holds what the tests of jobs under mpirun (pkg/dist's and
// pkg/train's) check when a rank fails: that the job fails, stops soon, and
// how OpenMPI's mpirun names the rank that died.
package disttest

import (
	"regexp"
	"testing"
	"time"
)

// StopBound is how long a job may take to stop once a rank died or stalled.
const StopBound = 30 * time.Second

// How mpirun names rank 1 when it died: "process rank 1" after a signal,
// "Process name: [[job,1],1]" (the last number is the rank) after a
// non-zero exit.
var (
	killed = regexp.MustCompile(`process rank 1 with PID \d+ on node .* exited on signal 9`)
	exited = regexp.MustCompile(`Process name: \[\[\d+,\d+\],1\]`)
)

// Stopped fails t unless the job that mpirun ran (its output out, error err
// and time took) failed and stopped within StopBound; what names the
// failure the job was given.
func Stopped(t testing.TB, what, out string, err error, took time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: the job succeeded:\n%s", what, out)
	}
	if took > StopBound {
		t.Errorf("%s: the job took %v to stop (bound %v)", what, took, StopBound)
	}
}

// DeadRank1 is Stopped for a job whose rank 1 died how — "kill" (signal
// 9), "exit" (a non-zero exit) or "panic" — and also wants mpirun's output
// to name rank 1.
func DeadRank1(t testing.TB, how, out string, err error, took time.Duration) {
	t.Helper()
	Stopped(t, how+" rank 1", out, err, took)
	names := exited
	if how == "kill" {
		names = killed
	}
	if !names.MatchString(out) {
		t.Errorf("%s: mpirun's output does not name rank 1 (%s):\n%s", how, names, out)
	}
	t.Logf("%s: the job ended %v after the start:\n%s", how, took.Round(time.Millisecond), out)
}
