package torchpy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// These tests use Interpreter without torch, so they run wherever Debian's
// python3 is installed.

func needInterpreter(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(Interpreter); err != nil {
		testenv.Missing(t, "%s is not installed (apt-get install python3): %v", Interpreter, err)
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	return testenv.TempFile(t, "script.py", []byte(body))
}

func TestExchangeRoundTrip(t *testing.T) {
	needInterpreter(t)
	script := writeScript(t, "import json, sys\nx = json.load(sys.stdin)\njson.dump({'twice': [2 * v for v in x['v']]}, sys.stdout)\n")
	var out struct{ Twice []float64 }
	if err := exchange(Interpreter, map[string]any{"v": []float64{1.5, -0.25}}, &out, script); err != nil {
		t.Fatal(err)
	}
	if len(out.Twice) != 2 || out.Twice[0] != 3 || out.Twice[1] != -0.5 {
		t.Errorf("script answered %v, want [3 -0.5]", out.Twice)
	}
}

// TestExchangeArgs checks a script without input gets its arguments, an
// empty stdin and one OpenMP thread.
func TestExchangeArgs(t *testing.T) {
	needInterpreter(t)
	script := writeScript(t, "import json, os, sys\njson.dump([sys.stdin.read(), os.environ.get('OMP_NUM_THREADS')] + sys.argv[1:], sys.stdout)\n")
	var out []string
	if err := exchange(Interpreter, nil, &out, script, "a", "b c"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "1", "a", "b c"}; !slices.Equal(out, want) {
		t.Errorf("script answered %q, want %q", out, want)
	}
	if err := exchange(Interpreter, nil, nil, script); err != nil {
		t.Errorf("out nil: %v", err)
	}
}

func TestExchangeReportsFailures(t *testing.T) {
	needInterpreter(t)
	for _, tc := range []struct{ name, body, want string }{
		{"exit status", "import sys\nsys.stderr.write('bad input here')\nsys.exit(3)\n", "bad input here"},
		{"not JSON", "print('hello')\n", "no valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out any
			err := exchange(Interpreter, 1, &out, writeScript(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestImportable(t *testing.T) {
	needInterpreter(t)
	if err := importable(Interpreter, []string{"json", "math"}); err != nil {
		t.Errorf("standard modules: %v", err)
	}
	err := importable(Interpreter, []string{"json", "no_such_module_xyz"})
	if err == nil || !strings.Contains(err.Error(), "install python3-json python3-no_such_module_xyz") {
		t.Errorf("missing module: error %v, want one naming the Debian packages", err)
	}
}

func TestScriptIsInRepository(t *testing.T) {
	if _, err := os.Stat(Script("torch_sgd.py")); err != nil {
		t.Errorf("Script does not point into scripts/: %v", err)
	}
}
