package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/frozen"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// Wang & Isola's exponents: alignment E‖x − y‖^α with α = 2, uniformity
// log E exp(−t‖x − y‖²) with t = 2.
const (
	alignAlpha   = 2
	uniformTemp  = 2
	hardnessRows = 256 // queries of the hardness analysis: one batch
	figureWidth  = 800 // PNG size in pixels
	figureHeight = 600
)

func newAnalyzeUniformityCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "analyze-uniformity --checkpoint C1 [C2 …]",
		Short: "Alignment, uniformity and negative hardness of checkpoints' embeddings, with plots",
		Long: `For each checkpoint, embed data.test_split with the frozen query encoder
(backbone + head, BatchNorm in evaluation mode, L2-normalised outputs) and
measure, as Wang & Isola (ICML 2020) and the MoCHi paper (arXiv 2010.01028) do:

  alignment   E ‖x − y‖² over --pairs positive pairs: two views of a test image
              made by the run's own MoCo-v2 augmentations (lower is better)
  uniformity  log E exp(−2‖x_i − x_j‖²) over the test embeddings, on a random
              subset of --subsample when there are more (lower is better)
  hardness    for one batch of 256 queries q (first views), keys k (second
              views) and the checkpoint's queue as negatives (for a checkpoint
              imported without a queue: the second views of the other test
              images of the pairs, each image once): the histograms of
              q·n over all negatives, the N hardest and the synthetic MoCHi
              negatives h, h′ of the run's MoCHi(N, s, s′) (mochi.n, mochi.s,
              mochi.s_prime; set them with --n/--s/--s-prime to see what mixing
              would make for a plain MoCo-v2 run), and the share of negatives
              whose softmax weight p_n is below 1e-5 (negligible gradient).

Written to --out (default <run dir of the first checkpoint>/analysis):
analysis.json (the report), plane.png (one point per checkpoint on the
alignment–uniformity plane, a colour per run, a run's checkpoints joined in
epoch order) and hardness-<name>.png per checkpoint; the table
goes to stdout. Checkpoints are evaluated under their own saved config unless
--config is given (its model must match each checkpoint).`,
		Example: `  mochi analyze-uniformity --checkpoint runs/fmnist-moco/checkpoints/last.ckpt runs/fmnist-mochi/checkpoints/last.ckpt
  mochi analyze-uniformity --checkpoint runs/fmnist-moco/checkpoints/last.ckpt --s 1024 --s-prime 128 --out /tmp/moco-analysis`,
		Args: cobra.ArbitraryArgs, // more checkpoints after the first
		RunE: runAnalyzeUniformity,
	}
	addConfigFlags(cmd)
	f := cmd.Flags()
	f.Lookup("config").Usage = checkpointConfigUsage
	markUnused(cmd, "epochs", "lr", "batch", "k", "mix-start-epoch")
	f.StringArray("checkpoint", nil, "pretraining checkpoint to analyse; repeat the flag or list more checkpoints after it")
	f.String("out", "", "output folder (default <run dir of the first checkpoint>/analysis)")
	f.Int("pairs", 2048, "positive pairs for the alignment")
	f.Int("subsample", 4096, "test embeddings for the uniformity: a random subset of this many when there are more")
	f.String("cache-dir", "", "embedding cache folder (default <run dir of each checkpoint>/features)")
	return cmd
}

