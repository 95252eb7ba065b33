package interop

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mochi-ssl/mochi/pkg/npy"
)

// Tensor is one entry of a state_dict: float32 values (every floating
// type is converted) or int64 values (integer and bool types).
type Tensor = npy.Array

// StateDict is torch's state_dict: tensors by name.
type StateDict map[string]Tensor

// Names returns the keys in sorted order.
func (sd StateDict) Names() []string {
	return slices.Sorted(maps.Keys(sd))
}

// shapeString prints a shape as torch does: [64, 3, 7, 7].
func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// listKeys joins up to 8 keys and says how many more there are.
func listKeys(keys []string) string {
	if len(keys) <= 8 {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:8], ", "), len(keys)-8)
}
