// Package device defines the compute backend that runs mochi's heavy
// operators: kernels over flat float32 (and int32) buffers that live in the
// backend's memory (host memory for the CPU backend, GPU memory for the CUDA
// backend), grouped by job into the interfaces a backend implements: Core
// (buffers, transfers, GEMM, elementwise and row kernels, the optimizer
// updates), Layers (the network's layers and their backwards) and
// Contrastive (MoCHi's top-N, mixing and class-oracle masking). Backend is
// all three, what training needs; a package that needs less takes less
// (pkg/optim and pkg/queue take a Core). Optional abilities are small
// interfaces found by a type assertion (ConvTF32, BatchNormReLU,
// BatchNormAddReLU, Blocked).
//
// The rest of the program sees only these interfaces. The CPU backend
// (package device/cpu) is the ground truth; every other backend must pass the
// same conformance suite (package device/devicetest) within a stated tolerance.
//
// # Conventions
//
// All tensors are dense and row-major; images are NCHW. Shapes are passed
// explicitly to every kernel and every buffer must hold at least the elements
// its shape implies. Backward kernels overwrite their gradient outputs (they
// never accumulate); the graph adds gradients where a value is used twice.
//
// # Errors
//
// Kernels do not return errors: a backend records the first failure (a
// failed launch, an out-of-memory allocation) and reports it from Sync, like
// a CUDA stream's sticky error. Callers check Sync once per step.
package device

import "github.com/mochi-ssl/mochi/internal/enum"

// DType is the element type of a Buffer.
type DType int

// The element types a backend stores.
const (
	Float32 DType = iota
	Int32
)

func (d DType) String() string { return enum.Name(d, "float32", "int32") }

// Buffer is a flat array of Len elements of one DType in a backend's memory.
// Only the backend that allocated a buffer may read or write it.
type Buffer interface {
	Len() int
	DType() DType
}

// ConvShape describes a 2-D convolution without groups or dilation:
// input x N×C×H×W, filter w K×C×R×S, output y N×K×OutH()×OutW().
// XBlock and YBlock are the layouts of x (dx) and y (dy): 0 for NCHW, else
// a channel block (see Blocked); filters are always K×C×R×S.
type ConvShape struct {
	N, C, H, W     int // input batch, channels, height, width
	K, R, S        int // output channels, filter height, filter width
	Stride, Pad    int // same in both spatial directions
	XBlock, YBlock int // 0: NCHW; else x's, y's channel block
}

// OutH is the output height: (H + 2·Pad − R)/Stride + 1.
func (s ConvShape) OutH() int { return (s.H+2*s.Pad-s.R)/s.Stride + 1 }

// OutW is the output width: (W + 2·Pad − S)/Stride + 1.
func (s ConvShape) OutW() int { return (s.W+2*s.Pad-s.S)/s.Stride + 1 }

// BNShape describes a batch normalisation over x N×C×HW (HW = H·W, 1 for
// a fully connected layer). Groups splits the batch into that many equal
// consecutive groups with their own statistics (split-BN, which stands in
// for MoCo's ShuffleBN on one device); Groups = 1 is ordinary BatchNorm.
// N must be a multiple of Groups. Block is the layout of x, y, dy, dx:
// 0 for N×C×HW, else a channel block (see Blocked).
type BNShape struct {
	N, C, HW, Groups int
	Block            int
}

// PoolShape describes a max pooling with a Size×Size window:
// input N×C×H×W, output N×C×OutH()×OutW(). Padding counts as −∞. Block
// is the layout of x, y, dy, dx: 0 for NCHW, else a channel block (see
// Blocked).
type PoolShape struct {
	N, C, H, W        int
	Size, Stride, Pad int
	Block             int
}

// OutH is the pooled height: (H + 2·Pad − Size)/Stride + 1.
func (s PoolShape) OutH() int { return (s.H+2*s.Pad-s.Size)/s.Stride + 1 }

