package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// TestLinearEvalSkipsCorruptImages: with data.skip_corrupt, linear-eval
// and its kNN leave a corrupt test image out and say so, count and file,
// also when the features come from the cache; without it the corrupt file
// is an error naming it.
func TestLinearEvalSkipsCorruptImages(t *testing.T) {
	if testing.Short() {
		t.Skip("pretrains a small network")
	}
	root := t.TempDir()
	writeFolder(t, root, 32, "train", "test")
	corrupt := filepath.Join(root, "test", "c1", "broken.jpg")
	if err := os.WriteFile(corrupt, []byte("not a JPEG: a failed download"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(ciConfigPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model.Width, cfg.Model.EmbedDim, cfg.Model.BNSplits = 4, 16, 2
	cfg.MoCo.K = 32
	cfg.MoCHi.N, cfg.MoCHi.S, cfg.MoCHi.SPrime, cfg.MoCHi.MixStartEpoch = 16, 8, 4, 0
	cfg.Optim.Batch, cfg.Optim.Epochs = 8, 1
	cfg.Data.Kind, cfg.Data.Path, cfg.Data.ImageSize, cfg.Data.Limit, cfg.Data.SkipCorrupt = "imagefolder", root, 16, 0, true
	cfg.Eval.KNNEvery = 0
	cfg.Run.OutputDir = filepath.Join(t.TempDir(), "run")
	sum, err := train.Pretrain(context.Background(), cfg, train.Options{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	args := []string{"linear-eval", "--checkpoint", sum.Checkpoint, "--cache-dir", cache, "--knn"}
	_, errOut := mustRun(t, args...)
	testenv.Contains(t, "progress", errOut, "left out 1 corrupt images (data.skip_corrupt), first "+corrupt+" (")
	_, errOut = mustRun(t, args...)
	testenv.Contains(t, "progress", errOut, "cached features", "the cache holds 32 of 33 images: 1 corrupt images were left out")

	t.Setenv("MOCHI_DATA_SKIP_CORRUPT", "false")
	_, errOut, err = run(t, "linear-eval", "--checkpoint", sum.Checkpoint, "--cache-dir", filepath.Join(t.TempDir(), "cache"), "--knn")
	if err == nil || !strings.Contains(err.Error(), corrupt) {
		t.Errorf("linear-eval without data.skip_corrupt: error %v, want one naming %s\n%s", err, corrupt, errOut)
	}
}
