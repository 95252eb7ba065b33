//go:build gpu && cgo

package nccl

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "nccl_abi.h"

static struct {
	nccl_get_version_fn get_version;
	nccl_get_unique_id_fn get_unique_id;
	nccl_comm_init_rank_fn comm_init_rank;
	nccl_all_reduce_fn all_reduce;
	nccl_all_gather_fn all_gather;
	nccl_group_fn group_start, group_end;
	nccl_comm_get_async_error_fn comm_get_async_error;
	nccl_comm_fn comm_destroy, comm_abort;
	nccl_get_error_string_fn get_error_string;
	nccl_get_last_error_fn get_last_error; // NULL before NCCL 2.13
} nccl;

// nccl_load opens libnccl and looks up everything nccl holds. It returns
// NULL, or the library or symbol that failed with dlerror's text in *why.
static const char *nccl_load(const char *lib, const char **why) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		*why = dlerror();
		return lib;
	}
#define NCCL_LOOKUP(field, name)                                              \
	if ((nccl.field = (__typeof__(nccl.field))dlsym(h, name)) == NULL) {      \
		*why = dlerror();                                                     \
		return name;                                                          \
	}
	NCCL_LOOKUP(get_version, "ncclGetVersion")
	NCCL_LOOKUP(get_unique_id, "ncclGetUniqueId")
	NCCL_LOOKUP(comm_init_rank, "ncclCommInitRank")
	NCCL_LOOKUP(all_reduce, "ncclAllReduce")
	NCCL_LOOKUP(all_gather, "ncclAllGather")
	NCCL_LOOKUP(group_start, "ncclGroupStart")
	NCCL_LOOKUP(group_end, "ncclGroupEnd")
	NCCL_LOOKUP(comm_get_async_error, "ncclCommGetAsyncError")
	NCCL_LOOKUP(comm_destroy, "ncclCommDestroy")
	NCCL_LOOKUP(comm_abort, "ncclCommAbort")
	NCCL_LOOKUP(get_error_string, "ncclGetErrorString")
#undef NCCL_LOOKUP
	nccl.get_last_error = (nccl_get_last_error_fn)dlsym(h, "ncclGetLastError");
	return NULL;
}

static int nccl_version(int *v) { return nccl.get_version(v); }

static int nccl_unique_id_make(void *id) { return nccl.get_unique_id((nccl_unique_id *)id); }

static int nccl_init_rank(nccl_comm *comm, int size, const void *id, int rank) {
	nccl_unique_id uid;
	memcpy(&uid, id, sizeof uid);
	return nccl.comm_init_rank(comm, size, uid, rank);
}

// nccl_all_reduce_sum sums n float32 buffers in place, in one group, on
// the default stream.
static int nccl_all_reduce_sum(const uintptr_t *ptrs, const size_t *counts, int n, nccl_comm comm) {
	int rc = nccl.group_start();
	if (rc != NCCL_ABI_SUCCESS) return rc;
	for (int i = 0; i < n; i++) {
		void *p = (void *)ptrs[i];
		rc = nccl.all_reduce(p, p, counts[i], NCCL_ABI_FLOAT32, NCCL_ABI_SUM, comm, NULL);
		if (rc != NCCL_ABI_SUCCESS) {
			nccl.group_end();
			return rc;
		}
	}
	return nccl.group_end();
}

static int nccl_all_gather(uintptr_t send, uintptr_t recv, size_t count, int datatype, nccl_comm comm) {
	return nccl.all_gather((const void *)send, (void *)recv, count, datatype, comm, NULL);
}

static int nccl_async_error(nccl_comm comm, int *state) { return nccl.comm_get_async_error(comm, state); }
static int nccl_destroy(nccl_comm comm) { return nccl.comm_destroy(comm); }
static int nccl_abort(nccl_comm comm) { return nccl.comm_abort(comm); }
static const char *nccl_error_string(int rc) { return nccl.get_error_string(rc); }
static const char *nccl_last_error(nccl_comm comm) {
	return nccl.get_last_error == NULL ? "" : nccl.get_last_error(comm);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cuda"
)

// system is the NCCL of the GPU build: libnccl.so.2, loaded on first use.
func system() library { return libNCCL{} }

type libNCCL struct{}

var (
	loadOnce    sync.Once
	loadVersion int
	loadErr     error
)

func (libNCCL) serves(be device.Backend) bool {
	_, ok := be.(*cuda.Backend)
	return ok
}

func (libNCCL) load() (int, error) {
	loadOnce.Do(func() {
		lib := C.CString(soname)
		defer C.free(unsafe.Pointer(lib))
		var why *C.char
		if name := C.nccl_load(lib, &why); name != nil {
			loadErr = fmt.Errorf("%s: %s", C.GoString(name), C.GoString(why))
			return
		}
		var v C.int
		if rc := C.nccl_version(&v); rc != C.NCCL_ABI_SUCCESS {
			loadErr = fmt.Errorf("ncclGetVersion: %s", errorText(rc, nil))
			return
		}
		loadVersion = int(v)
	})
	return loadVersion, loadErr
}

func (libNCCL) uniqueID() ([idBytes]byte, error) {
	var id [idBytes]byte
	if rc := C.nccl_unique_id_make(unsafe.Pointer(&id[0])); rc != C.NCCL_ABI_SUCCESS {
		return id, fmt.Errorf("%s", errorText(rc, nil))
	}
	return id, nil
}