// OutW is the pooled width: (W + 2·Pad − Size)/Stride + 1.
func (s PoolShape) OutW() int { return (s.W+2*s.Pad-s.Size)/s.Stride + 1 }

// SGDParams are torch.optim.SGD's hyper-parameters for one update:
// g = grad + WeightDecay·p; v = Momentum·v + g;
// p = p − LR·(g + Momentum·v) with Nesterov, p − LR·v without.
type SGDParams struct {
	LR, Momentum, WeightDecay float32
	Nesterov                  bool
}

// MixShape describes the MoCHi synthetic negatives of one step: B queries
// of dimension D against a queue of K keys, of which each query's top N are
// mixed into S negative–negative and SPrime query–negative negatives.
type MixShape struct {
	B, D, K, N, S, SPrime int
}

// DrawCols is the width of a row of the mixing draw: 3·S + 2·SPrime.
func (s MixShape) DrawCols() int { return 3*s.S + 2*s.SPrime }

// Backend is a device that stores buffers and runs every kernel training
// needs: Core, Layers and Contrastive.
//
// Shapes are listed in each method's comment; "(out)" marks a buffer the
// kernel writes, everything else is read only. Outputs never alias inputs
// unless a comment allows it.
type Backend interface {
	Core
	Layers
	Contrastive
}

// Core is what every backend implements: buffers and transfers, the sticky
// error, and the BLAS-like, elementwise and row kernels (with the optimizer's
// updates, which are elementwise).
type Core interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string

	// Alloc returns a zero-filled buffer of n elements.
	Alloc(dt DType, n int) Buffer
	// Free releases a buffer; using it afterwards is an error.
	Free(b Buffer)
	// View returns elements [off, off+n) of b, sharing its memory.
	View(b Buffer, off, n int) Buffer
	// Upload copies host data into dst (len(src) ≤ dst.Len()).
	Upload(dst Buffer, src []float32)
	// UploadInt32 copies host data into an Int32 buffer.
	UploadInt32(dst Buffer, src []int32)
	// Download copies src into host memory (len(dst) ≤ src.Len()).
	Download(dst []float32, src Buffer)
	// DownloadInt32 copies an Int32 buffer into host memory.
	DownloadInt32(dst []int32, src Buffer)
	// Sync waits for queued work and returns the first error since the
	// previous Sync.
	Sync() error

	// Copy: dst = src, n = src.Len() ≤ dst.Len().
	Copy(dst, src Buffer)
	// Fill: x[i] = v for every element.
	Fill(x Buffer, v float32)
	// Scale: x = alpha·x.
	Scale(alpha float32, x Buffer)
	// Axpy: y = alpha·x + y over x.Len() elements.
	Axpy(alpha float32, x, y Buffer)
	// Add: out = a + b elementwise over out.Len() elements (out may alias a or b).
	Add(a, b, out Buffer)
	// Sum: out[0] = Σ x.
	Sum(x, out Buffer)

	// Gemm: c = alpha·op(a)·op(b) + beta·c with op(a) m×k, op(b) k×n, c m×n,
	// op(x) = xᵀ when the trans flag is set (a is then stored k×m). With
	// beta = 0, c is not read (BLAS convention: NaN in c does not propagate).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a, b Buffer, beta float32, c Buffer)
	// AddRowVector: y[r,c] += v[c] for y rows×cols (bias of a linear layer).
	AddRowVector(rows, cols int, v, y Buffer)
	// SumRows: out[c] = Σ_r x[r,c] for x rows×cols (bias gradient).
	SumRows(rows, cols int, x, out Buffer)
	// RowDot: out[r] = Σ_c a[r,c]·b[r,c] for a, b rows×cols (MoCo's l_pos).
	RowDot(rows, cols int, a, b, out Buffer)

	// ScaleRows: out[r,c] (out) = g[r]·x[r,c] for x rows×cols and g rows
	// (out may alias x). With rows = 1 it scales a whole buffer by a scalar
	// that stays in device memory (an upstream gradient).
	ScaleRows(rows, cols int, g, x, out Buffer)
	// CopyCols: dst[r, dstOff+c] = src[r, srcOff+c] for r < rows, c < n, with
	// src rows×srcCols and dst rows×dstCols; the other elements of dst are
	// unchanged. It concatenates column blocks (MoCo's [l_pos | l_neg | extra]
	// logits) and takes them apart again.
	CopyCols(rows, srcCols, srcOff, dstCols, dstOff, n int, src, dst Buffer)

	// SGDStep updates param and velocity in place with grad (see SGDParams).
	SGDStep(p SGDParams, param, grad, velocity Buffer)
	// MomentumUpdate: dst = m·dst + (1−m)·src (the key encoder's update).
	MomentumUpdate(m float32, src, dst Buffer)
}

