package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// MoCoSpec is what the MoCo model is built from: the network, the batch
// geometry and the method's hyper-parameters.
type MoCoSpec struct {
	Net        resnet.Config // the encoder, head included (EmbedDim = D)
	B, C, H, W int           // batch and image shape
	K          int           // queue size
	M          float64       // key encoder momentum m
	Mix        hardneg.Config
	QueueSeed  uint64
}

// moco is MoCo-v2 with MoCHi on one device: the query encoder f_q (trained),
// the key encoder f_k (a momentum copy, no gradient) and the queue of keys.
type moco struct {
	spec MoCoSpec
	be   device.Backend

	// key encoder: xk → k, forward only
	keyX    *gorgonia.Node // B×C×H×W
	keyNet  *resnet.Model
	keyPlan *graph.Plan

	// query encoder and loss: xq, k, queue → loss and ∂loss/∂θ_q
	mixing   bool // the loss holds the synthetic negatives
	qX       *gorgonia.Node
	kIn      *gorgonia.Node // B×D keys from the key encoder, a constant here
	queueIn  *gorgonia.Node // K×D
	drawIn   *gorgonia.Node // B×(3s+2s′), with mixing
	qLabels  *gorgonia.Node // B, with the class oracle
	kLabels  *gorgonia.Node // K, with the class oracle
	qNet     *resnet.Model
	loss     *hardneg.LossGraph
	grads    []*gorgonia.Node // ∂loss/∂θ_q in qNet.Params order
	lossPlan *graph.Plan

	queue     *queue.Device // K×D keys in lossPlan's queue buffer, metadata on the host
	unshuffle device.Buffer // B×B permutation matrix that puts the keys back in batch order

	host struct { // step scratch in host memory
		unshuffle      []float32 // B×B
		xShuffled      []float32 // B×C×H×W
		qLab, kLab     []float32 // the class oracle's labels as the graph takes them
		qLabel, kLabel []int32   // the same, for the host's check
		loss           []float32
	}
	// The statistics' inputs: the trainer reads them on the host while the
	// next step runs, and waits for that before the step after downloads.
	stats statsInput
}

// statsInput is what one step's similarity and hardness statistics read,
// copied to the host: l_pos (B), l_neg (B×K), and with mixing Q̃_N (B×N)
// and the synthetic logits (B×E); with the class oracle the labels.
type statsInput struct {
	lpos, lneg     []float32
	topN           []int32 // nil without mixing
	extra          []float32
	qLabel, kLabel []int32 // nil without the class oracle
	dims           hardneg.Dims
	tau            float64
}

// compute returns the statistics and the mean positive similarity q·k.
func (in *statsInput) compute() *StepStats {
	var lab hardneg.Labels
	if in.qLabel != nil {
		lab = hardneg.Labels{Query: in.qLabel, Queue: in.kLabel}
	}
	var pos float64
	for _, v := range in.lpos {
		pos += float64(v)
	}
	st := hardneg.ComputeStats(in.lpos, in.lneg, in.topN, in.extra, lab, in.dims, in.tau)
	out := &StepStats{PosSim: pos / float64(len(in.lpos)), NegSim: st.QueueMean, NegSimMax: st.QueueMax,
		Harder: st.HarderThanHardestReal, Top5Grad: st.Top5GradShare}
	if in.topN != nil { // mixing: Q̃_N and the synthetic negatives exist
		out.TopNSim, out.SynthSim = &st.TopNMean, &st.SynthMean
	}
	return out
}

