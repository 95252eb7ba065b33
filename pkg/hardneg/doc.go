// Package hardneg is MoCHi, hard negative mixing for contrastive learning
// (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028), on top of MoCo-v2's
// InfoNCE loss, as Gorgonia ops with their own gradients: the package holds
// the whole contrastive loss, plain MoCo-v2's InfoNCE included (infonce.go),
// since mixing only adds a block of logits to it.
//
// # Overview
//
// For queries q and keys k (B×D, L2-normalised) and the queue Q (K×D), Loss
// builds, in the order of moco's builder.py:
//
//	l_pos = q·k                                   B      positiveOp (ops.go)
//	l_neg = q·Qᵀ                                  B×K    negativeOp (ops.go)
//	Q̃_N   = the N queue entries of highest q·n    B×N    topNOp (mix.go)
//	h     = normalize(α n_i + (1−α) n_j)          s per query, i, j ∈ Q̃_N, α ~ U(0, 1)
//	h′    = normalize(β q + (1−β) n_j)            s′ per query, j ∈ Q̃_N, β ~ U(0, 0.5)
//	extra = [q·h, q·h′]                           B×(s+s′)  mixOp (mix.go)
//	loss  = mean_b −log softmax([l_pos, l_neg, extra]_b / τ)_0   infoNCEOp (infonce.go)
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
// differentiates the q inside h′. Gorgonia's multi-axis reductions are
// wrong (docs/ARCHITECTURE.md, "Why mochi's own ops"), so no Gorgonia op is
// used: each op here has its own backward op. The InfoNCE backward computes
// the B×(1+K+s+s′) softmax once, in one op, and hands each logit block its
// columns.
//
// # Invariants
//
//   - Every op's Do is a pure function of its inputs: the randomness (i, j,
//     α, β) is a MixDraw drawn beforehand from the trainer's seeded RNG and
//     fed as a tensor. Ranks index Q̃_N, which is the set of the N entries
//     highest under (q·n descending, queue index ascending), listed in queue
//     order, so a draw names the same entries on every run and backend.
//   - Each op writes all its parameters (N, s, s′, τ, the gradient flag,
//     the oracle, the shapes) in its String, which WriteHash hashes, so ops
//     that differ stay distinct nodes.
//   - Each op is implemented once, as its Exec (graph.Kernel, float32): the
//     device.Backend kernels RowDot, Gemm, TopN, MixLogits and their
//     backwards, CopyCols into one B×(1+K+E) logit matrix, MaskEqual for the
//     oracle (−∞, so an excluded entry leaves the softmax and Q̃_N),
//     SoftmaxCrossEntropy. A plan from graph.Compile keeps the whole loss on
//     the CPU or the GPU; Do runs the same Exec on graph.Host for the
//     TapeMachine. The float64 reference the tests hold (reference_test.go,
//     and pkg/device/devicetest's for each kernel) is the oracle for both
//     backends.
//
// # Cost
//
// The extra logits are computed in closed form from the similarities that
// l_neg already holds: q·h = (α q·n_i + (1−α) q·n_j)/‖α n_i + (1−α) n_j‖
// with ‖·‖² = α²‖n_i‖² + (1−α)²‖n_j‖² + 2α(1−α) n_i·n_j, so each h costs one
// D-long dot product and each h′ O(1) (the CPU backend; the GPU builds each
// h in D dimensions, as cheap there). Q̃_N is found without a sort of the
// queue. BenchmarkMoCHiOverhead times q·Qᵀ, the top-N and the mixing with
// the CPU backend's kernels, the ones training runs, against the target
// (top-N + mixing)/q·Qᵀ ≤ 0.5:
//
//	go test ./pkg/hardneg/ -run XXX -bench MoCHiOverhead -benchtime 20x -count 3 -cpu 2
package hardneg
