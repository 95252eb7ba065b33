package cuda

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// allocation is one pool block shared by a buffer and all its views.
type allocation struct {
	owner *pool   // the pool (and so the backend) the block came from
	ptr   uintptr // device address; 0 for a zero-length buffer
	class int64   // pool class in bytes; 0 for a zero-length buffer
	freed bool    // set by Free: later use is an error
}

// buffer is a device.Buffer in GPU memory: n elements of dt at device
// address ptr inside mem.
type buffer struct {
	mem  *allocation
	ptr  uintptr
	n    int
	dt   device.DType
	view bool
}

// Len is the number of elements.
func (b *buffer) Len() int { return b.n }

// DType is the element type.
func (b *buffer) DType() device.DType { return b.dt }

// elemSize is the byte size of every DType the backend stores.
const elemSize = 4

// viewOf returns elements [off, off+n) of b.
func viewOf(b *buffer, off, n int) (*buffer, error) {
	if off < 0 || n < 0 || off+n > b.n {
		return nil, fmt.Errorf("View(off %d, n %d) of a buffer of %d elements is out of range", off, n, b.n)
	}
	return &buffer{mem: b.mem, ptr: b.ptr + uintptr(off*elemSize), n: n, dt: b.dt, view: true}, nil
}

// argCheck validates a kernel's buffers and shapes before launch and keeps
// the first problem: a kernel on a too-short buffer would write out of
// bounds and break the CUDA context for good.
type argCheck struct {
	op    string
	owner *pool
	err   error
}

// fail records a problem unless one is already recorded.
func (c *argCheck) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("cuda: %s: %s", c.op, fmt.Sprintf(format, args...))
	}
}

// require records the problem when ok is false.
func (c *argCheck) require(ok bool, format string, args ...any) {
	if !ok {
		c.fail(format, args...)
	}
}

// buf checks that b is a live buffer of this backend holding at least need
// elements of type dt and returns its device address.
func (c *argCheck) buf(name string, b device.Buffer, dt device.DType, need int) uintptr {
	bb, ok := b.(*buffer)
	switch {
	case !ok || bb == nil:
		c.fail("%s is a %T, not a buffer of the cuda backend", name, b)
		return 0
	case bb.mem.owner != c.owner:
		c.fail("%s belongs to another cuda backend", name)
	case bb.mem.freed:
		c.fail("%s is used after Free", name)
	case bb.dt != dt:
		c.fail("%s holds %v, want %v", name, bb.dt, dt)
	case need < 0:
		c.fail("%s: negative size %d", name, need)
	case bb.n < need:
		c.fail("%s has %d elements, the shape needs %d", name, bb.n, need)
	}
	return bb.ptr
}

// f32 is buf for a Float32 buffer.
func (c *argCheck) f32(name string, b device.Buffer, need int) uintptr {
	return c.buf(name, b, device.Float32, need)
}

// i32 is buf for an Int32 buffer.
func (c *argCheck) i32(name string, b device.Buffer, need int) uintptr {
	return c.buf(name, b, device.Int32, need)
}

// length returns b's length, or 0 when b is not a buffer of this backend
// (buf then reports it).
func length(b device.Buffer) int {
	if bb, ok := b.(*buffer); ok && bb != nil {
		return bb.n
	}
	return 0
}