// newMoCo builds f_q (initialised from spec.Net.Seed), f_k as its copy, the
// loss graph with or without mixing, and the queue of random unit keys; a
// trainer then restores any saved state into it.
func newMoCo(be device.Backend, spec MoCoSpec, mixing bool) (*moco, error) {
	if spec.Net.EmbedDim <= 0 {
		return nil, fmt.Errorf("train: the encoder needs a projection head (embedding dimension > 0)")
	}
	m := &moco{spec: spec, be: be, mixing: mixing && spec.Mix.S+spec.Mix.SPrime > 0}
	if err := m.buildQuery(); err != nil {
		return nil, err
	}
	if err := m.buildKey(); err != nil {
		return nil, err
	}
	q, err := queue.NewDevice(be, m.lossPlan.Buffer(m.queueIn), spec.K, spec.Net.EmbedDim, spec.QueueSeed)
	if err != nil {
		return nil, err
	}
	m.queue = q
	b := spec.B
	m.unshuffle, m.host.unshuffle = be.Alloc(device.Float32, b*b), make([]float32, b*b)
	m.host.xShuffled = make([]float32, b*spec.C*spec.H*spec.W)
	m.host.loss = make([]float32, 1)
	if spec.Mix.ClassOracle {
		m.host.qLab, m.host.kLab = make([]float32, b), make([]float32, spec.K)
		m.host.qLabel, m.host.kLabel = make([]int32, b), make([]int32, spec.K)
	}
	dims := hardneg.Dims{B: b, K: spec.K, D: spec.Net.EmbedDim, N: spec.Mix.N}
	if m.mixing {
		dims.S, dims.SPrime = spec.Mix.S, spec.Mix.SPrime
	}
	in := &m.stats
	in.lpos, in.lneg, in.dims, in.tau = make([]float32, b), make([]float32, b*spec.K), dims, spec.Mix.Tau
	if m.mixing {
		in.topN, in.extra = make([]int32, b*spec.Mix.N), make([]float32, b*dims.E())
	}
	if spec.Mix.ClassOracle {
		in.qLabel, in.kLabel = make([]int32, b), make([]int32, spec.K)
	}
	return m, nil
}

// buildQuery builds f_q and the InfoNCE loss (with MoCHi's extra logits when
// mixing) and compiles loss and gradients.
func (m *moco) buildQuery() error {
	s, d := m.spec, m.spec.Net.EmbedDim
	g := gorgonia.NewGraph()
	m.qX = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(s.B, s.C, s.H, s.W), gorgonia.WithName("x_q"))
	net, err := resnet.Build(g, m.qX, s.Net, m.be)
	if err != nil {
		return err
	}
	m.qNet = net
	m.kIn = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.B, d), gorgonia.WithName("k"))
	m.queueIn = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.K, d), gorgonia.WithName("queue"))
	in := hardneg.Inputs{Query: net.Embedding, Key: m.kIn, Queue: m.queueIn}
	if m.mixing {
		m.drawIn = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.B, 3*s.Mix.S+2*s.Mix.SPrime), gorgonia.WithName("mix_draw"))
		in.Draw = m.drawIn
	}
	if s.Mix.ClassOracle {
		m.qLabels = gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(s.B), gorgonia.WithName("query_labels"))
		m.kLabels = gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(s.K), gorgonia.WithName("queue_labels"))
		in.QueryLabels, in.QueueLabels = m.qLabels, m.kLabels
	}
	// logits = [q·k, q·Qᵀ, q·h, q·h′]/τ, label 0; see hardneg.Loss
	if m.loss, err = hardneg.Loss(in, s.Mix, m.mixing); err != nil {
		return err
	}
	params := make(gorgonia.Nodes, len(net.Params))
	for i, p := range net.Params {
		params[i] = p.Node
	}
	if m.grads, err = gorgonia.Grad(m.loss.Loss, params...); err != nil {
		return fmt.Errorf("train: gradient of the loss: %w", err)
	}
	outputs := append(gorgonia.Nodes{m.loss.Loss, m.loss.LPos, m.loss.LNeg}, m.grads...)
	if m.mixing {
		outputs = append(outputs, m.loss.TopN, m.loss.Extra)
	}
	if m.lossPlan, err = graph.Compile(g, m.be, outputs...); err != nil {
		return err
	}
	return net.Bind(m.lossPlan) // the plan's buffers hold θ_q from now on
}

// buildKey builds f_k as a copy of f_q (MoCo: param_k.data.copy_(param_q.data)).
func (m *moco) buildKey() error {
	s := m.spec
	g := gorgonia.NewGraph()
	m.keyX = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(s.B, s.C, s.H, s.W), gorgonia.WithName("x_k"))
	net, err := resnet.Build(g, m.keyX, s.Net, m.be)
	if err != nil {
		return err
	}
	m.keyNet = net
	if err := m.qNet.CopyTo(net); err != nil {
		return err
	}
	if m.keyPlan, err = graph.Compile(g, m.be, net.Embedding); err != nil {
		return err
	}
	return net.Bind(m.keyPlan)
}

