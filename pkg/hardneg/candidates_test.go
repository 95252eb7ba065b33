package hardneg_test

import (
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

func TestCheckCandidates(t *testing.T) {
	queue := []int32{0, 1, 1, 2, 2, 2, -1, -1}
	for _, c := range []struct {
		query []int32
		n     int
		want  error
	}{
		{[]int32{0, 1, 2}, 5, nil}, // 7, 6, 5 left
		{[]int32{0, 1, 2}, 6, hardneg.ErrTooFewCandidates{Query: 2, Left: 5, N: 6}},
		{[]int32{1, 0}, 7, hardneg.ErrTooFewCandidates{Query: 0, Left: 6, N: 7}},
		{[]int32{-1, 3}, 8, nil}, // unknown and unseen classes keep all 8
		{[]int32{-1, 3}, 9, hardneg.ErrTooFewCandidates{Query: 0, Left: 8, N: 9}},
	} {
		if got := hardneg.CheckCandidates(c.query, queue, c.n); got != c.want {
			t.Errorf("CheckCandidates(%v, N %d) = %v, want %v", c.query, c.n, got, c.want)
		}
	}
}
