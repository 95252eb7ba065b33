package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/interop"
	"github.com/mochi-ssl/mochi/pkg/runstate"
	"github.com/mochi-ssl/mochi/pkg/train"
)

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import --from F --out C.ckpt --config cfg.yaml",
		Short: "Turn a PyTorch or safetensors ResNet checkpoint into a mochi checkpoint for evaluation",
		Long: `Read a published checkpoint and write a mochi checkpoint that linear-eval, knn
and analyze-uniformity read like one of mochi's own. Accepted files (decided
by content): torch.save files, zip or legacy pickle (.pth, .pth.tar; tensors
are rebuilt, no code from the file runs), and safetensors. Accepted layouts:

  facebookresearch/moco   state_dict with module.encoder_q.* (query encoder,
                          MoCo-v2's MLP head fc.0/fc.2 included),
                          module.encoder_k.* and module.queue
  torchvision             a plain resnet18/34/50 state_dict, or one saved
                          under DataParallel (module.*); its classifier fc
                          is ignored
  mochi export            the same names in safetensors

The config (--config and overrides) says the architecture (model.backbone,
model.width, model.stem) and the data evaluation will use; every tensor's
shape is checked against it, a missing or unexpected model tensor is an
error naming the key, and the keys not used are listed. The input channels
come from conv1.weight, the embedding dimension from the head.

Without a MoCo head analyze-uniformity has nothing to embed with (linear-eval
and knn use the backbone); without a queue its hardness analysis draws the
negatives from the keys of the evaluated images and says so in its report.
An imported checkpoint holds no optimizer state: pretrain --resume refuses it.`,
		Example: `  mochi import --from moco_v2_800ep_pretrain.pth.tar --out runs/moco-v2-800ep/checkpoints/last.ckpt --config configs/imagenet100-resnet50.yaml
  mochi import --from backbone.safetensors --out runs/imported/checkpoints/last.ckpt --config configs/ci.yaml`,
		Args: cobra.NoArgs,
		RunE: runImport,
	}
	addConfigFlags(cmd)
	f := cmd.Flags()
	f.String("from", "", "checkpoint to read: .pth/.pth.tar (torch.save) or .safetensors")
	f.String("out", "", "mochi checkpoint to write (e.g. runs/<name>/checkpoints/last.ckpt)")
	return cmd
}

func runImport(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	from, _ := f.GetString("from")
	out, _ := f.GetString("out")
	if from == "" || out == "" {
		return fmt.Errorf("import needs --from (a .pth.tar, .pth or .safetensors file) and --out (the mochi checkpoint to write)")
	}
	cfg, prov, err := checked(loadConfig(cmd))
	if err != nil {
		return err
	}
	file, err := interop.Read(from)
	if err != nil {
		return err
	}
	net, err := train.ResNetConfig(cfg, 3)
	if err != nil {
		return err
	}
	im, err := interop.Import(file, net)
	if err != nil {
		return err
	}
	c, size := im.Net.InChannels, cfg.Data.ImageSize
	if size == 0 { // the dataset's own size
		ds, err := train.OpenSplit(cfg, cfg.Data.TestSplit)
		if err != nil {
			return fmt.Errorf("the image size: set data.image_size, or make the data available: %w", err)
		}
		if ds.Channels() != c {
			return fmt.Errorf("%s: conv1.weight takes %d input channels, %s has %d; import for a dataset of %d-channel images", from, c, ds.Name(), ds.Channels(), c)
		}
		size = ds.Height()
	}
	spec := runstate.Import{
		Net: im.Net, C: c, H: size, W: size,
		Query:  runstate.Weights{Params: im.Query.Weights, Stats: im.Query.Stats},
		Queue:  im.Queue,
		Config: cfg, Provenance: prov, EpochsDone: file.Epoch,
		Origin: runstate.Origin{From: from, SHA256: file.SHA256, Format: file.Format, Layout: im.Layout, Ignored: im.Ignored},
	}
	if im.Key != nil {
		spec.Key = &runstate.Weights{Params: im.Key.Weights, Stats: im.Key.Stats}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := runstate.SaveImported(out, spec); err != nil {
		return err
	}

	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "read %s: %s, layout %s, epoch %d\n", from, file.Format, im.Layout, file.Epoch)
	fmt.Fprintf(w, "network: %s, width %d, %s stem, %d input channels\n", cfg.Model.Backbone, im.Net.WithDefaults().Width, cfg.Model.Stem, c)
	switch {
	case im.Head:
		fmt.Fprintf(w, "head: MoCo-v2 MLP, embeddings of dimension %d\n", im.Net.EmbedDim)
	default:
		fmt.Fprintln(w, "head: none (analyze-uniformity needs one; linear-eval and knn use the backbone)")
	}
	if im.Key != nil {
		fmt.Fprintln(w, "key encoder: from the file")
	} else {
		fmt.Fprintln(w, "key encoder: none in the file (a copy of the query encoder)")
	}
	if im.Queue != nil {
		fmt.Fprintf(w, "queue: %d negatives from the file\n", im.Queue.K)
	} else {
		fmt.Fprintln(w, "queue: none (analyze-uniformity draws negatives from the evaluated images' keys)")
	}
	fmt.Fprintf(w, "missing: none; unexpected: none; ignored: %d", len(im.Ignored))
	if len(im.Ignored) > 0 {
		fmt.Fprintf(w, "\n  %s", strings.Join(im.Ignored, "\n  "))
	}
	_, err = fmt.Fprintf(w, "\nwrote %s\n", out)
	return err
}
