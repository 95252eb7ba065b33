package dist

import (
	"fmt"
	"math"
	"unsafe"
)

// Comm is one process's handle on the group of processes (ranks) of a job.
// Every collective must be called by every rank, in the same order, with
// buffers of the same length; a rank that does otherwise makes the others
// wait until Options.Timeout. Calls must not overlap: use a Comm from one
// goroutine at a time.
//
// After a collective has failed or timed out the Comm is broken: every later
// call returns the same error at once, and the process should exit non-zero
// without Close (mpirun then ends the other ranks).
type Comm interface {
	// Rank is this process's index, 0 ≤ Rank < Size; rank 0 writes.
	Rank() int
	// Size is the number of processes in the job (1 without mpirun).
	Size() int
	// AllReduceSum replaces buf, on every rank, by the element-wise sum of
	// all ranks' buf.
	AllReduceSum(buf []float32) error
	// AllGatherBytes puts rank r's send at recv[r·len(send):(r+1)·len(send)]
	// on every rank; len(recv) must be Size·len(send).
	AllGatherBytes(send, recv []byte) error
	// BroadcastBytes copies root's buf into buf on every other rank.
	BroadcastBytes(buf []byte, root int) error
	// Barrier returns once every rank has called it.
	Barrier() error
	// Close ends the communicator; with MPI it is collective (every rank
	// calls it, last). After a failure it only returns that failure.
	Close() error
}

// Elem is the element types that AllGather and Broadcast move. They travel
// as raw bytes, so every rank must run on the same architecture (as mpirun
// of one binary does).
type Elem interface {
	byte | int | int32 | int64 | float32 | float64
}

// AllGather puts rank r's send at recv[r·len(send):(r+1)·len(send)] on every
// rank (MoCo's concat_all_gather of keys).
func AllGather[T Elem](c Comm, send, recv []T) error {
	if err := checkGather(c.Size(), len(send), len(recv)); err != nil {
		return err
	}
	return c.AllGatherBytes(asBytes(send), asBytes(recv))
}

// Broadcast copies root's buf into buf on every other rank.
func Broadcast[T Elem](c Comm, buf []T, root int) error {
	return c.BroadcastBytes(asBytes(buf), root)
}

// asBytes views s's memory as bytes (no copy).
func asBytes[T Elem](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// checkGather checks an all-gather's lengths (in elements of any one type).
func checkGather(size, send, recv int) error {
	if recv != size*send {
		return fmt.Errorf("dist: all-gather of %d values from each of %d ranks needs a receive buffer of %d, not %d", send, size, size*send, recv)
	}
	return nil
}

// checkRoot checks a broadcast's root rank.
func checkRoot(size, root int) error {
	if root < 0 || root >= size {
		return fmt.Errorf("dist: broadcast from rank %d: the job has ranks 0 to %d", root, size-1)
	}
	return nil
}

// checkCount checks that n units (values or bytes) fit MPI's int count.
func checkCount(what string, n int, unit string) error {
	if n > math.MaxInt32 {
		return fmt.Errorf("dist: %s of %d %s: MPI counts stop at %d; split the buffer", what, n, unit, math.MaxInt32)
	}
	return nil
}

// Single is the communicator of a process started alone: rank 0 of 1, every
// collective a local no-op or copy, so training behaves exactly as without
// this package.
type Single struct{}

// Rank is 0.
func (Single) Rank() int { return 0 }

// Size is 1.
func (Single) Size() int { return 1 }

// AllReduceSum leaves buf as it is: the sum over one rank.
func (Single) AllReduceSum([]float32) error { return nil }

// AllGatherBytes copies send into recv.
func (Single) AllGatherBytes(send, recv []byte) error {
	if err := checkGather(1, len(send), len(recv)); err != nil {
		return err
	}
	copy(recv, send)
	return nil
}

// BroadcastBytes leaves buf as it is; root must be 0.
func (Single) BroadcastBytes(_ []byte, root int) error { return checkRoot(1, root) }

// Barrier returns at once.
func (Single) Barrier() error { return nil }

// Close does nothing.
func (Single) Close() error { return nil }
