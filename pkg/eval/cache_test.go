package eval

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
		path := filepath.Join(dir, "sub", "f.feat")
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
	path := filepath.Join(dir, "f.feat")
	if err := SaveFeatures(path, []float32{1, 2, 3, 4, 5, 6}, []int{0, 1}, 2, 3); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x40; return b }
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "corrupt", good[:len(good)-5]},
		{"tiny", "corrupt", good[:10]},
		{"flipped feature byte", "checksum", flip(len(good) - 40)},
		{"flipped shape byte", "checksum", flip(13)},
		{"bad magic", "not a mochi feature cache", flip(0)},
		{"future version", "version", func() []byte { b := slices.Clone(good); b[8] = 9; return b }()},
		{"empty", "corrupt", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, _, _, err := LoadFeatures(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, p, tc.want)
			}
		})
	}
	if _, _, _, _, err := LoadFeatures(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
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
	// A file copied under another key's name is rejected by the stored key.
	other := "ckpt=ff00…|data=fashion-mnist:test|model=resnet18-small"
	raw, _ := os.ReadFile(c.Path(key))
	if err := os.WriteFile(c.Path(other), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, _, err := c.Load(other); err == nil || !strings.Contains(err.Error(), "holds key") {
		t.Fatalf("foreign key: %v", err)
	}
	if err := c.Save(key, []float32{1}, nil, 1, 2); err == nil {
		t.Fatal("shape mismatch accepted")
	}
}
