// Package queue holds MoCo's dictionary: a K×D circular buffer of
// L2-normalised keys with a write pointer (He et al., "Momentum Contrast",
// 2020: the keys of past batches are the negatives of the current one).
//
// # Overview
//
// After each training step the batch's keys (B×D) are written at ptr and
// ptr = (ptr+B) mod K. The queue starts filled with random unit vectors drawn
// from a seed, so a run is reproducible; those entries carry the metadata
// Meta{Index: -1, Label: -1}, meaning "not a real key yet". Every entry keeps
// the dataset index and label of the image it came from, which the class
// oracle of package hardneg and the analysis tools read.
//
// Queue is the interface every implementation satisfies: Ring, in host
// memory, and Device, whose keys live in a device.Backend buffer (the one
// training reads, on the CPU or the GPU) with the metadata on the host;
// package queuetest holds the conformance suite that each implementation
// runs.
//
// # Invariants
//
//   - 0 ≤ Ptr() < K(); rows are written in order ptr, ptr+1, … mod K, so a
//     batch that does not divide K wraps around to row 0.
//   - Keys are stored as given: the caller enqueues L2-normalised keys.
//   - Snapshot/Restore round-trip exactly; State.MarshalBinary is a versioned,
//     checksummed encoding that checkpoints embed.
package queue
