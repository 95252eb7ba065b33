// Package checkpoint stores a training run's state in one self-checking file.
//
// A checkpoint is a set of named sections: float32 tensors (weights, BN
// statistics, optimizer velocities, the queue) and opaque byte blobs (RNG
// states, the effective config, counters). The file layout is
//
//	magic "MOCHICKP" | version uint32 | section count uint32 |
//	sections (kind byte, name, payload) … | SHA-256 of everything before it
//
// with little-endian integers. Save writes to a temporary file in the same
// folder, fsyncs it, renames it over the target and fsyncs the folder, so a
// crash at any moment leaves either the old file or the new one, never a torn
// one. Load verifies the magic, the version and the checksum before it returns
// anything, so a truncated or corrupt file is an error, never wrong state.
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Magic starts every checkpoint file.
const Magic = "MOCHICKP"

// Version is the format version this package writes and reads.
const Version uint32 = 1

const (
	kindTensor byte = 1
	kindBlob   byte = 2
)

// Tensor is a named float32 array with its shape.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Checkpoint is the content of one checkpoint file.
type Checkpoint struct {
	Tensors map[string]Tensor
	Blobs   map[string][]byte
}

// New returns an empty checkpoint.
func New() *Checkpoint {
	return &Checkpoint{Tensors: map[string]Tensor{}, Blobs: map[string][]byte{}}
}

// PutTensor stores a copy of data under name.
func (c *Checkpoint) PutTensor(name string, shape []int, data []float32) {
	c.Tensors[name] = Tensor{Shape: append([]int(nil), shape...), Data: append([]float32(nil), data...)}
}

// PutBlob stores a copy of b under name.
func (c *Checkpoint) PutBlob(name string, b []byte) {
	c.Blobs[name] = append([]byte(nil), b...)
}

// Tensor returns the tensor stored under name, or an error naming it.
func (c *Checkpoint) Tensor(name string) (Tensor, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return Tensor{}, fmt.Errorf("checkpoint has no tensor %q", name)
	}
	return t, nil
}

// Blob returns the blob stored under name, or an error naming it.
func (c *Checkpoint) Blob(name string) ([]byte, error) {
	b, ok := c.Blobs[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint has no section %q", name)
	}
	return b, nil
}

// Encode serialises the checkpoint, checksum included. Sections are written
// in name order so equal checkpoints give equal bytes.
func (c *Checkpoint) Encode() []byte {
	var buf bytes.Buffer
	buf.WriteString(Magic)
	le := binary.LittleEndian
	buf.Write(le.AppendUint32(nil, Version))
	buf.Write(le.AppendUint32(nil, uint32(len(c.Tensors)+len(c.Blobs))))
	for _, name := range sortedKeys(c.Tensors) {
		t := c.Tensors[name]
		writeHeader(&buf, kindTensor, name)
		buf.Write(le.AppendUint32(nil, uint32(len(t.Shape))))
		for _, d := range t.Shape {
			buf.Write(le.AppendUint64(nil, uint64(d)))
		}
		buf.Write(le.AppendUint64(nil, uint64(len(t.Data))))
		raw := make([]byte, 4*len(t.Data))
		for i, v := range t.Data {
			le.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		buf.Write(raw)
	}
	for _, name := range sortedKeys(c.Blobs) {
		writeHeader(&buf, kindBlob, name)
		buf.Write(le.AppendUint64(nil, uint64(len(c.Blobs[name]))))
		buf.Write(c.Blobs[name])
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return buf.Bytes()
}

func writeHeader(buf *bytes.Buffer, kind byte, name string) {
	buf.WriteByte(kind)
	buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(name))))
	buf.WriteString(name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ErrCorrupt is wrapped by every error about a file's content.
var ErrCorrupt = errors.New("corrupt checkpoint")

// Decode parses and verifies a checkpoint produced by Encode.
func Decode(b []byte) (*Checkpoint, error) {
	if len(b) < len(Magic)+8+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes is too short to be a checkpoint (truncated?)", ErrCorrupt, len(b))
	}
	if string(b[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: not a mochi checkpoint (magic %q, want %q)", ErrCorrupt, b[:len(Magic)], Magic)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (file truncated or damaged); use an earlier checkpoint of the run", ErrCorrupt)
	}
	r := &reader{b: body[len(Magic):]}
	if v := r.u32(); v != Version {
		return nil, fmt.Errorf("%w: format version %d, this mochi reads version %d; use the mochi release that wrote it", ErrCorrupt, v, Version)
	}
	c := New()
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		kind := r.byte()
		name := string(r.bytes(uint64(r.u32())))
		switch kind {
		case kindTensor:
			shape := make([]int, r.u32())
			for d := range shape {
				shape[d] = int(r.u64())
			}
			raw := r.bytes(4 * r.u64())
			data := make([]float32, len(raw)/4)
			for j := range data {
				data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
			c.Tensors[name] = Tensor{Shape: shape, Data: data}
		case kindBlob:
			c.Blobs[name] = append([]byte(nil), r.bytes(r.u64())...)
		default:
			return nil, fmt.Errorf("%w: unknown section kind %d", ErrCorrupt, kind)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d unexpected bytes after the last section", ErrCorrupt, len(r.b))
	}
	return c, nil
}

// reader consumes little-endian values and remembers the first overrun.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// Save writes the checkpoint to path atomically: the previous file at path
// stays intact until the new one is complete on disk.
func Save(path string, c *Checkpoint) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	cleanup := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	if _, err := tmp.Write(c.Encode()); err != nil {
		return cleanup(err)
	}
	// CreateTemp makes the file 0600; a checkpoint is as readable as the
	// run's other files.
	if err := tmp.Chmod(FileMode); err != nil {
		return cleanup(err)
	}
	if err := tmp.Sync(); err != nil {
		return cleanup(err)
	}
	if err := tmp.Close(); err != nil {
		return cleanup(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// FileMode is the permission of every checkpoint file.
const FileMode os.FileMode = 0o644

// TempPattern matches the temporary files Save and Link write beside a
// checkpoint; one is left behind only when the process dies mid-write.
const TempPattern = "*.ckpt.tmp-*"

// Link makes dst a second name of the complete checkpoint file src,
// atomically: dst is either its previous file or src's, never a torn one.
// It hard-links src to a temporary name and renames that over dst, so no
// byte is copied; where the file system has no hard links it copies.
func Link(src, dst string) error {
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing checkpoint %s: %w", dst, err)
	}
	name := tmp.Name()
	tmp.Close()
	os.Remove(name)
	if err := os.Link(src, name); err != nil {
		if err := copyFile(src, name); err != nil {
			os.Remove(name)
			return fmt.Errorf("writing checkpoint %s from %s: %w", dst, src, err)
		}
	}
	if err := os.Rename(name, dst); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing checkpoint %s: %w", dst, err)
	}
	syncDir(dir)
	return nil
}

// copyFile copies src to a new file dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Load reads and verifies the checkpoint at path.
func Load(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	c, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
