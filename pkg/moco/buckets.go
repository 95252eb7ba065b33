package moco

// gradBuckets reduces the gradients in buckets while the backward pass
// runs, as PyTorch's DistributedDataParallel does: once the plan has
// written every gradient of a bucket, Step downloads them and a goroutine
// of the model's hands them to reduce while the plan goes on.
type gradBuckets struct {
	reduce func([]float32) error
	scale  float32
	ends   []int // each bucket's end in host.grads (they follow one another)
	last   []int // the plan step after which each bucket is complete
	work   chan []float32
	done   chan error
}

// OverlapGrads makes Step reduce the gradients of f_q as ReduceGrads does
// (reduce, then times a), in buckets of at least bucket values handed to
// reduce on another goroutine as the backward pass completes them; reduce
// must then be safe to call from there while Step runs. Free stops it.
func (m *Model) OverlapGrads(reduce func([]float32) error, a float32, bucket int) {
	l, plan := m.gradLayout(), m.train.Plan
	b := &gradBuckets{reduce: reduce, scale: a, work: make(chan []float32, len(l.order)), done: make(chan error, len(l.order))}
	start := 0
	for i, g := range l.order {
		end := l.off[g] + m.train.Grads[g].Shape().TotalSize()
		if end-start >= bucket || i == len(l.order)-1 {
			b.ends = append(b.ends, end)
			b.last = append(b.last, max(plan.Written(m.train.Grads[g]), 0))
			start = end
		}
	}
	go func() {
		for buf := range b.work {
			b.done <- b.reduce(buf)
		}
	}()
	m.buckets = b
}

// runBucketed runs the loss plan, handing each bucket of gradients to the
// reducing goroutine once the plan has written it, waits for every
// reduction and puts the reduced gradients back.
func (m *Model) runBucketed() error {
	b, l, all := m.buckets, &m.host.layout, m.host.grads
	next, sent, start, g := 0, 0, 0, 0
	err := m.train.Plan.RunEach(func(step int) error {
		for ; next < len(b.ends) && b.last[next] == step; next++ {
			for ; g < len(l.order) && l.off[l.order[g]] < b.ends[next]; g++ {
				m.downloadGrad(l.order[g], all)
			}
			b.work <- all[start:b.ends[next]]
			start = b.ends[next]
			sent++
		}
		return nil
	})
	for range sent { // the reductions sent must end before anything else
		if rerr := <-b.done; err == nil && rerr != nil {
			err = rerr
		}
	}
	if err != nil {
		return err
	}
	m.scaleUploadGrads(b.scale)
	return nil
}

// stop ends the reducing goroutine.
func (b *gradBuckets) stop() { close(b.work) }
