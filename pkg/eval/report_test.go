package eval

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

func sampleReport() Report {
	h := HardnessStats{Config: DefaultHardnessConfig(), Negatives: NewHistogram(-1, 1, 4), HardNegatives: NewHistogram(-1, 1, 4),
		Mixed: NewHistogram(-1, 1, 4), QueryMixed: NewHistogram(-1, 1, 4), Positives: NewHistogram(-1, 1, 4), NegligibleShare: 0.875}
	h.Negatives.Add(0.1)
	h.Negatives.Add(0.3)
	h.HardNegatives.Add(0.7)
	return Report{Checkpoints: []CheckpointReport{
		{Name: "runs/mochi/last.ckpt", KNNTop1: Float(0.8512), KNNTop5: Float(0.99), LinearTop1: Float(0.8876), LinearTop5: Float(0.995),
			LinearLoss: []float64{1.2, 0.4}, Alignment: Float(0.41), Uniformity: Float(-3.52), Hardness: &h},
		{Name: "pixels", LinearTop1: Float(0.84)},
	}}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "report.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	// The histograms' running sums are internal; compare what JSON carries.
	for _, c := range r.Checkpoints {
		if c.Hardness != nil {
			for _, h := range []*Histogram{&c.Hardness.Negatives, &c.Hardness.HardNegatives, &c.Hardness.Mixed, &c.Hardness.QueryMixed, &c.Hardness.Positives} {
				h.sum = 0
			}
		}
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if got.Checkpoints[1].KNNTop1 != nil {
		t.Fatal("unmeasured kNN came back as a value")
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().Table(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines, want header + 2:\n%s", len(lines), buf.String())
	}
	testenv.Contains(t, "row", lines[1], "85.12%", "88.76%", "0.4100", "-3.5200", "0.2000", "0.7000", "87.5%")
	if f := strings.Fields(lines[2]); len(f) != 10 || f[0] != "pixels" || f[3] != "84.00%" || f[1] != "-" {
		t.Errorf("pixels row %q, want 10 columns (every column is filled by the first row) with linear top-1 84.00%% and dashes", lines[2])
	}
}

// TestReportTableColumns: a column appears only when some row has its value.
func TestReportTableColumns(t *testing.T) {
	knnOnly := Report{Checkpoints: []CheckpointReport{{Name: "a/last", KNNTop1: Float(0.5), KNNTop5: Float(0.9)}}}
	var buf bytes.Buffer
	if err := knnOnly.Table(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "checkpoint kNN top-1 kNN top-5" {
		t.Errorf("kNN-only header %q, want checkpoint, kNN top-1, kNN top-5", got)
	}
	if f := strings.Fields(lines[1]); len(f) != 3 || f[1] != "50.00%" || f[2] != "90.00%" {
		t.Errorf("kNN-only row %q", lines[1])
	}
}