// Layers are the network's layers and their backwards: convolution, batch
// normalisation, ReLU, pooling, L2 normalisation and the softmax
// cross-entropy.
type Layers interface {
	// Conv2DForward: y = x ⋆ w. x N×C×H×W, w K×C×R×S, y (out) N×K×OH×OW.
	Conv2DForward(s ConvShape, x, w, y Buffer)
	// Conv2DBackwardData: dx (out) = ∂L/∂x given dy N×K×OH×OW and w.
	Conv2DBackwardData(s ConvShape, dy, w, dx Buffer)
	// Conv2DBackwardFilter: dw (out) = ∂L/∂w given x and dy.
	Conv2DBackwardFilter(s ConvShape, x, dy, dw Buffer)

	// BatchNormTrain normalises x with the batch statistics of each group:
	// y = γ·(x − μ_g)/√(σ²_g + eps) + β, writing y (out), mean (out, Groups×C)
	// and invStd (out, Groups×C, 1/√(σ²_g+eps) with the biased variance).
	// The running statistics (C each) are updated in place as in PyTorch,
	// averaged over the groups: run = (1−momentum)·run + momentum·stat, with the
	// unbiased variance for runVar. Every group must hold at least two values
	// per channel (N/Groups·HW ≥ 2); otherwise the backend records an error.
	BatchNormTrain(s BNShape, x, gamma, beta, y, mean, invStd, runMean, runVar Buffer, momentum, eps float32)
	// BatchNormInfer: y (out) = γ·(x − runMean)/√(runVar + eps) + β.
	BatchNormInfer(s BNShape, x, gamma, beta, runMean, runVar, y Buffer, eps float32)
	// BatchNormBackward: dx, dgamma, dbeta (out; dgamma, dbeta C each) given
	// the forward's x, mean and invStd and the upstream dy.
	BatchNormBackward(s BNShape, x, dy, gamma, mean, invStd, dx, dgamma, dbeta Buffer)

	// ReLU: y (out) = max(x, 0) over x.Len() elements (y may alias x).
	ReLU(x, y Buffer)
	// ReLUBackward: dx (out) = dy where y > 0, else 0.
	ReLUBackward(y, dy, dx Buffer)
	// MaxPoolForward: y (out) N×C×OH×OW.
	MaxPoolForward(s PoolShape, x, y Buffer)
	// MaxPoolBackward: dx (out) routes each dy to the first maximal input of
	// its window (row-major order), as PyTorch does.
	MaxPoolBackward(s PoolShape, x, dy, dx Buffer)
	// GlobalAvgPool: y[n,c] (out) = mean over HW of x[n,c,·].
	GlobalAvgPool(n, c, hw int, x, y Buffer)
	// GlobalAvgPoolBackward: dx[n,c,i] (out) = dy[n,c]/hw.
	GlobalAvgPoolBackward(n, c, hw int, dy, dx Buffer)

	// L2Normalize: y[r] (out) = x[r]/max(‖x[r]‖, 1e-12) for x rows×cols.
	L2Normalize(rows, cols int, x, y Buffer)
	// L2NormalizeBackward: dx (out) given x, y = normalize(x) and dy:
	// dx = (dy − y·(y·dy))/max(‖x‖, 1e-12).
	L2NormalizeBackward(rows, cols int, x, y, dy, dx Buffer)

	// SoftmaxCrossEntropy over logits rows×cols scaled by 1/tau with integer
	// labels (Int32, rows): loss[r] (out) = −log softmax(logits[r]/tau)[label[r]],
	// prob (out, rows×cols) = softmax(logits[r]/tau).
	SoftmaxCrossEntropy(rows, cols int, tau float32, logits, labels, loss, prob Buffer)
	// SoftmaxCrossEntropyBackward: dlogits (out) = scale·(prob − onehot(label))/tau.
	SoftmaxCrossEntropyBackward(rows, cols int, tau, scale float32, prob, labels, dlogits Buffer)
}

