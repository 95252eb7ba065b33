package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Report is the evaluation outcome of one or more checkpoints, written as
// JSON by WriteJSON and as a text table by Table. Accuracies are in [0, 1].
type Report struct {
	Checkpoints []CheckpointReport `json:"checkpoints"`
	// ProbeAugment says how linear-eval fed its probe's training images;
	// nil (and absent) in other reports.
	ProbeAugment *ProbeAugment `json:"probe_augment,omitempty"`
}

// ProbeAugment records the linear probe's train augmentation.
type ProbeAugment struct {
	// Enabled is true with --augment.
	Enabled bool `json:"enabled"`
	// AppliesTo names the rows whose probe saw augmented views (never the
	// pixel baseline).
	AppliesTo []string `json:"applies_to,omitempty"`
	// CropScale and CropRatio are RandomResizedCrop's area-fraction and
	// aspect-ratio ranges, FlipProb the horizontal-flip probability.
	CropScale []float64 `json:"random_resized_crop_scale,omitempty"`
	CropRatio []float64 `json:"random_resized_crop_ratio,omitempty"`
	FlipProb  float64   `json:"flip_prob,omitempty"`
	// Seed is the run.seed the views were drawn from.
	Seed int64 `json:"seed,omitempty"`
}

// CheckpointReport holds what was measured for one checkpoint (or a
// baseline such as raw pixels); a nil field was not measured.
type CheckpointReport struct {
	// Name identifies the checkpoint (a path, a run name or "pixels").
	Name       string   `json:"name"`
	KNNTop1    *float64 `json:"knn_top1,omitempty"`
	KNNTop5    *float64 `json:"knn_top5,omitempty"`
	LinearTop1 *float64 `json:"linear_top1,omitempty"`
	LinearTop5 *float64 `json:"linear_top5,omitempty"`
	// LinearLoss is the probe's training loss per epoch.
	LinearLoss []float64 `json:"linear_loss,omitempty"`
	// LinearDiverged says why the probe's training diverged
	// (ProbeResult.Diverged), empty when it did not.
	LinearDiverged string   `json:"linear_diverged,omitempty"`
	Alignment      *float64 `json:"alignment,omitempty"`
	Uniformity     *float64 `json:"uniformity,omitempty"`
	// Hardness is the MoCHi hardness analysis of this checkpoint, and
	// Negatives says which negatives it scored.
	Hardness  *HardnessStats `json:"hardness,omitempty"`
	Negatives string         `json:"negatives,omitempty"`
}

// Float returns a pointer to v, for filling the optional report fields.
func Float(v float64) *float64 { return &v }

// WriteJSON writes the report to path as indented JSON.
func (r Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("eval: encoding report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("eval: writing report: %w", err)
	}
	return nil
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Report{}, fmt.Errorf("eval: reading report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return Report{}, fmt.Errorf("eval: report %s is not valid JSON: %w", path, err)
	}
	return r, nil
}

// Table writes one row per checkpoint and a column for each measure some
// row has: accuracies in percent, alignment and uniformity, the mean q·n of
// all and of the hard negatives and the share of negligible negatives; "-"
// marks what was not measured for a row.
func (r Report) Table(w io.Writer) error {
	pct := func(v *float64) string {
		if v == nil {
			return ""
		}
		return fmt.Sprintf("%.2f%%", 100**v)
	}
	num := func(v *float64) string {
		if v == nil {
			return ""
		}
		return fmt.Sprintf("%.4f", *v)
	}
	hard := func(f func(h *HardnessStats) string) func(CheckpointReport) string {
		return func(c CheckpointReport) string {
			if c.Hardness == nil {
				return ""
			}
			return f(c.Hardness)
		}
	}
	columns := []struct {
		name  string
		value func(CheckpointReport) string // "" when not measured
	}{
		{"kNN top-1", func(c CheckpointReport) string { return pct(c.KNNTop1) }},
		{"kNN top-5", func(c CheckpointReport) string { return pct(c.KNNTop5) }},
		{"linear top-1", func(c CheckpointReport) string { return pct(c.LinearTop1) }},
		{"linear top-5", func(c CheckpointReport) string { return pct(c.LinearTop5) }},
		{"alignment", func(c CheckpointReport) string { return num(c.Alignment) }},
		{"uniformity", func(c CheckpointReport) string { return num(c.Uniformity) }},
		{"mean q·n", hard(func(h *HardnessStats) string { return fmt.Sprintf("%.4f", h.Negatives.Mean) })},
		{"mean top-N q·n", hard(func(h *HardnessStats) string { return fmt.Sprintf("%.4f", h.HardNegatives.Mean) })},
		{"negligible", hard(func(h *HardnessStats) string { return fmt.Sprintf("%.1f%%", 100*h.NegligibleShare) })},
	}
	cells := make([][]string, len(r.Checkpoints))
	header := []string{"checkpoint"}
	for i, c := range r.Checkpoints {
		cells[i] = []string{c.Name}
	}
	for _, col := range columns {
		values := make([]string, len(r.Checkpoints))
		filled := false
		for i, c := range r.Checkpoints {
			values[i] = col.value(c)
			filled = filled || values[i] != ""
		}
		if !filled {
			continue
		}
		header = append(header, col.name)
		for i, v := range values {
			if v == "" {
				v = "-"
			}
			cells[i] = append(cells[i], v)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, row := range cells {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("eval: writing report table: %w", err)
	}
	return nil
}
