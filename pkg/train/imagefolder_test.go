package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/frozen"
)

// writeTinyFolder writes root/<split>/<class>/<i>.jpg, perClass small
// random JPEGs for each of two classes and each split, and returns root.
func writeTinyFolder(t *testing.T, perClass map[string]int) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for split, n := range perClass {
		for _, class := range []string{"ant", "bee"} {
			dir := filepath.Join(root, split, class)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				img := image.NewRGBA(image.Rect(0, 0, 20+rng.IntN(8), 20+rng.IntN(8)))
				for p := range img.Pix {
					img.Pix[p] = uint8(rng.IntN(256))
				}
				img.Set(0, 0, color.RGBA{255, 0, 0, 255})
				var buf bytes.Buffer
				if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d.jpg", i)), buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return root
}

// writeCorrupt puts a file that is no image under a JPEG name at
// root/<split>/bee/broken.jpg and returns its path.
func writeCorrupt(t *testing.T, root, split string) string {
	t.Helper()
	p := filepath.Join(root, split, "bee", "broken.jpg")
	if err := os.WriteFile(p, []byte("not a JPEG: a failed download"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tinyFolderConfig pretrains a width-4 ResNet-18 on the 16×16 ImageFolder
// at root for one epoch of 4 steps, with the kNN monitor and a checkpoint at
// its end.
func tinyFolderConfig(t *testing.T, root string, skip bool) *config.Config {
	t.Helper()
	cfg, _, err := config.Load("../../configs/ci.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Run.OutputDir = t.TempDir()
	cfg.Model.Width, cfg.Model.EmbedDim, cfg.Model.BNSplits = 4, 16, 2
	cfg.MoCo.K = 32
	cfg.MoCHi.N, cfg.MoCHi.S, cfg.MoCHi.SPrime, cfg.MoCHi.MixStartEpoch = 16, 8, 4, 0
	cfg.Optim.Batch, cfg.Optim.Epochs = 8, 1
	cfg.Data.Kind, cfg.Data.Path, cfg.Data.ImageSize, cfg.Data.Limit = "imagefolder", root, 16, 0
	cfg.Data.SkipCorrupt = skip
	cfg.Eval.KNNEvery, cfg.Eval.KNNK = 1, 4
	cfg.Run.CheckpointEvery = 1
	return cfg
}

// TestPretrainReportsSkippedImages: with data.skip_corrupt a corrupt image
// in each split is stepped over by the loader and left out by the kNN
// monitor (whose bank reads the train split too), and the epoch's line says
// so, count and first file, as metrics.jsonl does.
func TestPretrainReportsSkippedImages(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	root := writeTinyFolder(t, map[string]int{"train": 16, "test": 4})
	badTrain, badTest := writeCorrupt(t, root, "train"), writeCorrupt(t, root, "test")
	cfg := tinyFolderConfig(t, root, true)
	var out bytes.Buffer
	if _, err := Pretrain(context.Background(), cfg, Options{Progress: &out}); err != nil {
		t.Fatalf("pretrain with data.skip_corrupt: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"skipped 1 corrupt image (data.skip_corrupt), first " + badTrain + " (",
		"kNN monitor skipped 2 corrupt images, first " + badTrain + " (",
	} {
		if !strings.Contains(out.String(), "epoch 0: loss") || !strings.Contains(lineWith(out.String(), "epoch 0: loss"), want) {
			t.Errorf("the epoch line lacks %q:\n%s", want, out.String())
		}
	}
	var epochs, evals int
	for _, m := range readMetrics(t, cfg.Run.OutputDir, cfg.Optim.Batch) {
		switch m["kind"] {
		case "epoch":
			epochs++
			if m["skipped_images"] != 1.0 || !strings.HasPrefix(fmt.Sprint(m["first_skipped"]), badTrain) {
				t.Errorf("epoch record %v: want skipped_images 1, first_skipped %s", m, badTrain)
			}
		case "eval":
			evals++
			if m["skipped_images"] != 2.0 || !strings.HasPrefix(fmt.Sprint(m["first_skipped"]), badTrain) {
				t.Errorf("eval record %v: want skipped_images 2 (%s and %s), first_skipped %s", m, badTrain, badTest, badTrain)
			}
		}
	}
	if epochs != 1 || evals != 1 {
		t.Errorf("metrics hold %d epoch and %d eval records, want 1 each", epochs, evals)
	}
}

// lineWith is the first line of s that contains sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// TestPretrainCorruptImageErrors: without data.skip_corrupt a corrupt
// training image ends the epoch with the loader's error (naming the file)
// in the "ended early" message, and a corrupt test image fails the kNN
// monitor only after the epoch's checkpoint is written.
func TestPretrainCorruptImageErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	root := writeTinyFolder(t, map[string]int{"train": 16, "test": 4})
	badTrain := writeCorrupt(t, root, "train")
	cfg := tinyFolderConfig(t, root, false)
	_, err := Pretrain(context.Background(), cfg, Options{Progress: &bytes.Buffer{}})
	if err == nil || !errors.Is(err, data.ErrBadImage) || !strings.Contains(err.Error(), "data loader ended early") || !strings.Contains(err.Error(), badTrain) {
		t.Errorf("corrupt training image: error %v, want the loader's (data.ErrBadImage, naming %s) in the ended-early message", err, badTrain)
	}

	if err := os.Remove(badTrain); err != nil {
		t.Fatal(err)
	}
	badTest := writeCorrupt(t, root, "test")
	cfg = tinyFolderConfig(t, root, false)
	_, err = Pretrain(context.Background(), cfg, Options{Progress: &bytes.Buffer{}})
	if err == nil || !errors.Is(err, data.ErrBadImage) || !strings.Contains(err.Error(), "kNN monitor") || !strings.Contains(err.Error(), badTest) {
		t.Fatalf("corrupt test image: error %v, want the kNN monitor's naming %s", err, badTest)
	}
	ckpt := filepath.Join(cfg.Run.OutputDir, "checkpoints", "epoch-0000.ckpt")
	if _, serr := os.Stat(ckpt); serr != nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("the kNN monitor's failure lost the epoch: %s: %v; error %v", ckpt, serr, err)
	}
	p, err := frozen.LoadPretrained(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if p.Epoch != 0 {
		t.Errorf("%s holds epoch %d, want the finished epoch 0", ckpt, p.Epoch)
	}
}
