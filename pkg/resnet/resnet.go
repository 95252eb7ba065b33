package resnet

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// Param is one trainable tensor of a Model: its torchvision name and its
// node, whose value holds the weights.
type Param struct {
	Name string
	Node *gorgonia.Node
}

// Norm is one BatchNorm layer: its torchvision name (bn1,
// layer1.0.downsample.1, …) and the state that holds its running statistics.
type Norm struct {
	Name  string
	State *graph.BNState
}

// Model is a ResNet (and head) inside a Gorgonia graph.
type Model struct {
	Config Config // with defaults filled in

	Params []Param // in torchvision's named_parameters order
	Norms  []Norm  // in network order

	Features  *gorgonia.Node // N×FeatureDim, after the global average pool
	Embedding *gorgonia.Node // N×EmbedDim, L2-normalised; nil without head

	plan *graph.Plan // where the parameters live once bound; nil: the node values
}

// Build adds the network of cfg to g with input x (N×InChannels×H×W) and
// initialises its weights from cfg.Seed. The BatchNorm states live on be,
// which must be of the kind that will run the graph; nil means graph.Host(),
// the backend of Gorgonia's TapeMachine.
func Build(g *gorgonia.ExprGraph, x *gorgonia.Node, cfg Config, be device.Backend) (*Model, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if x.Dims() != 4 || x.Shape()[1] != cfg.InChannels {
		return nil, fmt.Errorf("resnet: input shape %v, want N×%d×H×W", x.Shape(), cfg.InChannels)
	}
	if n := x.Shape()[0]; n%cfg.BNGroups != 0 {
		return nil, fmt.Errorf("resnet: batch %d is not a multiple of the %d BatchNorm groups", n, cfg.BNGroups)
	}
	if be == nil {
		be = graph.Host()
	}
	b := &builder{g: g, be: be, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d6f636869)), m: &Model{Config: cfg}}
	if err := b.network(x); err != nil {
		return nil, err
	}
	return b.m, nil
}

// builder creates the layers in torchvision's order, so that parameters are
// listed and initialised in that order.
type builder struct {
	g   *gorgonia.ExprGraph
	be  device.Backend
	cfg Config
	rng *rand.Rand
	m   *Model
}

func (b *builder) network(x *gorgonia.Node) error {
	w := b.cfg.Width
	var err error
	// Stem: x N×Cin×H×W → N×w×H'×W'.
	if b.cfg.Stem == ImageNetStem {
		x, err = b.convBNReLU("conv1", "bn1", x, b.cfg.InChannels, w, 7, 2, 3, true)
		if err == nil {
			x, err = graph.MaxPool2D(x, 3, 2, 1)
		}
	} else {
		x, err = b.convBNReLU("conv1", "bn1", x, b.cfg.InChannels, w, 3, 1, 1, true)
	}
	if err != nil {
		return fmt.Errorf("resnet: stem: %w", err)
	}

	arch := stages[b.cfg.Depth]
	exp := expansion(arch.bottleneck)
	inplanes := w
	for s, blocks := range arch.blocks {
		planes := w << s // w, 2w, 4w, 8w
		for i := range blocks {
			stride := 1
			if i == 0 && s > 0 {
				stride = 2
			}
			name := fmt.Sprintf("layer%d.%d", s+1, i)
			if arch.bottleneck {
				x, err = b.bottleneck(name, x, inplanes, planes, stride)
			} else {
				x, err = b.basic(name, x, inplanes, planes, stride)
			}
			if err != nil {
				return fmt.Errorf("resnet: %s: %w", name, err)
			}
			inplanes = planes * exp
		}
	}

	// features: N×dim.
	if b.m.Features, err = graph.GlobalAvgPool(x); err != nil {
		return fmt.Errorf("resnet: average pool: %w", err)
	}
	if b.cfg.EmbedDim == 0 {
		return nil
	}
	// MoCo-v2 head: z = normalize(fc.2(relu(fc.0(features)))), z N×D.
	dim := inplanes
	h, err := b.linear("fc.0", b.m.Features, dim, dim)
	if err == nil {
		h, err = graph.ReLU(h)
	}
	if err == nil {
		h, err = b.linear("fc.2", h, dim, b.cfg.EmbedDim)
	}
	if err == nil {
		b.m.Embedding, err = graph.L2Normalize(h)
	}
	if err != nil {
		return fmt.Errorf("resnet: head: %w", err)
	}
	return nil
}

// basic is torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + identity).
func (b *builder) basic(name string, x *gorgonia.Node, inplanes, planes, stride int) (*gorgonia.Node, error) {
	y, err := b.convBNReLU(name+".conv1", name+".bn1", x, inplanes, planes, 3, stride, 1, true)
	if err != nil {
		return nil, err
	}
	last, err := b.convBN(name+".conv2", name+".bn2", y, planes, planes, 3, 1, 1)
	if err != nil {
		return nil, err
	}
	return b.residual(name, x, last, inplanes, planes, stride)
}

