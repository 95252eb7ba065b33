package train

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// add stores data ([]float32 or []int32, row-major) as the array name of
// the given shape.
func (w *npzWriter) add(name string, shape []int, data any) error {
	var descr string
	var n int
	switch d := data.(type) {
	case []float32:
		descr, n = "<f4", len(d)
	case []int32:
		descr, n = "<i4", len(d)
	default:
		return fmt.Errorf("npz %s: arrays of %T are not supported", name, data)
	}
	size := 1
	dims := make([]string, len(shape))
	for i, s := range shape {
		size *= s
		dims[i] = strconv.Itoa(s)
	}
	if size != n {
		return fmt.Errorf("npz %s: %d values for shape %v", name, n, shape)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	// NPY format 1.0: magic, version, header length, then a Python dict
	// literal padded with spaces to end, with its newline, on a multiple
	// of 64 bytes.
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	const prefix = 10 // "\x93NUMPY", 2 version bytes, 2 length bytes
	header += strings.Repeat(" ", 63-(prefix+len(header))%64) + "\n"
	f, err := w.z.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
	if err != nil {
		return err
	}
	if _, err := f.Write(append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))); err != nil {
		return err
	}
	if _, err := f.Write([]byte(header)); err != nil {
		return err
	}
	return binary.Write(f, binary.LittleEndian, data)
}

func (w *npzWriter) close() error {
	if err := w.z.Close(); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}
