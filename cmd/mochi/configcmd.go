package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective config as YAML, with where each value came from",
		Long: `Print the effective config: the defaults, overridden by the --config file, the
MOCHI_* environment and the flags. The comment after each value says where it
came from: default, file (with the line), env (the variable) or flag. The output
is itself a valid config file. With --reference, print the table of every key.`,
		Example: `  mochi config --config configs/ci.yaml
  MOCHI_MOCO_K=8192 mochi config --config configs/ci.yaml --set mochi.n=128
  mochi config --reference`,
		Args: cobra.NoArgs,
		RunE: runConfig,
	}
	addConfigFlags(cmd)
	cmd.Flags().Bool("reference", false, "print the key reference (Markdown table: key, env, type, default, meaning) and exit")
	return cmd
}

func runConfig(cmd *cobra.Command, _ []string) error {
	if ref, _ := cmd.Flags().GetBool("reference"); ref {
		return config.WriteReference(cmd.OutOrStdout())
	}
	cfg, prov, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	if err := cfg.WriteYAML(cmd.OutOrStdout(), prov); err != nil {
		return err
	}
	if err := cfg.CheckValues(); err != nil {
		return explain(err, prov)
	}
	if err := cfg.CheckData(); err != nil {
		// The config is still right: the data may live on another machine.
		fmt.Fprintln(cmd.ErrOrStderr(), "note:", err)
	}
	return nil
}

// explain adds to each validation problem where its value came from.
func explain(err error, prov *config.Provenance) error {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	return errors.New(ve.Explain(prov))
}
