package data

import (
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// withPublishedMNIST replaces MNIST's published gzip MD5s for one test: nil
// checks nothing (synthetic MNIST-layout files), a map checks those hashes.
func withPublishedMNIST(t *testing.T, hashes map[string]string) {
	t.Helper()
	saved := publishedGzipMD5
	publishedGzipMD5 = hashes
	t.Cleanup(func() { publishedGzipMD5 = saved })
}

func fileMD5(t *testing.T, path string) string {
	t.Helper()
	b := testenv.ReadFile(t, path)
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// TestMNISTPublishedHashes checks MNIST's gzip files against the published
// MD5s: a file that differs is refused, one that matches is read.
func TestMNISTPublishedHashes(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, "t10k", 12, 4, 4, true)
	img := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
	_, err := Open(Spec{Kind: "mnist", Path: dir, Split: "test"})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("synthetic files as MNIST: err %v, want %v", err, ErrChecksum)
	}
	testenv.Contains(t, "error", err.Error(), img, "MD5", "9fb629c4189551a2d022fa330f9573f3", "re-download MNIST")
	withPublishedMNIST(t, map[string]string{
		"mnist/t10k-images-idx3-ubyte": fileMD5(t, img),
		"mnist/t10k-labels-idx1-ubyte": fileMD5(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz")),
	})
	if _, err := Open(Spec{Kind: "mnist", Path: dir, Split: "test"}); err != nil {
		t.Fatalf("files whose MD5s are the published ones: %v", err)
	}
}

// TestFashionMNISTAsMNIST points data.kind mnist at the Fashion-MNIST files,
// as shipped (Debian's recompressed gzip) and uncompressed: both are refused
// with the kind to set.
func TestFashionMNISTAsMNIST(t *testing.T) {
	fashionDir := testenv.FashionMNIST(t)
	plain := t.TempDir()
	for _, stem := range []string{"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		f, err := os.Open(filepath.Join(fashionDir, stem+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(plain, stem))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, gz); err != nil {
			t.Fatal(err)
		}
		out.Close()
		f.Close()
	}
	for _, dir := range []string{fashionDir, plain} {
		_, err := Open(Spec{Kind: "mnist", Path: dir, Split: "test"})
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("Fashion-MNIST in %s as data.kind mnist: err %v, want %v", dir, err, ErrChecksum)
		}
		testenv.Contains(t, dir+": error", err.Error(), "official fashion-mnist file", "data.kind: fashion-mnist")
	}
}
