package cuda

import (
	"errors"
	"testing"
)

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ in, want int64 }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {1000, 1024}, {1024, 1024},
		{1025, 1280}, {1280, 1280}, {1281, 1536}, {2047, 2048}, {2049, 2560},
		{3 << 20, 3 << 20}, {(3 << 20) + 1, 3<<20 + 1<<19},
	} {
		if got := sizeClass(c.in); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	for b := int64(1); b < 1<<22; b = b*3/2 + 1 {
		c := sizeClass(b)
		if c < b || (b > 1024 && float64(c) > 1.25*float64(b)) || c%256 != 0 {
			t.Errorf("sizeClass(%d) = %d: not ≥ the request, within 25%% and a multiple of 256", b, c)
		}
	}
}

// fakeMemory hands out distinct addresses and can run out of memory.
type fakeMemory struct {
	next, limit, used int64
	live              map[uintptr]int64
	allocs, frees     int
}

func (f *fakeMemory) alloc(bytes int64) (uintptr, error) {
	if f.used+bytes > f.limit {
		return 0, errors.New("out of memory")
	}
	f.next += bytes
	f.used += bytes
	f.allocs++
	f.live[uintptr(f.next)] = bytes
	return uintptr(f.next), nil
}

func (f *fakeMemory) free(ptr uintptr) error {
	b, ok := f.live[ptr]
	if !ok {
		return errors.New("free of an unknown pointer")
	}
	delete(f.live, ptr)
	f.used -= b
	f.frees++
	return nil
}

func TestPoolReuse(t *testing.T) {
	mem := &fakeMemory{limit: 1 << 20, live: map[uintptr]int64{}}
	p := newPool(mem)
	// Two "training steps" with the same allocation pattern: the second
	// must be served entirely from the cache.
	for step := 0; step < 2; step++ {
		var got []uintptr
		var classes []int64
		for _, n := range []int64{1000, 1000, 5000, 40} {
			ptr, c, err := p.get(n)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ptr)
			classes = append(classes, c)
		}
		seen := map[uintptr]bool{}
		for _, ptr := range got {
			if seen[ptr] {
				t.Fatalf("step %d: pointer %#x handed out twice", step, ptr)
			}
			seen[ptr] = true
		}
		for i := range got {
			p.put(got[i], classes[i])
		}
	}
	if mem.allocs != 4 || p.stats.Misses != 4 || p.stats.Hits != 4 {
		t.Errorf("two identical steps: %d device allocations, stats %+v; want 4 allocations, 4 misses, 4 hits", mem.allocs, p.stats)
	}
	if p.stats.InUseBytes != 0 || p.stats.CachedBytes != 1024+1024+5120+256 {
		t.Errorf("after freeing everything: stats %+v", p.stats)
	}
}

func TestPoolTrimsCacheWhenOutOfMemory(t *testing.T) {
	mem := &fakeMemory{limit: 4096, live: map[uintptr]int64{}}
	p := newPool(mem)
	a, ca, err := p.get(3000) // class 3072
	if err != nil {
		t.Fatal(err)
	}
	p.put(a, ca)
	// 2048 does not fit beside the cached 3072: the pool must release it.
	b, cb, err := p.get(2048)
	if err != nil {
		t.Fatalf("get after trimming: %v", err)
	}
	if mem.frees != 1 || p.stats.CachedBytes != 0 || p.stats.InUseBytes != cb {
		t.Errorf("after trim: %d frees, stats %+v", mem.frees, p.stats)
	}
	if _, _, err := p.get(4096); err == nil {
		t.Error("get beyond the device's memory succeeded")
	}
	p.put(b, cb)
	if err := p.trim(); err != nil || len(mem.live) != 0 {
		t.Errorf("trim left %d live blocks (err %v)", len(mem.live), err)
	}
}