// bottleneck is torchvision's Bottleneck (v1.5, stride on the 3×3):
// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + identity).
func (b *builder) bottleneck(name string, x *gorgonia.Node, inplanes, planes, stride int) (*gorgonia.Node, error) {
	y, err := b.convBNReLU(name+".conv1", name+".bn1", x, inplanes, planes, 1, 1, 0, true)
	if err != nil {
		return nil, err
	}
	if y, err = b.convBNReLU(name+".conv2", name+".bn2", y, planes, planes, 3, stride, 1, true); err != nil {
		return nil, err
	}
	last, err := b.convBN(name+".conv3", name+".bn3", y, planes, planes*4, 1, 1, 0)
	if err != nil {
		return nil, err
	}
	return b.residual(name, x, last, inplanes, planes*4, stride)
}

// residual returns relu(bn(last) + identity), where identity is x or, when
// the shape changes, downsample(x) = bn(conv1×1/stride(x)): one
// BatchNormAddReLU node after the downsample's, whose parameters are
// created after last's (torchvision's order, which the seeded weights
// follow).
func (b *builder) residual(name string, x *gorgonia.Node, last convBN, inplanes, outplanes, stride int) (*gorgonia.Node, error) {
	identity := x
	if stride != 1 || inplanes != outplanes {
		var err error
		identity, err = b.convBNReLU(name+".downsample.0", name+".downsample.1", x, inplanes, outplanes, 1, stride, 0, false)
		if err != nil {
			return nil, err
		}
	}
	y, err := graph.BatchNormAddReLU(last.y, last.gamma, last.beta, identity, last.st)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", last.bn, err)
	}
	return y, nil
}

// convBN is a convolution's output y and the BatchNorm that follows it,
// its parameters and state created but not yet applied.
type convBN struct {
	bn          string
	y           *gorgonia.Node
	gamma, beta *gorgonia.Node
	st          *graph.BNState
}

// convBN is conv (no bias), then BatchNorm's parameters and state.
func (b *builder) convBN(conv, bn string, x *gorgonia.Node, cin, cout, k, stride, pad int) (convBN, error) {
	// Kaiming normal, mode fan_out, gain √2: std = √(2/(cout·k·k)).
	std := math.Sqrt(2 / float64(cout*k*k))
	w := b.param(conv+".weight", []int{cout, cin, k, k}, func() float64 { return std * b.rng.NormFloat64() })
	y, err := graph.Conv2D(x, w, stride, pad)
	if err != nil {
		return convBN{}, fmt.Errorf("%s: %w", conv, err)
	}
	gamma := b.param(bn+".weight", []int{cout}, func() float64 { return 1 })
	beta := b.param(bn+".bias", []int{cout}, func() float64 { return 0 })
	st := graph.NewBNState(b.be, cout)
	st.Momentum, st.Eps, st.Groups = float32(b.cfg.BNMomentum), float32(b.cfg.BNEps), b.cfg.BNGroups
	b.m.Norms = append(b.m.Norms, Norm{Name: bn, State: st})
	return convBN{bn: bn, y: y, gamma: gamma, beta: beta, st: st}, nil
}

// convBNReLU is conv (no bias) → BatchNorm → optional ReLU.
func (b *builder) convBNReLU(conv, bn string, x *gorgonia.Node, cin, cout, k, stride, pad int, relu bool) (*gorgonia.Node, error) {
	c, err := b.convBN(conv, bn, x, cin, cout, k, stride, pad)
	if err != nil {
		return nil, err
	}
	norm := graph.BatchNorm
	if relu {
		norm = graph.BatchNormReLU // one node: the ReLU runs inside the batch norm's passes
	}
	y, err := norm(c.y, c.gamma, c.beta, c.st)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bn, err)
	}
	return y, nil
}

// linear is torch.nn.Linear(in, out) with bias and torch's default
// initialisation: weight and bias uniform in ±1/√in.
func (b *builder) linear(name string, x *gorgonia.Node, in, out int) (*gorgonia.Node, error) {
	bound := 1 / math.Sqrt(float64(in))
	uniform := func() float64 { return bound * (2*b.rng.Float64() - 1) }
	w := b.param(name+".weight", []int{out, in}, uniform)
	bias := b.param(name+".bias", []int{out}, uniform)
	y, err := graph.Linear(x, w, bias)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

// param adds a parameter node named cfg.Prefix+name with values drawn from
// init in row-major order.
func (b *builder) param(name string, shape []int, init func() float64) *gorgonia.Node {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(init())
	}
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	node := gorgonia.NodeFromAny(b.g, t, gorgonia.WithName(b.cfg.Prefix+name))
	b.m.Params = append(b.m.Params, Param{Name: name, Node: node})
	return node
}
