// Package config holds mochi's typed configuration: one Config struct with the
// MoCo-v2 / MoCHi hyper-parameters and their documented defaults, the loader that
// layers defaults, a YAML file, MOCHI_* environment variables and command-line
// flags (each later layer overriding the earlier), and the validation rules.
//
// # Overview
//
// Every value has one key, written in snake_case with the paper's symbols where
// natural: moco.k (queue size K), moco.m (momentum m), moco.tau (temperature τ),
// mochi.n, mochi.s, mochi.s_prime (MoCHi(N, s, s′)). The key names the YAML entry
// (section, then name), the environment variable (MOCHI_ + the key upper-cased
// with "." replaced by "_", e.g. MOCHI_MOCO_K) and the --set key=value flag.
//
// Load returns the Config and a Provenance that tells, for every key, where its
// value came from: the default, the file (with the line), the environment
// variable or the flag.
//
// # Invariants
//
//   - A key the file does not know is an error naming the key and the closest
//     known key: a typo never falls back to a default silently.
//   - A value of the wrong type ("abc" for an integer, 0.5 for an integer) is an
//     error naming the key and where the value came from; nothing is truncated.
//   - Validate names the key and the rule for every value out of range. The one
//     check that needs the disk, the dataset path, is CheckData, so a config can
//     be checked on a machine that does not hold its dataset.
//
// # Reference
//
// The MoCo-v2 recipe: Chen et al., "Improved Baselines with Momentum Contrastive
// Learning", arXiv 2003.04297. MoCHi: Kalantidis et al., "Hard Negative Mixing
// for Contrastive Learning", NeurIPS 2020, arXiv 2010.01028.
package config
