// Package nccl gives a data-parallel job's dist.Comm the collectives of
// NVIDIA's NCCL on the GPU backend's buffers: the gradients are
// all-reduced and the keys all-gathered where they live, in GPU memory,
// instead of being downloaded, sent over MPI and uploaded again.
//
// # Overview
//
// Open wraps the job's Comm (MPI, from dist.Open) in a Comm that also
// implements dist.DeviceComm when every rank can use NCCL; the trainer
// finds the ability by a type assertion and falls back to the host path
// without it. The GPU build (tag gpu) loads libnccl.so.2 with dlopen, as
// package dist loads libmpi, so the binary starts and trains without NCCL;
// nccl_abi.h stands in for nccl.h. Other builds have no NCCL: there Open
// keeps the Comm.
//
// Open is collective: every rank reports whether it runs on the GPU, could
// load NCCL and which version (an all-gather over the Comm), and either
// all ranks use NCCL or none does, so that all call the same collectives. Rank 0 makes
// NCCL's unique id and broadcasts it over the Comm (as nccl-tests does over
// MPI); every rank then joins the NCCL communicator on its GPU.
//
// # Failure
//
// Each device collective waits for its result on the GPU at most the
// Comm's timeout (dist.Options.Timeout), polling NCCL's asynchronous error
// meanwhile; on an error or the timeout it aborts the NCCL communicator
// and returns an error naming the rank and the call, and the Comm is
// broken, as dist's host collectives are.
package nccl

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/dist"
)

// idBytes is the size of NCCL's unique id (NCCL_UNIQUE_ID_BYTES).
const idBytes = 128

// soname is the library the GPU build loads: NCCL 2.x's ABI.
const soname = "libnccl.so.2"

// library is NCCL as a rank uses it: libnccl.so.2 in the GPU build
// (lib_gpu.go), a fake in the tests.
type library interface {
	// serves reports whether NCCL can work on be's buffers (a GPU
	// backend); for any other backend Open leaves the Comm as it is.
	serves(be device.Backend) bool
	// load finds NCCL and returns its version code (NCCL_VERSION_CODE),
	// or an error that says why it cannot be used.
	load() (int, error)
	// uniqueID makes the id of a new communicator (rank 0 does).
	uniqueID() ([idBytes]byte, error)
	// join makes this rank's member of the communicator id of size ranks
	// on be's GPU, waiting at most timeout for the other ranks.
	join(be device.Backend, id [idBytes]byte, rank, size int, timeout time.Duration) (collectives, error)
}

// collectives are one rank's NCCL communicator. Each call returns once its
// result is in device memory, or with an error after which the
// communicator is aborted.
type collectives interface {
	allReduceSum(bufs []device.Buffer) error
	allGather(send, recv device.Buffer) error
	close() error
}

// Open returns c with NCCL's device collectives on be — a *Comm, which
// implements dist.DeviceComm — when every rank of c's job runs on the GPU
// and can load libnccl.so.2, else c itself. It is collective over c (one
// small all-gather), except for a process alone (dist.Single), which gets
// c back at once. A job on a backend NCCL does not serve (the CPU) gets c
// with nothing said; otherwise rank 0 writes one line to log: the NCCL
// that carries the device collectives, or a note that gradients and keys
// travel through host memory and why. opts.Timeout bounds the wait of
// the communicator's start and of each device collective (0:
// dist.DefaultTimeout).
func Open(c dist.Comm, be device.Backend, opts dist.Options, log io.Writer) (dist.Comm, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = dist.DefaultTimeout
	}
	return open(c, be, system(), timeout, log)
}

// notServed is what a rank whose backend NCCL does not serve reports in
// place of a version; 0 means NCCL was not found.
const notServed = -1

func open(c dist.Comm, be device.Backend, lib library, timeout time.Duration, log io.Writer) (dist.Comm, error) {
	if _, alone := c.(dist.Single); alone {
		return c, nil
	}
	// Every rank of a job takes part, whatever its backend, so that ranks
	// started with different devices reach the config check that names
	// the difference rather than mismatched collectives.
	version, why := notServed, error(nil)
	if lib != nil && lib.serves(be) {
		if version, why = lib.load(); why != nil {
			version = 0
		}
	}
	versions := make([]int32, c.Size())
	if err := dist.AllGather(c, []int32{int32(version)}, versions); err != nil {
		return nil, fmt.Errorf("nccl: telling the ranks which NCCL each has: %w", err)
	}
	if slices.Contains(versions, notServed) {
		return c, nil
	}
	var missing, differ []string
	for r, v := range versions {
		switch {
		case v == 0:
			missing = append(missing, fmt.Sprint(r))
		case v != versions[0]:
			differ = append(differ, fmt.Sprintf("rank %d has %s", r, versionString(int(v))))
		}
	}
	if len(missing) > 0 {
		if c.Rank() == 0 {
			reason := ""
			if why != nil {
				reason = fmt.Sprintf(" (rank 0: %v)", why)
			}
			fmt.Fprintf(log, "note: NCCL (%s) not found on rank %s%s: gradients and keys travel through host memory over MPI; NVIDIA's CUDA images and PyTorch's nvidia-nccl wheels carry it: put its folder on LD_LIBRARY_PATH on every machine\n",
				soname, strings.Join(missing, ", "), reason)
		}
		return c, nil
	}
	if len(differ) > 0 {
		return nil, fmt.Errorf("nccl: the ranks load different NCCL versions (rank 0 has %s, %s): put the same %s first on LD_LIBRARY_PATH on every machine",
			versionString(int(versions[0])), strings.Join(differ, ", "), soname)
	}
	id, err := shareID(c, lib)
	if err != nil {
		return nil, err
	}
	coll, err := lib.join(be, id, c.Rank(), c.Size(), timeout)
	if err != nil {
		return nil, fmt.Errorf("nccl: joining the communicator of %d ranks as rank %d: %w", c.Size(), c.Rank(), err)
	}
	if c.Rank() == 0 {
		fmt.Fprintf(log, "NCCL %s: gradients are all-reduced and keys all-gathered on the GPU, %d rank(s)\n", versionString(int(version)), c.Size())
	}
	return &Comm{Comm: c, coll: coll}, nil
}

