// Package numconv converts slices between Go's numeric types, element by
// element with Go's conversion rules (float64 → float32 rounds to nearest).
package numconv

// Number is a numeric element type Slice converts.
type Number interface {
	~int | ~int32 | ~int64 | ~float32 | ~float64
}

// Slice returns a new slice holding To(v) for every v in x.
func Slice[To, From Number](x []From) []To {
	out := make([]To, len(x))
	for i, v := range x {
		out[i] = To(v)
	}
	return out
}
