package cpu

import "sync"

// task is one kernel's parallel work: run handles items [lo, hi) as part
// number part (parts are numbered from 0; a part owns workspace slot part).
type task interface {
	run(part, lo, hi int)
}

// chunk is one part of a task handed to a worker.
type chunk struct {
	t            task
	part, lo, hi int
}

// workers is a fixed pool of n−1 goroutines plus the caller. The host
// analyses split their rows with internal/parallel.Rows instead; the
// kernels, called many times a step, keep goroutines alive for the
// backend's lifetime and number their parts for per-part workspace slots.
type workers struct {
	n    int
	fine bool // split every kernel as finely as possible (tests)
	jobs chan chunk
	wg   sync.WaitGroup
}

func newWorkers(n int) *workers {
	w := &workers{n: n, jobs: make(chan chunk, n)}
	for i := 1; i < n; i++ {
		go w.loop()
	}
	return w
}

func (w *workers) loop() {
	for c := range w.jobs {
		c.t.run(c.part, c.lo, c.hi)
		w.wg.Done()
	}
}

func (w *workers) stop() { close(w.jobs) }

// parts is how many parts parallel splits n items into when each part should
// hold at least grain items.
func (w *workers) parts(n, grain int) int {
	if w.fine {
		grain = 1
	}
	return max(1, min(w.n, n/max(grain, 1)))
}

// parallel runs t over [0, n) in w.parts(n, grain) contiguous parts; the
// caller runs part 0. The split depends only on n, grain and the thread
// count.
func (w *workers) parallel(n, grain int, t task) {
	p := w.parts(n, grain)
	if p == 1 {
		t.run(0, 0, n)
		return
	}
	w.wg.Add(p - 1)
	for i := 1; i < p; i++ {
		w.jobs <- chunk{t, i, i * n / p, (i + 1) * n / p}
	}
	t.run(0, 0, n/p)
	w.wg.Wait()
}
