// Package eval measures how good a pretrained encoder is, on feature matrices
// held in host memory, the way the MoCo and MoCHi papers do.
//
// # Overview
//
// Every function works on features already extracted from a frozen encoder:
// a row-major float32 Matrix (n×d) and, where classes matter, one int label
// per row. The package holds
//
//   - KNN: the weighted k-nearest-neighbour monitor of InstDisc/MoCo
//     (cosine similarity, k = 200, weights exp(sim/t), t = 0.1);
//   - LinearProbe: multinomial logistic regression trained with the MoCo
//     linear-evaluation recipe (SGD lr 30, momentum 0.9, 100 epochs, steps at
//     60 and 80);
//   - Alignment and Uniformity: the metrics of Wang & Isola (ICML 2020),
//     exact and subsampled;
//   - AnalyzeHardness: the similarity histograms of the MoCHi paper
//     (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028, §3, Fig. 2–3) for
//     all negatives, the top-N hard negatives and synthetic h, h′ negatives,
//     plus the share of negatives whose gradient contribution is negligible;
//   - WritePlanePNG, WriteHistogramsPNG and WritePanelsPNG: PNG figures
//     drawn with gonum/plot (the alignment–uniformity plane, the hardness
//     histograms, panels of training curves), one SeriesColor per run;
//   - Report: the JSON report and its text table;
//   - SaveFeatures, LoadFeatures and FeatureCache: extracted features as
//     NumPy .npy files (labels beside them), the cache with its key and
//     SHA-256 checksums in a .json per entry.
//
// # Invariants
//
// Inputs are never modified: functions that normalise or standardise work on
// copies. Randomness (probe shuffling, subsampling, synthetic negatives) comes
// from an explicit seed, so every result is reproducible. Accumulations that
// decide a metric (losses, log-sum-exp, means) run in float64.
package eval