func runAnalyzeUniformity(cmd *cobra.Command, args []string) error {
	f := cmd.Flags()
	ckpts, _ := f.GetStringArray("checkpoint")
	ckpts = append(ckpts, args...)
	outDir, _ := f.GetString("out")
	pairs, _ := f.GetInt("pairs")
	subsample, _ := f.GetInt("subsample")
	cacheDir, _ := f.GetString("cache-dir")
	switch {
	case len(ckpts) == 0:
		return fmt.Errorf("analyze-uniformity needs --checkpoint: one or more files written by mochi pretrain (e.g. runs/x/checkpoints/last.ckpt)")
	case pairs < 1:
		return fmt.Errorf("--pairs %d: the alignment needs at least one positive pair", pairs)
	case subsample < 2:
		return fmt.Errorf("--subsample %d: the uniformity needs at least two embeddings", subsample)
	}
	if outDir == "" {
		outDir = filepath.Join(frozen.RunDir(ckpts[0]), "analysis")
	}
	log := cmd.ErrOrStderr()

	var (
		report eval.Report
		points []eval.PlanePoint
		names  = map[string]bool{}
		pngs   []string
		runs   = runNames{}
	)
	// Every checkpoint and config is checked before the first is analysed.
	type input struct {
		p   *frozen.Pretrained
		cfg *config.Config
	}
	inputs := make([]input, len(ckpts))
	for i, path := range ckpts {
		p, cfg, err := loadCheckpointConfig(cmd, path)
		if err != nil {
			return err
		}
		inputs[i] = input{p, cfg}
	}
	for _, in := range inputs {
		p, cfg := in.p, in.cfg
		a, err := analyzeCheckpoint(p, cfg, pairs, subsample, cacheDir, log)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Path, err)
		}
		report.Checkpoints = append(report.Checkpoints, a)
		points = append(points, eval.PlanePoint{Run: runs.name(frozen.RunDir(p.Path)), Epoch: p.Epoch,
			Label: planeLabel(a.Name, p.Epoch), Uniformity: *a.Uniformity, Alignment: *a.Alignment})
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return fmt.Errorf("--out %s: %w", outDir, err)
		}
		png := filepath.Join(outDir, "hardness-"+uniqueFileName(a.Name, names)+".png")
		title := fmt.Sprintf("%s (epoch %d): q·n, MoCHi(%d, %d, %d)", a.Name, p.Epoch, cfg.MoCHi.N, cfg.MoCHi.S, cfg.MoCHi.SPrime)
		if err := eval.SavePNG(png, func(w io.Writer) error {
			return eval.WriteHistogramsPNG(w, title, *a.Hardness, figureWidth, figureHeight)
		}); err != nil {
			return err
		}
		pngs = append(pngs, png)
	}
	plane := filepath.Join(outDir, "plane.png")
	if err := eval.SavePNG(plane, func(w io.Writer) error {
		return eval.WritePlanePNG(w, points, figureWidth, figureHeight)
	}); err != nil {
		return err
	}
	jsonPath := filepath.Join(outDir, "analysis.json")
	if err := report.WriteJSON(jsonPath); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := report.Table(out); err != nil {
		return err
	}
	fmt.Fprintf(out, "report: %s\nplots:  %s", jsonPath, plane)
	for _, png := range pngs {
		fmt.Fprintf(out, ", %s", png)
	}
	_, err := fmt.Fprintln(out)
	return err
}