// join runs ncclCommInitRank on be's CUDA thread, where the GPU's context
// is current (NCCL takes its device from it), and waits for it at most
// timeout: it returns once every rank has joined.
func (libNCCL) join(be device.Backend, id [idBytes]byte, rank, size int, timeout time.Duration) (collectives, error) {
	cb, ok := be.(*cuda.Backend)
	if !ok {
		return nil, fmt.Errorf("NCCL works on the cuda backend's buffers, not %s's", be.Name())
	}
	r := &member{be: cb, timeout: timeout}
	done := make(chan error, 1)
	go func() {
		done <- cb.Exec(nil, func([]uintptr) error {
			if rc := C.nccl_init_rank(&r.comm, C.int(size), unsafe.Pointer(&id[0]), C.int(rank)); rc != C.NCCL_ABI_SUCCESS {
				return fmt.Errorf("ncclCommInitRank: %s", errorText(rc, nil))
			}
			return nil
		})
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return r, nil
	case <-timer.C:
		// The CUDA thread stays blocked in ncclCommInitRank; the process
		// must exit.
		return nil, fmt.Errorf("ncclCommInitRank has not returned after %v: a rank did not join (two ranks on one GPU, differing NCCL setups, or a network NCCL cannot reach; NCCL_DEBUG=INFO says which)", timeout)
	}
}

// member is one rank's NCCL communicator; every call runs on the cuda
// backend's thread (cuda.Backend.Exec), on the default stream.
type member struct {
	be      *cuda.Backend
	comm    C.nccl_comm // nil once destroyed or aborted
	timeout time.Duration
}

func (r *member) allReduceSum(bufs []device.Buffer) error {
	if len(bufs) == 0 {
		return nil
	}
	return r.be.Exec(bufs, func(ptrs []uintptr) error {
		cptrs, counts := make([]C.uintptr_t, len(bufs)), make([]C.size_t, len(bufs))
		for i, b := range bufs {
			cptrs[i], counts[i] = C.uintptr_t(ptrs[i]), C.size_t(b.Len())
		}
		if rc := C.nccl_all_reduce_sum(&cptrs[0], &counts[0], C.int(len(bufs)), r.comm); rc != C.NCCL_ABI_SUCCESS {
			return r.fail("ncclAllReduce", rc)
		}
		return r.wait()
	})
}

func (r *member) allGather(send, recv device.Buffer) error {
	dtype := C.int(C.NCCL_ABI_FLOAT32)
	if send.DType() == device.Int32 {
		dtype = C.NCCL_ABI_INT32
	}
	return r.be.Exec([]device.Buffer{send, recv}, func(ptrs []uintptr) error {
		if rc := C.nccl_all_gather(C.uintptr_t(ptrs[0]), C.uintptr_t(ptrs[1]), C.size_t(send.Len()), dtype, r.comm); rc != C.NCCL_ABI_SUCCESS {
			return r.fail("ncclAllGather", rc)
		}
		return r.wait()
	})
}

// wait polls the default stream until the collective queued on it is
// done, checking NCCL's asynchronous error meanwhile, for at most
// r.timeout; it runs on the CUDA thread.
func (r *member) wait() error {
	deadline := time.Now().Add(r.timeout)
	for {
		switch err := cu.NoStream.Query(); {
		case err == nil:
			return nil
		case err != cu.NotReady:
			r.abort()
			return fmt.Errorf("the GPU reports %v while the collective runs", err)
		}
		var state C.int
		if rc := C.nccl_async_error(r.comm, &state); rc != C.NCCL_ABI_SUCCESS {
			return r.fail("ncclCommGetAsyncError", rc)
		} else if state != C.NCCL_ABI_SUCCESS && state != C.NCCL_ABI_IN_PROGRESS {
			return r.fail("the collective", state)
		}
		if time.Now().After(deadline) {
			r.abort()
			return fmt.Errorf("waited %v for the other ranks on the GPU: one of them hangs, died without mpirun noticing, or called a different collective; the NCCL communicator is aborted", r.timeout)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// fail aborts the communicator after call failed with rc and says why.
func (r *member) fail(call string, rc C.int) error {
	text := errorText(rc, r.comm)
	r.abort()
	return fmt.Errorf("%s: %s; the NCCL communicator is aborted", call, text)
}

func (r *member) abort() {
	if r.comm != nil {
		C.nccl_abort(r.comm)
		r.comm = nil
	}
}

func (r *member) close() error {
	return r.be.Exec(nil, func([]uintptr) error {
		if r.comm == nil {
			return nil
		}
		rc := C.nccl_destroy(r.comm)
		r.comm = nil
		if rc != C.NCCL_ABI_SUCCESS {
			return fmt.Errorf("ncclCommDestroy: %s", errorText(rc, nil))
		}
		return nil
	})
}

// errorText is NCCL's text for rc, with the communicator's last error when
// NCCL keeps one.
func errorText(rc C.int, comm C.nccl_comm) string {
	text := fmt.Sprintf("%s (NCCL error %d)", C.GoString(C.nccl_error_string(rc)), int(rc))
	if comm != nil {
		if last := C.GoString(C.nccl_last_error(comm)); last != "" {
			text += ": " + last
		}
	}
	return text
}
