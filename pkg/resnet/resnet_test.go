package resnet

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// input returns an input node x N×C×H×W with standard normal values.
func input(g *gorgonia.ExprGraph, name string, seed uint64, shape ...int) *gorgonia.Node {
	rng := rand.New(rand.NewPCG(seed, 2))
	data := make([]float32, tensor.Shape(shape).TotalSize())
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return gorgonia.NodeFromAny(g, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data)), gorgonia.WithName(name))
}

func build(t testing.TB, cfg Config, shape ...int) (*gorgonia.ExprGraph, *Model) {
	t.Helper()
	g := gorgonia.NewGraph()
	m, err := Build(g, input(g, "x", 1, shape...), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g, m
}

// TestParamCount compares with torchvision: resnet18/34/50 have 11,689,512,
// 21,797,672 and 25,557,032 parameters with their 1000-class fc
// (512·1000+1000 = 513,000 and 2048·1000+1000 = 2,049,000 of them).
func TestParamCount(t *testing.T) {
	head := func(dim, d int) int { return dim*dim + dim + d*dim + d }
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{Depth: 18}, 11_689_512 - 513_000},
		{Config{Depth: 34}, 21_797_672 - 513_000},
		{Config{Depth: 50}, 25_557_032 - 2_049_000},
		{Config{Depth: 18, EmbedDim: 128}, 11_689_512 - 513_000 + head(512, 128)},
		// The small stem's 3×3 convolution has 64·3·3·3 instead of 64·3·7·7 weights.
		{Config{Depth: 18, Stem: SmallStem}, 11_689_512 - 513_000 - 64*3*(49-9)},
		{Config{Depth: 50, EmbedDim: 128}, 25_557_032 - 2_049_000 + head(2048, 128)},
	} {
		if testing.Short() && tc.cfg.Depth != 18 {
			continue
		}
		_, m := build(t, tc.cfg, 2, 3, 32, 32)
		if got := m.ParamCount(); got != tc.want {
			t.Errorf("depth %d stem %v head %d: %d parameters, torchvision's count gives %d",
				tc.cfg.Depth, tc.cfg.Stem, tc.cfg.EmbedDim, got, tc.want)
		}
	}
}

