package eval

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// Feature cache file layout (little-endian), version 1:
//
//	magic    [8]byte  "MOCHIFT\x00"
//	version  uint32   1
//	n, d     uint64   rows, columns
//	labelled uint8    1 when n int32 labels follow the features
//	keyLen   uint32   then keyLen bytes of the cache key ("" for SaveFeatures)
//	feats    n·d float32
//	labels   n int32 (when labelled)
//	checksum [32]byte SHA-256 of every byte before it
const (
	featureMagic   = "MOCHIFT\x00"
	featureVersion = 1
	featureHeader  = 8 + 4 + 8 + 8 + 1 + 4
)

// SaveFeatures writes an n×d feature matrix (row-major) and its labels (nil
// or one per row) to path, atomically (a temporary file renamed into place).
func SaveFeatures(path string, feats []float32, labels []int, n, d int) error {
	return saveFeatures(path, "", feats, labels, n, d)
}

// LoadFeatures reads a file written by SaveFeatures or FeatureCache.Save. A
// missing file gives an error wrapping fs.ErrNotExist; a truncated, corrupt
// or foreign file gives an error naming the path and the fix.
func LoadFeatures(path string) (feats []float32, labels []int, n, d int, err error) {
	_, feats, labels, n, d, err = loadFeatures(path)
	return feats, labels, n, d, err
}

func saveFeatures(path, key string, feats []float32, labels []int, n, d int) error {
	if n < 0 || d <= 0 || len(feats) != n*d {
		return fmt.Errorf("eval: cannot cache features for %s: %d values for shape %d×%d", path, len(feats), n, d)
	}
	if labels != nil && len(labels) != n {
		return fmt.Errorf("eval: cannot cache features for %s: %d labels for %d rows", path, len(labels), n)
	}
	var buf bytes.Buffer
	buf.Grow(featureHeader + len(key) + 4*len(feats) + 4*len(labels) + sha256.Size)
	buf.WriteString(featureMagic)
	le := binary.LittleEndian
	buf.Write(le.AppendUint32(nil, featureVersion))
	buf.Write(le.AppendUint64(nil, uint64(n)))
	buf.Write(le.AppendUint64(nil, uint64(d)))
	if labels != nil {
		buf.WriteByte(1)
	} else {
		buf.WriteByte(0)
	}
	buf.Write(le.AppendUint32(nil, uint32(len(key))))
	buf.WriteString(key)
	word := make([]byte, 4)
	for _, v := range feats {
		le.PutUint32(word, math.Float32bits(v))
		buf.Write(word)
	}
	for _, l := range labels {
		if l < math.MinInt32 || l > math.MaxInt32 {
			return fmt.Errorf("eval: cannot cache features for %s: label %d does not fit in int32", path, l)
		}
		le.PutUint32(word, uint32(int32(l)))
		buf.Write(word)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("eval: feature cache directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("eval: writing feature cache %s: %w", path, err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("eval: writing feature cache %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp's 0600: a cache is as readable as the run's other files
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("eval: writing feature cache %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("eval: writing feature cache %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("eval: writing feature cache %s: %w", path, err)
	}
	return nil
}

func loadFeatures(path string) (key string, feats []float32, labels []int, n, d int, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", nil, nil, 0, 0, fmt.Errorf("eval: reading feature cache: %w", err)
	}
	corrupt := func(why string) error {
		return fmt.Errorf("eval: feature cache %s is corrupt (%s); delete it to re-extract the features", path, why)
	}
	if len(raw) < featureHeader+sha256.Size {
		return "", nil, nil, 0, 0, corrupt(fmt.Sprintf("%d bytes, shorter than any cache file", len(raw)))
	}
	if string(raw[:8]) != featureMagic {
		return "", nil, nil, 0, 0, fmt.Errorf("eval: %s is not a mochi feature cache (bad magic %q)", path, raw[:8])
	}
	le := binary.LittleEndian
	if v := le.Uint32(raw[8:]); v != featureVersion {
		return "", nil, nil, 0, 0, fmt.Errorf("eval: feature cache %s has version %d, this build reads %d; delete it to re-extract the features", path, v, featureVersion)
	}
	body, sum := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return "", nil, nil, 0, 0, corrupt("checksum mismatch: truncated or modified")
	}
	n64, d64 := le.Uint64(raw[12:]), le.Uint64(raw[20:])
	labelled := raw[28] == 1
	keyLen := uint64(le.Uint32(raw[29:]))
	rest := uint64(len(body) - featureHeader)
	if d64 == 0 || n64 > rest || d64 > rest || keyLen > rest {
		return "", nil, nil, 0, 0, corrupt(fmt.Sprintf("shape %d×%d does not fit the file", n64, d64))
	}
	if n64 > 0 && d64 > rest/4/n64 {
		return "", nil, nil, 0, 0, corrupt(fmt.Sprintf("shape %d×%d does not fit the file", n64, d64))
	}
	want := keyLen + 4*n64*d64
	if labelled {
		want += 4 * n64
	}
	if want != rest {
		return "", nil, nil, 0, 0, corrupt(fmt.Sprintf("shape %d×%d needs %d payload bytes, file has %d", n64, d64, want, rest))
	}
	p := body[featureHeader:]
	key, p = string(p[:keyLen]), p[keyLen:]
	n, d = int(n64), int(d64)
	feats = make([]float32, n*d)
	for i := range feats {
		feats[i] = math.Float32frombits(le.Uint32(p[4*i:]))
	}
	p = p[4*n*d:]
	if labelled {
		labels = make([]int, n)
		for i := range labels {
			labels[i] = int(int32(le.Uint32(p[4*i:])))
		}
	}
	return key, feats, labels, n, d, nil
}

// FeatureCache stores extracted features in Dir, one file per key. The key
// names everything the features depend on (checkpoint SHA-256, dataset
// spec, model config); the file name is its SHA-256, and the key itself is
// stored inside, so a file renamed or reused for another key is rejected.
type FeatureCache struct {
	Dir string
}

// Path returns the file that holds key's features.
func (c FeatureCache) Path(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, hex.EncodeToString(h[:16])+".feat")
}

// Save stores the features of key.
func (c FeatureCache) Save(key string, feats []float32, labels []int, n, d int) error {
	return saveFeatures(c.Path(key), key, feats, labels, n, d)
}

// Load returns key's features; found is false (with a nil error) when
// nothing is cached for key, and err is set when the file is unusable.
func (c FeatureCache) Load(key string) (feats []float32, labels []int, n, d int, found bool, err error) {
	path := c.Path(key)
	stored, feats, labels, n, d, err := loadFeatures(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, 0, 0, false, nil
	}
	if err != nil {
		return nil, nil, 0, 0, false, err
	}
	if stored != key {
		return nil, nil, 0, 0, false, fmt.Errorf("eval: feature cache %s holds key %q, not %q; delete it to re-extract the features", path, stored, key)
	}
	return feats, labels, n, d, true, nil
}
