// Package moco is MoCo-v2 (He et al., CVPR 2020; Chen et al., arXiv
// 2003.04297) with MoCHi's hard negative mixing (Kalantidis et al., NeurIPS
// 2020, arXiv 2010.01028) on one device, in the order of MoCo's builder.py:
// the query encoder f_q (trained) and the key encoder f_k (its momentum
// copy), ShuffleBN as split-BN over a shuffled key batch, the queue of K
// keys, and the InfoNCE loss over
//
//	logits = [l_pos, l_neg, q·h, q·h′] / τ,  label 0,
//
// where l_pos = q·k (B×1), l_neg = q·Qᵀ (B×K), and h (B×s), h′ (B×s′) are
// MoCHi's synthetic negatives mixed from the N hardest queue entries of
// each query (pkg/hardneg builds the loss and its gradient ops). This file
// is the method; the loop around it (data, learning rate, checkpoints) is
// pkg/train.
package moco

import (
	"fmt"
	"slices"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Spec is what the model is built from: the network, the batch geometry
// and the method's hyper-parameters. Checkpoints store it (spec.json).
type Spec struct {
	Net        resnet.Config // the encoder, head included (EmbedDim = D)
	B, C, H, W int           // batch and image shape
	K          int           // queue size
	M          float64       // key encoder momentum m
	Mix        hardneg.Config
	QueueSeed  uint64
}

// Model is MoCo-v2 with MoCHi: f_q with the loss and its gradients in one
// compiled plan, f_k forward only in another, and the queue.
type Model struct {
	Spec     Spec
	Mixing   bool          // the loss holds the synthetic negatives h, h′
	EncoderQ *resnet.Model // f_q, trained
	EncoderK *resnet.Model // f_k, its momentum copy, no gradient
	Queue    *queue.Device // K×D keys in the loss plan's queue buffer, metadata on the host
	Opt      *optim.SGD    // updates θ_q

	be      device.Backend
	xk      *gorgonia.Node // B×C×H×W, the key view
	keyPlan *graph.Plan

	xq, k, queueIn   *gorgonia.Node // B×C×H×W, B×D (an input here: no gradient to f_k), K×D
	draw             *gorgonia.Node // B×(3s+2s′) mixing draw, with mixing
	qLabels, kLabels *gorgonia.Node // B, K: the class oracle's labels
	loss             *hardneg.LossGraph
	train            *resnet.Training // the loss plan, ∂loss/∂θ_q, SGD

	unshuffle device.Buffer // B×B permutation matrix putting the keys back in batch order
	gathered  device.Buffer // every rank's keys, for EnqueueGathered; nil until then
	host      hostScratch
}

// New builds f_q (initialised from spec.Net.Seed), f_k as its copy, the
// loss with or without mixing, SGD over θ_q, and a queue of random unit
// keys; a trainer then restores any saved state into it.
func New(be device.Backend, spec Spec, mixing bool, sgd optim.SGDConfig) (*Model, error) {
	if spec.Net.EmbedDim <= 0 {
		return nil, fmt.Errorf("moco: the encoder needs a projection head (embedding dimension > 0)")
	}
	m := &Model{Spec: spec, be: be, Mixing: mixing && spec.Mix.S+spec.Mix.SPrime > 0}
	if err := m.buildQuery(sgd); err != nil {
		return nil, err
	}
	if err := m.buildKey(); err != nil {
		return nil, err
	}
	q, err := queue.NewDevice(be, m.train.Plan.Buffer(m.queueIn), spec.K, spec.Net.EmbedDim, spec.QueueSeed)
	if err != nil {
		return nil, err
	}
	m.Queue = q
	m.unshuffle = be.Alloc(device.Float32, spec.B*spec.B)
	m.host = newHostScratch(spec, m.Mixing)
	return m, nil
}

// buildQuery builds q = normalize(head(f_q(x_q))) and the loss, and
// compiles loss, logits and ∂loss/∂θ_q.
func (m *Model) buildQuery(sgd optim.SGDConfig) error {
	s, d := m.Spec, m.Spec.Net.EmbedDim
	g := gorgonia.NewGraph()
	m.xq = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(s.B, s.C, s.H, s.W), gorgonia.WithName("x_q"))
	net, err := resnet.Build(g, m.xq, s.Net, m.be)
	if err != nil {
		return err
	}
	m.EncoderQ = net // net.Embedding is q: B×D
	m.k = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.B, d), gorgonia.WithName("k"))
	m.queueIn = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.K, d), gorgonia.WithName("queue"))
	in := hardneg.Inputs{Query: net.Embedding, Key: m.k, Queue: m.queueIn}
	if m.Mixing {
		m.draw = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(s.B, 3*s.Mix.S+2*s.Mix.SPrime), gorgonia.WithName("mix_draw"))
		in.Draw = m.draw
	}
	if s.Mix.ClassOracle {
		m.qLabels = gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(s.B), gorgonia.WithName("query_labels"))
		m.kLabels = gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(s.K), gorgonia.WithName("queue_labels"))
		in.QueryLabels, in.QueueLabels = m.qLabels, m.kLabels
	}
	// l_pos = q·k: B×1; l_neg = q·Qᵀ: B×K. With mixing, Q̃_N: the N
	// largest l_neg per query (B×N queue indices); h = normalize(α·n_i +
	// (1−α)·n_j) for s pairs from Q̃_N and h′ = normalize(β·q + (1−β)·n_j)
	// for s′ (β ~ U(0, 0.5)), giving [q·h, q·h′]: B×(s+s′).
	// logits = [l_pos, l_neg, q·h, q·h′]/τ: B×(1+K+s+s′);
	// loss = mean over the batch of CE(logits, 0): a scalar.
	if m.loss, err = hardneg.Loss(in, s.Mix, m.Mixing); err != nil {
		return err
	}
	logits := gorgonia.Nodes{m.loss.LPos, m.loss.LNeg}
	if m.Mixing {
		logits = append(logits, m.loss.TopN, m.loss.Extra)
	}
	m.train, err = net.CompileTraining(m.be, m.loss.Loss, sgd, logits...)
	if err != nil {
		return err
	}
	m.Opt = m.train.Opt
	return nil
}