// step runs one MoCo/MoCHi iteration on a batch up to the gradients: the
// momentum update of f_k, the keys, the loss and ∂loss/∂θ_q. The caller
// applies the optimizer and then enqueue. perm shuffles the key batch over
// the split-BN groups (MoCo's ShuffleBN); draw is the step's mixing draw.
func (m *moco) step(xq, xk []float32, perm []int, draw *hardneg.MixDraw, qLabels []int) (float64, error) {
	s, be := m.spec, m.be
	d := s.Net.EmbedDim
	img := s.C * s.H * s.W

	// θ_k ← m·θ_k + (1−m)·θ_q, before the keys are computed
	for i, p := range m.qNet.Params {
		be.MomentumUpdate(float32(s.M), m.lossPlan.Buffer(p.Node), m.keyPlan.Buffer(m.keyNet.Params[i].Node))
	}

	// k = normalize(head(f_k(x_k))): B×D, the batch shuffled so that split-BN
	// groups of keys and queries differ (image i goes to row perm[i]), then
	// put back in order on the device: k = P·k_shuffled with P[i, perm[i]] = 1
	clear(m.host.unshuffle)
	for i, j := range perm {
		copy(m.host.xShuffled[j*img:(j+1)*img], xk[i*img:(i+1)*img])
		m.host.unshuffle[i*s.B+j] = 1
	}
	be.Upload(m.keyPlan.Buffer(m.keyX), m.host.xShuffled)
	be.Upload(m.unshuffle, m.host.unshuffle)
	if err := m.keyPlan.Run(); err != nil {
		return 0, fmt.Errorf("key encoder: %w", err)
	}
	be.Gemm(false, false, s.B, d, s.B, 1, m.unshuffle, m.keyPlan.Buffer(m.keyNet.Embedding), 0, m.lossPlan.Buffer(m.kIn))

	// q = normalize(head(f_q(x_q))) and the loss over [q·k, q·Qᵀ, q·h, q·h′]/τ
	be.Upload(m.lossPlan.Buffer(m.qX), xq)
	if m.mixing {
		be.Upload(m.lossPlan.Buffer(m.drawIn), draw.Tensor().Data().([]float32))
	}
	if s.Mix.ClassOracle {
		for i, l := range qLabels {
			m.host.qLabel[i] = int32(l)
			m.host.qLab[i] = float32(l)
		}
		for i, meta := range m.queue.Meta() {
			m.host.kLabel[i] = meta.Label
			m.host.kLab[i] = float32(meta.Label)
		}
		if m.mixing { // the device's top-N cannot stop on a query left short
			if err := hardneg.CheckCandidates(m.host.qLabel, m.host.kLabel, s.Mix.N); err != nil {
				return 0, err
			}
		}
		be.Upload(m.lossPlan.Buffer(m.qLabels), m.host.qLab)
		be.Upload(m.lossPlan.Buffer(m.kLabels), m.host.kLab)
	}
	if err := m.lossPlan.Run(); err != nil {
		return 0, fmt.Errorf("loss: %w", err)
	}
	be.Download(m.host.loss, m.lossPlan.Buffer(m.loss.Loss))
	return float64(m.host.loss[0]), nil
}

// enqueue writes the step's keys at the queue pointer (after the update, as
// in MoCo's _dequeue_and_enqueue), device to device.
func (m *moco) enqueue(index, labels []int) error {
	meta := make([]queue.Meta, len(index))
	for i := range index {
		meta[i] = queue.Meta{Index: int64(index[i]), Label: int32(labels[i])}
	}
	return m.queue.EnqueueBuffer(m.lossPlan.Buffer(m.kIn), meta)
}

// statsInput copies the last loss run's values that the statistics read
// to the host, where the next step does not overwrite them; the caller
// finishes reading them before it asks again.
func (m *moco) statsInput() *statsInput {
	in := &m.stats
	be := m.be
	be.Download(in.lpos, m.lossPlan.Buffer(m.loss.LPos))
	be.Download(in.lneg, m.lossPlan.Buffer(m.loss.LNeg))
	if m.mixing {
		be.DownloadInt32(in.topN, m.lossPlan.Buffer(m.loss.TopN))
		be.Download(in.extra, m.lossPlan.Buffer(m.loss.Extra))
	}
	if in.qLabel != nil {
		copy(in.qLabel, m.host.qLabel)
		copy(in.kLabel, m.host.kLabel)
	}
	return in
}

// scaleGrads multiplies every gradient of f_q by a.
func (m *moco) scaleGrads(a float32) {
	for _, g := range m.grads {
		m.be.Scale(a, m.lossPlan.Buffer(g))
	}
}

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// keyPermutation draws the ShuffleBN permutation of a batch.
func keyPermutation(rng *rand.Rand, b int, perm []int) []int {
	perm = perm[:0]
	for i := range b {
		perm = append(perm, i)
	}
	rng.Shuffle(b, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return perm
}

func (m *moco) free() {
	m.be.Free(m.unshuffle)
	m.lossPlan.Free()
	m.keyPlan.Free()
}
