// Package hardneg is MoCHi, hard negative mixing for contrastive learning
// (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028), on top of MoCo-v2's
// InfoNCE loss, as Gorgonia ops with their own gradients (DESIGN.md §1, §5).
//
// # Overview
//
// For queries q and keys k (B×D, L2-normalised) and the queue Q (K×D), Loss
// builds, in the order of moco's builder.py:
//
//	l_pos = q·k                                   B      positiveOp
//	l_neg = q·Qᵀ                                  B×K    negativeOp
//	Q̃_N   = the N queue entries of highest q·n    B×N    topNOp
//	h     = normalize(α n_i + (1−α) n_j)          s per query, i, j ∈ Q̃_N, α ~ U(0, 1)
//	h′    = normalize(β q + (1−β) n_j)            s′ per query, j ∈ Q̃_N, β ~ U(0, 0.5)
//	extra = [q·h, q·h′]                           B×(s+s′)  mixOp
//	loss  = mean_b −log softmax([l_pos, l_neg, extra]_b / τ)_0   infoNCEOp
//
// Without mixing (s = s′ = 0, or before Config.MixStartEpoch) the loss is
// plain MoCo-v2. With Config.ClassOracle the queue entries sharing the
// query's label leave both the softmax and Q̃_N.
//
// # Gradients
//
// q gets its gradient from every logit block, k from l_pos; the queue is a
// constant. h and h′ are constants, as in the paper, so the synthetic
// negatives add Σ g·h to ∂/∂q; Config.GradThroughHPrime also
// differentiates the q inside h′. Gorgonia's multi-axis reductions are wrong
// (DESIGN §5), so no Gorgonia op is used: each op here has its own backward
// op, checked against finite differences of an independent float64
// reference in the tests.
//
// # Invariants
//
//   - Every op's Do is a pure function of its inputs: the randomness (i, j,
//     α, β) is a MixDraw drawn beforehand from the trainer's seeded RNG and fed
//     as a tensor. Ranks index Q̃_N, which is the set of the N entries
//     highest under (q·n descending, queue index ascending), listed in queue
//     order, so a draw names the same entries on every run and backend.
//   - Each op writes all its parameters (N, s, s′, τ, the gradient flag,
//     the oracle) in WriteHash, so ops that differ stay distinct nodes.
//   - Each op has two implementations of one function. Do (the
//     TapeMachine, float32 or float64) runs the kernels of kernels.go:
//     plain functions on row-major slices with shape comments, the readable
//     reference. Exec (graph.Kernel, float32) runs device.Backend kernels —
//     RowDot, Gemm, TopN, MixLogits and their backwards, CopyCols into one
//     B×(1+K+E) logit matrix, MaskEqual for the oracle (−∞, so an excluded
//     entry leaves the softmax and Q̃_N), SoftmaxCrossEntropy — so a plan
//     from graph.Compile keeps the whole loss on the CPU or the GPU; the
//     tests compare both paths. Q̃_N is an int32 node in either dtype.
//
// # Cost
//
// The extra logits are computed in closed form from the similarities that
// l_neg already holds: q·h = (α q·n_i + (1−α) q·n_j)/‖α n_i + (1−α) n_j‖
// with ‖·‖² = α²‖n_i‖² + (1−α)²‖n_j‖² + 2α(1−α) n_i·n_j, so each h costs one
// D-long dot product and each h′ O(1); Synthesize builds h and h′ explicitly
// (the tests check that both agree). Q̃_N is found by a sampled threshold and
// quickselect, O(K) per query, never a sort of the queue.
//
// Measured at B = 256, K = 16384, D = 128, MoCHi(1024, 1024, 256), float32,
// 2 threads (AMD EPYC VM with 2 vCPUs, gonum BLAS; other jobs shared the
// machine, hence the spread):
//
//	q·Qᵀ (GEMM)           63–98 ms
//	top-N selection       8.6–18 ms
//	mixing + extra logits 12.5–26 ms
//	(top-N + mixing)/q·Qᵀ 0.34–0.45  (target ≤ 0.5)
//
// Command:
//
//	go test ./pkg/hardneg/ -run XXX -bench MoCHiOverhead -benchtime 20x -count 3 -cpu 2
package hardneg