// Contrastive are MoCHi's kernels: Q̃_N's top-N, the synthetic negatives'
// logits and their backward, and the class oracle's masking.
type Contrastive interface {
	// TopN: idx (out, Int32 rows×n) lists, for each row of x rows×cols, the
	// indices of its n largest values (ties broken by the lower index) in
	// ascending index order: a set, listed in the order that is the same on
	// every backend and costs no sort by value (pkg/hardneg's Q̃_N).
	TopN(rows, cols, n int, x, idx Buffer)
	// MixLogits writes the MoCHi extra logits out (out, B×(S+SPrime)) from
	// q (B×D), the queue (K×D), the q·n similarities sim (B×K), the top-N
	// indices top (Int32 B×N, from TopN) and the step's mixing draw (B×(3S+2SPrime),
	// pkg/hardneg's MixDraw.Tensor): row b of draw is
	// [i_1…i_S, j_1…j_S, α_1…α_S, j′_1…j′_SPrime, β_1…β_SPrime] with the ranks
	// i, j, j′ ∈ [0, N) stored as exact float integers. For t < S,
	// h = normalize(α_t·n_i + (1−α_t)·n_j) with i = top[b, i_t], j = top[b, j_t]
	// and out[b,t] = q_b·h; for t′ < SPrime, h′ = normalize(β·q_b + (1−β)·n_j)
	// with j = top[b, j′_t′] and out[b,S+t′] = q_b·h′.
	// normalize(u) = u/max(‖u‖, 1e-12), as in L2Normalize. A rank outside
	// [0, N) is an error (the CPU backend records it; a GPU writes NaN).
	// sim is l_neg, which the loss already holds: the CPU backend reads q·n
	// from it for its closed form (one D-long dot product per h); the CUDA
	// kernel builds each h in D dimensions, as cheap there, and only checks
	// sim's size. Dropping sim would make the CPU recompute q·n and change
	// its rounding, so it stays; see docs/GPU.md.
	MixLogits(s MixShape, q, queue, sim, top, draw, out Buffer)
	// MixLogitsBackward: dq (out, B×D) = Σ_t dout[b,t]·h_t with h, h' held
	// constant; with gradThroughHPrime the path through q inside h' is added.
	// The arguments are MixLogits'; dout is B×(S+SPrime).
	MixLogitsBackward(s MixShape, q, queue, top, draw, dout Buffer, gradThroughHPrime bool, dq Buffer)
	// MaskEqual: x[r,c] = value where rowLabels[r] ≥ 0 and
	// rowLabels[r] == colLabels[c], for x rows×cols (in place), rowLabels
	// rows and colLabels cols, the labels float-coded integers (negative:
	// unknown, never masked). MoCHi's class oracle masks l_neg with −∞ so
	// that a queue entry of the query's class leaves the softmax and Q̃_N.
	MaskEqual(rows, cols int, rowLabels, colLabels, x Buffer, value float32)
}

