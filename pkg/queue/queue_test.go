package queue_test

import (
	"testing"

	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/queue/queuetest"
)

func TestRing(t *testing.T) {
	queuetest.Run(t, func(k, d int, seed uint64) (queue.Queue, error) { return queue.NewRing(k, d, seed) })
}

func TestNewRingRejectsEmptyShape(t *testing.T) {
	for _, kd := range [][2]int{{0, 4}, {4, 0}, {-1, 3}} {
		if _, err := queue.NewRing(kd[0], kd[1], 1); err == nil {
			t.Errorf("NewRing(%d, %d) returned no error", kd[0], kd[1])
		}
	}
}
