// Package interop moves ResNet weights between mochi and PyTorch.
//
// # Overview
//
// A StateDict is torch's state_dict: tensors by name. Export turns a
// mochi encoder (parameters and BatchNorm running statistics, whose names
// are already torchvision's, see package resnet) into the state_dict of
// torchvision's resnet18/34/50 — convolution weights OIHW, BatchNorm
// weight, bias, running_mean, running_var (float32) and num_batches_tracked
// (int64, 0-d) — which WriteSafetensors and WriteNPZ store. Read opens the
// files people publish: PyTorch's torch.save output (zip or the legacy
// pickle format, read with github.com/nlpodyssey/gopickle, which rebuilds
// tensors and never runs code from the file) and safetensors. Import maps
// such a state_dict onto a mochi network: it recognises the layout of
// facebookresearch/moco checkpoints (module.encoder_q.*, module.encoder_k.*,
// module.queue, with MoCo-v2's MLP head fc.0/fc.2), DataParallel's
// "module." and plain torchvision, checks every shape against the network,
// and reports the keys it ignored.
//
// # Invariants
//
// A tensor that the network needs and the file lacks, a model tensor the
// network does not have, or a shape that differs is an error naming the
// file's key; Import never loads part of a network. Bad files (truncated,
// foreign, with unexpected pickle types) are errors naming the file, never
// panics.
package interop
