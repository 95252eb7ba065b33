package cuda

import (
	"math"
	"unsafe"
)

// kernelArg is one kernel parameter as the 8 bytes cu's Function.Launch
// copies: a device pointer, a long long or a double (kernels/common.cuh).
type kernelArg uint64

// ptrArg passes a device address (a float*, int* or unsigned long long*).
func ptrArg(p uintptr) kernelArg { return kernelArg(p) }

// intArg passes an int as a long long.
func intArg(v int) kernelArg { return kernelArg(uint64(int64(v))) }

// boolArg passes a flag as a long long 0 or 1.
func boolArg(v bool) kernelArg {
	if v {
		return 1
	}
	return 0
}

// floatArg passes a float32 as a double (exact), which the kernel narrows
// back to float.
func floatArg(v float32) kernelArg { return kernelArg(math.Float64bits(float64(v))) }

// packArgs returns the []unsafe.Pointer that Function.Launch expects: one
// pointer to each 8-byte argument value. The pointers reference args, which
// must stay alive until Launch returns (Launch copies the values).
func packArgs(args []kernelArg) []unsafe.Pointer {
	ps := make([]unsafe.Pointer, len(args))
	for i := range args {
		ps[i] = unsafe.Pointer(&args[i])
	}
	return ps
}
