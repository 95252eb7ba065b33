package cuda

import (
	"math"
	"testing"
	"unsafe"
)

func TestPackArgs(t *testing.T) {
	args := []kernelArg{
		ptrArg(0x7f00_1234_5600),
		intArg(-3),
		intArg(1 << 40),
		floatArg(0.1),
		floatArg(-2.5),
		boolArg(true),
		boolArg(false),
	}
	ps := packArgs(args)
	if len(ps) != len(args) {
		t.Fatalf("packArgs gave %d pointers for %d arguments", len(ps), len(args))
	}
	// What Launch reads: 8 bytes behind each pointer.
	read := func(i int) uint64 { return *(*uint64)(ps[i]) }
	if got := read(0); got != 0x7f00_1234_5600 {
		t.Errorf("pointer argument reads %#x", got)
	}
	if got := int64(read(1)); got != -3 {
		t.Errorf("long long -3 reads %d", got)
	}
	if got := int64(read(2)); got != 1<<40 {
		t.Errorf("long long 2^40 reads %d", got)
	}
	// The kernel narrows the double to float: it must give the same float32.
	for i, want := range map[int]float32{3: 0.1, 4: -2.5} {
		if got := float32(math.Float64frombits(read(i))); got != want {
			t.Errorf("double argument %d narrows to %v, want %v", i, got, want)
		}
	}
	if read(5) != 1 || read(6) != 0 {
		t.Errorf("flags read %d, %d; want 1, 0", read(5), read(6))
	}
	for i := range ps {
		if uintptr(ps[i])%8 != 0 || uintptr(ps[i]) != uintptr(unsafe.Pointer(&args[0]))+8*uintptr(i) {
			t.Errorf("argument %d is not the 8-byte slot %d of the argument array", i, i)
		}
	}
}
