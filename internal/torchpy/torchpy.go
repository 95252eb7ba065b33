package torchpy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// Interpreter is Debian's python3, which has python3-torch and
// python3-torchvision; another python3 earlier on PATH (pyenv) may not.
const Interpreter = "/usr/bin/python3"

// Need skips t in -short mode and ends it with testenv.Missing (a failure
// under CI=true) when Interpreter cannot import every one of modules.
func Need(t testing.TB, modules ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starting python3 with torch takes seconds")
	}
	if err := importable(Interpreter, modules); err != nil {
		testenv.Missing(t, "%v", err)
	}
}

// importable reports, as an error saying which Debian packages to install,
// whether python can import modules.
func importable(python string, modules []string) error {
	if len(modules) == 0 {
		return nil
	}
	out, err := exec.Command(python, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err == nil {
		return nil
	}
	debs := make([]string, len(modules))
	for i, m := range modules {
		debs[i] = "python3-" + strings.ToLower(m) // PIL is python3-pil
	}
	return fmt.Errorf("%s cannot import %s (install %s, or run MOCHI_SETUP_TORCH=1 scripts/setup.sh): %v\n%s",
		python, strings.Join(modules, " and "), strings.Join(debs, " "), err, bytes.TrimSpace(out))
}

// Script is the absolute path of name in the repository's scripts/ folder.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// Run runs scripts/script after Need(t, "torch"), as Exchange does.
func Run(t testing.TB, script string, in, out any) {
	t.Helper()
	Need(t, "torch")
	Exchange(t, in, out, Script(script))
}

// Exchange runs Interpreter with args (a script, or -c and code, then their
// arguments), writing in to its stdin as JSON unless in is nil and decoding
// its stdout, JSON, into out unless out is nil; it fails t when python fails
// (with its stderr) or prints something else. The caller checks the modules
// first with Need.
func Exchange(t testing.TB, in, out any, args ...string) {
	t.Helper()
	if err := exchange(Interpreter, in, out, args...); err != nil {
		t.Fatal(err)
	}
}

// exchange is Exchange with python, returning the error. The script runs on
// one thread (OMP_NUM_THREADS=1): the references are small, and the tests
// share the machine.
func exchange(python string, in, out any, args ...string) error {
	cmd := exec.Command(python, args...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	if in != nil {
		inJSON, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the input of %s: %v", strings.Join(args, " "), err)
		}
		cmd.Stdin = bytes.NewReader(inJSON)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", python, strings.Join(args, " "), err, stderr.Bytes())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s printed no valid JSON (%v):\n%.500s", python, strings.Join(args, " "), err, stdout.Bytes())
	}
	return nil
}
