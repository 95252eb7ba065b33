//go:build cgo

package dist

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include "mpi_abi.h"

static struct {
	dist_init_thread_fn init_thread;
	dist_comm_rank_fn comm_rank;
	dist_comm_size_fn comm_size;
	dist_comm_set_errhandler_fn comm_set_errhandler;
	dist_allreduce_fn allreduce;
	dist_allgather_fn allgather;
	dist_bcast_fn bcast;
	dist_barrier_fn barrier;
	dist_error_string_fn error_string;
	dist_finalize_fn finalize;
	dist_comm world;
	dist_datatype float_type, byte_type;
	dist_op sum;
	dist_errhandler errors_return;
} dist_mpi;

// dist_load opens libmpi and looks up everything dist_mpi holds. It returns
// NULL, or the library or symbol that failed with dlerror's text in *why.
// RTLD_GLOBAL: OpenMPI's plugins find libmpi's symbols in the global scope.
static const char *dist_load(const char *lib, const char **why) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) {
		*why = dlerror();
		return lib;
	}
#define DIST_LOOKUP(field, name)                                        \
	if ((dist_mpi.field = (__typeof__(dist_mpi.field))dlsym(h, name)) == NULL) { \
		*why = dlerror();                                               \
		return name;                                                    \
	}
	DIST_LOOKUP(init_thread, "MPI_Init_thread")
	DIST_LOOKUP(comm_rank, "MPI_Comm_rank")
	DIST_LOOKUP(comm_size, "MPI_Comm_size")
	DIST_LOOKUP(comm_set_errhandler, "MPI_Comm_set_errhandler")
	DIST_LOOKUP(allreduce, "MPI_Allreduce")
	DIST_LOOKUP(allgather, "MPI_Allgather")
	DIST_LOOKUP(bcast, "MPI_Bcast")
	DIST_LOOKUP(barrier, "MPI_Barrier")
	DIST_LOOKUP(error_string, "MPI_Error_string")
	DIST_LOOKUP(finalize, "MPI_Finalize")
	DIST_LOOKUP(world, DIST_SYM_COMM_WORLD)
	DIST_LOOKUP(float_type, DIST_SYM_FLOAT)
	DIST_LOOKUP(byte_type, DIST_SYM_BYTE)
	DIST_LOOKUP(sum, DIST_SYM_OP_SUM)
	DIST_LOOKUP(errors_return, DIST_SYM_ERRORS_RETURN)
#undef DIST_LOOKUP
	return NULL;
}

// dist_init starts MPI for calls from this thread only, makes errors return
// codes instead of aborting, and reads this process's rank and the size.
static int dist_init(int *provided, int *rank, int *size) {
	int rc = dist_mpi.init_thread(NULL, NULL, DIST_MPI_THREAD_FUNNELED, provided);
	if (rc != DIST_MPI_SUCCESS) return rc;
	rc = dist_mpi.comm_set_errhandler(dist_mpi.world, dist_mpi.errors_return);
	if (rc != DIST_MPI_SUCCESS) return rc;
	rc = dist_mpi.comm_rank(dist_mpi.world, rank);
	if (rc != DIST_MPI_SUCCESS) return rc;
	return dist_mpi.comm_size(dist_mpi.world, size);
}

static int dist_allreduce_sum(void *buf, int n) {
	return dist_mpi.allreduce(DIST_MPI_IN_PLACE, buf, n, dist_mpi.float_type, dist_mpi.sum, dist_mpi.world);
}

static int dist_allgather(const void *send, void *recv, int n) {
	return dist_mpi.allgather(send, n, dist_mpi.byte_type, recv, n, dist_mpi.byte_type, dist_mpi.world);
}

static int dist_bcast(void *buf, int n, int root) {
	return dist_mpi.bcast(buf, n, dist_mpi.byte_type, root, dist_mpi.world);
}

static int dist_barrier(void) { return dist_mpi.barrier(dist_mpi.world); }

static int dist_finalize(void) { return dist_mpi.finalize(); }

