package enum

import "testing"

type color int

func TestName(t *testing.T) {
	for _, tc := range []struct {
		v    color
		want string
	}{{0, "red"}, {1, "green"}, {2, "color(2)"}, {-1, "color(-1)"}} {
		if got := Name(tc.v, "red", "green"); got != tc.want {
			t.Errorf("Name(%d) = %q, want %q", int(tc.v), got, tc.want)
		}
	}
}
