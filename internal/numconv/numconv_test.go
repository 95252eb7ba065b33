package numconv

import (
	"math"
	"slices"
	"testing"
)

func TestSlice(t *testing.T) {
	if got := Slice[float64]([]float32{1.5, -2, 0.1}); !slices.Equal(got, []float64{1.5, -2, float64(float32(0.1))}) {
		t.Errorf("float32 → float64: %v", got)
	}
	// 1+2⁻³⁰ is not a float32: it rounds to 1; 2²⁴+1 rounds to even.
	if got := Slice[float32]([]float64{1 + math.Pow(2, -30), 1<<24 + 1}); !slices.Equal(got, []float32{1, 1 << 24}) {
		t.Errorf("float64 → float32: %v", got)
	}
	if got := Slice[int64]([]int32{math.MinInt32, 7}); !slices.Equal(got, []int64{math.MinInt32, 7}) {
		t.Errorf("int32 → int64: %v", got)
	}
	if got := Slice[float64]([]int{}); got == nil || len(got) != 0 {
		t.Errorf("empty input: %#v, want an empty slice", got)
	}
}
