package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Meta describes where a queue entry came from.
type Meta struct {
	// Index is the entry's dataset index; -1 for an initial random entry.
	Index int64
	// Label is the entry's class label; -1 when unknown or not a real key.
	Label int32
}

// Unfilled is the metadata of the random entries a queue starts with.
var Unfilled = Meta{Index: -1, Label: -1}

// Real reports whether the entry is a key from the data rather than one of
// the random initial vectors.
func (m Meta) Real() bool { return m.Index >= 0 }

// Queue is MoCo's K×D circular dictionary of keys.
type Queue interface {
	// K is the number of entries.
	K() int
	// Dim is D, the length of each key.
	Dim() int
	// Ptr is the row the next Enqueue writes first.
	Ptr() int
	// Enqueue writes keys (B×D, row-major, L2-normalised) and their metadata
	// (length B) at Ptr, wrapping past row K−1 to row 0, and advances Ptr
	// by B mod K. It fails when B > K or the lengths disagree.
	Enqueue(keys []float32, meta []Meta) error
	// Host returns the keys, K×D row-major, in host memory. The CPU
	// implementation returns its own buffer: read it, never write it, and
	// do not keep it across Enqueue or Restore.
	Host() []float32
	// Meta returns the metadata of the K entries, under the same rules as
	// Host.
	Meta() []Meta
	// Snapshot returns a deep copy of the queue's state.
	Snapshot() State
	// Restore replaces the state with s; it fails when s's K or D differ
	// from the queue's or s is inconsistent.
	Restore(s State) error
}

// State is a queue's full content, as checkpoints store it.
type State struct {
	K, D int
	Ptr  int
	Keys []float32 // K×D
	Meta []Meta    // K
}

// Validate checks that the state's fields agree with each other.
func (s State) Validate() error {
	switch {
	case s.K <= 0 || s.D <= 0:
		return fmt.Errorf("queue state: K = %d and D = %d must both be positive", s.K, s.D)
	case s.Ptr < 0 || s.Ptr >= s.K:
		return fmt.Errorf("queue state: pointer %d outside [0, K = %d)", s.Ptr, s.K)
	case len(s.Keys) != s.K*s.D:
		return fmt.Errorf("queue state: %d key values, want K×D = %d×%d", len(s.Keys), s.K, s.D)
	case len(s.Meta) != s.K:
		return fmt.Errorf("queue state: %d metadata entries, want K = %d", len(s.Meta), s.K)
	}
	return nil
}

// fits validates s as the state of a queue of k keys of dimension d.
func (s State) fits(k, d int) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.K != k || s.D != d {
		return fmt.Errorf("queue: snapshot is K×D = %d×%d but this queue is %d×%d; set queue_size (and the embedding dimension) to match the checkpoint", s.K, s.D, k, d)
	}
	return nil
}

// Binary encoding of a State, little-endian:
//
//	magic "MQUE" | version uint32 | K, D, Ptr uint32 |
//	K×D float32 keys | K × (int64 index, int32 label) | CRC-32 (IEEE) of all before
const (
	stateMagic   = "MQUE"
	stateVersion = 1
	headerSize   = 4 + 4*4
	metaSize     = 8 + 4
)

// MarshalBinary encodes the state in the versioned, checksummed format.
func (s State) MarshalBinary() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, headerSize+4*len(s.Keys)+metaSize*len(s.Meta)+4)
	buf = append(buf, stateMagic...)
	for _, v := range []int{stateVersion, s.K, s.D, s.Ptr} {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	for _, v := range s.Keys {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	for _, m := range s.Meta {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(m.Index))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(m.Label))
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf)), nil
}

// UnmarshalBinary decodes data written by MarshalBinary.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < headerSize+4 || !bytes.Equal(data[:4], []byte(stateMagic)) {
		return errors.New("queue state: not a queue snapshot (bad magic); the checkpoint is corrupt or not from mochi")
	}
	le := binary.LittleEndian
	if v := le.Uint32(data[4:]); v != stateVersion {
		return fmt.Errorf("queue state: format version %d, this build reads version %d; use the mochi version that wrote the checkpoint", v, stateVersion)
	}
	k, d, ptr := int(le.Uint32(data[8:])), int(le.Uint32(data[12:])), int(le.Uint32(data[16:]))
	if want := headerSize + 4*k*d + metaSize*k + 4; k <= 0 || d <= 0 || len(data) != want {
		return fmt.Errorf("queue state: %d bytes for K = %d, D = %d; the checkpoint is truncated or corrupt", len(data), k, d)
	}
	body := data[:len(data)-4]
	if got, want := crc32.ChecksumIEEE(body), le.Uint32(data[len(body):]); got != want {
		return fmt.Errorf("queue state: checksum %08x, stored %08x; the checkpoint is corrupt", got, want)
	}
	out := State{K: k, D: d, Ptr: ptr, Keys: make([]float32, k*d), Meta: make([]Meta, k)}
	off := headerSize
	for i := range out.Keys {
		out.Keys[i] = math.Float32frombits(le.Uint32(data[off:]))
		off += 4
	}
	for i := range out.Meta {
		out.Meta[i] = Meta{Index: int64(le.Uint64(data[off:])), Label: int32(le.Uint32(data[off+8:]))}
		off += metaSize
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*s = out
	return nil
}
