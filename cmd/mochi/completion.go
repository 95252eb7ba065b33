package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
)

// registerCompletions teaches `mochi completion`'s scripts the values of
// the flags every command shares: config keys after --set, the devices after
// --device, checkpoint and config files, and folders.
func registerCompletions(root *cobra.Command) {
	files := func(exts ...string) cobra.CompletionFunc {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return exts, cobra.ShellCompDirectiveFilterFileExt
		}
	}
	dirs := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}
	byFlag := map[string]cobra.CompletionFunc{
		config.SetFlag: completeSet,
		"device":       completeDevice,
		"checkpoint":   files("ckpt"),
		"resume":       files("ckpt"),
		"config":       files("yaml", "yml"),
		"json":         files("json"),
		"output-dir":   dirs,
		"data-path":    dirs,
		"cache-dir":    dirs,
		"out":          dirs,
	}
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		for name, fn := range byFlag {
			if cmd.Flags().Lookup(name) != nil {
				if err := cmd.RegisterFlagCompletionFunc(name, fn); err != nil {
					panic(err)
				}
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeSet completes --set: the config keys followed by "=", then, for
// run.device, the devices.
func completeSet(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if key, value, ok := strings.Cut(toComplete, "="); ok {
		if key == "run.device" {
			var out []string
			for _, d := range config.Devices {
				if strings.HasPrefix(d, value) {
					out = append(out, key+"="+d)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range config.Keys() {
		if strings.HasPrefix(k.Name, toComplete) {
			out = append(out, k.Name+"=\t"+k.Help)
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// completeDevice completes --device with the devices run.device accepts.
func completeDevice(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return config.Devices, cobra.ShellCompDirectiveNoFileComp
}