// buildKey builds f_k as a copy of f_q (MoCo: param_k.data.copy_(param_q.data)).
func (m *Model) buildKey() error {
	s := m.Spec
	g := gorgonia.NewGraph()
	m.xk = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(s.B, s.C, s.H, s.W), gorgonia.WithName("x_k"))
	net, err := resnet.Build(g, m.xk, s.Net, m.be)
	if err != nil {
		return err
	}
	m.EncoderK = net
	if err := m.EncoderQ.CopyTo(net); err != nil {
		return err
	}
	// f_k runs before the loss plan in each step and none of its
	// intermediate values outlive its run: they borrow the loss plan's.
	if m.keyPlan, err = graph.CompileBorrowing(g, m.be, m.train.Plan, net.Embedding); err != nil {
		return err
	}
	return net.Bind(m.keyPlan)
}

// Step runs one MoCo/MoCHi iteration on a batch up to the gradients: the
// momentum update of f_k, the keys, the loss and ∂loss/∂θ_q, and returns
// the loss. The caller then runs Opt and Enqueue. perm shuffles the key
// batch over the split-BN groups (ShuffleBN, from Shuffle); draw is the
// step's mixing draw; qLabels are the class oracle's labels.
func (m *Model) Step(xq, xk []float32, perm []int, draw *hardneg.MixDraw, qLabels []int) (float64, error) {
	s, be := m.Spec, m.be
	m.momentumUpdate()

	// k = normalize(head(f_k(x_k))): B×D, the batch shuffled so that split-BN
	// groups of keys and queries differ (image i goes to row perm[i]), then
	// put back in order on the device: k = P·k_shuffled with P[i, perm[i]] = 1
	m.host.shuffle(xk, perm, s)
	be.Upload(m.keyPlan.Buffer(m.xk), m.host.xShuffled)
	be.Upload(m.unshuffle, m.host.unshuffle)
	if err := m.keyPlan.Run(); err != nil {
		return 0, fmt.Errorf("key encoder: %w", err)
	}
	be.Gemm(false, false, s.B, s.Net.EmbedDim, s.B, 1, m.unshuffle, m.keyPlan.Buffer(m.EncoderK.Embedding), 0, m.train.Plan.Buffer(m.k))
	return m.lossStep(xq, draw, qLabels)
}

// momentumUpdate is θ_k ← m·θ_k + (1−m)·θ_q, before the keys are computed.
func (m *Model) momentumUpdate() {
	for i, p := range m.EncoderQ.Params {
		m.be.MomentumUpdate(float32(m.Spec.M), m.train.Plan.Buffer(p.Node), m.keyPlan.Buffer(m.EncoderK.Params[i].Node))
	}
}

// lossStep computes q = normalize(head(f_q(x_q))): B×D, the loss over the
// logits against the keys in place, and its gradients; it returns the loss.
func (m *Model) lossStep(xq []float32, draw *hardneg.MixDraw, qLabels []int) (float64, error) {
	be, plan := m.be, m.train.Plan
	be.Upload(plan.Buffer(m.xq), xq)
	if m.Mixing {
		m.host.draw = draw.Encode(m.host.draw)
		be.Upload(plan.Buffer(m.draw), m.host.draw)
	}
	if m.Spec.Mix.ClassOracle {
		if err := m.uploadLabels(qLabels); err != nil {
			return 0, err
		}
	}
	if err := plan.Run(); err != nil {
		return 0, fmt.Errorf("loss: %w", err)
	}
	be.Download(m.host.loss, plan.Buffer(m.loss.Loss))
	return float64(m.host.loss[0]), nil
}

// Enqueue writes the step's keys k at the queue pointer (after the update,
// as in MoCo's _dequeue_and_enqueue), device to device, with each key's
// image index and label.
func (m *Model) Enqueue(index, labels []int) error {
	return m.Queue.EnqueueBuffer(m.train.Plan.Buffer(m.k), m.queueMeta(index, labels))
}

// Keys copies the step's keys k (B×D, in batch order) to dst and returns it.
func (m *Model) Keys(dst []float32) []float32 {
	n := m.Spec.B * m.Spec.Net.EmbedDim
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	m.be.Download(dst, m.train.Plan.Buffer(m.k))
	return dst
}

// EnqueueKeys writes keys from the host (the keys of every data-parallel
// rank, gathered in rank order) at the queue pointer, with each key's image
// index and label: Enqueue for keys that are not all this model's.
func (m *Model) EnqueueKeys(keys []float32, index, labels []int) error {
	return m.Queue.Enqueue(keys, m.queueMeta(index, labels))
}

// queueMeta is the keys' image indices and labels as the queue stores
// them, in scratch memory the queue copies from.
func (m *Model) queueMeta(index, labels []int) []queue.Meta {
	meta := slices.Grow(m.host.meta[:0], len(index))[:len(index)]
	for i := range index {
		meta[i] = queue.Meta{Index: int64(index[i]), Label: int32(labels[i])}
	}
	m.host.meta = meta
	return meta
}