// dist_error_string writes MPI's text for code into buf (DIST_MPI_MAX_ERROR_STRING + 1 bytes).
static void dist_error_string(int code, char *buf) {
	int len = 0;
	if (dist_mpi.error_string(code, buf, &len) != DIST_MPI_SUCCESS || len < 0 || len > DIST_MPI_MAX_ERROR_STRING) len = 0;
	buf[len] = 0;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// libMPI is the soname of OpenMPI's library from 3.0 to 5.x.
const libMPI = "libmpi.so.40"

// op is a collective the MPI thread runs.
type op int

const (
	opAllReduceSum op = iota
	opAllGather
	opBroadcast
	opBarrier
	opFinalize
)

// request is one call for the MPI thread: pointers into the caller's
// buffers, which the caller keeps alive while it waits.
type request struct {
	op         op
	send, recv unsafe.Pointer
	count      int
	root       int
}

// result is the MPI thread's answer: MPI's return code and, when it is not
// MPI_SUCCESS, MPI's text for it.
type result struct {
	code int
	text string
}

// mpiComm runs every MPI call on one locked OS thread (MPI_THREAD_FUNNELED,
// which every MPI supports; goroutines otherwise move between threads) and
// waits for it with a timeout.
type mpiComm struct {
	rank, size int
	timeout    time.Duration

	mu       sync.Mutex // one call at a time
	requests chan request
	results  chan result
	timer    *time.Timer
	calls    int   // collectives issued, for the error messages
	failed   error // set by the first failure; the Comm is broken after it
}

// openMPI loads libmpi, starts MPI on a thread of its own and returns the
// communicator of MPI_COMM_WORLD.
func openMPI(opts Options) (Comm, error) {
	c := &mpiComm{
		timeout:  opts.Timeout,
		requests: make(chan request),
		results:  make(chan result, 1),
		timer:    time.NewTimer(opts.Timeout),
	}
	started := make(chan error, 1)
	go c.serve(started)
	select {
	case err := <-started:
		c.timer.Stop()
		if err != nil {
			return nil, err
		}
	case <-c.timer.C:
		return nil, fmt.Errorf("dist: MPI_Init_thread has not returned after %v: a process of the job did not start", opts.Timeout)
	}
	return c, nil
}

// serve is the MPI thread: it loads libmpi, initialises MPI, reports to
// started and then runs requests until MPI_Finalize.
func (c *mpiComm) serve(started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	lib := C.CString(libMPI)
	defer C.free(unsafe.Pointer(lib))
	var why *C.char
	if name := C.dist_load(lib, &why); name != nil {
		started <- fmt.Errorf("dist: mpirun started this process but %s cannot be used (%s: %s): install OpenMPI's library (Debian: apt-get install libopenmpi3) or put its folder on LD_LIBRARY_PATH",
			libMPI, C.GoString(name), C.GoString(why))
		return
	}
	var provided, rank, size C.int
	if code := C.dist_init(&provided, &rank, &size); code != C.DIST_MPI_SUCCESS {
		started <- fmt.Errorf("dist: starting MPI: %s", errorText(int(code)))
		return
	}
	if provided < C.DIST_MPI_THREAD_FUNNELED {
		started <- fmt.Errorf("dist: MPI offers thread level %d, below MPI_THREAD_FUNNELED (%d) that a Go program needs", int(provided), C.DIST_MPI_THREAD_FUNNELED)
		return
	}
	c.rank, c.size = int(rank), int(size)
	started <- nil
	for req := range c.requests {
		code := c.execute(req)
		res := result{code: code}
		if code != C.DIST_MPI_SUCCESS {
			res.text = errorText(code)
		}
		c.results <- res
		if req.op == opFinalize {
			return
		}
	}
}

// execute makes one MPI call; it runs on the MPI thread.
func (c *mpiComm) execute(req request) int {
	switch req.op {
	case opAllReduceSum:
		return int(C.dist_allreduce_sum(req.recv, C.int(req.count)))
	case opAllGather:
		return int(C.dist_allgather(req.send, req.recv, C.int(req.count)))
	case opBroadcast:
		return int(C.dist_bcast(req.recv, C.int(req.count), C.int(req.root)))
	case opBarrier:
		return int(C.dist_barrier())
	case opFinalize:
		return int(C.dist_finalize())
	}
	panic(fmt.Sprintf("dist: unknown op %d", req.op))
}

// errorText is MPI's description of code; it runs on the MPI thread.
func errorText(code int) string {
	var buf [C.DIST_MPI_MAX_ERROR_STRING + 1]C.char
	C.dist_error_string(C.int(code), &buf[0])
	if text := C.GoString(&buf[0]); text != "" {
		return fmt.Sprintf("%s (MPI error %d)", text, code)
	}
	return fmt.Sprintf("MPI error %d", code)
}

// run hands req to the MPI thread and waits for it at most c.timeout.
func (c *mpiComm) run(name string, req request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return c.failed
	}
	c.calls++
	c.requests <- req // the thread is idle: the previous call has returned
	c.timer.Reset(c.timeout)
	select {
	case res := <-c.results:
		c.timer.Stop()
		if res.code != C.DIST_MPI_SUCCESS {
			c.failed = fmt.Errorf("dist: rank %d of %d: %s (collective %d) failed: %s", c.rank, c.size, name, c.calls, res.text)
		}
	case <-c.timer.C:
		// The MPI thread stays blocked in the call; the Comm is broken.
		c.failed = fmt.Errorf("dist: rank %d of %d: %s (collective %d) waited %v for the other ranks: one of them hangs, died without mpirun noticing, or called a different collective",
			c.rank, c.size, name, c.calls, c.timeout)
	}
	return c.failed
}

func (c *mpiComm) Rank() int { return c.rank }

func (c *mpiComm) Size() int { return c.size }

func (c *mpiComm) AllReduceSum(buf []float32) error {
	if err := checkCount("all-reduce", len(buf), "values"); err != nil {
		return err
	}
	return c.run("AllReduceSum", request{op: opAllReduceSum, recv: pointer(buf), count: len(buf)})
}

func (c *mpiComm) AllGatherBytes(send, recv []byte) error {
	if err := checkGather(c.size, len(send), len(recv)); err != nil {
		return err
	}
	if err := checkCount("all-gather", len(send), "bytes"); err != nil {
		return err
	}
	return c.run("AllGather", request{op: opAllGather, send: pointer(send), recv: pointer(recv), count: len(send)})
}

func (c *mpiComm) BroadcastBytes(buf []byte, root int) error {
	if err := checkRoot(c.size, root); err != nil {
		return err
	}
	if err := checkCount("broadcast", len(buf), "bytes"); err != nil {
		return err
	}
	return c.run("Broadcast", request{op: opBroadcast, recv: pointer(buf), count: len(buf), root: root})
}

func (c *mpiComm) Barrier() error { return c.run("Barrier", request{op: opBarrier}) }

// Close calls MPI_Finalize, which waits for every rank to call it; after a
// failure it returns that failure and leaves MPI as it is.
func (c *mpiComm) Close() error {
	if err := c.run("Finalize", request{op: opFinalize}); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = fmt.Errorf("dist: rank %d of %d: the communicator is closed", c.rank, c.size)
	return nil
}

// pointer is the address of s's first element, or nil when s is empty
// (MPI reads no buffer for a count of 0).
func pointer[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}
