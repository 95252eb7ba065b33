// Package enum names the values of mochi's small integer enumerations, whose
// constants count up from 0 with iota.
package enum

import (
	"fmt"
	"reflect"
)

// Name returns names[v], or "Type(v)" (Type is v's type name) for a value
// without a name.
func Name[T ~int](v T, names ...string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", reflect.TypeOf(v).Name(), int(v))
}
