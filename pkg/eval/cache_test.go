package eval

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/internal/torchpy"
	"github.com/mochi-ssl/mochi/pkg/npy"
)

func TestSaveLoadFeaturesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	x := randMatrix(rng, 13, 7)
	labels := make([]int, 13)
	for i := range labels {
		labels[i] = rng.IntN(1000) - 3 // negative values survive too
	}
	dir := t.TempDir()
	for _, ls := range [][]int{labels, nil} {
		path := filepath.Join(dir, "sub", "f.npy")
		if err := SaveFeatures(path, x.Data, ls, 13, 7); err != nil {
			t.Fatal(err)
		}
		feats, gotLabels, n, d, err := LoadFeatures(path)
		if err != nil {
			t.Fatal(err)
		}
		if n != 13 || d != 7 || !slices.Equal(feats, x.Data) || !slices.Equal(gotLabels, ls) {
			t.Fatalf("round trip: %d×%d labels %v, want 13×7 labels %v", n, d, gotLabels, ls)
		}
		if fi, err := os.Stat(path); err != nil {
			t.Fatal(err)
		} else if fi.Mode().Perm() != 0o644 {
			t.Errorf("feature cache mode %v, want 0644 as the run's other files", fi.Mode().Perm())
		}
	}
}

func TestLoadFeaturesRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.npy")
	if err := SaveFeatures(path, []float32{1, 2, 3, 4, 5, 6}, []int{0, 1}, 2, 3); err != nil {
		t.Fatal(err)
	}
	good := testenv.ReadFile(t, path)
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x40; return b }
	labels, _ := os.ReadFile(LabelsPath(path))
	tests := []struct {
		name, want string
		data       []byte
		labels     []byte // nil: the good labels
	}{
		{"truncated", "truncated", good[:len(good)-5], nil},
		{"tiny", "not a .npy file", good[:9], nil},
		{"bad magic", "not a .npy file", flip(1), nil},
		{"empty", "not a .npy file", []byte{}, nil},
		{"labels as features", "not an n×d float32 matrix", labels, nil},
		{"too few labels", "truncated", good, labels[:len(labels)-8]},
		{"labels of another set", "not the 2 int64 labels", good, func() []byte {
			b, _ := npy.Encode(npy.Array{Shape: []int{3}, I64: []int64{1, 2, 3}})
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".npy")
			if tc.labels == nil {
				tc.labels = labels
			}
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(LabelsPath(p), tc.labels, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, _, _, err := LoadFeatures(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p[:len(p)-4]) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, p, tc.want)
			}
		})
	}
	if _, _, _, _, err := LoadFeatures(filepath.Join(dir, "missing.npy")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestFeaturesOpenInNumPy checks the files against numpy.load.
func TestFeaturesOpenInNumPy(t *testing.T) {
	torchpy.Need(t, "numpy")
	path := filepath.Join(t.TempDir(), "f.npy")
	if err := SaveFeatures(path, []float32{1.5, -2, 3, 4, 5, 6.25}, []int{7, -1}, 2, 3); err != nil {
		t.Fatal(err)
	}
	script := `import json, numpy, sys
x, y = numpy.load(sys.argv[1]), numpy.load(sys.argv[2])
json.dump([str(x.dtype), x.shape, x.tolist(), str(y.dtype), y.shape, y.tolist()], sys.stdout)`
	var got json.RawMessage
	torchpy.Exchange(t, nil, &got, "-c", script, path, LabelsPath(path))
	want := `["float32", [2, 3], [[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]], "int64", [2], [7, -1]]`
	if string(got) != want {
		t.Errorf("numpy read %s, want %s", got, want)
	}
}

func TestFeatureCache(t *testing.T) {
	c := FeatureCache{Dir: filepath.Join(t.TempDir(), "cache")}
	const key = "ckpt=ab12…|data=fashion-mnist:test|model=resnet18-small"
	if _, _, _, _, found, err := c.Load(key); found || err != nil {
		t.Fatalf("empty cache: found %v err %v", found, err)
	}
	if err := c.Save(key, []float32{1, 2}, []int{4}, 1, 2); err != nil {
		t.Fatal(err)
	}
	feats, labels, n, d, found, err := c.Load(key)
	if err != nil || !found || n != 1 || d != 2 || !slices.Equal(feats, []float32{1, 2}) || !slices.Equal(labels, []int{4}) {
		t.Fatalf("load: %v %v %d×%d found %v err %v", feats, labels, n, d, found, err)
	}
	// An entry copied under another key's name is rejected by the stored key.
	other := "ckpt=ff00…|data=fashion-mnist:test|model=resnet18-small"
	for _, suffix := range []string{".npy", ".labels.npy", ".json"} {
		raw, _ := os.ReadFile(strings.TrimSuffix(c.Path(key), ".npy") + suffix)
		if err := os.WriteFile(strings.TrimSuffix(c.Path(other), ".npy")+suffix, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, _, _, err := c.Load(other); err == nil || !strings.Contains(err.Error(), "holds key") {
		t.Fatalf("foreign key: %v", err)
	}
	// A modified features or labels file fails the entry's checksum.
	for _, file := range []string{c.Path(key), LabelsPath(c.Path(key))} {
		raw, _ := os.ReadFile(file)
		raw[len(raw)-1] ^= 1
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, _, err := c.Load(key); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("modified %s: %v", file, err)
		}
		raw[len(raw)-1] ^= 1
		os.WriteFile(file, raw, 0o644)
	}
	if err := c.Save(key, []float32{1}, nil, 1, 2); err == nil {
		t.Fatal("shape mismatch accepted")
	}
}
