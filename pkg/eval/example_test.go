package eval_test

import (
	"fmt"
	"math"

	"github.com/mochi-ssl/mochi/pkg/eval"
)

// Four unit vectors at the corners of a square on the circle: every pair is
// at squared distance 2 (neighbours) or 4 (opposite), so with t = 2 the
// uniformity is log((4·e^{−4} + 2·e^{−8})/6).
func ExampleUniformity() {
	x, _ := eval.NewMatrix([]float32{1, 0, 0, 1, -1, 0, 0, -1}, 4, 2)
	u, _ := eval.Uniformity(x, 2)
	fmt.Printf("%.4f %.4f\n", u, math.Log((4*math.Exp(-4)+2*math.Exp(-8))/6))
	// Output: -4.3963 -4.3963
}

// A test feature votes with its nearest training features, weighted by
// exp(cosine/t).
func ExampleKNN() {
	train, _ := eval.NewMatrix([]float32{1, 0, 0.9, 0.1, 0, 1}, 3, 2)
	test, _ := eval.NewMatrix([]float32{2, 0.5, 0.1, 3}, 2, 2)
	res, _ := eval.KNN(train, []int{0, 0, 1}, test, []int{0, 1}, eval.KNNConfig{K: 2, T: 0.1})
	fmt.Println(res.Predictions, res.Top1)
	// Output: [0 1] 1
}