// analyzeCheckpoint measures alignment, uniformity and hardness of one
// checkpoint's embeddings.
func analyzeCheckpoint(p *frozen.Pretrained, cfg *config.Config, pairs, subsample int, cacheDir string, log io.Writer) (eval.CheckpointReport, error) {
	ds, err := openEvalSplit(cfg, cfg.Data.TestSplit, p)
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	be, err := openDevice(cfg.Run.Device, cfg.Run.TF32, cfg.CPU.Conv, log)
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	aug := train.AugmentConfig(cfg, p.C, p.H)
	if err := aug.Validate(p.C); err != nil {
		return eval.CheckpointReport{}, fmt.Errorf("augment: %w", err)
	}
	if cacheDir == "" {
		cacheDir = filepath.Join(frozen.RunDir(p.Path), "features")
	}
	src := &frozen.Source{P: p, Backend: be, Config: cfg, Head: true, Cache: eval.FeatureCache{Dir: cacheDir}, Mean: aug.Mean, Std: aug.Std, Log: log}
	defer src.Free()
	name := p.Name()
	r := eval.CheckpointReport{Name: name}

	// Uniformity over the test embeddings.
	emb, _, err := src.Features(ds, cfg.Data.TestSplit) // N×D, unit rows
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	var uniform float64
	if emb.N > subsample {
		uniform, err = eval.UniformitySubsampled(emb, uniformTemp, subsample, uint64(cfg.Run.Seed))
	} else {
		uniform, err = eval.Uniformity(emb, uniformTemp)
	}
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	r.Uniformity = eval.Float(uniform)

	// Alignment over positive pairs made by the run's augmentations.
	enc, err := src.Encoder(min(hardnessRows, ds.Len()))
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	start := time.Now()
	x, y, err := enc.PositivePairs(ds, aug, pairs, min(hardnessRows, ds.Len()), uint64(cfg.Run.Seed), cfg.Data.Workers, cfg.Data.Prefetch, log)
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	fmt.Fprintf(log, "%s: %d positive pairs embedded in %.1fs\n", name, x.N, time.Since(start).Seconds())
	align, err := eval.Alignment(x, y, alignAlpha)
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	r.Alignment = eval.Float(align)

	// Hardness of the queue for one batch of queries.
	b := min(hardnessRows, x.N)
	q := p.Queue
	var negatives eval.Matrix
	switch {
	case q.K == 0 && p.Origin != nil:
		// An import without a queue: the keys of half of the pairs stand
		// in for it, the queries are the other half. Only the loader's
		// first epoch is used, in which every image appears once, so no
		// negative is a view of a query's own image.
		loaderBatch := min(hardnessRows, ds.Len())
		distinct := min(x.N, ds.Len()/loaderBatch*loaderBatch)
		if b = min(b, distinct/2); b == 0 {
			return eval.CheckpointReport{}, fmt.Errorf("the checkpoint has no queue, and its stand-in, the keys of other images than the queries', needs --pairs of at least 2 and a test split of at least 2 images")
		}
		negatives, _ = eval.NewMatrix(y.Data[b*y.D:distinct*y.D], distinct-b, y.D)
		r.Negatives = fmt.Sprintf("%d keys of the evaluated images (the checkpoint has no queue)", negatives.N)
	case q.K == 0 || q.D != x.D:
		return eval.CheckpointReport{}, fmt.Errorf("the checkpoint's queue is %d×%d, the embeddings have D = %d: the checkpoint is damaged; use another checkpoint of the run", q.K, q.D, x.D)
	default:
		if negatives, err = eval.NewMatrix(q.Keys, q.K, q.D); err != nil { // K×D
			return eval.CheckpointReport{}, err
		}
		r.Negatives = fmt.Sprintf("the checkpoint's queue of %d keys", q.K)
	}
	fmt.Fprintf(log, "%s: hardness negatives: %s\n", name, r.Negatives)
	qs, _ := eval.NewMatrix(x.Data[:b*x.D], b, x.D) // q: B×D, first views
	ks, _ := eval.NewMatrix(y.Data[:b*y.D], b, y.D) // k: B×D, second views
	hc := eval.DefaultHardnessConfig()
	hc.N, hc.S, hc.SPrime, hc.Tau, hc.Seed = cfg.MoCHi.N, cfg.MoCHi.S, cfg.MoCHi.SPrime, cfg.MoCo.Tau, uint64(cfg.Run.Seed)
	st, err := eval.AnalyzeHardness(qs, ks, negatives, hc)
	if err != nil {
		return eval.CheckpointReport{}, err
	}
	r.Hardness = &st
	return r, nil
}

// unsafeFileChars are the characters replaced in names used as file names.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// uniqueFileName turns a checkpoint name into a file-name part that is not
// yet in used (adding -2, -3, … to repeats) and records it.
func uniqueFileName(name string, used map[string]bool) string {
	base := unsafeFileChars.ReplaceAllString(name, "-")
	s := base
	for i := 2; used[s]; i++ {
		s = fmt.Sprintf("%s-%d", base, i)
	}
	used[s] = true
	return s
}

// runNames names run directories in figures: the folder's base name, or
// the whole path when two runs share a base name.
type runNames map[string]string // base name → the first directory with it

func (n runNames) name(dir string) string {
	dir = filepath.Clean(dir)
	base := filepath.Base(dir)
	if first, ok := n[base]; ok && first != dir {
		return dir
	}
	n[base] = dir
	return base
}

// planeLabel labels a checkpoint on the plane, whose legend names the run:
// "epoch 2", or "last, epoch 2" for a checkpoint not named after its epoch.
func planeLabel(name string, epoch int) string {
	label := fmt.Sprintf("epoch %d", epoch)
	if stem := filepath.Base(name); stem != fmt.Sprintf("epoch-%04d", epoch) {
		label = stem + ", " + label
	}
	return label
}
