package eval

import (
	"math"
	"math/rand/v2"
)

// randMatrix returns an n×d matrix of N(0, 1) values from a seeded stream.
func randMatrix(rng *rand.Rand, n, d int) Matrix {
	m := Matrix{N: n, D: d, Data: make([]float32, n*d)}
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64())
	}
	return m
}

// clusters returns n points around `classes` random centres in d dimensions
// (noise σ around unit-scale centres scaled by sep) and their labels.
func clusters(rng *rand.Rand, n, d, classes int, sep, sigma float64) (Matrix, []int) {
	centres := randMatrix(rng, classes, d)
	m := Matrix{N: n, D: d, Data: make([]float32, n*d)}
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		c := rng.IntN(classes)
		labels[i] = c
		for j := 0; j < d; j++ {
			m.Data[i*d+j] = float32(sep*float64(centres.Data[c*d+j]) + sigma*rng.NormFloat64())
		}
	}
	return m, labels
}

// unitRows64 returns the rows of m normalised in float64.
func unitRows64(m Matrix) [][]float64 {
	out := make([][]float64, m.N)
	for i := range out {
		row := make([]float64, m.D)
		var ss float64
		for j, v := range m.Row(i) {
			row[j] = float64(v)
			ss += row[j] * row[j]
		}
		for j := range row {
			row[j] /= math.Sqrt(ss)
		}
		out[i] = row
	}
	return out
}
