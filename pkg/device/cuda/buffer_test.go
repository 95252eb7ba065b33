package cuda

import (
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

func TestViewOf(t *testing.T) {
	p := newPool(&fakeMemory{limit: 1 << 20, live: map[uintptr]int64{}})
	root := &buffer{mem: &allocation{owner: p, ptr: 0x1000, class: 256}, ptr: 0x1000, n: 40, dt: device.Int32}
	v, err := viewOf(root, 5, 30)
	if err != nil {
		t.Fatal(err)
	}
	w, err := viewOf(v, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if w.ptr != 0x1000+8*4 || w.n != 10 || w.dt != device.Int32 || !w.view || w.mem != root.mem {
		t.Errorf("view of a view = %+v, want element 8 of the root, 10 Int32s, sharing its allocation", w)
	}
	for _, c := range [][2]int{{-1, 2}, {0, 31}, {30, 1}, {2, -1}} {
		if _, err := viewOf(v, c[0], c[1]); err == nil {
			t.Errorf("viewOf(off %d, n %d) of 30 elements succeeded", c[0], c[1])
		}
	}
}

func TestArgCheck(t *testing.T) {
	p, other := newPool(nil), newPool(nil)
	mk := func(owner *pool, n int, dt device.DType) *buffer {
		return &buffer{mem: &allocation{owner: owner, ptr: 0x2000}, ptr: 0x2000, n: n, dt: dt}
	}
	freed := mk(p, 10, device.Float32)
	freed.mem.freed = true
	for _, c := range []struct {
		name string
		b    device.Buffer
		dt   device.DType
		need int
		want string // "" for no error
	}{
		{"ok", mk(p, 10, device.Float32), device.Float32, 10, ""},
		{"short", mk(p, 9, device.Float32), device.Float32, 10, "has 9 elements, the shape needs 10"},
		{"type", mk(p, 10, device.Int32), device.Float32, 10, "holds int32, want float32"},
		{"freed", freed, device.Float32, 1, "used after Free"},
		{"foreign", mk(other, 10, device.Float32), device.Float32, 1, "another cuda backend"},
		{"negative", mk(p, 10, device.Float32), device.Float32, -1, "negative size"},
		{"not ours", fakeBuffer{}, device.Float32, 1, "not a buffer of the cuda backend"},
	} {
		ck := &argCheck{op: "Op", owner: p}
		ptr := ck.buf("x", c.b, c.dt, c.need)
		switch {
		case c.want == "" && (ck.err != nil || ptr != 0x2000):
			t.Errorf("%s: err %v, ptr %#x", c.name, ck.err, ptr)
		case c.want != "" && (ck.err == nil || !strings.Contains(ck.err.Error(), c.want) || !strings.HasPrefix(ck.err.Error(), "cuda: Op: x")):
			t.Errorf("%s: err %v, want one containing %q", c.name, ck.err, c.want)
		}
	}
	ck := &argCheck{op: "Op", owner: p}
	ck.require(false, "first")
	ck.require(false, "second")
	if ck.err == nil || !strings.Contains(ck.err.Error(), "first") {
		t.Errorf("argCheck keeps %v, want the first problem", ck.err)
	}
}

type fakeBuffer struct{}

func (fakeBuffer) Len() int            { return 1 }
func (fakeBuffer) DType() device.DType { return device.Float32 }
