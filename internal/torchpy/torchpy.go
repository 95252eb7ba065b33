package torchpy

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// Python returns Interpreter, after skipping t in -short mode; when it
// cannot import every one of modules, t ends by testenv.Missing (a skip, a
// failure under CI=true).
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starting python3 with torch takes seconds")
	}
	if err := importable(Interpreter, modules); err != nil {
		testenv.Missing(t, "%v", err)
	}
	return Interpreter
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
		debs[i] = "python3-" + m
	}
	return fmt.Errorf("%s cannot import %s (install %s): %v\n%s",
		python, strings.Join(modules, " and "), strings.Join(debs, " "), err, bytes.TrimSpace(out))
}

// Script is the absolute path of name in the repository's scripts/ folder.
func Script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// Run runs scripts/script with Python(t, "torch"), writing in to its stdin as
// JSON and decoding its stdout, JSON, into out; it fails t when the script
// fails (with its stderr) or prints something else.
func Run(t testing.TB, script string, in, out any) {
	t.Helper()
	if err := runJSON(Python(t, "torch"), Script(script), in, out); err != nil {
		t.Fatal(err)
	}
}

// runJSON runs python script with in as JSON on stdin and decodes stdout
// into out.
func runJSON(python, script string, in, out any) error {
	inJSON, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding the input of %s: %v", script, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(python, script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(inJSON), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", python, script, err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s printed no valid JSON (%v):\n%.500s", python, script, err, stdout.Bytes())
	}
	return nil
}
