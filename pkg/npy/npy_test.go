package npy

import (
	"slices"
	"strings"
	"testing"
)

// TestRoundTrip writes and reads arrays of both types and several ranks,
// and checks the header layout NumPy requires (data aligned to 64 bytes).
func TestRoundTrip(t *testing.T) {
	for _, a := range []Array{
		{Shape: []int{}, I64: []int64{-42}},
		{Shape: []int{3}, F32: []float32{1.5, -2, 0}},
		{Shape: []int{2, 3}, I64: []int64{1, 2, 3, 4, 5, -6}},
		{Shape: []int{2, 1, 2}, F32: []float32{1, 2, 3, 4}},
		{Shape: []int{0, 4}, F32: []float32{}},
	} {
		b, err := Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		hlen := int(b[8]) | int(b[9])<<8
		if (10+hlen)%64 != 0 || b[10+hlen-1] != '\n' {
			t.Errorf("shape %v: header of %d bytes does not end a 64-byte block with a newline", a.Shape, hlen)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("shape %v: %v", a.Shape, err)
		}
		if !slices.Equal(got.Shape, a.Shape) || !slices.Equal(got.F32, a.F32) || !slices.Equal(got.I64, a.I64) {
			t.Errorf("round trip: %+v, wrote %+v", got, a)
		}
	}
	if b, _ := Encode(Array{Shape: []int{3}, F32: []float32{1, 2, 3}}); !strings.Contains(string(b), "'shape': (3,)") {
		t.Errorf("a 1-d shape must be the Python tuple (3,): %q", b)
	}
}

// TestDecodeRejects checks the errors for files this package cannot read.
func TestDecodeRejects(t *testing.T) {
	good, _ := Encode(Array{Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}})
	header := func(h string) []byte {
		return append([]byte{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, byte(len(h)), 0}, h...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", good[:len(good)-1], "truncated"},
		{"no magic", []byte("hello world!"), "not a .npy file"},
		{"fortran", header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"), "Fortran"},
		{"float64", header("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }"), "dtype \"<f8\""},
		{"huge shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"), "does not fit"},
		{"short header", good[:40], "truncated"},
	} {
		if _, err := Decode(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := Encode(Array{Shape: []int{3}, F32: []float32{1}}); err == nil {
		t.Error("3-element shape with 1 value accepted")
	}
}
