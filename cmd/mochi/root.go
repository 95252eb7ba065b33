package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
)

const rootLong = `mochi trains image encoders without labels with MoCo-v2 (momentum contrast:
a query encoder, a momentum key encoder θ_k ← m·θ_k + (1−m)·θ_q and a queue of
K negatives, InfoNCE at temperature τ) and MoCHi hard negative mixing
(Kalantidis et al., NeurIPS 2020, https://arxiv.org/abs/2010.01028): per query,
s synthetic negatives mixed from pairs of its N hardest queue entries and s′
mixed from the query itself, MoCHi(N, s, s′).

A run is described by a YAML config (configs/ has ready ones). Every value can
be overridden by an environment variable and then by a flag:
  defaults < --config file < MOCHI_* environment < --set key=value / shortcut flags
` + "`mochi config`" + ` prints the effective values and where each came from;
` + "`mochi config --reference`" + ` explains every key.

Environment (MOCHI_ + the key upper-cased, "." → "_"):
`

const rootExamples = `  mochi pretrain --config configs/fashion-mnist.yaml --dry-run
  mochi pretrain --config configs/fashion-mnist.yaml
  MOCHI_OPTIM_EPOCHS=1 mochi pretrain --config configs/ci.yaml --set mochi.s=0 --set mochi.s_prime=0
  mochi config --config configs/cifar10-resnet18.yaml --lr 0.06
  mochi plot runs/fmnist-mochi runs/fmnist-moco
  mochi --version`

// newRootCmd builds the command tree. Each call returns a fresh tree, so tests
// can run commands in-process with their own arguments and output buffers.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mochi",
		Short:         "MoCo-v2 contrastive pretraining with MoCHi hard negative mixing",
		Long:          rootLong + envList(),
		Example:       rootExamples,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the error once
		// Flags a command registers (as the shared config flags) but does
		// not read are refused rather than ignored.
		PersistentPreRunE: refuseUnusedFlags,
	}
	// --version and -v print what `mochi version` prints (as a template:
	// braces quoted).
	root.SetVersionTemplate(strings.ReplaceAll(versionText(), "{", "{{`{`}}"))
	root.AddCommand(
		newPretrainCmd(),
		newLinearEvalCmd(),
		newKNNCmd(),
		newAnalyzeUniformityCmd(),
		newConfigCmd(),
		newPlotCmd(),
		newVersionCmd(),
		newBenchCmd(),
		newExportCmd(),
		newImportCmd(),
	)
	registerCompletions(root)
	return root
}

// unusedFlagsAnnotation lists, comma-separated, the flags a command
// inherits from a shared flag set but does not use; they are hidden from its
// help and refused.
const unusedFlagsAnnotation = "mochi/unused-flags"

// markUnused hides flags of cmd that it does not use and makes it refuse them.
func markUnused(cmd *cobra.Command, flags ...string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	if prev := cmd.Annotations[unusedFlagsAnnotation]; prev != "" {
		flags = append(strings.Split(prev, ","), flags...)
	}
	cmd.Annotations[unusedFlagsAnnotation] = strings.Join(flags, ",")
	for _, name := range flags {
		if err := cmd.Flags().MarkHidden(name); err != nil {
			panic(err)
		}
	}
}

// refuseUnusedFlags fails when the user set a flag marked unused for cmd.
func refuseUnusedFlags(cmd *cobra.Command, _ []string) error {
	list := cmd.Annotations[unusedFlagsAnnotation]
	if list == "" {
		return nil
	}
	for _, name := range strings.Split(list, ",") {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		if key := config.FlagKey(f); key != "" {
			return fmt.Errorf("--%s sets %s, which mochi %s does not use: leave it out", name, key, cmd.Name())
		}
		return fmt.Errorf("mochi %s has no use for --%s: leave it out", cmd.Name(), name)
	}
	return nil
}

// envList lists every MOCHI_* variable: one config section per paragraph,
// wrapped to fit a terminal.
func envList() string {
	const width = 80
	var b strings.Builder
	section, col := "", 0
	for _, k := range config.Keys() {
		sec, _, _ := strings.Cut(k.Name, ".")
		switch {
		case sec != section:
			if section != "" {
				b.WriteString("\n")
			}
			b.WriteString("  ")
			section, col = sec, 2
		case col+1+len(k.Env) > width:
			b.WriteString("\n    ")
			col = 4
		default:
			b.WriteString(" ")
			col++
		}
		b.WriteString(k.Env)
		col += len(k.Env)
	}
	b.WriteString("\n")
	return b.String()
}

// addConfigFlags registers --config and the override flags of package config.
func addConfigFlags(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "YAML config file (see configs/); without it the built-in defaults apply")
	config.AddFlags(cmd.Flags())
}

// loadConfig loads the config named by --config with the environment and the
// command's override flags.
func loadConfig(cmd *cobra.Command) (*config.Config, *config.Provenance, error) {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return nil, nil, err
	}
	return config.Load(path, cmd.Flags())
}

// checked passes on what a config loader returned, with its values checked
// (each problem naming where its value came from).
func checked(cfg *config.Config, prov *config.Provenance, err error) (*config.Config, *config.Provenance, error) {
	if err == nil {
		if err = cfg.CheckValues(); err != nil {
			err = explain(err, prov)
		}
	}
	return cfg, prov, err
}