// TestParamNames checks torchvision's names and order on ResNet-18 and the
// bottleneck's downsample in ResNet-50.
func TestParamNames(t *testing.T) {
	_, m := build(t, Config{Depth: 18, EmbedDim: 16, Width: 4}, 2, 3, 16, 16)
	var names []string
	for _, p := range m.Params {
		names = append(names, p.Name)
	}
	wantStart := []string{"conv1.weight", "bn1.weight", "bn1.bias",
		"layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias",
		"layer1.0.conv2.weight", "layer1.0.bn2.weight", "layer1.0.bn2.bias"}
	if !slices.Equal(names[:len(wantStart)], wantStart) {
		t.Errorf("first names %v, want %v", names[:len(wantStart)], wantStart)
	}
	wantEnd := []string{"layer4.1.bn2.bias", "fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
	if !slices.Equal(names[len(names)-len(wantEnd):], wantEnd) {
		t.Errorf("last names %v, want %v", names[len(names)-len(wantEnd):], wantEnd)
	}
	// 1 stem conv + 8 blocks·2 convs + 3 downsamples, each conv with a BN (3 tensors), + head 4.
	if len(names) != (1+16+3)*3+4 {
		t.Errorf("%d parameter tensors, want %d", len(names), (1+16+3)*3+4)
	}
	i := slices.Index(names, "layer2.0.downsample.0.weight")
	if i < 0 || names[i-1] != "layer2.0.bn2.bias" || names[i+1] != "layer2.0.downsample.1.weight" {
		t.Errorf("layer2.0.downsample misplaced at %d: %v", i, names[max(i-1, 0):i+2])
	}
	if slices.Contains(names, "layer1.0.downsample.0.weight") {
		t.Error("ResNet-18's layer1.0 has a downsample; torchvision's has none")
	}
	shapes := m.Shapes()
	for name, want := range map[string][]int{
		"conv1.weight": {4, 3, 7, 7}, "layer2.0.downsample.0.weight": {8, 4, 1, 1},
		"layer4.1.conv2.weight": {32, 32, 3, 3}, "fc.0.weight": {32, 32}, "fc.2.weight": {16, 32}, "fc.2.bias": {16},
	} {
		if !slices.Equal(shapes[name], want) {
			t.Errorf("%s: shape %v, want %v", name, shapes[name], want)
		}
	}

	_, m50 := build(t, Config{Depth: 50, Width: 2}, 2, 3, 32, 32)
	shapes = m50.Shapes()
	for name, want := range map[string][]int{
		"layer1.0.conv1.weight": {2, 2, 1, 1}, "layer1.0.conv3.weight": {8, 2, 1, 1},
		"layer1.0.downsample.0.weight": {8, 2, 1, 1}, "layer2.0.conv1.weight": {4, 8, 1, 1},
		"layer4.2.conv3.weight": {64, 16, 1, 1},
	} {
		if !slices.Equal(shapes[name], want) {
			t.Errorf("ResNet-50 %s: shape %v, want %v", name, shapes[name], want)
		}
	}
}

func TestOutputShapes(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		in      []int
		feature int
	}{
		{Config{Depth: 18, Stem: SmallStem, Width: 8, EmbedDim: 16}, []int{4, 3, 32, 32}, 64},
		{Config{Depth: 18, Stem: SmallStem, Width: 8, InChannels: 1, EmbedDim: 16, BNGroups: 2}, []int{4, 1, 28, 28}, 64},
		{Config{Depth: 34, Stem: ImageNetStem, Width: 4}, []int{2, 3, 64, 64}, 32},
		{Config{Depth: 50, Stem: ImageNetStem, Width: 4, InChannels: 1, EmbedDim: 8}, []int{2, 1, 64, 64}, 128},
		{Config{Depth: 50, Stem: SmallStem, Width: 2, EmbedDim: 8}, []int{2, 3, 16, 16}, 64},
	} {
		_, m := build(t, tc.cfg, tc.in...)
		if got := m.Config.FeatureDim(); got != tc.feature {
			t.Errorf("%+v: FeatureDim %d, want %d", tc.cfg, got, tc.feature)
		}
		if got := m.Features.Shape(); !slices.Equal(got, tensor.Shape{tc.in[0], tc.feature}) {
			t.Errorf("%+v: features %v, want %d×%d", tc.cfg, got, tc.in[0], tc.feature)
		}
		if tc.cfg.EmbedDim == 0 {
			if m.Embedding != nil {
				t.Errorf("%+v: embedding without head", tc.cfg)
			}
			continue
		}
		if got := m.Embedding.Shape(); !slices.Equal(got, tensor.Shape{tc.in[0], tc.cfg.EmbedDim}) {
			t.Errorf("%+v: embedding %v, want %d×%d", tc.cfg, got, tc.in[0], tc.cfg.EmbedDim)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		in  []int
	}{
		{Config{Depth: 20}, []int{2, 3, 32, 32}},
		{Config{Depth: 18, InChannels: 2}, []int{2, 2, 32, 32}},
		{Config{Depth: 18, InChannels: 1}, []int{2, 3, 32, 32}},
		{Config{Depth: 18, BNGroups: 3}, []int{4, 3, 32, 32}},
		{Config{Depth: 18, Width: -8}, []int{2, 3, 32, 32}},
		{Config{Depth: 18, Stem: Stem(5)}, []int{2, 3, 32, 32}},
	} {
		g := gorgonia.NewGraph()
		if _, err := Build(g, input(g, "x", 1, tc.in...), tc.cfg, nil); err == nil {
			t.Errorf("%+v on %v: no error", tc.cfg, tc.in)
		}
	}
}

// TestInit checks torchvision's initialisation statistics: convolution
// weights N(0, 2/fan_out), BatchNorm γ = 1, β = 0, Linear U(±1/√in).
func TestInit(t *testing.T) {
	_, m := build(t, Config{Depth: 18, Stem: SmallStem, EmbedDim: 128, Seed: 3}, 2, 3, 32, 32)
	w := m.Weights()
	shapes := m.Shapes()
	for _, p := range m.Params {
		v, s := w[p.Name], shapes[p.Name]
		mean, std, maxAbs := moments(v)
		switch {
		case len(s) == 4:
			want := math.Sqrt(2 / float64(s[0]*s[2]*s[3]))
			// The sample std of n normals is off by about 1/√(2n) relatively;
			// 5 of those (n ≥ 1728) is under 9%.
			tol := 5 / math.Sqrt(2*float64(len(v)))
			if math.Abs(std/want-1) > tol || math.Abs(mean) > 5*want/math.Sqrt(float64(len(v))) {
				t.Errorf("%s: mean %.4g std %.4g, Kaiming fan_out wants 0 and %.4g (tol %.2g)", p.Name, mean, std, want, tol)
			}
		case p.Name[:2] == "fc":
			bound := 1 / math.Sqrt(float64(shapes["fc.0.weight"][1]))
			if maxAbs > bound {
				t.Errorf("%s: |w| reaches %g > 1/√in = %g", p.Name, maxAbs, bound)
			}
			if len(v) > 1000 && math.Abs(std/(bound/math.Sqrt(3))-1) > 0.05 {
				t.Errorf("%s: std %g, U(±%g) has %g", p.Name, std, bound, bound/math.Sqrt(3))
			}
		default:
			want := 0.0
			if p.Name[len(p.Name)-6:] == "weight" {
				want = 1
			}
			if mean != want || std != 0 {
				t.Errorf("%s: BatchNorm parameter mean %g std %g, want constant %g", p.Name, mean, std, want)
			}
		}
	}

	_, same := build(t, Config{Depth: 18, Stem: SmallStem, EmbedDim: 128, Seed: 3}, 2, 3, 32, 32)
	_, other := build(t, Config{Depth: 18, Stem: SmallStem, EmbedDim: 128, Seed: 4}, 2, 3, 32, 32)
	if !slices.Equal(same.Weights()["layer3.1.conv2.weight"], w["layer3.1.conv2.weight"]) {
		t.Error("equal seeds gave different weights")
	}
	if slices.Equal(other.Weights()["layer3.1.conv2.weight"], w["layer3.1.conv2.weight"]) {
		t.Error("different seeds gave equal weights")
	}
}

func moments(v []float32) (mean, std, maxAbs float64) {
	for _, x := range v {
		mean += float64(x)
		maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, math.Sqrt(std / float64(len(v))), maxAbs
}

func TestWeightsRoundTrip(t *testing.T) {
	cfg := Config{Depth: 18, Stem: SmallStem, Width: 4, EmbedDim: 8, Seed: 1}
	_, a := build(t, cfg, 2, 3, 8, 8)
	cfg.Seed = 2
	_, b := build(t, cfg, 2, 3, 8, 8)
	wa := a.Weights()
	if err := b.LoadWeights(wa); err != nil {
		t.Fatal(err)
	}
	wb := b.Weights()
	for name, v := range wa {
		if !slices.Equal(wb[name], v) {
			t.Fatalf("%s differs after LoadWeights", name)
		}
	}
	wa["fc.2.bias"][0] += 1
	if b.Weights()["fc.2.bias"][0] == wa["fc.2.bias"][0] {
		t.Error("Weights returned memory shared with the model")
	}

	bad := a.Weights()
	bad["fc.2.bias"] = bad["fc.2.bias"][1:]
	if err := b.LoadWeights(bad); err == nil {
		t.Error("LoadWeights accepted a tensor of the wrong size")
	}
	delete(bad, "fc.2.bias")
	if err := b.LoadWeights(bad); err == nil {
		t.Error("LoadWeights accepted a missing tensor")
	}
	bad["fc.2.bias.extra"] = make([]float32, 8)
	if err := b.LoadWeights(bad); err == nil {
		t.Error("LoadWeights accepted an unknown tensor")
	}

	stats := a.RunningStats()
	stats["layer2.0.downsample.1.running_mean"][1] = 0.5
	if err := b.LoadRunningStats(stats); err != nil {
		t.Fatal(err)
	}
	if got := b.RunningStats()["layer2.0.downsample.1.running_mean"][1]; got != 0.5 {
		t.Errorf("running mean after load: %g, want 0.5", got)
	}
	if got := b.RunningStats()["bn1.running_var"][0]; got != 1 {
		t.Errorf("initial running variance %g, want 1", got)
	}
}

// TestClone runs a model and its clone, built in the same graph, on the
// same input: the embeddings must be equal, and changing the original
// afterwards must leave the clone alone.
func TestClone(t *testing.T) {
	g := gorgonia.NewGraph()
	cfg := Config{Depth: 18, Stem: SmallStem, Width: 4, EmbedDim: 8, Seed: 9}
	q, err := Build(g, input(g, "xq", 5, 4, 3, 8, 8), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := q.Clone(g, input(g, "xk", 5, 4, 3, 8, 8), "k.", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.AllNodes()) < 2*len(q.Params) {
		t.Fatal("the clone's parameters were merged with the original's")
	}
	vm := gorgonia.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	zq := q.Embedding.Value().Data().([]float32)
	zk := k.Embedding.Value().Data().([]float32)
	if !slices.Equal(zq, zk) {
		t.Errorf("clone's embedding differs:\n%v\n%v", zq[:8], zk[:8])
	}
	values(q.Params[0].Node)[0] += 1
	if values(k.Params[0].Node)[0] == values(q.Params[0].Node)[0] {
		t.Error("the clone shares its weights with the original")
	}
}
