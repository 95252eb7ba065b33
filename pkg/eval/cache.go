package eval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mochi-ssl/mochi/internal/atomicfile"
	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/pkg/npy"
)

// Features are stored as NumPy .npy files, so they open with numpy.load
// (or torch.from_numpy) without mochi: an n×d float32 matrix in FILE.npy
// and, when there are labels, their n int64 values in FILE.labels.npy. A
// FeatureCache adds FILE.json with the key and the SHA-256 of both files,
// written last, so an entry is complete and unmodified or not used.

// LabelsPath is the labels file beside a features file: x.npy → x.labels.npy.
func LabelsPath(path string) string {
	return strings.TrimSuffix(path, ".npy") + ".labels.npy"
}

// SaveFeatures writes an n×d feature matrix (row-major) to path as .npy and
// its labels (nil or one per row) to LabelsPath(path), each atomically (a
// temporary file renamed into place).
func SaveFeatures(path string, feats []float32, labels []int, n, d int) error {
	_, _, err := saveFeatures(path, feats, labels, n, d)
	return err
}

// LoadFeatures reads files written by SaveFeatures or FeatureCache.Save. A
// missing file gives an error wrapping fs.ErrNotExist; a truncated or
// foreign file gives an error naming the path.
func LoadFeatures(path string) (feats []float32, labels []int, n, d int, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("eval: reading features: %w", err)
	}
	var rawLabels []byte
	if b, err := os.ReadFile(LabelsPath(path)); err == nil {
		rawLabels = b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, 0, 0, fmt.Errorf("eval: reading labels: %w", err)
	}
	return decodeFeatures(path, raw, rawLabels)
}

func decodeFeatures(path string, raw, rawLabels []byte) (feats []float32, labels []int, n, d int, err error) {
	a, err := npy.Decode(raw)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("eval: features %s: %w; delete it to re-extract the features", path, err)
	}
	if len(a.Shape) != 2 || a.F32 == nil || a.Shape[1] == 0 {
		return nil, nil, 0, 0, fmt.Errorf("eval: features %s hold a %v array of shape %v, not an n×d float32 matrix", path, descr(a), a.Shape)
	}
	n, d = a.Shape[0], a.Shape[1]
	if rawLabels == nil {
		return a.F32, nil, n, d, nil
	}
	l, err := npy.Decode(rawLabels)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("eval: labels %s: %w; delete it to re-extract the features", LabelsPath(path), err)
	}
	if len(l.Shape) != 1 || l.I64 == nil || l.Shape[0] != n {
		return nil, nil, 0, 0, fmt.Errorf("eval: labels %s hold a %v array of shape %v, not the %d int64 labels of %s", LabelsPath(path), descr(l), l.Shape, n, path)
	}
	labels = make([]int, n)
	for i, v := range l.I64 {
		labels[i] = int(v)
	}
	return a.F32, labels, n, d, nil
}

func descr(a npy.Array) string {
	if a.I64 != nil {
		return "int64"
	}
	return "float32"
}

// saveFeatures writes the .npy files and returns their SHA-256s (hex;
// "" for absent labels).
func saveFeatures(path string, feats []float32, labels []int, n, d int) (featSum, labelSum string, err error) {
	if n < 0 || d <= 0 || len(feats) != n*d {
		return "", "", fmt.Errorf("eval: cannot save features to %s: %d values for shape %d×%d", path, len(feats), n, d)
	}
	if labels != nil && len(labels) != n {
		return "", "", fmt.Errorf("eval: cannot save features to %s: %d labels for %d rows", path, len(labels), n)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", "", fmt.Errorf("eval: feature directory: %w", err)
	}
	b, err := npy.Encode(npy.Array{Shape: []int{n, d}, F32: feats})
	if err == nil {
		featSum, err = writeAtomic(path, b)
	}
	if err != nil {
		return "", "", err
	}
	if labels == nil { // a labels file from an earlier save would be taken for these rows'
		if err := os.Remove(LabelsPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("eval: removing stale labels: %w", err)
		}
		return featSum, "", nil
	}
	if b, err = npy.Encode(npy.Array{Shape: []int{n}, I64: numconv.Slice[int64](labels)}); err == nil {
		labelSum, err = writeAtomic(LabelsPath(path), b)
	}
	return featSum, labelSum, err
}

// writeAtomic writes b through a temporary file renamed into place and
// returns its SHA-256.
func writeAtomic(path string, b []byte) (string, error) {
	if err := atomicfile.Write(path, b); err != nil {
		return "", fmt.Errorf("eval: %w", err)
	}
	return sha256Hex(b), nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// FeatureCache stores extracted features in Dir, one entry per key. The key
// names everything the features depend on (checkpoint SHA-256, dataset
// spec, model config); the files are named by its SHA-256, and the key
// itself is stored in the entry's .json, so an entry renamed or reused for
// another key is rejected.
type FeatureCache struct {
	Dir string
}

// cacheEntry is the .json of a cache entry.
type cacheEntry struct {
	Key            string `json:"key"`
	FeaturesSHA256 string `json:"features_sha256"`
	LabelsSHA256   string `json:"labels_sha256,omitempty"`
}

// Path returns the .npy file that holds key's features (its labels are in
// LabelsPath of it).
func (c FeatureCache) Path(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, hex.EncodeToString(h[:16])+".npy")
}

func entryPath(features string) string { return strings.TrimSuffix(features, ".npy") + ".json" }

// Save stores the features of key.
func (c FeatureCache) Save(key string, feats []float32, labels []int, n, d int) error {
	path := c.Path(key)
	featSum, labelSum, err := saveFeatures(path, feats, labels, n, d)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(cacheEntry{Key: key, FeaturesSHA256: featSum, LabelsSHA256: labelSum}, "", "  ")
	if err != nil {
		return err
	}
	_, err = writeAtomic(entryPath(path), append(b, '\n'))
	return err
}

// Load returns key's features; found is false (with a nil error) when
// nothing is cached for key, and err is set when the entry is unusable.
func (c FeatureCache) Load(key string) (feats []float32, labels []int, n, d int, found bool, err error) {
	path := c.Path(key)
	raw, err := os.ReadFile(entryPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, 0, 0, false, nil
	}
	fail := func(why string) error {
		return fmt.Errorf("eval: feature cache %s: %s; delete %s and its .npy files to re-extract the features", path, why, entryPath(path))
	}
	var e cacheEntry
	if err != nil {
		return nil, nil, 0, 0, false, fail(err.Error())
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, nil, 0, 0, false, fail(fmt.Sprintf("corrupt entry (%v)", err))
	}
	if e.Key != key {
		return nil, nil, 0, 0, false, fmt.Errorf("eval: feature cache %s holds key %q, not %q; delete it to re-extract the features", entryPath(path), e.Key, key)
	}
	rawFeats, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, 0, false, fail(err.Error())
	}
	if sha256Hex(rawFeats) != e.FeaturesSHA256 {
		return nil, nil, 0, 0, false, fail("checksum mismatch: the features file is truncated or modified")
	}
	var rawLabels []byte
	if e.LabelsSHA256 != "" {
		if rawLabels, err = os.ReadFile(LabelsPath(path)); err != nil {
			return nil, nil, 0, 0, false, fail(err.Error())
		}
		if sha256Hex(rawLabels) != e.LabelsSHA256 {
			return nil, nil, 0, 0, false, fail("checksum mismatch: the labels file is truncated or modified")
		}
	}
	feats, labels, n, d, err = decodeFeatures(path, rawFeats, rawLabels)
	return feats, labels, n, d, err == nil, err
}
