package config

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestRebindFlag: a rebound shortcut sets its new key, names it and its
// type in the help, and binding to what does not exist is an error.
func TestRebindFlag(t *testing.T) {
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	AddFlags(fs)
	if err := RebindFlag(fs, "epochs", "eval.linear_epochs"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--epochs", "7"}); err != nil {
		t.Fatal(err)
	}
	cfg, prov, err := Load("", fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Eval.LinearEpochs != 7 || cfg.Optim.Epochs != Default().Optim.Epochs {
		t.Errorf("--epochs 7 rebound: eval.linear_epochs %d, optim.epochs %d; want 7 and the default", cfg.Eval.LinearEpochs, cfg.Optim.Epochs)
	}
	if o := prov.Of("eval.linear_epochs"); o.Source != FromFlag || o.Where != "--epochs" {
		t.Errorf("eval.linear_epochs came from %v, want flag --epochs", o)
	}
	f := fs.Lookup("epochs")
	if name, usage := pflag.UnquoteUsage(f); name != "int" || !strings.Contains(usage, "eval.linear_epochs") || FlagKey(f) != "eval.linear_epochs" {
		t.Errorf("help %q %q, key %q: want an int placeholder and eval.linear_epochs", name, usage, FlagKey(f))
	}
	if err := RebindFlag(fs, "epochs", "eval.no_such_key"); err == nil {
		t.Error("unknown key: no error")
	}
	if err := RebindFlag(fs, "no-such-flag", "eval.linear_epochs"); err == nil {
		t.Error("unknown flag: no error")
	}
}
