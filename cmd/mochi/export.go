package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/internal/atomicfile"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/interop"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export --checkpoint C --out F",
		Short: "Write a checkpoint's encoder as a torchvision ResNet state_dict (safetensors or npz)",
		Long: `Write the backbone of a pretraining checkpoint (and with --with-head MoCo-v2's
MLP head fc.0/fc.2) under torchvision's resnet18/34/50 state_dict names,
shapes and dtypes: convolution weights OIHW, BatchNorm weight, bias,
running_mean and running_var in float32, num_batches_tracked in int64 (the
training steps the checkpoint's BatchNorm statistics have seen).

  safetensors  one file; its metadata holds the run's config (mochi.config)
               and the checkpoint's SHA-256 (mochi.checkpoint_sha256)
  npz          numpy.savez layout: numpy.load(F) is a dict of arrays by name
               (tensors only, no metadata)

In PyTorch (the CIFAR stem is a 3×3 stride-1 conv1 without max-pool):

  model = torchvision.models.resnet18(); model.fc = torch.nn.Identity()
  model.conv1 = torch.nn.Conv2d(C, 64, 3, 1, 1, bias=False); model.maxpool = torch.nn.Identity()  # cifar stem only
  model.load_state_dict(safetensors.torch.load_file(F))

torchvision builds only model.width 64; a narrower mochi ResNet keeps the
names, and its shapes are those of a ResNet whose stages have width, 2·width,
4·width and 8·width channels.`,
		Example: `  mochi export --checkpoint runs/fm-mochi/checkpoints/last.ckpt --out backbone.safetensors
  mochi export --checkpoint runs/fm-mochi/checkpoints/last.ckpt --out encoder.npz --format npz --encoder key --with-head`,
		Args: cobra.NoArgs,
		RunE: runExport,
	}
	f := cmd.Flags()
	f.String("checkpoint", "", "pretraining checkpoint (runs/x/checkpoints/last.ckpt)")
	f.String("out", "", "file to write")
	f.String("format", "safetensors", "safetensors or npz")
	f.String("encoder", "query", "query (f_q, the network MoCo evaluates) or key (the momentum encoder f_k)")
	f.Bool("with-head", false, "include MoCo-v2's projection head as fc.0 and fc.2")
	return cmd
}

func runExport(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	ckpt, _ := f.GetString("checkpoint")
	out, _ := f.GetString("out")
	format, _ := f.GetString("format")
	which, _ := f.GetString("encoder")
	head, _ := f.GetBool("with-head")
	switch {
	case ckpt == "" || out == "":
		return fmt.Errorf("export needs --checkpoint (a file written by mochi pretrain) and --out (the file to write)")
	case format != "safetensors" && format != "npz":
		return fmt.Errorf("--format %q: use safetensors or npz", format)
	case which != "query" && which != "key":
		return fmt.Errorf("--encoder %q: use query or key", which)
	}
	p, err := loadPretrained(ckpt)
	if err != nil {
		return err
	}
	enc := interop.Encoder{Weights: p.Weights, Stats: p.Stats}
	if which == "key" {
		enc = interop.Encoder{Weights: p.KeyWeights, Stats: p.KeyStats}
	}
	if head && p.Net.EmbedDim == 0 {
		return fmt.Errorf("--with-head: %s has no projection head (it was imported without one)", ckpt)
	}
	net := p.Net
	net.InChannels = p.C
	sd, err := interop.Export(net, enc, head, int64(p.Steps))
	if err != nil {
		return fmt.Errorf("%s: %w", ckpt, err)
	}
	var b bytes.Buffer
	if format == "npz" {
		err = interop.WriteNPZ(&b, sd)
	} else {
		var cfg bytes.Buffer
		if err := p.Config.WriteYAML(&cfg, nil); err != nil {
			return err
		}
		err = interop.WriteSafetensors(&b, sd, map[string]string{
			"format":                  "pt",
			"mochi.config":            cfg.String(),
			"mochi.checkpoint":        filepath.Base(ckpt),
			"mochi.checkpoint_sha256": p.SHA256,
			"mochi.encoder":           which,
			"mochi.epochs":            strconv.Itoa(p.Epoch),
		})
	}
	if err != nil {
		return err
	}
	if err := atomicfile.Write(out, b.Bytes()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d tensors of the %s encoder (%s, %d input channels, head %v), %s\n",
		out, len(sd), which, p.Config.Model.Backbone, p.C, head, format)
	return err
}

// saveSplitFeatures writes linear-eval's train and test features with
// their labels as .npy files to dir (--save-features).
func saveSplitFeatures(dir string, trainX eval.Matrix, trainY []int, testX eval.Matrix, testY []int, log io.Writer) error {
	for _, s := range []struct {
		name string
		x    eval.Matrix
		y    []int
	}{{"train", trainX, trainY}, {"test", testX, testY}} {
		path := filepath.Join(dir, s.name+".npy")
		if err := eval.SaveFeatures(path, s.x.Data, s.y, s.x.N, s.x.D); err != nil {
			return fmt.Errorf("--save-features: %w", err)
		}
		fmt.Fprintf(log, "saved %s features %d×%d to %s and labels to %s\n", s.name, s.x.N, s.x.D, path, eval.LabelsPath(path))
	}
	return nil
}
