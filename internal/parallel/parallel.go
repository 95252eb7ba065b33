// Package parallel splits row-wise host work over the CPUs: the one helper
// that the host analyses (pkg/eval's kNN, alignment and hardness, and
// pkg/hardneg's step statistics) share. The CPU backend's kernels keep their
// own pool (pkg/device/cpu/parallel.go): a fixed set of goroutines that
// live as long as the backend, with per-part workspace slots, which a
// kernel called thousands of times a step needs and these analyses do not.
package parallel

import (
	"runtime"
	"sync"
)

// Rows calls fn(lo, hi) on contiguous chunks of [0, n), one goroutine per
// chunk and at most one chunk per CPU (GOMAXPROCS); it returns when all
// calls have. fn must handle its rows independently of the split, so that
// results do not depend on the number of CPUs.
func Rows(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}
