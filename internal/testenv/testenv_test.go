package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingFailsUnderCI runs TestHelperMissing in a child process with and
// without CI=true and checks that it fails in the first case and skips in the
// second.
func TestMissingFailsUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantText string
	}{
		{"true", true, "CI=true and the reference is absent"},
		{"", false, "SKIP: TestHelperMissing"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_HELPER=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed=%v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.wantText) {
			t.Errorf("CI=%q: output lacks %q:\n%s", tc.ci, tc.wantText, out)
		}
	}
}

func TestHelperMissing(t *testing.T) {
	if os.Getenv("TESTENV_HELPER") != "1" {
		t.Skip("helper process of TestMissingFailsUnderCI")
	}
	Missing(t, "the reference is absent")
}

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestContains(t *testing.T) {
	r := &recorder{TB: t}
	Contains(r, "output", "epoch 3: loss 1.5", "epoch 3", "accuracy", "loss 1.5")
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], `output lacks "accuracy"`) {
		t.Errorf("Contains reported %q, want one error naming the missing \"accuracy\"", r.errs)
	}
}

func (r *recorder) Fatal(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestReadFile(t *testing.T) {
	path := TempFile(t, "a.txt", []byte("abc"))
	if got := string(ReadFile(t, path)); got != "abc" {
		t.Errorf("ReadFile = %q, want abc", got)
	}
	r := &recorder{TB: t}
	ReadFile(r, path+".absent")
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "a.txt.absent") {
		t.Errorf("ReadFile of a missing file reported %q, want one failure naming it", r.errs)
	}
}
