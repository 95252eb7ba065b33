// Package resnet builds the ResNet backbones of mochi and MoCo-v2's
// projection head as Gorgonia graphs of package graph's operators.
//
// # Overview
//
// Build adds a ResNet-18/34 (BasicBlock) or ResNet-50 (Bottleneck) to a
// graph, with either the ImageNet stem (7×7/2 convolution, BatchNorm, ReLU,
// 3×3/2 max-pool) or the small-image stem of MoCo's CIFAR demo (3×3/1
// convolution, BatchNorm, ReLU, no max-pool), a width multiplier (stages of
// w, 2w, 4w, 8w channels; torchvision's w is 64), 1 or 3 input channels and
// split-BN. MoCo-v2's head follows the global average pool:
//
//	z = normalize(fc.2(relu(fc.0(features))))   // fc.0: dim→dim, fc.2: dim→D
//
// # Invariants
//
// Parameters carry torchvision's names (conv1.weight, bn1.weight,
// layer1.0.conv1.weight, layer2.0.downsample.0.weight, fc.0.weight, …) and
// come in torchvision's named_parameters order, so weights move between mochi
// and PyTorch by name. Initialisation is torchvision's (Kaiming normal with
// fan_out for convolutions, γ = 1 and β = 0 for BatchNorm, torch's default
// uniform(±1/√in) for Linear), drawn from a PCG generator seeded by
// Config.Seed, never from the clock: equal seeds give equal weights.
package resnet
