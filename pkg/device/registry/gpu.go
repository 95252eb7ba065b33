package registry

import (
	"fmt"
	"strconv"
)

// envLocalRank is the rank of a process among those OpenMPI's mpirun
// started on its machine.
const envLocalRank = "OMPI_COMM_WORLD_LOCAL_RANK"

// gpuIndex is the GPU the cuda backend opens: under mpirun, the process's
// rank on its machine, so that the ranks of one machine take one GPU each
// (NCCL refuses two ranks on one GPU); else GPU 0. CUDA_VISIBLE_DEVICES
// still chooses which GPUs are counted.
func gpuIndex(getenv func(string) string) (int, error) {
	v := getenv(envLocalRank)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: expected this process's rank on its machine", envLocalRank, v)
	}
	return n, nil
}
