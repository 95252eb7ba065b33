package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// Report is the evaluation outcome of one or more checkpoints, written as
// JSON by WriteJSON and as a text table by Table. Accuracies are in [0, 1].
type Report struct {
	Checkpoints []CheckpointReport `json:"checkpoints"`
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
	Alignment  *float64  `json:"alignment,omitempty"`
	Uniformity *float64  `json:"uniformity,omitempty"`
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

// Table writes one row per checkpoint: accuracies in percent, alignment and
// uniformity, the mean q·n of all and of the hard negatives and the share of
// negligible negatives; "-" marks what was not measured.
func (r Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "checkpoint\tkNN top-1\tkNN top-5\tlinear top-1\tlinear top-5\talignment\tuniformity\tmean q·n\tmean top-N q·n\tnegligible\t")
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100**v)
	}
	num := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f", *v)
	}
	for _, c := range r.Checkpoints {
		meanAll, meanTop, negl := "-", "-", "-"
		if h := c.Hardness; h != nil {
			meanAll, meanTop = fmt.Sprintf("%.4f", h.Negatives.Mean), fmt.Sprintf("%.4f", h.HardNegatives.Mean)
			negl = fmt.Sprintf("%.1f%%", 100*h.NegligibleShare)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Name,
			pct(c.KNNTop1), pct(c.KNNTop5), pct(c.LinearTop1), pct(c.LinearTop5),
			num(c.Alignment), num(c.Uniformity), meanAll, meanTop, negl)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("eval: writing report table: %w", err)
	}
	return nil
}
