package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/device/registry"
)

// version and commit are set at link time by scripts/setup.sh:
// -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

// backends lists the compute backends built into this binary (package
// backend): "cpu" always, "cuda" in the GPU build (build tag gpu).
var backends = registry.Available()

// hasBackend reports whether the binary holds the backend for device.
func hasBackend(device string) bool {
	for _, b := range backends {
		if b == device {
			return true
		}
	}
	return false
}

// buildCommit returns the commit set at link time, else the one the Go
// toolchain recorded (builds with VCS stamping), else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version, compute backends and the CPU's BLAS and oneDNN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText())
			return err
		},
	}
}

// versionText is what `mochi version` and `mochi --version` print.
func versionText() string {
	return fmt.Sprintf("mochi %s\ncommit: %s\ngo: %s %s/%s\nbackends: %s\nblas: %s\nonednn: %s\n",
		version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(backends, ", "), cpu.BLAS(), cpu.OneDNN())
}
