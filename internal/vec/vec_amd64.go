//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// AVX2 selects the AVX2 loops of vec_amd64.s; tests turn it off to
// compare them with the scalar loops.
var AVX2 = cpu.X86.HasAVX2

//go:noescape
func reluAVX2(x, y []float32)

//go:noescape
func reluBackwardAVX2(x, y, z []float32)

//go:noescape
func addAVX2(x, y, z []float32)

//go:noescape
func affineAVX2(x, y []float32, a, b float32)

//go:noescape
func bnBackwardAVX2(x, dy, dx []float32, k, c2, mu, inv, c3 float32)

//go:noescape
func sumLanesAVX2(x []float32, s *[4]float64)

//go:noescape
func sqDevLanesAVX2(x []float32, mu float64, s *[4]float64)

//go:noescape
func sumsDyXhatAVX2(x, dy []float32, mu, inv float32, s *[4]float64)

// avx2Prefix is the prefix of n elements, a multiple of group, that the
// AVX2 loops take: 0 without AVX2.
func avx2Prefix(n, group int) int {
	if !AVX2 {
		return 0
	}
	return n - n%group
}

func ReLU(x, y []float32) int {
	n := avx2Prefix(len(x), 8)
	if n > 0 {
		reluAVX2(x[:n], y[:n])
	}
	return n
}

func ReLUBackward(x, y, z []float32) int {
	n := avx2Prefix(len(x), 8)
	if n > 0 {
		reluBackwardAVX2(x[:n], y[:n], z[:n])
	}
	return n
}

func Add(x, y, z []float32) int {
	n := avx2Prefix(len(x), 8)
	if n > 0 {
		addAVX2(x[:n], y[:n], z[:n])
	}
	return n
}

func Affine(x, y []float32, a, b float32) int {
	n := avx2Prefix(len(x), 8)
	if n > 0 {
		affineAVX2(x[:n], y[:n], a, b)
	}
	return n
}

func BNBackward(x, dy, dx []float32, k, c2, mu, inv, c3 float32) int {
	n := avx2Prefix(len(x), 8)
	if n > 0 {
		bnBackwardAVX2(x[:n], dy[:n], dx[:n], k, c2, mu, inv, c3)
	}
	return n
}

func SumLanes(x []float32, s *[4]float64) int {
	n := avx2Prefix(len(x), 4)
	if n > 0 {
		sumLanesAVX2(x[:n], s)
	}
	return n
}

func SqDevLanes(x []float32, mu float64, s *[4]float64) int {
	n := avx2Prefix(len(x), 4)
	if n > 0 {
		sqDevLanesAVX2(x[:n], mu, s)
	}
	return n
}

func SumsDyXhat(x, dy []float32, mu, inv float32, s *[4]float64) int {
	n := avx2Prefix(len(x), 4)
	if n > 0 {
		sumsDyXhatAVX2(x[:n], dy[:n], mu, inv, s)
	}
	return n
}
