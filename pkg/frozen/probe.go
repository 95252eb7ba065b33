package frozen

import (
	"fmt"
	"io"
	"time"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/eval"
)

// ProbeConfig maps the eval section onto MoCo's linear-evaluation recipe.
func ProbeConfig(cfg *config.Config, classes int) eval.ProbeConfig {
	pc := eval.DefaultProbeConfig()
	e := cfg.Eval
	pc.LR, pc.Epochs, pc.Milestones = e.LinearLR, e.LinearEpochs, e.LinearMilestones
	pc.BatchSize, pc.WeightDecay = e.LinearBatch, e.LinearWeightDecay
	pc.Seed, pc.Classes = uint64(cfg.Run.Seed), classes
	return pc
}

// KNNConfig maps the eval section onto the weighted kNN classifier, the
// pretraining monitor's and the evaluation commands' alike.
func KNNConfig(cfg *config.Config, classes int) eval.KNNConfig {
	kc := eval.DefaultKNNConfig()
	kc.K, kc.T, kc.Classes = cfg.Eval.KNNK, cfg.Eval.KNNT, classes
	return kc
}

// Evaluation says what to measure on one set of frozen features: the linear
// probe (Linear), the weighted kNN (KNN) or both.
type Evaluation struct {
	Name   string // the report row: a checkpoint's name or "pixels"
	Linear bool
	KNN    bool
	Probe  eval.ProbeConfig
	KNNCfg eval.KNNConfig
	// Views, when set, are what the probe trains on, a fresh set each
	// epoch, instead of the train features (which the kNN still uses).
	Views *AugmentedViews
	Log   io.Writer // progress lines
}

// Run trains the probe and runs the kNN as ev says on the train features
// and reports both on the test features.
func (ev Evaluation) Run(trainX eval.Matrix, trainY []int, testX eval.Matrix, testY []int) (eval.CheckpointReport, error) {
	r := eval.CheckpointReport{Name: ev.Name}
	if ev.Linear {
		if err := ev.linearProbe(&r, trainX, testX, trainY, testY); err != nil {
			return r, err
		}
	}
	if ev.KNN {
		kr, err := eval.KNN(trainX, trainY, testX, testY, ev.KNNCfg)
		if err != nil {
			return r, fmt.Errorf("%s: kNN: %w", ev.Name, err)
		}
		r.KNNTop1, r.KNNTop5 = eval.Float(kr.Top1), eval.Float(kr.Top5)
	}
	return r, nil
}

// linearProbe trains the probe and fills r's linear fields.
func (ev Evaluation) linearProbe(r *eval.CheckpointReport, trainX, testX eval.Matrix, trainY, testY []int) error {
	name, pc, views, log := ev.Name, ev.Probe, ev.Views, ev.Log
	// A line per epoch for short probes and for augmented ones (each epoch
	// runs the backbone), every 10 epochs for long ones otherwise.
	every := 1
	if pc.Epochs > 20 && views == nil {
		every = 10
	}
	pc.Progress = func(e eval.ProbeEpoch) {
		if (e.Epoch+1)%every == 0 || e.Epoch+1 == pc.Epochs {
			cost := ""
			if views != nil {
				cost = fmt.Sprintf("  (augmented features %.1fs)", views.Last.Seconds())
			}
			fmt.Fprintf(log, "%s: probe epoch %d/%d  lr %.4g  loss %.4f%s\n", name, e.Epoch+1, pc.Epochs, e.LR, e.Loss, cost)
		}
	}
	start := time.Now()
	var (
		res eval.ProbeResult
		err error
	)
	if views != nil {
		res, err = eval.LinearProbeEpochs(views.Features, testX, testY, pc)
	} else {
		res, err = eval.LinearProbe(trainX, trainY, testX, testY, pc)
	}
	if err != nil {
		return fmt.Errorf("%s: linear probe: %w", name, err)
	}
	fmt.Fprintf(log, "%s: linear probe on %d×%d features in %.1fs: top-1 %.2f%%\n", name, trainX.N, trainX.D, time.Since(start).Seconds(), 100*res.Top1)
	r.LinearTop1, r.LinearTop5, r.LinearLoss = eval.Float(res.Top1), eval.Float(res.Top5), res.LossCurve
	if why := res.Diverged(pc.Classes); why != "" {
		r.LinearDiverged = why
		advice := fmt.Sprintf("lower eval.linear_lr (now %.4g; e.g. --lr %.4g)", pc.LR, pc.LR/10)
		if !pc.Standardize {
			advice = "rerun with --standardize (features on another scale than MoCo's lr 30 expects), or " + advice
		}
		fmt.Fprintf(log, "warning: %s: the linear probe diverged: %s; its accuracy means little: %s\n", name, why, advice)
	}
	return nil
}
