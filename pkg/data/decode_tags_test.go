package data

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// jpegFiles lists the decode*.go files that go list selects for this
// package under tags (go test puts its own go first on PATH).
func jpegFiles(t *testing.T, tags string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags", tags, "-f", `{{join .GoFiles " "}} {{join .CgoFiles " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags %q: %v\n%s", tags, err, out)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "decode") {
			files = append(files, f)
		}
	}
	return files
}

// TestJPEGDecoderTags: the GPU binaries (scripts/build-gpu.sh's tags) decode
// JPEGs with libjpeg-turbo, where the loader matters most, though their
// purego keeps gonum's BLAS; purego alone still needs no C library, so it
// decodes with Go's image/jpeg.
func TestJPEGDecoderTags(t *testing.T) {
	script := testenv.ReadFile(t, "../../scripts/build-gpu.sh")
	m := regexp.MustCompile(`(?m)^tags="([^"]*)"`).FindSubmatch(script)
	if m == nil {
		t.Fatal(`scripts/build-gpu.sh sets no tags="…"`)
	}
	gpuTags := strings.ReplaceAll(string(m[1]), " ", ",")
	for _, c := range []struct{ tags, want string }{
		{gpuTags, "decode_turbojpeg.go"},
		{"", "decode_turbojpeg.go"},
		{"purego", "decode_purego.go"},
	} {
		if got := jpegFiles(t, c.tags); !slices.Equal(got, []string{"decode.go", c.want}) {
			t.Errorf("-tags %q builds %v, want decode.go and %s", c.tags, got, c.want)
		}
	}
}
