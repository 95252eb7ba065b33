package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/dist"
)

// benchDirEnv, when set, makes the test binary one process of
// scripts/dist-bench.sh (alone or one rank of mpirun's job): it trains the
// config at benchConfigEnv (MOCHI_* variables applied) into that
// directory, and rank 0 prints one JSON line of the run's figures
// (benchResult).
const (
	benchDirEnv    = "TRAIN_BENCH_DIR"
	benchConfigEnv = "TRAIN_BENCH_CONFIG"
	benchWarmup    = 2 // steps left out of the figures
)

// benchResult is what one run of the benchmark measured, over its steps
// after the warm-up: training images per second, the share of the step
// spent in collectives and their payload per step (rank 0's; 0 on one
// process), and the size of the gradients the all-reduce sums.
type benchResult struct {
	Procs        int     `json:"procs"`
	Steps        int     `json:"steps"`
	ImagesPerSec float64 `json:"images_per_sec"`
	CommShare    float64 `json:"comm_share"`
	CommBytes    int64   `json:"comm_bytes_per_step"`
	GradBytes    int     `json:"grad_bytes"`
}

func benchRank(dir string) int {
	c, err := dist.Open(dist.Options{})
	if err == nil {
		err = benchRun(c, dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dist bench: %v\n", err)
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func benchRun(c dist.Comm, dir string) error {
	cfg, _, err := config.Load(os.Getenv(benchConfigEnv), nil)
	if err != nil {
		return err
	}
	cfg.Run.OutputDir = dir
	if err := cfg.Validate(); err != nil {
		return err
	}
	return trainAsRank(c, cfg, func(t *trainer) error {
		if c.Rank() != 0 {
			return nil
		}
		r, err := benchFigures(t)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	})
}

// benchFigures reads the figures of a benchmark run from its metrics.
func benchFigures(t *trainer) (benchResult, error) {
	cfg, c := t.cfg, t.comm
	r := benchResult{Procs: c.Size()}
	for _, p := range t.model.EncoderQ.Params {
		r.GradBytes += 4 * p.Node.Shape().TotalSize()
	}
	f, err := os.Open(filepath.Join(t.dir, metricsName))
	if err != nil {
		return r, err
	}
	defer f.Close()
	var seconds, comm float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var h recordHead
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Kind != kindStep {
			continue
		}
		var m StepMetrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return r, err
		}
		if m.Step <= benchWarmup {
			continue
		}
		r.Steps++
		seconds += float64(cfg.Optim.Batch) / m.ImagesSec
		comm += m.CommMS / 1000
		r.CommBytes = m.CommBytes
	}
	if r.Steps == 0 {
		return r, fmt.Errorf("no step after the %d warm-up steps: raise data.limit", benchWarmup)
	}
	r.ImagesPerSec, r.CommShare = float64(r.Steps*cfg.Optim.Batch)/seconds, comm/seconds
	return r, sc.Err()
}
