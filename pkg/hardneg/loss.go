package hardneg

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/graph"
)

// Inputs are the graph nodes the loss reads, all Float32; labels are
// float-coded integers, −1 for unknown.
type Inputs struct {
	Query *G.Node // B×D: q = normalize(head(f_q(x_q)))
	Key   *G.Node // B×D: k = normalize(head(f_k(x_k))); the trainer does not differentiate it
	Queue *G.Node // K×D: the queue; a constant for the gradient
	Draw  *G.Node // B×(3s+2s′): MixDraw.Tensor; needed only when mixing

	QueryLabels *G.Node // B: the queries' labels, with Config.ClassOracle
	QueueLabels *G.Node // K: the queue entries' labels, with Config.ClassOracle

	// RecordStats makes the run copy the values Stats reads (it copies the
	// B×K similarities every step).
	RecordStats bool
}

// LossGraph is the loss graph with its intermediate nodes.
type LossGraph struct {
	Loss  *G.Node // scalar: mean over the batch of −log softmax(logits/τ)_0
	LPos  *G.Node // B: q·k
	LNeg  *G.Node // B×K: q·Qᵀ
	TopN  *G.Node // int32 B×N: queue indices of Q̃_N in index order; nil without mixing
	Extra *G.Node // B×(s+s′): [q·h, q·h′]; nil without mixing

	cfg                     Config
	dims                    Dims
	lpos, lneg, topN, extra G.Value // copies of the forward values, with RecordStats
	queryLabels, queueLabs  G.Value
}

// Loss builds MoCo-v2's InfoNCE loss, with MoCHi's synthetic hard negatives
// when mix is true (and s + s′ > 0; see Config.Mixes):
//
//	logits = [q·k, q·n_1 … q·n_K, q·h_1 … q·h_s, q·h′_1 … q·h′_s′] / τ,  label 0.
func Loss(in Inputs, cfg Config, mix bool) (*LossGraph, error) {
	if in.Query == nil || in.Key == nil || in.Queue == nil {
		return nil, fmt.Errorf("hardneg: Loss needs the q, k and queue nodes")
	}
	qs, queue := in.Query.Shape(), in.Queue.Shape()
	if len(qs) != 2 || len(queue) != 2 {
		return nil, fmt.Errorf("hardneg: q is %v and the queue %v; want B×D and K×D matrices", qs, queue)
	}
	if err := cfg.Validate(queue[0]); err != nil {
		return nil, err
	}
	mix = mix && cfg.S+cfg.SPrime > 0
	if cfg.ClassOracle && (in.QueryLabels == nil || in.QueueLabels == nil) {
		return nil, fmt.Errorf("hardneg: the class oracle needs the QueryLabels and QueueLabels nodes")
	}
	if mix && in.Draw == nil {
		return nil, fmt.Errorf("hardneg: mixing needs the Draw node (a B×(3s+2s′) tensor from MixDraw.Tensor)")
	}
	for _, n := range []*G.Node{in.Query, in.Key, in.Queue, in.Draw, in.QueryLabels, in.QueueLabels} {
		if n != nil && n.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("hardneg: node %s is %v; the loss's ops run on Float32 (labels float-coded)", n.Name(), n.Dtype())
		}
	}
	l := &LossGraph{cfg: cfg, dims: Dims{B: qs[0], K: queue[0], D: qs[1], N: cfg.N}}
	var labelNodes G.Nodes
	if cfg.ClassOracle {
		labelNodes = G.Nodes{in.QueryLabels, in.QueueLabels}
	}

	var err error
	// positive logits: B
	if l.LPos, err = graph.Apply(newPositiveOp(l.dims.B, l.dims.D), in.Query, in.Key); err != nil {
		return nil, err
	}
	// negative logits: B×K
	if l.LNeg, err = graph.Apply(newNegativeOp(l.dims.B, l.dims.K, l.dims.D), in.Query, in.Queue); err != nil {
		return nil, err
	}
	logits := G.Nodes{l.LPos, l.LNeg}
	if mix {
		l.dims.S, l.dims.SPrime = cfg.S, cfg.SPrime
		// Q̃_N, the N hardest negatives per query: B×N
		if l.TopN, err = graph.Apply(newTopNOp(l.dims.B, l.dims.K, cfg.N, cfg.ClassOracle), append(G.Nodes{l.LNeg}, labelNodes...)...); err != nil {
			return nil, err
		}
		// synthetic negatives' logits [q·h, q·h′]: B×(s+s′)
		mixer := newMixOp(l.dims, cfg.GradThroughHPrime)
		if l.Extra, err = graph.Apply(mixer, in.Query, in.Queue, l.LNeg, l.TopN, in.Draw); err != nil {
			return nil, err
		}
		logits = append(logits, l.Extra)
	}
	// InfoNCE: cross-entropy of logits/τ with label 0, mean over the batch
	ce := newInfoNCEOp(l.dims.B, l.dims.K, l.dims.E(), cfg.Tau, mix, cfg.ClassOracle)
	if l.Loss, err = graph.Apply(ce, append(logits, labelNodes...)...); err != nil {
		return nil, err
	}
	if in.RecordStats {
		G.Read(l.LPos, &l.lpos)
		G.Read(l.LNeg, &l.lneg)
		if mix {
			G.Read(l.TopN, &l.topN)
			G.Read(l.Extra, &l.extra)
		}
		if cfg.ClassOracle {
			G.Read(in.QueryLabels, &l.queryLabels)
			G.Read(in.QueueLabels, &l.queueLabs)
		}
	}
	return l, nil
}

// Stats computes the step's Stats from the values recorded by the last run
// of the machine; the loss must have been built with RecordStats.
func (l *LossGraph) Stats() (Stats, error) {
	if l.lneg == nil {
		return Stats{}, fmt.Errorf("hardneg: no recorded values; build the loss with Inputs.RecordStats and run the machine first")
	}
	f32 := func(v G.Value) []float32 { return v.Data().([]float32) }
	var sel []int32
	var extra []float32
	if l.extra != nil {
		sel, extra = l.topN.Data().([]int32), f32(l.extra)
	}
	var lab Labels
	if l.cfg.ClassOracle {
		lab = Labels{Query: labels(f32(l.queryLabels)), Queue: labels(f32(l.queueLabs))}
	}
	return ComputeStats(f32(l.lpos), f32(l.lneg), sel, extra, lab, l.dims, l.cfg.Tau), nil
}

// labels converts float-coded labels (exact integers) to int32.
func labels(x []float32) []int32 {
	out := make([]int32, len(x))
	for i, v := range x {
		out[i] = int32(math.Round(float64(v)))
	}
	return out
}
