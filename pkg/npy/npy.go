// Package npy reads and writes NumPy's .npy format (version 1.0,
// little-endian, C order) for float32 and int64 arrays, so that mochi's
// arrays open with numpy.load or torch.from_numpy without mochi.
//
// A file is the magic "\x93NUMPY", the version bytes 1 0, a uint16 header
// length and a Python dict literal such as
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//
// padded with spaces and a newline to a multiple of 64 bytes, followed by
// the raw array.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

const magic = "\x93NUMPY"

// Array is an n-dimensional array of float32 (Descr "<f4") or int64
// (Descr "<i8") values; exactly one of F32 and I64 is set.
type Array struct {
	Shape []int
	F32   []float32
	I64   []int64
}

// Len is the number of elements its shape holds.
func Len(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// descr is the array's NumPy type string.
func (a Array) descr() (string, int, error) {
	switch {
	case a.F32 != nil && a.I64 == nil:
		return "<f4", len(a.F32), nil
	case a.I64 != nil && a.F32 == nil:
		return "<i8", len(a.I64), nil
	}
	return "", 0, fmt.Errorf("npy: an array holds either float32 or int64 values")
}

// Write writes a as one .npy file.
func Write(w io.Writer, a Array) error {
	descr, n, err := a.descr()
	if err != nil {
		return err
	}
	if want := Len(a.Shape); n != want {
		return fmt.Errorf("npy: %d values for shape %v (%d)", n, a.Shape, want)
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += "," // a Python 1-tuple
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	// magic (6) + version (2) + length (2) + header + padding + "\n" ≡ 0 mod 64
	pad := 64 - (10+len(header)+1)%64
	if pad == 64 {
		pad = 0
	}
	header += strings.Repeat(" ", pad) + "\n"
	bw := bufio.NewWriter(w)
	bw.WriteString(magic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(header)))
	bw.WriteString(header)
	var word [8]byte
	for _, v := range a.F32 {
		binary.LittleEndian.PutUint32(word[:4], math.Float32bits(v))
		bw.Write(word[:4])
	}
	for _, v := range a.I64 {
		binary.LittleEndian.PutUint64(word[:], uint64(v))
		bw.Write(word[:])
	}
	return bw.Flush()
}

// Encode returns a as the bytes of a .npy file.
func Encode(a Array) ([]byte, error) {
	var b bytes.Buffer
	err := Write(&b, a)
	return b.Bytes(), err
}

var (
	descrField = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	orderField = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeField = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// Decode parses a .npy file of float32 ("<f4") or int64 ("<i8") values in
// C order, the files Write makes and numpy.save makes of such arrays.
func Decode(b []byte) (Array, error) {
	if len(b) < 10 || string(b[:6]) != magic {
		return Array{}, fmt.Errorf("npy: not a .npy file (no \\x93NUMPY magic)")
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return Array{}, fmt.Errorf("npy: truncated header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return Array{}, fmt.Errorf("npy: format version %d.%d is not supported", b[6], b[7])
	}
	if hlen > len(b)-start {
		return Array{}, fmt.Errorf("npy: header of %d bytes in a %d-byte file (truncated)", hlen, len(b))
	}
	header, body := string(b[start:start+hlen]), b[start+hlen:]
	d, o, s := descrField.FindStringSubmatch(header), orderField.FindStringSubmatch(header), shapeField.FindStringSubmatch(header)
	if d == nil || o == nil || s == nil {
		return Array{}, fmt.Errorf("npy: header %q lacks descr, fortran_order or shape", strings.TrimSpace(header))
	}
	if o[1] != "False" {
		return Array{}, fmt.Errorf("npy: Fortran-ordered arrays are not supported; save with numpy.ascontiguousarray")
	}
	var a Array
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return Array{}, fmt.Errorf("npy: bad shape (%s)", s[1])
		}
		a.Shape = append(a.Shape, v)
	}
	n := 1
	for _, v := range a.Shape {
		if v != 0 && n > len(body)/v {
			return Array{}, fmt.Errorf("npy: shape %v does not fit the %d data bytes (truncated)", a.Shape, len(body))
		}
		n *= v
	}
	switch d[1] {
	case "<f4":
		if len(body) != 4*n {
			return Array{}, fmt.Errorf("npy: shape %v needs %d data bytes, the file has %d (truncated?)", a.Shape, 4*n, len(body))
		}
		a.F32 = make([]float32, n)
		for i := range a.F32 {
			a.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	case "<i8":
		if len(body) != 8*n {
			return Array{}, fmt.Errorf("npy: shape %v needs %d data bytes, the file has %d (truncated?)", a.Shape, 8*n, len(body))
		}
		a.I64 = make([]int64, n)
		for i := range a.I64 {
			a.I64[i] = int64(binary.LittleEndian.Uint64(body[8*i:]))
		}
	default:
		return Array{}, fmt.Errorf("npy: dtype %q is not supported (float32 '<f4' or int64 '<i8')", d[1])
	}
	return a, nil
}
