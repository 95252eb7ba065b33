package cuda

import (
	"fmt"
	"math/bits"
	"sort"
)

// deviceMemory is the raw allocator under the pool: cuMemAlloc/cuMemFree on
// the GPU, a fake in the unit tests.
type deviceMemory interface {
	alloc(bytes int64) (uintptr, error)
	free(ptr uintptr) error
}

// minClass is the smallest block the pool hands out; cuMemAlloc aligns
// every allocation to at least 256 bytes anyway.
const minClass = 256

// sizeClass rounds a request up to its pool class: multiples of 256 bytes
// up to 1 KiB, then four classes per power of two (1024, 1280, 1536, 1792,
// 2048, 2560, …), so a block wastes at most a quarter of its size while the
// same layer shapes step after step land in the same classes.
func sizeClass(bytes int64) int64 {
	if bytes <= 4*minClass {
		return max(minClass, (bytes+minClass-1)/minClass*minClass)
	}
	step := int64(1) << (bits.Len64(uint64(bytes-1)) - 3) // a quarter of the power of two below
	return (bytes + step - 1) / step * step
}

// PoolStats describes the device memory pool.
type PoolStats struct {
	InUseBytes  int64 // held by live buffers and workspaces
	CachedBytes int64 // freed blocks kept for reuse
	Hits        int   // requests served from a free list
	Misses      int   // requests that called cuMemAlloc
}

// pool is a size-class cache over deviceMemory: freed blocks go to the free
// list of their class and are handed out again before new memory is
// allocated, so a training loop allocates only during its first step.
// It is not safe for concurrent use (the backend's worker owns it).
type pool struct {
	mem   deviceMemory
	free  map[int64][]uintptr // class → blocks
	stats PoolStats
}

func newPool(mem deviceMemory) *pool {
	return &pool{mem: mem, free: map[int64][]uintptr{}}
}

// get returns a block of at least bytes bytes and its class. When the
// device is out of memory it returns every cached block to the device and
// tries once more.
func (p *pool) get(bytes int64) (uintptr, int64, error) {
	class := sizeClass(bytes)
	if list := p.free[class]; len(list) > 0 {
		ptr := list[len(list)-1]
		p.free[class] = list[:len(list)-1]
		p.stats.Hits++
		p.stats.CachedBytes -= class
		p.stats.InUseBytes += class
		return ptr, class, nil
	}
	ptr, err := p.mem.alloc(class)
	if err != nil && p.stats.CachedBytes > 0 {
		if terr := p.trim(); terr != nil {
			return 0, 0, fmt.Errorf("allocating %d bytes: %w (and releasing the cache failed: %v)", class, err, terr)
		}
		ptr, err = p.mem.alloc(class)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("allocating %d bytes of device memory (%d in use): %w", class, p.stats.InUseBytes, err)
	}
	p.stats.Misses++
	p.stats.InUseBytes += class
	return ptr, class, nil
}

// put returns a block obtained from get to its free list.
func (p *pool) put(ptr uintptr, class int64) {
	p.free[class] = append(p.free[class], ptr)
	p.stats.InUseBytes -= class
	p.stats.CachedBytes += class
}

// trim releases every cached block to the device, largest classes first.
func (p *pool) trim() error {
	classes := make([]int64, 0, len(p.free))
	for c := range p.free {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool { return classes[i] > classes[j] })
	var first error
	for _, c := range classes {
		for _, ptr := range p.free[c] {
			if err := p.mem.free(ptr); err != nil && first == nil {
				first = err
			}
			p.stats.CachedBytes -= c
		}
		delete(p.free, c)
	}
	return first
}
