package dist

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// DefaultTimeout is how long a collective waits for the other ranks before
// it fails. A rank that dies is caught sooner, by mpirun; the timeout catches
// a rank that lives but never joins (a hang, or a different collective), so
// it must exceed the longest time one rank works alone between two
// collectives (rank 0 writing a checkpoint or evaluating).
const DefaultTimeout = 10 * time.Minute

// Options tunes Open.
type Options struct {
	// Timeout bounds every collective's wait for the other ranks; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Open returns this process's communicator: Single when the process was
// started alone (no launcher variables in the environment), without loading
// any MPI library; an MPI communicator when OpenMPI's mpirun (or another
// PMIx launcher) started it.
func Open(opts Options) (Comm, error) {
	l, err := detectLauncher(os.Getenv)
	if err != nil {
		return nil, err
	}
	if !l.mpi {
		return Single{}, nil
	}
	switch {
	case opts.Timeout == 0:
		opts.Timeout = DefaultTimeout
	case opts.Timeout < 0:
		return nil, fmt.Errorf("dist: timeout %v: must be positive (0: %v)", opts.Timeout, DefaultTimeout)
	}
	c, err := openMPI(opts)
	if err != nil {
		return nil, err
	}
	if l.size > 0 && c.Size() != l.size {
		// The MPI library did not join mpirun's job (a singleton), so the
		// ranks would train alone side by side.
		return nil, fmt.Errorf("dist: mpirun started %d processes (%s=%d) but MPI reports %d: libmpi.so.40 is not the OpenMPI that mpirun belongs to; put that one first on LD_LIBRARY_PATH",
			l.size, envWorldSize, l.size, c.Size())
	}
	return c, nil
}

// The variables by which a launcher tells a process it is part of a job.
const (
	envWorldSize = "OMPI_COMM_WORLD_SIZE" // OpenMPI's mpirun
	envPMIxRank  = "PMIX_RANK"            // any PMIx launcher (OpenMPI's mpirun, prterun, srun --mpi=pmix)
	envPMIRank   = "PMI_RANK"             // MPICH's and Intel MPI's hydra, srun --mpi=pmi2
)

// launcher is what the environment says about how the process was started.
type launcher struct {
	mpi  bool // started by an MPI launcher
	size int  // the job's size when the launcher says it (OpenMPI), else 0
}

// detectLauncher reads the launcher's variables. A process started by a
// launcher whose library is not OpenMPI's is refused: OpenMPI would run it
// as a job of one, and P processes would each train alone.
func detectLauncher(getenv func(string) string) (launcher, error) {
	if v := getenv(envWorldSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return launcher{}, fmt.Errorf("dist: %s=%q: expected the number of processes mpirun started", envWorldSize, v)
		}
		return launcher{mpi: true, size: n}, nil
	}
	if getenv(envPMIxRank) != "" {
		return launcher{mpi: true}, nil
	}
	if getenv(envPMIRank) != "" {
		return launcher{}, fmt.Errorf("dist: %s is set but neither %s nor %s: this launcher is not OpenMPI's (MPICH or Intel MPI hydra, srun --mpi=pmi2); mochi uses OpenMPI: start it with OpenMPI's mpirun (or srun --mpi=pmix), or unset %s to run one process alone",
			envPMIRank, envWorldSize, envPMIxRank, envPMIRank)
	}
	return launcher{}, nil
}
