// Package graph holds mochi's own Gorgonia operators and the compiled
// execution plan that runs a Gorgonia graph on a compute backend.
//
// # Overview
//
// Gorgonia is the graph, shape and autodiff layer: a model is an
// *gorgonia.ExprGraph built from the constructors of this package (Conv2D,
// BatchNorm, ReLU, MaxPool2D, GlobalAvgPool, Linear, L2Normalize,
// SoftmaxCrossEntropy, Add, Dot), and gorgonia.Grad derives the backward graph
// through each op's SymDiff, which creates this package's backward ops. Every
// op, forward or backward, is a Kernel: it runs one or a few kernels of a
// device.Backend over flat buffers. Images are NCHW, weights are laid out as
// in PyTorch.
//
// Two executors run such a graph:
//
//   - Gorgonia's TapeMachine calls each op's Do, which wraps the tensors'
//     backing slices as CPU buffers and runs the same Kernel on the host
//     backend (Host). It allocates every value on every step and is the
//     reference executor in tests.
//   - Compile builds a Plan: it sorts the graph once, allocates every node's
//     buffer once on the chosen backend (inputs, constants and outputs their
//     own; the other values in one arena, placed by lifetime so that two
//     values live at the same step never share memory) and Run executes the
//     kernels in order without allocating.
//
// # Invariants
//
// Do and Exec are functions of their inputs, except BatchNorm, whose running
// statistics (and the batch statistics its backward reads) live in a BNState
// that belongs to exactly one BatchNorm node. Every parameter that changes
// what an op computes appears in its String, which is what WriteHash writes,
// so Gorgonia never merges two different ops.
package graph
