package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/eval"
)

// plotOptions holds plot's flags.
type plotOptions struct {
	out           string
	width, height int
}

func newPlotCmd() *cobra.Command {
	var o plotOptions
	cmd := &cobra.Command{
		Use:   "plot RUN…",
		Short: "PNG curves of runs' training (loss, lr, kNN accuracy, q·k and q·n, images/s) from their metrics.jsonl",
		Long: `Draw what a run's metrics.jsonl recorded, over the training steps, as one PNG:
the loss, the learning rate, the kNN monitor's top-1 (when eval.knn_every
recorded it), the mean q·k of the positives (solid) and q·n over the queue
(dashed), and the images per second. Several runs go on the same figure, one
colour each, named by their folders in the legends. A RUN is a run folder
(the --output-dir of mochi pretrain) or its metrics.jsonl file. A panel no run
has data for is left out; lines that are not JSON records (a line cut short by
a kill) are skipped with a note.`,
		Example: `  mochi plot runs/fmnist-mochi
  mochi plot runs/fmnist-mochi runs/fmnist-moco --out /tmp/mochi-vs-moco.png`,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlot(cmd, args, o) },
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "PNG path (default <first RUN>/curves.png)")
	f.IntVar(&o.width, "width", 1200, "figure width in pixels")
	f.IntVar(&o.height, "height", 0, "figure height in pixels (default 360 per row of panels)")
	return cmd
}

func runPlot(cmd *cobra.Command, args []string, o plotOptions) error {
	if len(args) == 0 {
		return errors.New("plot needs one or more runs: their folders (mochi pretrain's --output-dir, e.g. runs/fmnist-mochi) or metrics.jsonl files")
	}
	names := runNames{}
	var runs []runCurves
	for _, arg := range args {
		path, dir, err := metricsPath(arg)
		if err != nil {
			return err
		}
		rc, err := readMetrics(path)
		if err != nil {
			return err
		}
		if rc.skipped > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: %s: skipped %d lines that are not JSON records (cut short by a kill, or damaged)\n", path, rc.skipped)
		}
		rc.name = names.name(dir)
		runs = append(runs, rc)
		if o.out == "" {
			o.out = filepath.Join(dir, "curves.png")
		}
	}
	panels := curvePanels(runs)
	const cols = 2
	if o.height == 0 {
		o.height = 360 * ((len(panels) + cols - 1) / cols)
	}
	if err := eval.SavePNG(o.out, func(w io.Writer) error {
		return eval.WritePanelsPNG(w, panels, cols, o.width, o.height)
	}); err != nil {
		return err
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "plot: %s\n", o.out)
	return err
}

// metricsPath resolves a RUN argument to its metrics.jsonl and run folder.
func metricsPath(arg string) (path, dir string, err error) {
	st, err := os.Stat(arg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("run %s not found: pass a run folder (mochi pretrain's --output-dir) or its metrics.jsonl", arg)
	case err != nil:
		return "", "", err
	case !st.IsDir():
		return arg, filepath.Dir(arg), nil
	}
	path = filepath.Join(arg, "metrics.jsonl")
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("%s has no metrics.jsonl: is it a run folder written by mochi pretrain? (%v)", arg, err)
	}
	return path, arg, nil
}

// metricsRecord is one line of metrics.jsonl as plot reads it. Every field is
// optional, unknown fields are ignored, so the step and epoch lines of every
// version of the file (with or without a kind and timestamp, with zero, null
// or absent statistics) read alike.
type metricsRecord struct {
	Kind      *string  `json:"kind"`
	Step      *int     `json:"step"`
	Loss      *float64 `json:"loss"`
	LR        *float64 `json:"lr"`
	PosSim    *float64 `json:"pos_sim"`
	NegSim    *float64 `json:"neg_sim"`
	ImagesSec *float64 `json:"images_per_sec"`
	KNNTop1   *float64 `json:"knn_top1"`
}

// isStep reports whether the record is a training step: kind "step", or,
// in files without kinds, a line with a step number and a step loss.
func (r metricsRecord) isStep() bool {
	if r.Kind != nil {
		return *r.Kind == "step"
	}
	return r.Step != nil && r.Loss != nil
}

