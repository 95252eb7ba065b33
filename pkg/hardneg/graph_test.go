package hardneg_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"gonum.org/v1/gonum/floats"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// withQueue replaces p's queue (and labels) with a queue.Queue's content.
func withQueue(p problem, q queue.Queue) problem {
	p.K = q.K()
	p.queue = make([]float64, len(q.Host()))
	for i, v := range q.Host() {
		p.queue[i] = float64(v)
	}
	p.queLab = make([]float64, p.K)
	for i, m := range q.Meta() {
		p.queLab[i] = float64(m.Label)
	}
	return p
}

func checkForward(t *testing.T, p problem, cfg hardneg.Config) result {
	t.Helper()
	r, err := runGraph(p, p.q, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr([]float64{r.loss}, []float64{p.refLoss(p.q, p.k, p.q, cfg, true)}); e > forwardTol {
		t.Errorf("loss: relative error %g", e)
	}
	if e := maxRelErr(r.extra, p.refExtra(p.q, p.q, cfg)); e > forwardTol {
		t.Errorf("extra logits: relative error %g", e)
	}
	return r
}

// TestLossOverWrappedQueue feeds the loss from a queue.Ring whose writes
// wrapped around (K = 13 is not a multiple of B = 4), with the class oracle
// reading the labels the queue stored.
func TestLossOverWrappedQueue(t *testing.T) {
	const k, d, b = 13, 6, 4
	ring, err := queue.NewRing(k, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for step := range 4 {
		keys := make([]float32, b*d)
		for i, v := range unitRows(rng, b, d) {
			keys[i] = float32(v)
		}
		meta := make([]queue.Meta, b)
		for i := range meta {
			meta[i] = queue.Meta{Index: int64(step*b + i), Label: int32(rng.IntN(3))}
		}
		if err := ring.Enqueue(keys, meta); err != nil {
			t.Fatal(err)
		}
	}
	if ring.Ptr() != 16%k {
		t.Fatalf("queue pointer %d, want %d after wrapping", ring.Ptr(), 16%k)
	}
	cfg := hardneg.Config{N: 5, S: 4, SPrime: 3, Tau: 0.2, ClassOracle: true}
	p := withQueue(newProblem(8, b, k, d, cfg, 3), ring)
	checkForward(t, p, cfg)
}

// TestLossOverUnfilledQueue: a fresh queue holds random unit vectors marked
// as not real keys (label −1); they are negatives like any other and the
// class oracle never removes them.
func TestLossOverUnfilledQueue(t *testing.T) {
	const k, d, b = 30, 8, 3
	ring, err := queue.NewRing(k, d, 11)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hardneg.Config{N: 6, S: 4, SPrime: 2, Tau: 0.2, ClassOracle: true}
	p := withQueue(newProblem(12, b, k, d, cfg, 2), ring)
	withOracle := checkForward(t, p, cfg)
	cfg.ClassOracle = false
	without, err := runGraph(p, p.q, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if withOracle.loss != without.loss || !slices.Equal(withOracle.topN, without.topN) {
		t.Errorf("the oracle changed the loss over a queue with no real keys: %v vs %v", withOracle.loss, without.loss)
	}
}

// TestTiesInSimilarity uses a queue of duplicated rows, so q·n ties exactly
// and N = 5 splits a tied pair: the lower index must win, on every run.
func TestTiesInSimilarity(t *testing.T) {
	cfg := hardneg.Config{N: 5, S: 6, SPrime: 3, Tau: 0.2}
	p := newProblem(21, 4, 20, 6, cfg, 0)
	for i := 1; i < p.K; i += 2 {
		copy(row(p.queue, i, p.D), row(p.queue, i-1, p.D))
	}
	first := checkForward(t, p, cfg)
	for range 3 {
		again, err := runGraph(p, p.q, cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(first.topN, again.topN) || !slices.Equal(first.extra, again.extra) {
			t.Fatal("tied similarities gave a different Q̃_N or extra logits on another run")
		}
	}
	for b := range p.B { // the split pair: exactly one of its two rows is in Q̃_N, the even one
		sel := first.topN[b*cfg.N : (b+1)*cfg.N]
		odd := 0
		for _, j := range sel {
			if int(j)%2 == 1 && !slices.Contains(sel, j-1) {
				t.Errorf("query %d: row %v is in Q̃_N without its tied twin %v of lower index", b, j, j-1)
			}
			odd += int(j) % 2
		}
		if odd != cfg.N/2 {
			t.Errorf("query %d: Q̃_N %v does not hold %d complete tied pairs and one lone lower row", b, sel, cfg.N/2)
		}
	}
}

// TestDistinctParametersStayDistinctNodes: Gorgonia merges nodes whose ops
// hash alike, so every parameter must reach WriteHash.
func TestDistinctParametersStayDistinctNodes(t *testing.T) {
	cfg := hardneg.Config{N: 4, S: 3, SPrime: 2, Tau: 0.2}
	p := newProblem(5, 2, 12, 4, cfg, 0)
	g := G.NewGraph()
	mat := func(name string, x []float64, r, c int) *G.Node {
		return G.NewMatrix(g, tensor.Float32, G.WithShape(r, c), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(r, c), tensor.WithBacking(toF32(x)))))
	}
	pt := p.draw.Tensor()
	in := hardneg.Inputs{Query: mat("q", p.q, p.B, p.D), Key: mat("k", p.k, p.B, p.D), Queue: mat("queue", p.queue, p.K, p.D),
		Draw: G.NewMatrix(g, tensor.Float32, G.WithShape(pt.Shape()...), G.WithName("draw"), G.WithValue(pt))}
	build := func(c hardneg.Config) *hardneg.LossGraph {
		l, err := hardneg.Loss(in, c, true)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	base := build(cfg)
	if again := build(cfg); again.Extra != base.Extra || again.Loss != base.Loss {
		t.Fatal("equal parameters gave distinct nodes: the merge this test relies on did not happen")
	}
	flag := cfg
	flag.GradThroughHPrime = true
	otherN := cfg
	otherN.N = 5
	otherTau := cfg
	otherTau.Tau = 0.1
	for name, c := range map[string]hardneg.Config{"gradient flag": flag, "N": otherN, "τ": otherTau} {
		l := build(c)
		if name != "τ" && l.Extra == base.Extra {
			t.Errorf("ops differing in %s were merged into one node", name)
		}
		if l.Loss == base.Loss {
			t.Errorf("losses differing in %s were merged into one node", name)
		}
	}
	if l := build(otherN); l.TopN == base.TopN {
		t.Error("top-N ops with different N were merged into one node")
	}
}

// refStats is the test's own computation of Stats. A mix with i = j is n_i
// itself, so a synthetic negative can tie with the hardest real one up to
// rounding: HarderThanHardestReal is returned as the range between counting
// such ties as easier (in st) and as harder (harderIfTied).
func refStats(p problem, cfg hardneg.Config) (st hardneg.Stats, harderIfTied float64) {
	const tieTol = 1e-6 // float32 rounding of the graph's D-term dot products
	extra := p.refExtra(p.q, p.q, cfg)
	e := cfg.S + cfg.SPrime
	st.QueueMax, st.TopNMax, st.SynthMax = math.Inf(-1), math.Inf(-1), math.Inf(-1)
	var nq, harder, tiedOrHarder int
	for b := range p.B {
		var sims []float64
		for j := range p.K {
			if p.refKept(cfg.ClassOracle, b, j) {
				sims = append(sims, floats.Dot(row(p.q, b, p.D), row(p.queue, j, p.D)))
			}
		}
		hardest := slices.Max(sims)
		for _, v := range sims {
			st.QueueMean += v
			nq++
		}
		st.QueueMax = max(st.QueueMax, hardest)
		for _, j := range p.refTopN(p.q, cfg.ClassOracle, b, cfg.N) {
			v := floats.Dot(row(p.q, b, p.D), row(p.queue, j, p.D))
			st.TopNMean += v / float64(p.B*cfg.N)
			st.TopNMax = max(st.TopNMax, v)
		}
		negs := append([]float64(nil), sims...)
		for _, v := range extra[b*e : (b+1)*e] {
			st.SynthMean += v / float64(p.B*e)
			st.SynthMax = max(st.SynthMax, v)
			if v > hardest+tieTol {
				harder++
			}
			if v > hardest-tieTol {
				tiedOrHarder++
			}
			negs = append(negs, v)
		}
		prob := make([]float64, len(negs))
		var all float64
		for i, v := range negs {
			prob[i] = math.Exp(v / cfg.Tau)
			all += prob[i]
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(prob)))
		var top float64
		for _, v := range prob[:int(math.Ceil(0.05*float64(len(prob))))] {
			top += v
		}
		st.Top5GradShare += top / all / float64(p.B)
	}
	st.QueueMean /= float64(nq)
	st.HarderThanHardestReal = float64(harder) / float64(p.B*e)
	return st, float64(tiedOrHarder) / float64(p.B*e)
}

func TestStatsMatchReference(t *testing.T) {
	for _, oracle := range []bool{false, true} {
		cfg := hardneg.Config{N: 8, S: 30, SPrime: 10, Tau: 0.2, ClassOracle: oracle}
		p := newProblem(31, 4, 60, 5, cfg, 3)
		if !oracle {
			p.queryLab, p.queLab = nil, nil
		}
		r, err := runGraph(p, p.q, cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		want, harderIfTied := refStats(p, cfg)
		got := []float64{r.stats.QueueMean, r.stats.QueueMax, r.stats.TopNMean, r.stats.TopNMax, r.stats.SynthMean,
			r.stats.SynthMax, r.stats.Top5GradShare}
		ref := []float64{want.QueueMean, want.QueueMax, want.TopNMean, want.TopNMax, want.SynthMean,
			want.SynthMax, want.Top5GradShare}
		if e := maxRelErr(got, ref); e > forwardTol {
			t.Errorf("oracle=%t: stats %+v, want %+v", oracle, r.stats, want)
		}
		if h := r.stats.HarderThanHardestReal; h < want.HarderThanHardestReal || h > harderIfTied {
			t.Errorf("oracle=%t: harder fraction %v outside [%v, %v]", oracle, h, want.HarderThanHardestReal, harderIfTied)
		}
		if want.HarderThanHardestReal == 0 || want.Top5GradShare <= 0.05 {
			t.Errorf("oracle=%t: degenerate instance (harder fraction %v, top-5%% share %v) cannot test the stats", oracle, want.HarderThanHardestReal, want.Top5GradShare)
		}
	}
}

func TestStatsNeedRecording(t *testing.T) {
	g := G.NewGraph()
	q := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("q"))
	k := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("k"))
	queueNode := G.NewMatrix(g, tensor.Float32, G.WithShape(5, 3), G.WithName("queue"))
	l, err := hardneg.Loss(hardneg.Inputs{Query: q, Key: k, Queue: queueNode}, hardneg.Config{Tau: 0.2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stats(); err == nil {
		t.Error("Stats without RecordStats returned no error")
	}
}
