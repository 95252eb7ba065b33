// Package testenv holds what the tests of several packages share. Above all
// it decides what a test does when something it needs from the machine is
// missing (PyTorch, a dataset, a tool): on a developer's machine it skips with
// the reason; under CI=true it fails, so a green CI run means every test ran.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CI reports whether the tests run under continuous integration (CI=true),
// where nothing may be skipped for want of a reference or data.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends t because something it needs is absent: t.Skip normally,
// t.Fatal under CI=true. The message should say what to install.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip(msg)
}

// TempFile writes b to a file named name in a fresh temporary folder of t
// and returns its path.
func TempFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FashionMNIST returns the folder of Debian's Fashion-MNIST, the data of
// configs/ci.yaml, and ends t with Missing when it is not installed.
func FashionMNIST(t testing.TB) string {
	t.Helper()
	const dir = "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
		Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh): %v", err)
	}
	return dir
}

// Contains fails t, naming what text is, for each of wants that text lacks.
func Contains(t testing.TB, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// ReadFile returns the content of the file at path and ends t when it
// cannot be read.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
