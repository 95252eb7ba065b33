//go:build !amd64 || purego

package vec

// AVX2 is false: without the AVX2 loops of vec_amd64.s every kernel runs
// its scalar loop from the start.
var AVX2 = false

func ReLU(x, y []float32) int                                        { return 0 }
func ReLUBackward(x, y, z []float32) int                             { return 0 }
func Add(x, y, z []float32) int                                      { return 0 }
func Affine(x, y []float32, a, b float32) int                        { return 0 }
func BNBackward(x, dy, dx []float32, k, c2, mu, inv, c3 float32) int { return 0 }
func SumLanes(x []float32, s *[4]float64) int                        { return 0 }
func SqDevLanes(x []float32, mu float64, s *[4]float64) int          { return 0 }
func SumsDyXhat(x, dy []float32, mu, inv float32, s *[4]float64) int { return 0 }
