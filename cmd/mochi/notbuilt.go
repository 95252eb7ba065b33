package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notBuilt is the error of a command whose implementation has not landed: it
// says so instead of pretending to work, and the command exits non-zero.
func notBuilt(command, what string) error {
	return fmt.Errorf("not built yet: %s: %s", command, what)
}

func newLinearEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "linear-eval",
		Short: "Linear probe on a frozen pretrained backbone (not built yet)",
		Long: `Train a linear classifier on the frozen backbone of a checkpoint (BatchNorm in
eval mode, fc initialised N(0, 0.01), SGD lr eval.linear_lr, no weight decay,
eval.linear_epochs epochs, lr ×0.1 at eval.linear_milestones) and report top-1
on data.test_split. Not built yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt("linear-eval", "the linear probe has not landed")
		},
	}
	addConfigFlags(cmd)
	cmd.Flags().String("checkpoint", "", "pretraining checkpoint whose backbone is evaluated")
	return cmd
}

func newAnalyzeUniformityCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "analyze-uniformity",
		Short: "Alignment, uniformity and negative hardness of a checkpoint's embeddings (not built yet)",
		Long: `Compute Wang & Isola's alignment (mean ‖x − y‖² over positive pairs) and
uniformity (log mean exp(−2‖x_i − x_j‖²)) of a checkpoint's embeddings, and the
hardness of its negatives. Not built yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return notBuilt("analyze-uniformity", "the analysis has not landed")
		},
	}
	addConfigFlags(cmd)
	cmd.Flags().String("checkpoint", "", "pretraining checkpoint to analyse")
	return cmd
}
