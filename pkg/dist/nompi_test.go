//go:build !cgo

package dist

import (
	"strings"
	"testing"
)

// TestOpenUnderMPIRunWithoutCgo: a build without cgo refuses to join a job
// rather than training alone P times.
func TestOpenUnderMPIRunWithoutCgo(t *testing.T) {
	t.Setenv(envWorldSize, "2")
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("Open under mpirun without cgo: %v, want an error saying the build lacks cgo", err)
	}
}
