package resnet_test

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// A MoCo-v2 encoder for CIFAR: ResNet-18 with the 3×3 stem and the MLP head,
// 11,176,512 − 64·3·(7·7−3·3) backbone parameters plus 512·512+512 and
// 128·512+128 in the head.
func ExampleBuild() {
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(8, 3, 32, 32), gorgonia.WithName("x")) // x: B×3×32×32
	m, err := resnet.Build(g, x, resnet.Config{Depth: 18, Stem: resnet.SmallStem, EmbedDim: 128, Seed: 1}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("features", m.Features.Shape(), "embedding", m.Embedding.Shape())
	fmt.Println(m.ParamCount(), "parameters; first", m.Params[0].Name, "last", m.Params[len(m.Params)-1].Name)
	// Output:
	// features (8, 512) embedding (8, 128)
	// 11497152 parameters; first conv1.weight last fc.2.bias
}
