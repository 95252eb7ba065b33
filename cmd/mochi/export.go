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

// exportOptions holds export's flags.
type exportOptions struct {
	checkpoint, out, format, encoder string
	withHead                         bool
}

func newExportCmd() *cobra.Command {
	var o exportOptions
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runExport(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "pretraining checkpoint (runs/x/checkpoints/last.ckpt)")
	f.StringVar(&o.out, "out", "", "file to write")
	f.StringVar(&o.format, "format", "safetensors", "safetensors or npz")
	f.StringVar(&o.encoder, "encoder", "query", "query (f_q, the network MoCo evaluates) or key (the momentum encoder f_k)")
	f.BoolVar(&o.withHead, "with-head", false, "include MoCo-v2's projection head as fc.0 and fc.2")
	return cmd
}

func runExport(cmd *cobra.Command, o exportOptions) error {
	switch {
	case o.checkpoint == "" || o.out == "":
		return fmt.Errorf("export needs --checkpoint (a file written by mochi pretrain) and --out (the file to write)")
	case o.format != "safetensors" && o.format != "npz":
		return fmt.Errorf("--format %q: use safetensors or npz", o.format)
	case o.encoder != "query" && o.encoder != "key":
		return fmt.Errorf("--encoder %q: use query or key", o.encoder)
	}
	p, err := loadPretrained(o.checkpoint)
	if err != nil {
		return err
	}
	enc := interop.Encoder{Weights: p.Weights, Stats: p.Stats}
	if o.encoder == "key" {
		enc = interop.Encoder{Weights: p.KeyWeights, Stats: p.KeyStats}
	}
	if o.withHead && p.Net.EmbedDim == 0 {
		return fmt.Errorf("--with-head: %s has no projection head (it was imported without one)", o.checkpoint)
	}
	net := p.Net
	net.InChannels = p.C
	sd, err := interop.Export(net, enc, o.withHead, int64(p.Steps))
	if err != nil {
		return fmt.Errorf("%s: %w", o.checkpoint, err)
	}
	var b bytes.Buffer
	if o.format == "npz" {
		err = interop.WriteNPZ(&b, sd)
	} else {
		var cfg bytes.Buffer
		if err := p.Config.WriteYAML(&cfg, nil); err != nil {
			return err
		}
		err = interop.WriteSafetensors(&b, sd, map[string]string{
			"format":                  "pt",
			"mochi.config":            cfg.String(),
			"mochi.checkpoint":        filepath.Base(o.checkpoint),
			"mochi.checkpoint_sha256": p.SHA256,
			"mochi.encoder":           o.encoder,
			"mochi.epochs":            strconv.Itoa(p.Epoch),
		})
	}
	if err != nil {
		return err
	}
	if err := atomicfile.Write(o.out, b.Bytes()); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d tensors of the %s encoder (%s, %d input channels, head %v), %s\n",
		o.out, len(sd), o.encoder, p.Config.Model.Backbone, p.C, o.withHead, o.format)
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
