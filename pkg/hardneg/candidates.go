package hardneg

import "fmt"

// Dims are the sizes of one step's loss.
type Dims struct {
	B      int // queries in the batch
	K      int // queue entries
	D      int // embedding dimension
	N      int // |Q̃_N|
	S      int // s, negative–negative mixes per query
	SPrime int // s′, query–negative mixes per query
}

// E is the number of synthetic negatives per query, s + s′.
func (d Dims) E() int { return d.S + d.SPrime }

// Labels select the negatives the class oracle keeps; nil slices disable it.
type Labels struct {
	Query []int32 // B
	Queue []int32 // K
}

// excludes is the class oracle's rule: queue entry k labelled like query b
// is not a negative. Labels < 0 (unknown, or a random initial entry) never
// match.
func (l Labels) excludes(b, k int) bool {
	return l.Query != nil && l.Query[b] >= 0 && l.Queue[k] == l.Query[b]
}

// ErrTooFewCandidates is returned by CheckCandidates when fewer than N
// queue entries are candidates for a query: the class oracle removed the
// rest.
type ErrTooFewCandidates struct{ Query, Left, N int }

// Error says which query ran short and what to change.
func (e ErrTooFewCandidates) Error() string {
	return fmt.Sprintf("hardneg: the class oracle leaves %d queue entries for query %d, fewer than N = %d; lower mochi.n or raise moco.k", e.Left, e.Query, e.N)
}

// CheckCandidates returns ErrTooFewCandidates for the first query whose
// class oracle leaves fewer than n of the queue's entries, in O(B + K):
// the host's check before a step, since the top-N runs on the backend,
// which masks the excluded entries and cannot stop on its own
// (topNOp.Exec). Labels are one per query and one per queue entry; labels
// < 0 never match.
func CheckCandidates(query, queue []int32, n int) error {
	perClass := map[int32]int{}
	for _, l := range queue {
		if l >= 0 {
			perClass[l]++
		}
	}
	for q, l := range query {
		left := len(queue)
		if l >= 0 {
			left -= perClass[l]
		}
		if left < n {
			return ErrTooFewCandidates{Query: q, Left: left, N: n}
		}
	}
	return nil
}
