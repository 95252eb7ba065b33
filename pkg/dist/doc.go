// Package dist is the communication layer of data-parallel training: the
// processes (ranks) of one job each train on their slice of every global
// batch and combine what must be combined through a Comm.
//
// # Overview
//
// Comm offers what MoCo's distributed training needs: Rank and Size,
// AllReduceSum of float32 buffers in place (gradients), AllGather (keys,
// their labels and indices) and Broadcast (ShuffleBN's permutation,
// rank 0's values) of float32, float64, int, int32, int64 and byte slices,
// and Barrier.
// CheckConfig compares a hash of every rank's effective config with rank
// 0's at the start. Open returns the Comm of the process:
//
//   - Single when the process was started alone: rank 0 of 1, every
//     collective a no-op or a copy, no MPI library loaded. Such a run behaves
//     exactly as before this package existed.
//   - an OpenMPI communicator when mpirun started it
//     (`mpirun -np P bin/mochi pretrain …`).
//
// # How the binary finds MPI
//
// Open looks at the environment: OpenMPI's mpirun sets OMPI_COMM_WORLD_SIZE
// (and PMIX_RANK, which srun --mpi=pmix sets too). Only then does it load
// libmpi.so.40 (OpenMPI 3.0 to 5.x) with dlopen, start MPI on a thread of
// its own and check that MPI's size is mpirun's. The declarations of the few
// calls and handles used (mpi_abi.h) stand in for mpi.h, and a test checks
// them against the real header. The alternatives were worse: linking libmpi
// would make every mochi binary, the single-process one included, fail to
// start on a machine without OpenMPI's library, and tie the build to its
// headers; a build tag would give two binaries, and mpirun of the usual one
// would silently start P independent runs. With dlopen the one binary does
// both, needs nothing new to build (cgo is already required) and nothing new
// to run alone. A launcher of another MPI (MPICH's or Intel MPI's hydra,
// which set PMI_RANK) is refused for the same reason. The binding needs cgo,
// not OpenBLAS: it is in the purego builds too (the GPU binaries, which
// broadcast NCCL's id over it: package dist/nccl, whose Comm adds the
// DeviceComm ability); a build without cgo runs alone only and refuses
// mpirun with an error.
//
// All MPI calls run on one locked OS thread (MPI_THREAD_FUNNELED), handed
// over by channel: goroutines move between threads, MPI calls must not. A
// rank waiting in a collective polls, keeping a core busy (OpenMPI's
// default; mpirun --oversubscribe, or --mca mpi_yield_when_idle 1, makes it
// yield when ranks share cores).
//
// # Failure
//
// A rank that dies (a kill, a panic, an error exit without Close) is seen by
// mpirun, which ends the other ranks at once, names the rank ("process rank
// 1 … exited on signal 9", or "Process name: [[job,1],1]" for a non-zero
// exit, the last number being the rank) and exits non-zero; mpirun's
// --tag-output prefixes every line of the ranks' output with the rank. A rank that lives but never joins a collective (a hang, or a
// different sequence of collectives) is caught by the timeout
// (Options.Timeout, DefaultTimeout): the waiting ranks' call returns an error
// naming their rank, the call and the wait, and the Comm is broken (later
// calls return the same error). MPI errors return codes (MPI_ERRORS_RETURN)
// rather than aborting, and come back as errors with MPI's text. After an
// error a rank exits non-zero without Close, and mpirun ends the rest.
// TestMPIDeadRank and TestMPIStalledRank check both cases.
//
// # What the trainer must do
//
// pkg/train does this for pretraining (see its Options.Comm). The
// integration must:
//
//   - open the Comm first and call CheckConfig with the effective config's
//     values (no provenance: the same values may come from different places
//     on different machines), before opening data or writing anything;
//   - read each epoch with data.DistributedSampler: the global batch
//     (optim.batch) is the sum of the per-rank batches, each rank reads its
//     slice of every global batch, and per-image augmentation seeds follow
//     the global position, so any number of ranks reads the single-process
//     order;
//   - all-reduce the gradients and divide by Size (each rank's loss is the
//     mean over its own batch), before the optimizer step, so every rank
//     keeps the same weights;
//   - all-gather the keys (and their labels and indices) in rank order
//     before they enter the queue, so every rank's queue is the
//     single-process queue (not each rank enqueuing only its own keys);
//   - for ShuffleBN across ranks: all-gather the key batch, broadcast a
//     global permutation from rank 0, let each rank run the key encoder on
//     its slice of the shuffled batch, then all-gather and un-shuffle the
//     keys; with split-BN instead, model.bn_splits counts the groups of the
//     global batch and each rank normalises its Size-th of them;
//   - average BatchNorm's running statistics across ranks (AllReduceSum,
//     divided by Size): one process averages them over its split-BN groups,
//     so the average over ranks is the single-process value;
//   - write checkpoints, metrics and progress on rank 0 only, with nothing
//     rank-dependent in a checkpoint (weights, optimizer state, the queue
//     and the random streams are identical on every rank; the data position
//     is counted in global steps), so that a run resumes on any number of
//     ranks with the same global batch;
//   - keep every rank's work between collectives shorter than the timeout
//     (rank 0 evaluating or writing while the others wait), or make such
//     phases collective;
//   - on SIGTERM from mpirun (another rank failed) exit without collectives;
//     rank 0 may write its checkpoint only from state that is complete on
//     every rank, i.e. between steps;
//   - prefix errors with the rank, and exit non-zero on any error.
package dist
