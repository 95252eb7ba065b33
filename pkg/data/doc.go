// Package data loads image datasets and turns them into the two augmented views
// that MoCo-v2 / MoCHi pretraining consumes.
//
// # Overview
//
// Open reads a dataset described by a Spec: MNIST and Fashion-MNIST idx files
// (gzip or raw) and CIFAR-10 and CIFAR-100 binary batches into memory as uint8
// C×H×W images (known files are checked against their SHA-256), and ImageFolder
// trees (root/<split>/<class>/…) as a streamed ImageFolder: an index of paths
// and labels, cached beside the data, whose images the loaders' workers decode
// when needed (JPEG through libjpeg-turbo, with DCT-domain reduction when the
// crop is shrunk anyway; Go's decoders for the rest, and for JPEGs too
// under the purego tag unless turbojpeg is also set). Training views crop the full-resolution image (RandomResizedCrop)
// and resize it with PIL's antialiased bilinear filter; as a Dataset an
// ImageFolder yields torchvision's evaluation transform, Resize(256·S/224)
// then CenterCrop(S).
//
// TwoViewLoader shuffles the dataset once per epoch from (seed, epoch), cuts it
// into drop-last batches, and for every image draws two independent MoCo-v2
// augmentations (Chen et al., "Improved Baselines with Momentum Contrastive
// Learning", arXiv 2003.04297):
//
//	RandomResizedCrop(scale 0.2–1, ratio 3/4–4/3) → ColorJitter(0.4,0.4,0.4,0.1) p=0.8
//	→ RandomGrayscale p=0.2 → GaussianBlur σ∈[0.1,2] p=0.5 → HorizontalFlip p=0.5
//	→ ToTensor → Normalize(mean, std)
//
// The batches come out as float32 NCHW slices (query view, key view) produced by
// worker goroutines with a bounded prefetch. EvalBatches gives single-view,
// unaugmented batches for kNN monitoring, linear evaluation and feature extraction.
//
// # Invariants
//
// A batch depends only on (seed, epoch, step): the shuffle comes from (seed,
// epoch) and every sample's random numbers from its own stream seeded by (seed,
// epoch, position in the epoch), never from an RNG shared between workers, so the
// output is the same whatever the number of workers.
//
// Augmentation works in float32 on C×H×W values in [0, 1] with torchvision's
// semantics; for one-channel images only brightness and contrast jitter apply
// and RandomGrayscale is the identity.
package data
