package train

import (
	"archive/zip"
	"fmt"
	"os"

	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/pkg/npy"
)

// npzWriter writes a NumPy .npz archive: a zip of .npy files, which
// numpy.load opens as a mapping from names to arrays.
type npzWriter struct {
	f *os.File
	z *zip.Writer
}

func createNPZ(path string) (*npzWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &npzWriter{f: f, z: zip.NewWriter(f)}, nil
}

// add stores data ([]float32, or []int32 stored as int64, row-major) as the
// array name of the given shape.
func (w *npzWriter) add(name string, shape []int, data any) error {
	a := npy.Array{Shape: shape}
	switch d := data.(type) {
	case []float32:
		a.F32 = d
	case []int32:
		a.I64 = numconv.Slice[int64](d)
	default:
		return fmt.Errorf("npz %s: arrays of %T are not supported", name, data)
	}
	f, err := w.z.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
	if err != nil {
		return err
	}
	if err := npy.Write(f, a); err != nil {
		return fmt.Errorf("npz %s: %w", name, err)
	}
	return nil
}

func (w *npzWriter) close() error {
	if err := w.z.Close(); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}
