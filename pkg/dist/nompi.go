//go:build !cgo

package dist

import "errors"

// openMPI fails: the MPI binding needs cgo (for dlopen).
func openMPI(Options) (Comm, error) {
	return nil, errors.New("dist: mpirun started this process but this mochi was built without cgo (CGO_ENABLED=0), which the MPI binding needs: rebuild with cgo, or run one process without mpirun")
}