// ConvTF32 is implemented by backends whose convolutions can run their
// GEMMs on TensorFloat-32 tensor cores: inputs rounded to a 10-bit mantissa,
// products accumulated in fp32 — what PyTorch does by default for cuDNN
// convolutions on Ampere and later GPUs. Other GEMMs stay fp32.
type ConvTF32 interface {
	// SetConvTF32 switches the convolutions to TF32 (on) or back to fp32.
	SetConvTF32(on bool) error
}

// Blocked is implemented by backends whose convolution kernels keep
// activations in a channel-blocked layout and whose BatchNorm, BatchNormReLU
// and max-pooling kernels take that layout too, so that a plan (pkg/graph)
// can keep activations blocked between the convolutions instead of
// reordering them at every call. With channel block B (B divides C), an
// N×C×H×W tensor holds element (n, c, h, w) at
// ((n·C/B + c/B)·H·W + h·W + w)·B + c mod B — oneDNN's nChw8c for B = 8.
// The images stay outermost, so a range of whole images is contiguous,
// and the elementwise kernels (Add, ReLU, ReLUBackward, Copy) need no
// change. A backend without this ability is never given a nonzero block.
type Blocked interface {
	// ConvBlocks returns the channel blocks the backend's kernel for the
	// convolution s (its blocks ignored) keeps x (and dx) and y (and dy)
	// in: 0 where that kernel takes plain NCHW (then passing a block
	// only costs reorders), else the block that spares them.
	ConvBlocks(s ConvShape) (x, y int)
}

// BatchNormReLU is implemented by backends that fuse the ReLU following a
// batch normalisation into its passes over memory. Each method gives bit
// for bit what its Layers kernel followed by ReLU (forward) or preceded by
// ReLUBackward (backward) gives; a backend without it runs those kernels.
type BatchNormReLU interface {
	// BatchNormReLUTrain is BatchNormTrain with y (out) = max(BN(x), 0).
	BatchNormReLUTrain(s BNShape, x, gamma, beta, y, mean, invStd, runMean, runVar Buffer, momentum, eps float32)
	// BatchNormReLUInfer is BatchNormInfer with y (out) = max(BN(x), 0).
	BatchNormReLUInfer(s BNShape, x, gamma, beta, runMean, runVar, y Buffer, eps float32)
	// BatchNormReLUBackward is BatchNormBackward of dz = dy where y > 0,
	// else 0, given the forward's x, its output y, mean and invStd.
	BatchNormReLUBackward(s BNShape, x, y, dy, gamma, mean, invStd, dx, dgamma, dbeta Buffer)
}

// BatchNormAddReLU is implemented by backends that fuse a residual
// connection's sum and ReLU into the passes of the batch normalisation
// before it: y = max(BN(x) + r, 0). Each method gives bit for bit what its
// Layers kernels give in turn (BatchNorm, Add, ReLU; ReLUBackward, then
// BatchNormBackward); a backend without it runs those kernels.
type BatchNormAddReLU interface {
	// BatchNormAddReLUTrain is BatchNormTrain with y (out) = max(BN(x) + r, 0).
	BatchNormAddReLUTrain(s BNShape, x, gamma, beta, r, y, mean, invStd, runMean, runVar Buffer, momentum, eps float32)
	// BatchNormAddReLUInfer is BatchNormInfer with y (out) = max(BN(x) + r, 0).
	BatchNormAddReLUInfer(s BNShape, x, gamma, beta, r, runMean, runVar, y Buffer, eps float32)
	// BatchNormAddReLUBackward writes dr = dy where y > 0, else 0 (the
	// gradient of r and of BN(x)), then BatchNormBackward of dr, given the
	// forward's x, its output y, mean and invStd.
	BatchNormAddReLUBackward(s BNShape, x, y, dy, gamma, mean, invStd, dx, dr, dgamma, dbeta Buffer)
}
