package hardneg_test

import (
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

func TestConfigMixes(t *testing.T) {
	for _, tc := range []struct {
		cfg   hardneg.Config
		epoch int
		want  bool
	}{
		{hardneg.Config{N: 8, S: 4, SPrime: 2, MixStartEpoch: 10}, 9, false},
		{hardneg.Config{N: 8, S: 4, SPrime: 2, MixStartEpoch: 10}, 10, true},
		{hardneg.Config{N: 8, S: 0, SPrime: 2}, 0, true},
		{hardneg.Config{N: 8}, 50, false},
	} {
		if got := tc.cfg.Mixes(tc.epoch); got != tc.want {
			t.Errorf("%v at epoch %d: Mixes = %t, want %t", tc.cfg, tc.epoch, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg hardneg.Config
		ok  bool
	}{
		"paper":         {hardneg.Config{N: 1024, S: 1024, SPrime: 128, Tau: 0.2}, true},
		"plain MoCo-v2": {hardneg.Config{Tau: 0.2}, true},
		"τ = 0":         {hardneg.Config{N: 4, S: 1, Tau: 0}, false},
		"negative s":    {hardneg.Config{N: 4, S: -1, Tau: 0.2}, false},
		"N = 0":         {hardneg.Config{S: 1, Tau: 0.2}, false},
		"N > K":         {hardneg.Config{N: 16385, S: 1, Tau: 0.2}, false},
	} {
		if err := tc.cfg.Validate(16384); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}
