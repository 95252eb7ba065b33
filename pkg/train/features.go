package train

import (
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/frozen"
)

// knn runs the weighted kNN monitor: the query encoder's features of the
// train split are the memory bank, the test split is classified.
func (t *trainer) knn() (float64, error) {
	m := t.model
	enc, err := frozen.NewEncoder(t.be, t.spec.Net, m.EncoderQ.Weights(), m.EncoderQ.RunningStats(), evalBatch(t.train.Len()), t.spec.C, t.spec.H, t.spec.W, false)
	if err != nil {
		return 0, err
	}
	defer enc.Free()
	aug := AugmentConfig(t.cfg, t.spec.C, t.spec.H)
	bank, bankLabels, err := enc.Features(t.train, aug.Mean, aug.Std)
	if err != nil {
		return 0, err
	}
	test, testLabels, err := enc.Features(t.test, aug.Mean, aug.Std)
	if err != nil {
		return 0, err
	}
	res, err := eval.KNN(bank, bankLabels, test, testLabels, frozen.KNNConfig(t.cfg, t.train.NumClasses()))
	if err != nil {
		return 0, err
	}
	return res.Top1, nil
}

// evalBatch is the feature-extraction batch: 256, or n when smaller.
func evalBatch(n int) int { return min(256, n) }
