package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/optim"
)

// MoCoConfig is a benchmark of the whole MoCo-v2 / MoCHi step as pkg/train
// runs it: the momentum update of f_k, the keys of the shuffled key batch,
// the queries, the loss (with MoCHi's synthetic negatives where Mix.S +
// Mix.SPrime > 0) and its gradient, SGD on f_q and the enqueue of the keys.
type MoCoConfig struct {
	Config                // the encoder (EmbedDim = D > 0), batch, steps, lr, weight decay, seed; Loss and Profile are not used
	K      int            // queue size
	M      float64        // key encoder momentum
	Mix    hardneg.Config // N, S, SPrime and Tau (τ); S = SPrime = 0 is MoCo-v2 alone
}

// MoCoStep is one compiled MoCo step on a fixed pair of random views; each
// Run draws its own ShuffleBN permutation and mixing, as the trainer does.
type MoCoStep struct {
	Model         *moco.Model
	xq, xk        []float32
	perm          []int
	draw          *hardneg.MixDraw // the mixing draw, redrawn each step in place
	index, labels []int
	rng           *rand.Rand
	lr            float64
	loss          float64
}

// NewMoCoStep builds the model of c on be.
func NewMoCoStep(c MoCoConfig, be device.Backend) (*MoCoStep, error) {
	if c.EmbedDim <= 0 || c.K < 1 {
		return nil, fmt.Errorf("bench: a MoCo step needs --embed-dim > 0 and K ≥ 1 (have %d, %d)", c.EmbedDim, c.K)
	}
	net, err := c.resnetConfig()
	if err != nil {
		return nil, err
	}
	spec := moco.Spec{Net: net, B: c.Batch, C: net.InChannels, H: c.Size, W: c.Size, K: c.K, M: c.M,
		Mix: c.Mix, QueueSeed: c.Seed + 1}
	model, err := moco.New(be, spec, true, optim.SGDConfig{Momentum: 0.9, WeightDecay: c.WeightDecay})
	if err != nil {
		return nil, err
	}
	s := &MoCoStep{Model: model, rng: rand.New(rand.NewPCG(c.Seed, 0x6d6f636f)), lr: c.LR,
		index: make([]int, c.Batch), labels: make([]int, c.Batch)}
	n := c.Batch * net.InChannels * c.Size * c.Size
	s.xq, s.xk = make([]float32, n), make([]float32, n)
	for i := range n {
		s.xq[i], s.xk[i] = float32(s.rng.NormFloat64()), float32(s.rng.NormFloat64())
	}
	for i := range s.index {
		s.index[i], s.labels[i] = i, -1
	}
	return s, nil
}

// Run is one training step: as pkg/train's, without data loading.
func (s *MoCoStep) Run() error {
	m := s.Model
	var draw *hardneg.MixDraw
	if m.Mixing {
		mix := m.Spec.Mix
		var err error
		if s.draw, err = hardneg.NextMixDraw(s.draw, s.rng, m.Spec.B, mix.N, mix.S, mix.SPrime); err != nil {
			return err
		}
		draw = s.draw
	}
	s.perm = moco.Shuffle(s.rng, m.Spec.B, s.perm)
	loss, err := m.Step(s.xq, s.xk, s.perm, draw, nil)
	if err != nil {
		return err
	}
	s.loss = loss
	m.Opt.Step(s.lr)
	return m.Enqueue(s.index, s.labels)
}

// Loss is the loss of the last step.
func (s *MoCoStep) Loss() (float64, error) { return s.loss, nil }

// RunMoCo trains c.Warmup untimed MoCo steps, then c.Steps timed ones, on be.
func RunMoCo(c MoCoConfig, be device.Backend) (Result, error) {
	if c.Profile {
		return Result{}, fmt.Errorf("bench: --profile times the ResNet step only; drop it for the MoCo step")
	}
	s, err := NewMoCoStep(c, be)
	if err != nil {
		return Result{}, err
	}
	defer s.Model.Free()
	r, err := measure(c.Config, be, s)
	r.Params = s.Model.EncoderQ.ParamCount()
	return r, err
}
