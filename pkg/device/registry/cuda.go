//go:build gpu

package registry

import (
	"fmt"
	"os"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cuda"
)

// The GPU build registers "cuda": the backend on GPU 0, or under mpirun
// on the GPU of the process's rank on its machine (gpuIndex).
func init() {
	register("cuda", func() (device.Backend, error) {
		gpu, err := gpuIndex(os.Getenv)
		if err != nil {
			return nil, err
		}
		b, err := cuda.New(gpu)
		if err != nil {
			if gpu > 0 {
				return nil, fmt.Errorf("%w (under mpirun each rank of a machine takes the GPU of its local rank, %s=%d: start at most one rank per GPU, e.g. mpirun --map-by ppr:G:node for G GPUs a machine)", err, envLocalRank, gpu)
			}
			return nil, err // not a typed nil inside the interface
		}
		return b, nil
	})
}
