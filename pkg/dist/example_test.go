package dist_test

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/dist"
)

// One data-parallel step's communication. Started alone the process is rank
// 0 of 1 and every collective leaves its data as one process has it;
// under `mpirun -np P` the same code sums and gathers across P processes.
func ExampleOpen() {
	c, err := dist.Open(dist.Options{})
	if err != nil {
		panic(err)
	}
	if err := dist.CheckConfig(c, []byte("optim:\n  batch: 256\n")); err != nil {
		panic(err)
	}
	grad := []float32{0.5, -1} // this rank's gradient of its mean loss
	if err := c.AllReduceSum(grad); err != nil {
		panic(err)
	}
	for i := range grad {
		grad[i] /= float32(c.Size()) // the gradient of the global batch's mean loss
	}
	keys := []float32{0.6, 0.8} // this rank's keys, one row of D = 2
	all := make([]float32, len(keys)*c.Size())
	if err := dist.AllGather(c, keys, all); err != nil {
		panic(err)
	}
	fmt.Println("rank", c.Rank(), "of", c.Size(), "gradient", grad, "keys to enqueue", all)
	if err := c.Close(); err != nil {
		panic(err)
	}
	// Output: rank 0 of 1 gradient [0.5 -1] keys to enqueue [0.6 0.8]
}
