package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// idx magic numbers: 0x0000 then type 0x08 (unsigned byte) then the number of
// dimensions.
const (
	idxImageMagic = 0x00000803
	idxLabelMagic = 0x00000801
)

// knownSHA256 holds the SHA-256 of the decompressed idx files, keyed by kind and
// file stem. The hash is of the raw bytes, so it holds for the gzip and the
// uncompressed copy alike (gzip files differ between mirrors: Debian's
// dataset-fashion-mnist recompressed them). Computed from Debian's
// dataset-fashion-mnist 1.0 files, which match the upstream release
// (zalandoresearch/fashion-mnist).
var knownSHA256 = map[string]string{
	"fashion-mnist/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
	"fashion-mnist/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
	"fashion-mnist/t10k-images-idx3-ubyte":  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
	"fashion-mnist/t10k-labels-idx1-ubyte":  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

// publishedGzipMD5 holds the MD5 of MNIST's gzip files as published with the
// dataset (LeCun's site and the mirrors torchvision downloads from list the
// same four). Only the compressed bytes have published hashes, so an
// uncompressed MNIST copy is checked only for not being Fashion-MNIST (same
// file names and sizes, see wrongKind).
var publishedGzipMD5 = map[string]string{
	"mnist/train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
	"mnist/train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
	"mnist/t10k-images-idx3-ubyte":  "9fb629c4189551a2d022fa330f9573f3",
	"mnist/t10k-labels-idx1-ubyte":  "ec29112dd5afa0611ce80d1b7f02629c",
}

// wrongKind returns the other idx kind whose published file this is (by the
// content's SHA-256 or the gzip's MD5), or "".
func wrongKind(kind, stem, contentSHA256, gzipMD5 string) string {
	for _, other := range []string{"mnist", "fashion-mnist"} {
		if other == kind {
			continue
		}
		if h, ok := knownSHA256[other+"/"+stem]; ok && h == contentSHA256 {
			return other
		}
		if h, ok := publishedGzipMD5[other+"/"+stem]; ok && h == gzipMD5 {
			return other
		}
	}
	return ""
}

// downloadHint says where to get each idx dataset again.
var downloadHint = map[string]string{
	"mnist":         "re-download MNIST (http://yann.lecun.com/exdb/mnist/ or a mirror)",
	"fashion-mnist": "reinstall it (apt-get install --reinstall dataset-fashion-mnist) or re-download from https://github.com/zalandoresearch/fashion-mnist",
}

// openIdx reads an MNIST-style pair of idx files for spec.Split.
func openIdx(spec Spec) (*memDataset, error) {
	prefix := "train"
	if spec.Split == "test" {
		prefix = "t10k"
	}
	imgStem, lblStem := prefix+"-images-idx3-ubyte", prefix+"-labels-idx1-ubyte"
	imgPath, err := findIdx(spec, imgStem)
	if err != nil {
		return nil, err
	}
	lblPath, err := findIdx(spec, lblStem)
	if err != nil {
		return nil, err
	}
	imgs, err := readIdxFile(spec.Kind, imgPath, imgStem)
	if err != nil {
		return nil, err
	}
	lbls, err := readIdxFile(spec.Kind, lblPath, lblStem)
	if err != nil {
		return nil, err
	}
	if imgs.magic != idxImageMagic || len(imgs.dims) != 3 {
		return nil, fmt.Errorf("%w: %s: magic 0x%08x, want 0x%08x (3-d ubyte images): this is not an idx image file; %s", ErrBadMagic, imgPath, imgs.magic, idxImageMagic, downloadHint[spec.Kind])
	}
	if lbls.magic != idxLabelMagic || len(lbls.dims) != 1 {
		return nil, fmt.Errorf("%w: %s: magic 0x%08x, want 0x%08x (1-d ubyte labels): this is not an idx label file; %s", ErrBadMagic, lblPath, lbls.magic, idxLabelMagic, downloadHint[spec.Kind])
	}
	n, h, w := imgs.dims[0], imgs.dims[1], imgs.dims[2]
	if lbls.dims[0] != n {
		return nil, fmt.Errorf("%w: %s holds %d images but %s holds %d labels: the two files come from different releases or splits; %s", ErrCountMismatch, imgPath, n, lblPath, lbls.dims[0], downloadHint[spec.Kind])
	}
	const classes = 10
	labels := make([]int, n)
	for i, b := range lbls.data {
		if int(b) >= classes {
			return nil, fmt.Errorf("%w: %s: label %d of item %d is not in [0,%d); %s", ErrBadLabel, lblPath, b, i, classes, downloadHint[spec.Kind])
		}
		labels[i] = int(b)
	}
	return newMemDataset(spec.Kind+"/"+spec.Split, 1, h, w, classes, imgs.data, labels), nil
}

// findIdx returns the path of stem in spec.Path, trying the usual spellings:
// stem.gz, stem, and the dotted stem (train-images.idx3-ubyte) with or without .gz.
func findIdx(spec Spec, stem string) (string, error) {
	dotted := stem[:len(stem)-len("-idx3-ubyte")] + "." + stem[len(stem)-len("idx3-ubyte"):]
	candidates := []string{stem + ".gz", stem, dotted + ".gz", dotted}
	for _, name := range candidates {
		p := filepath.Join(spec.Path, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (or %s): put the %s %s files in %s; %s", ErrMissingFile, filepath.Join(spec.Path, stem+".gz"), stem, spec.Kind, spec.Split, spec.Path, downloadHint[spec.Kind])
}

// idxFile is a parsed idx file.
type idxFile struct {
	magic uint32
	dims  []int
	data  []uint8
}

// readIdxFile reads a (possibly gzipped) idx file and checks its checksum when
// the file is a known one.
func readIdxFile(kind, path, stem string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMissingFile, path, err)
	}
	defer f.Close()
	fileHash := md5.New() // of the bytes on disk, for publishedGzipMD5
	br := bufio.NewReaderSize(io.TeeReader(f, fileHash), 1<<16)
	var r io.Reader = br
	gzipped := false
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gzipped = true
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: corrupt gzip header (%v): %s", ErrTruncated, path, err, downloadHint[kind])
		}
		defer gz.Close()
		r = gz
	}
	hash := sha256.New()
	r = io.TeeReader(r, hash)

	truncated := func(what string, err error) error {
		return fmt.Errorf("%w: %s: reading %s: %v: the file is incomplete; %s", ErrTruncated, path, what, err, downloadHint[kind])
	}
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, truncated("the magic number", err)
	}
	out := &idxFile{magic: binary.BigEndian.Uint32(header[:])}
	if out.magic>>8 != 0x08 || out.magic&0xff == 0 || out.magic&0xff > 4 {
		return nil, fmt.Errorf("%w: %s: magic 0x%08x is not an idx ubyte file (want 0x00000801 or 0x00000803): %s", ErrBadMagic, path, out.magic, downloadHint[kind])
	}
	size := 1
	for range out.magic & 0xff {
		if _, err := io.ReadFull(r, header[:]); err != nil {
			return nil, truncated("the dimensions", err)
		}
		d := int(binary.BigEndian.Uint32(header[:]))
		if d <= 0 || d > 1<<28 {
			return nil, fmt.Errorf("%w: %s: dimension %d is not plausible: %s", ErrBadMagic, path, d, downloadHint[kind])
		}
		out.dims = append(out.dims, d)
		size *= d
	}
	out.data = make([]uint8, size)
	if _, err := io.ReadFull(r, out.data); err != nil {
		return nil, truncated(fmt.Sprintf("%d data bytes", size), err)
	}
	// Drain to the end so gzip checks its CRC and the hash covers the whole file.
	if _, err := io.Copy(io.Discard, r); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
			return nil, truncated("the gzip trailer", err)
		}
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrTruncated, path, err, downloadHint[kind])
	}
	if _, err := io.Copy(io.Discard, br); err != nil { // whatever follows the gzip stream, for the MD5
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrTruncated, path, err, downloadHint[kind])
	}
	content := hex.EncodeToString(hash.Sum(nil))
	gzipMD5 := ""
	if gzipped {
		gzipMD5 = hex.EncodeToString(fileHash.Sum(nil))
	}
	if other := wrongKind(kind, stem, content, gzipMD5); other != "" {
		return nil, fmt.Errorf("%w: %s is the official %s file, not %s's: set data.kind: %s, or point data.path at the %s files", ErrChecksum, path, other, kind, other, kind)
	}
	if want, ok := knownSHA256[kind+"/"+stem]; ok && content != want {
		return nil, fmt.Errorf("%w: %s: SHA-256 of the idx content is %s, want %s: the file is damaged or not the official %s file; %s", ErrChecksum, path, content, want, kind, downloadHint[kind])
	}
	if want, ok := publishedGzipMD5[kind+"/"+stem]; ok && gzipped && gzipMD5 != want {
		return nil, fmt.Errorf("%w: %s: MD5 of the gzip file is %s, want the published %s: the file is damaged or not the official %s file; %s", ErrChecksum, path, gzipMD5, want, kind, downloadHint[kind])
	}
	return out, nil
}
