package hardneg

import "fmt"

// Config holds MoCHi(N, s, s′) and the InfoNCE temperature, documented once
// here (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028, §4).
type Config struct {
	// N is the size of Q̃_N, the hardest queue entries (highest q·n) per
	// query that the synthetic negatives are mixed from. Paper: 512 or 1024
	// with K = 16384.
	N int
	// S is s, the negative–negative mixes h per query. Paper: 1024.
	S int
	// SPrime is s′, the query–negative mixes h′ per query. Paper: 128–512.
	SPrime int
	// Tau is τ, the InfoNCE temperature (0.2 for MoCo-v2).
	Tau float64
	// GradThroughHPrime lets the gradient reach q through the copy of q
	// inside h′ = normalize(β q + (1−β) n_j). Off by default, as in the
	// paper, where h and h′ are constants.
	GradThroughHPrime bool
	// ClassOracle removes the queue entries with the query's label from
	// the negatives and from Q̃_N (the paper's upper bound on false-negative
	// removal); it needs labels for the queries and the queue.
	ClassOracle bool
	// MixStartEpoch is the first epoch with mixing; before it the loss is
	// plain MoCo-v2 (paper: 10 on ImageNet-100, 15 on ImageNet-1K).
	MixStartEpoch int
}

// Mixes reports whether the loss at epoch mixes hard negatives: s + s′ > 0
// and epoch ≥ MixStartEpoch.
func (c Config) Mixes(epoch int) bool { return c.S+c.SPrime > 0 && epoch >= c.MixStartEpoch }

// Validate checks the configuration against a queue of k entries.
func (c Config) Validate(k int) error {
	switch {
	case !(c.Tau > 0):
		return fmt.Errorf("hardneg: temperature τ = %v must be positive (set tau, 0.2 for MoCo-v2)", c.Tau)
	case c.S < 0 || c.SPrime < 0:
		return fmt.Errorf("hardneg: s = %d and s′ = %d must not be negative (set mochi s and s_prime)", c.S, c.SPrime)
	case c.S+c.SPrime > 0 && c.N <= 0:
		return fmt.Errorf("hardneg: N = %d must be positive when mixing (set mochi n)", c.N)
	case c.S+c.SPrime > 0 && c.N > k:
		return fmt.Errorf("hardneg: N = %d exceeds the queue size K = %d; Q̃_N must be a subset of the queue, so lower mochi n or raise queue_size", c.N, k)
	}
	return nil
}

// String names the setting in the paper's notation.
func (c Config) String() string {
	return fmt.Sprintf("MoCHi(%d, %d, %d) τ=%g", c.N, c.S, c.SPrime, c.Tau)
}
