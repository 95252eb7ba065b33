package eval

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Matrix is a dense row-major float32 matrix of N rows (samples) and D columns
// (feature dimensions): element (i, j) is Data[i*D+j].
type Matrix struct {
	N, D int
	Data []float32
}

// NewMatrix wraps data as an n×d row-major matrix without copying, and checks
// that the length matches the shape.
func NewMatrix(data []float32, n, d int) (Matrix, error) {
	if n < 0 || d <= 0 {
		return Matrix{}, fmt.Errorf("eval: matrix shape %d×%d is invalid: rows must be ≥ 0 and columns > 0", n, d)
	}
	if len(data) != n*d {
		return Matrix{}, fmt.Errorf("eval: matrix data has %d values, want %d×%d = %d", len(data), n, d, n*d)
	}
	return Matrix{N: n, D: d, Data: data}, nil
}

// Row returns row i as a slice aliasing Data.
func (m Matrix) Row(i int) []float32 { return m.Data[i*m.D : (i+1)*m.D] }

// validate checks that Data holds exactly N×D values; name is used in the error.
func (m Matrix) validate(name string) error {
	if m.N < 0 || m.D <= 0 || len(m.Data) != m.N*m.D {
		return fmt.Errorf("eval: %s is %d×%d with %d values; want N ≥ 0, D > 0 and N×D values", name, m.N, m.D, len(m.Data))
	}
	return nil
}

// clone returns a deep copy of m.
func (m Matrix) clone() Matrix {
	return Matrix{N: m.N, D: m.D, Data: append([]float32(nil), m.Data...)}
}

// normalizeRows returns a copy of m with every row scaled to unit L2 norm
// (F.normalize semantics: a row of norm below 1e-12 is divided by 1e-12).
func normalizeRows(m Matrix) Matrix {
	out := m.clone()
	for i := 0; i < out.N; i++ {
		normalizeVec(out.Row(i))
	}
	return out
}

// normalizeVec scales v in place to unit L2 norm, accumulating in float64.
func normalizeVec(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := math.Max(math.Sqrt(ss), 1e-12)
	for j := range v {
		v[j] = float32(float64(v[j]) / n)
	}
}

// gemmNT computes c = a·bᵀ with blas32 (a: m×d, b: n×d, c: m×n, row-major).
// gonum's native Sgemm splits the work over GOMAXPROCS goroutines itself.
func gemmNT(a, b []float32, m, n, d int, c []float32) {
	if m == 0 || n == 0 {
		return
	}
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: m, Cols: d, Stride: d, Data: a},
		blas32.General{Rows: n, Cols: d, Stride: d, Data: b},
		0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}

// topKIndices writes into idx the indices of the k largest values of s, in
// decreasing order of value (ties: lower index first). It uses a size-k min-heap,
// O(len(s)·log k), and reuses idx's storage.
func topKIndices(s []float32, k int, idx []int) []int {
	if k > len(s) {
		k = len(s)
	}
	idx = idx[:0]
	// less reports whether entry a ranks below entry b (smaller value, or
	// equal value and larger index), i.e. a should be evicted first.
	less := func(a, b int) bool {
		if s[a] != s[b] {
			return s[a] < s[b]
		}
		return a > b
	}
	down := func(h []int, i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				m = r
			}
			if !less(h[m], h[i]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := range s {
		if len(idx) < k {
			idx = append(idx, i)
			for c := len(idx) - 1; c > 0; {
				p := (c - 1) / 2
				if !less(idx[c], idx[p]) {
					break
				}
				idx[c], idx[p] = idx[p], idx[c]
				c = p
			}
			continue
		}
		if k > 0 && less(idx[0], i) {
			idx[0] = i
			down(idx, 0)
		}
	}
	// Heap-sort in place: pop the minimum to the end repeatedly, which leaves
	// the slice in decreasing rank order.
	for end := len(idx) - 1; end > 0; end-- {
		idx[0], idx[end] = idx[end], idx[0]
		down(idx[:end], 0)
	}
	return idx
}
