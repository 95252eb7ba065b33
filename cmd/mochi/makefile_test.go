package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// TestMakeTargetsSetUpFirst: README's two commands, make demo and make test,
// both run scripts/setup.sh (apt packages such as OpenBLAS's headers, which
// cgo needs) before anything that compiles.
func TestMakeTargetsSetUpFirst(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Missing(t, "make (apt-get install make)")
	}
	for _, target := range []string{"demo", "test"} {
		out, err := exec.Command("make", "-n", "-C", "../..", target).CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		setup, compile := -1, -1
		for i, line := range strings.Split(string(out), "\n") {
			if setup < 0 && strings.Contains(line, "scripts/setup.sh") {
				setup = i
			}
			if compile < 0 && (strings.Contains(line, "go vet") || strings.Contains(line, "go test") || strings.Contains(line, "go build") || strings.Contains(line, "bin/mochi ")) {
				compile = i
			}
		}
		if setup < 0 || compile < 0 || setup > compile {
			t.Errorf("make %s: scripts/setup.sh at line %d, first build or run at line %d; want setup first:\n%s", target, setup, compile, out)
		}
	}
}
