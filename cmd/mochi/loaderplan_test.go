package main

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
)

// writeFolder writes n small JPEGs per split into root/<split>/c<k>/ for the
// given splits.
func writeFolder(t *testing.T, root string, n int, splits ...string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	for _, split := range splits {
		for i := range n {
			p := filepath.Join(root, split, fmt.Sprintf("c%d", i%4), fmt.Sprintf("%04d.jpg", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDryRunImageFolder: the ImageNet-100 config's dry run on a generated
// folder prints the size on disk, the loader's memory bound and its
// projected throughput, and warns that 2 workers cannot feed a GPU.
func TestDryRunImageFolder(t *testing.T) {
	root := t.TempDir()
	writeFolder(t, root, 300, "train", "test")
	out, _, err := run(t, "pretrain", "--config", "../../configs/imagenet100-resnet50.yaml", "--data-path", root,
		"--set", "data.workers=2", "--device", "cpu", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Contains(t, "dry run", out, "on disk in 300 images", "memory bound", "12 batches of 2×256×3×224² float32", "projected", "pairs/s", "measured on 256 images")
}

// TestLoaderWarning: the GPU warning appears when the loader is slower than
// a ResNet-50 step and says how many workers would keep up.
func TestLoaderWarning(t *testing.T) {
	cfg, _, err := config.Load("../../configs/imagenet100-resnet50.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := loaderWarning(cfg, 224, 100, 4); !strings.Contains(w, "will bound the step") || !strings.Contains(w, "about 24 workers") {
		t.Errorf("100 pairs/s with 4 workers: warning %q, want one asking for 24 workers (585 pairs/s at 25 per worker)", w)
	}
	if w := loaderWarning(cfg, 224, 600, 16); w != "" {
		t.Errorf("600 pairs/s: warning %q, want none", w)
	}
	cfg.Run.Device = "cpu"
	if w := loaderWarning(cfg, 224, 10, 1); w != "" {
		t.Errorf("on the CPU: warning %q, want none", w)
	}
}

// TestImageFolderMissingSplit: an ImageFolder without test/ is refused for
// the kNN monitor naming the folder (never the training images instead),
// and accepted with data.test_split: train.
func TestImageFolderMissingSplit(t *testing.T) {
	root := t.TempDir()
	writeFolder(t, root, 8, "train")
	args := []string{"pretrain", "--config", "../../configs/ci.yaml", "--set", "data.kind=imagefolder", "--data-path", root,
		"--set", "data.image_size=16", "--set", "optim.batch=4", "--set", "model.bn_splits=1", "--dry-run"}
	runFails(t, args, "no test/ folder", "data.test_split: train")
	out, _ := mustRun(t, append(args, "--set", "data.test_split=train")...)
	testenv.Contains(t, "dry run", out, "imagefolder:"+filepath.Base(root)+"/train: 8 images for the kNN monitor")
}
