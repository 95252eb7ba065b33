package data

import (
	"fmt"
	"os"
	"path/filepath"
)

// CIFAR binary layout: each record is the label byte(s) then 3072 bytes of image,
// the 1024 red, 1024 green and 1024 blue pixels of a 32×32 image, row-major —
// already C×H×W.
const (
	cifarSide      = 32
	cifarImageSize = 3 * cifarSide * cifarSide
)

const cifarHint = "download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html and extract it there"

// openCIFAR10 reads data_batch_1..5.bin (train) or test_batch.bin (test) from
// spec.Path or spec.Path/cifar-10-batches-bin.
func openCIFAR10(spec Spec) (*memDataset, error) {
	names := []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	if spec.Split == "test" {
		names = []string{"test_batch.bin"}
	}
	dir := cifarDir(spec.Path, "cifar-10-batches-bin", names[0])
	return readCIFAR(spec, dir, names, 1, 10)
}

// openCIFAR100 reads train.bin or test.bin from spec.Path or
// spec.Path/cifar-100-binary, keeping the fine labels (100 classes).
func openCIFAR100(spec Spec) (*memDataset, error) {
	name := spec.Split + ".bin"
	dir := cifarDir(spec.Path, "cifar-100-binary", name)
	return readCIFAR(spec, dir, []string{name}, 2, 100)
}

// cifarDir returns root/sub when the files live in the archive's own folder.
func cifarDir(root, sub, probe string) string {
	if _, err := os.Stat(filepath.Join(root, probe)); err != nil {
		if _, err := os.Stat(filepath.Join(root, sub, probe)); err == nil {
			return filepath.Join(root, sub)
		}
	}
	return root
}

// readCIFAR concatenates the records of the files; labelBytes is 1 (CIFAR-10:
// label) or 2 (CIFAR-100: coarse, fine), and the last label byte is the class.
func readCIFAR(spec Spec, dir string, names []string, labelBytes, classes int) (*memDataset, error) {
	record := labelBytes + cifarImageSize
	var (
		pixels []uint8
		labels []int
	)
	for _, name := range names {
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v: %s", ErrMissingFile, path, err, cifarHint)
		}
		if len(raw) == 0 || len(raw)%record != 0 {
			return nil, fmt.Errorf("%w: %s: %d bytes is not a whole number of %d-byte %s records: the file is incomplete or not a %s binary batch; %s", ErrTruncated, path, len(raw), record, spec.Kind, spec.Kind, cifarHint)
		}
		n := len(raw) / record
		if pixels == nil {
			pixels = make([]uint8, 0, n*len(names)*cifarImageSize)
			labels = make([]int, 0, n*len(names))
		}
		for i := range n {
			rec := raw[i*record : (i+1)*record]
			if labelBytes == 2 && int(rec[0]) >= 20 {
				return nil, fmt.Errorf("%w: %s: record %d has coarse label %d, not in [0,20): not a CIFAR-100 binary file (CIFAR-10 files need kind cifar10); %s", ErrBadLabel, path, i, rec[0], cifarHint)
			}
			label := int(rec[labelBytes-1])
			if label >= classes {
				return nil, fmt.Errorf("%w: %s: record %d has label %d, not in [0,%d): not a %s binary file; %s", ErrBadLabel, path, i, label, classes, spec.Kind, cifarHint)
			}
			labels = append(labels, label)
			pixels = append(pixels, rec[labelBytes:]...)
		}
	}
	return newMemDataset(spec.Kind+"/"+spec.Split, 3, cifarSide, cifarSide, classes, pixels, labels), nil
}
