package parallel

import (
	"runtime"
	"sync"
	"testing"
)

// TestRowsCoversEachRowOnce: for several sizes and CPU counts, every row of
// [0, n) is handed to exactly one call, in non-empty contiguous chunks.
func TestRowsCoversEachRowOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 2, 7, 37, 100} {
			seen := make([]int, n)
			var mu sync.Mutex
			calls := 0
			Rows(n, func(lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if lo >= hi {
					t.Errorf("procs %d, n %d: empty chunk [%d, %d)", procs, n, lo, hi)
				}
				for r := lo; r < hi; r++ {
					seen[r]++
				}
			})
			for r, c := range seen {
				if c != 1 {
					t.Errorf("procs %d, n %d: row %d handled %d times", procs, n, r, c)
				}
			}
			if calls > procs {
				t.Errorf("procs %d, n %d: %d calls, more than one per CPU", procs, n, calls)
			}
		}
	}
}