// shareID makes NCCL's unique id on rank 0 and broadcasts it over c. The
// message is a status byte (1: the id follows; 0: rank 0 could not make
// one, and every rank fails) and the id's idBytes bytes.
func shareID(c dist.Comm, lib library) ([idBytes]byte, error) {
	var msg [1 + idBytes]byte
	var idErr error
	if c.Rank() == 0 {
		var id [idBytes]byte
		if id, idErr = lib.uniqueID(); idErr == nil {
			msg[0] = 1
			copy(msg[1:], id[:])
		}
	}
	if err := c.BroadcastBytes(msg[:], 0); err != nil {
		return [idBytes]byte{}, fmt.Errorf("nccl: broadcasting NCCL's unique id from rank 0: %w", err)
	}
	switch {
	case idErr != nil:
		return [idBytes]byte{}, fmt.Errorf("nccl: ncclGetUniqueId: %w", idErr)
	case msg[0] != 1:
		return [idBytes]byte{}, errors.New("nccl: rank 0 could not make NCCL's unique id (rank 0's error says why)")
	}
	var id [idBytes]byte
	copy(id[:], msg[1:])
	return id, nil
}

// versionString spells an NCCL_VERSION_CODE: X·1000 + Y·100 + Z up to 2.8,
// X·10000 + Y·100 + Z from 2.9 on.
func versionString(code int) string {
	if code < 10000 {
		return fmt.Sprintf("%d.%d.%d", code/1000, code%1000/100, code%100)
	}
	return fmt.Sprintf("%d.%d.%d", code/10000, code%10000/100, code%100)
}

// Comm is a job's Comm with NCCL's collectives on the GPU's buffers
// (dist.DeviceComm); the host collectives stay the wrapped Comm's.
type Comm struct {
	dist.Comm
	coll   collectives
	calls  int   // device collectives issued, for the error messages
	failed error // set by the first failure; the Comm is broken after it
}

var _ dist.DeviceComm = (*Comm)(nil)

// AllReduceSumDevice sums each of bufs over the ranks in place, in one
// NCCL group (one launch for all of them).
func (c *Comm) AllReduceSumDevice(bufs ...device.Buffer) error {
	for i, b := range bufs {
		if b == nil || b.DType() != device.Float32 {
			return fmt.Errorf("nccl: AllReduceSumDevice: buffer %d is %v, not a Float32 buffer", i, describe(b))
		}
	}
	return c.run("AllReduceSum", func() error { return c.coll.allReduceSum(bufs) })
}

// AllGatherDevice puts rank r's send at [r·n, (r+1)·n) of recv on every
// rank, n = send.Len().
func (c *Comm) AllGatherDevice(send, recv device.Buffer) error {
	switch {
	case send == nil || recv == nil:
		return fmt.Errorf("nccl: AllGatherDevice of %v into %v", describe(send), describe(recv))
	case send.DType() != recv.DType():
		return fmt.Errorf("nccl: AllGatherDevice of %v into %v: the types differ", send.DType(), recv.DType())
	case recv.Len() != c.Size()*send.Len():
		return fmt.Errorf("nccl: all-gather of %d values from each of %d ranks needs a receive buffer of %d, not %d",
			send.Len(), c.Size(), c.Size()*send.Len(), recv.Len())
	}
	return c.run("AllGather", func() error { return c.coll.allGather(send, recv) })
}

// run makes one device collective, unless the Comm is broken.
func (c *Comm) run(name string, f func() error) error {
	if c.failed != nil {
		return c.failed
	}
	c.calls++
	if err := f(); err != nil {
		c.failed = fmt.Errorf("nccl: rank %d of %d: %s (device collective %d): %w", c.Rank(), c.Size(), name, c.calls, err)
	}
	return c.failed
}

// Close destroys the NCCL communicator, then closes the wrapped Comm;
// after a failure it only returns that failure.
func (c *Comm) Close() error {
	if c.failed != nil {
		return c.failed
	}
	err := c.coll.close()
	c.failed = fmt.Errorf("nccl: rank %d of %d: the communicator is closed", c.Rank(), c.Size())
	if err != nil {
		return fmt.Errorf("nccl: rank %d of %d: destroying the NCCL communicator: %w", c.Rank(), c.Size(), err)
	}
	return c.Comm.Close()
}

// describe names a buffer in an error.
func describe(b device.Buffer) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("a %v buffer of %d", b.DType(), b.Len())
}
