package interop

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/mochi-ssl/mochi/pkg/npy"
)

// File is what Read found in a weights file.
type File struct {
	Path     string
	SHA256   string // of the file's bytes, hex
	Format   string // "safetensors", "torch (zip)" or "torch (legacy)"
	Tensors  StateDict
	Metadata map[string]string // safetensors' __metadata__
	Ignored  []string          // top-level entries beside the state_dict (epoch, arch, optimizer)
	Epoch    int               // a MoCo checkpoint's "epoch" entry, epochs completed; 0 when absent
}

// Read opens a safetensors file or a torch.save file (zip or legacy
// pickle), deciding by content, not by name.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	f := &File{Path: path, SHA256: hex.EncodeToString(sum[:])}
	switch {
	case isSafetensors(b):
		f.Format = "safetensors"
		f.Tensors, f.Metadata, err = DecodeSafetensors(path, b)
	default:
		f.Format = "torch (legacy)"
		if len(b) >= 4 && string(b[:4]) == "PK\x03\x04" {
			f.Format = "torch (zip)"
		}
		var obj any
		if obj, err = decodeTorch(path, b); err == nil {
			f.Tensors, f.Ignored, err = torchStateDict(path, obj)
			f.Epoch = topLevelInt(obj, "epoch")
		}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// isSafetensors reports whether b starts like a safetensors file: a
// little-endian header length that fits the file, then a JSON object.
func isSafetensors(b []byte) bool {
	if len(b) < 9 {
		return false
	}
	n := binary.LittleEndian.Uint64(b)
	return n <= uint64(len(b)-8) && b[8] == '{'
}

// WriteNPZ writes sd as NumPy's .npz (numpy.savez): a zip archive with one
// .npy member per tensor, which numpy.load opens as a dict by name.
func WriteNPZ(w io.Writer, sd StateDict) error {
	zw := zip.NewWriter(w)
	for _, name := range sd.Names() {
		m, err := zw.Create(name + ".npy")
		if err != nil {
			return err
		}
		if err := npy.Write(m, sd[name]); err != nil {
			return fmt.Errorf("npz: tensor %q: %w", name, err)
		}
	}
	return zw.Close()
}