// runCurves are the series of one run, over global steps.
type runCurves struct {
	name                 string
	lossX, loss          []float64
	lrX, lr              []float64
	simX, posSim, negSim []float64
	speedX, speed        []float64
	knnX, knn            []float64 // top-1 in percent
	skipped              int       // lines that are not JSON records
}

// readMetrics reads a metrics.jsonl into curves. A kNN accuracy is placed at
// its record's step, or, on an epoch line without one, at the last step read.
func readMetrics(path string) (runCurves, error) {
	var rc runCurves
	f, err := os.Open(path)
	if err != nil {
		return rc, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	lastStep := 0.0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r metricsRecord
		if err := json.Unmarshal(line, &r); err != nil {
			rc.skipped++
			continue
		}
		if r.isStep() && r.Step != nil {
			x := float64(*r.Step)
			lastStep = x
			if r.Loss != nil {
				rc.lossX, rc.loss = append(rc.lossX, x), append(rc.loss, *r.Loss)
			}
			if r.LR != nil {
				rc.lrX, rc.lr = append(rc.lrX, x), append(rc.lr, *r.LR)
			}
			if r.PosSim != nil && r.NegSim != nil {
				rc.simX = append(rc.simX, x)
				rc.posSim, rc.negSim = append(rc.posSim, *r.PosSim), append(rc.negSim, *r.NegSim)
			}
			if r.ImagesSec != nil {
				rc.speedX, rc.speed = append(rc.speedX, x), append(rc.speed, *r.ImagesSec)
			}
			continue
		}
		if r.KNNTop1 != nil {
			x := lastStep
			if r.Step != nil {
				x = float64(*r.Step)
			}
			rc.knnX, rc.knn = append(rc.knnX, x), append(rc.knn, 100**r.KNNTop1)
		}
	}
	if err := sc.Err(); err != nil {
		return rc, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(rc.lossX) == 0 && len(rc.knnX) == 0 {
		return rc, fmt.Errorf("%s holds no training steps (%d lines skipped): is it the metrics.jsonl of a mochi pretrain run that ran a step?", path, rc.skipped)
	}
	return rc, nil
}

// curvePanels lays the runs' series out as the figure's panels, leaving
// out a panel no run has data for.
func curvePanels(runs []runCurves) []eval.Panel {
	const steps = "step"
	type series struct {
		suffix string
		dashed bool
		x, y   func(runCurves) []float64
	}
	specs := []struct {
		title, ylabel string
		series        []series
	}{
		{"InfoNCE loss", "loss", []series{{"", false, func(r runCurves) []float64 { return r.lossX }, func(r runCurves) []float64 { return r.loss }}}},
		{"learning rate", "lr", []series{{"", false, func(r runCurves) []float64 { return r.lrX }, func(r runCurves) []float64 { return r.lr }}}},
		{"kNN monitor", "top-1 %", []series{{"", false, func(r runCurves) []float64 { return r.knnX }, func(r runCurves) []float64 { return r.knn }}}},
		{"mean similarity: q·k positives (solid), q·n queue (dashed)", "cosine similarity", []series{
			{" q·k", false, func(r runCurves) []float64 { return r.simX }, func(r runCurves) []float64 { return r.posSim }},
			{" q·n", true, func(r runCurves) []float64 { return r.simX }, func(r runCurves) []float64 { return r.negSim }},
		}},
		{"throughput", "images/s", []series{{"", false, func(r runCurves) []float64 { return r.speedX }, func(r runCurves) []float64 { return r.speed }}}},
	}
	var panels []eval.Panel
	for _, sp := range specs {
		pn := eval.Panel{Title: sp.title, XLabel: steps, YLabel: sp.ylabel}
		for i, r := range runs {
			for _, s := range sp.series {
				if x := s.x(r); len(x) > 0 {
					pn.Curves = append(pn.Curves, eval.Curve{Label: r.name + s.suffix, Run: i, Dashed: s.dashed, X: x, Y: s.y(r)})
				}
			}
		}
		if len(pn.Curves) > 0 {
			panels = append(panels, pn)
		}
	}
	return panels
}
