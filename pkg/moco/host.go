package moco

import (
	"math/rand/v2"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/queue"
)

// hostScratch is a step's scratch in host memory.
type hostScratch struct {
	unshuffle      []float32    // B×B
	xShuffled      []float32    // B×C×H×W
	keys           []float32    // B×D, the shuffled keys StepExchanged hands over
	qLab, kLab     []float32    // the class oracle's labels as the graph takes them
	qLabel, kLabel []int32      // the same, for the host's check
	draw           []float32    // B×(3s+2s′), the step's MixDraw encoded
	meta           []queue.Meta // the enqueued keys' indices and labels
	loss           []float32
	logits         Logits
	grads          []float32 // every gradient, for ReduceGrads
}

func newHostScratch(s Spec, mixing bool) hostScratch {
	b := s.B
	h := hostScratch{unshuffle: make([]float32, b*b), xShuffled: make([]float32, b*s.C*s.H*s.W), loss: make([]float32, 1)}
	if s.Mix.ClassOracle {
		h.qLab, h.kLab = make([]float32, b), make([]float32, s.K)
		h.qLabel, h.kLabel = make([]int32, b), make([]int32, s.K)
	}
	dims := hardneg.Dims{B: b, K: s.K, D: s.Net.EmbedDim, N: s.Mix.N}
	if mixing {
		dims.S, dims.SPrime = s.Mix.S, s.Mix.SPrime
	}
	l := &h.logits
	l.LPos, l.LNeg, l.Dims, l.Tau = make([]float32, b), make([]float32, b*s.K), dims, s.Mix.Tau
	if mixing {
		l.TopN, l.Extra = make([]int32, b*s.Mix.N), make([]float32, b*dims.E())
	}
	if s.Mix.ClassOracle {
		l.QLabel, l.KLabel = make([]int32, b), make([]int32, s.K)
	}
	return h
}

// shuffle lays out the key batch xk in ShuffleBN's order (image i at row
// perm[i]) and the B×B matrix P with P[i, perm[i]] = 1 that undoes it.
func (h *hostScratch) shuffle(xk []float32, perm []int, s Spec) {
	img := s.C * s.H * s.W
	clear(h.unshuffle)
	for i, j := range perm {
		copy(h.xShuffled[j*img:(j+1)*img], xk[i*img:(i+1)*img])
		h.unshuffle[i*s.B+j] = 1
	}
}

// Shuffle draws the ShuffleBN permutation of a batch of b into perm.
func Shuffle(rng *rand.Rand, b int, perm []int) []int {
	perm = perm[:0]
	for i := range b {
		perm = append(perm, i)
	}
	rng.Shuffle(b, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return perm
}

// uploadLabels gives the loss the class oracle's labels: the queries' and
// the queue entries'. With mixing it first checks on the host that every
// query keeps N candidates, since the device's top-N cannot stop on its own.
func (m *Model) uploadLabels(qLabels []int) error {
	h := &m.host
	for i, l := range qLabels {
		h.qLabel[i] = int32(l)
		h.qLab[i] = float32(l)
	}
	for i, meta := range m.Queue.Meta() {
		h.kLabel[i] = meta.Label
		h.kLab[i] = float32(meta.Label)
	}
	if m.Mixing {
		if err := hardneg.CheckCandidates(h.qLabel, h.kLabel, m.Spec.Mix.N); err != nil {
			return err
		}
	}
	m.be.Upload(m.train.Plan.Buffer(m.qLabels), h.qLab)
	m.be.Upload(m.train.Plan.Buffer(m.kLabels), h.kLab)
	return nil
}

// Logits are what a step's similarity and hardness statistics read, copied
// to the host: l_pos (B), l_neg (B×K), and with mixing Q̃_N (B×N) and
// [q·h, q·h′] (B×(s+s′)); with the class oracle the labels.
type Logits struct {
	LPos, LNeg     []float32
	TopN           []int32 // nil without mixing
	Extra          []float32
	QLabel, KLabel []int32 // nil without the class oracle
	Dims           hardneg.Dims
	Tau            float64
}

// Logits copies the last step's logits to the host, where the next step
// does not overwrite them; the caller finishes reading them before it asks
// again.
func (m *Model) Logits() *Logits {
	l, be, plan := &m.host.logits, m.be, m.train.Plan
	be.Download(l.LPos, plan.Buffer(m.loss.LPos))
	be.Download(l.LNeg, plan.Buffer(m.loss.LNeg))
	if m.Mixing {
		be.DownloadInt32(l.TopN, plan.Buffer(m.loss.TopN))
		be.Download(l.Extra, plan.Buffer(m.loss.Extra))
	}
	if l.QLabel != nil {
		copy(l.QLabel, m.host.qLabel)
		copy(l.KLabel, m.host.kLabel)
	}
	return l
}

// TopN returns the last mixing step's Q̃_N, the queue indices of each
// query's N hardest negatives (B×N), in a new slice.
func (m *Model) TopN() []int32 {
	topN := make([]int32, m.Spec.B*m.Spec.Mix.N)
	m.be.DownloadInt32(topN, m.train.Plan.Buffer(m.loss.TopN))
	return topN
}

// ScaleGrads multiplies every gradient of f_q by a.
func (m *Model) ScaleGrads(a float32) {
	for _, g := range m.train.Grads {
		m.be.Scale(a, m.train.Plan.Buffer(g))
	}
}

// ReduceGrads hands every gradient of f_q, laid end to end in one host
// buffer, to reduce (data-parallel training: the sum over the ranks), and
// puts the result, times a, back: each rank's loss is the mean over its own
// slice, so a = 1/ranks makes the gradient of the global batch's mean.
func (m *Model) ReduceGrads(reduce func([]float32) error, a float32) error {
	plan, n := m.train.Plan, 0
	for _, g := range m.train.Grads {
		n += g.Shape().TotalSize()
	}
	if cap(m.host.grads) < n {
		m.host.grads = make([]float32, n)
	}
	all, off := m.host.grads[:n], 0
	for _, g := range m.train.Grads {
		size := g.Shape().TotalSize()
		m.be.Download(all[off:off+size], plan.Buffer(g))
		off += size
	}
	if err := reduce(all); err != nil {
		return err
	}
	off = 0
	for _, g := range m.train.Grads {
		size := g.Shape().TotalSize()
		part := all[off : off+size]
		for i := range part {
			part[i] *= a
		}
		m.be.Upload(plan.Buffer(g), part)
		off += size
	}
	return nil
}

// Free releases the model's device memory.
func (m *Model) Free() {
	m.be.Free(m.unshuffle)
	if m.gathered != nil {
		m.be.Free(m.gathered)
	}
	m.train.Free()
	m.keyPlan.Free()
}
