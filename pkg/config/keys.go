package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// EnvPrefix starts every environment variable that sets a key: MOCHI_MOCO_K
// sets moco.k.
const EnvPrefix = "MOCHI_"

// Key describes one configuration key.
type Key struct {
	// Name is the dotted key, section first: "moco.k".
	Name string
	// Env is the environment variable that sets it: "MOCHI_MOCO_K".
	Env string
	// Type is the value type as a user writes it: integer, number, bool, string or list of integers.
	Type string
	// Default is the default value, formatted as in YAML.
	Default string
	// Help is the one-line explanation.
	Help string

	index []int
}

// keys lists every key in the order of the Config struct; sections lists the
// section names.
var keys, sections = buildKeys()

func buildKeys() ([]Key, []string) {
	var ks []Key
	var secs []string
	def := reflect.ValueOf(Default())
	ct := def.Type()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		sec := sf.Tag.Get("key")
		secs = append(secs, sec)
		for j := range sf.Type.NumField() {
			ff := sf.Type.Field(j)
			name := sec + "." + ff.Tag.Get("key")
			idx := []int{i, j}
			ks = append(ks, Key{
				Name:    name,
				Env:     EnvName(name),
				Type:    typeName(ff.Type),
				Default: formatValue(def.FieldByIndex(idx)),
				Help:    ff.Tag.Get("help"),
				index:   idx,
			})
		}
	}
	return ks, secs
}

// Keys returns every configuration key, section by section in the order of
// the Config struct.
func Keys() []Key {
	return append([]Key(nil), keys...)
}

// EnvName is the environment variable for a key: MOCHI_ followed by the key
// upper-cased with dots replaced by underscores.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// lookupKey returns the key named name.
func lookupKey(name string) (Key, bool) {
	for _, k := range keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

func isSection(name string) bool {
	for _, s := range sections {
		if s == name {
			return true
		}
	}
	return false
}

// field returns the addressable field of c that holds key k.
func (c *Config) field(k Key) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(k.index)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "bool"
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "list of integers"
	}
	panic(fmt.Sprintf("config: no type name for %v", t))
}

// suggest returns the known key closest to an unknown one, or "" when none is
// close: a key with the same last segment (a key written in the wrong section,
// "k" or "mochi.k" for "moco.k"), else the nearest key by edit distance.
func suggest(unknown string) string {
	leaf := unknown[strings.LastIndex(unknown, ".")+1:]
	var sameLeaf []string
	for _, k := range keys {
		if k.Name[strings.LastIndex(k.Name, ".")+1:] == leaf {
			sameLeaf = append(sameLeaf, k.Name)
		}
	}
	if len(sameLeaf) > 0 {
		sort.Strings(sameLeaf)
		return strings.Join(sameLeaf, " or ")
	}
	best, bestDist := "", len(unknown)/3+2
	for _, k := range keys {
		d := min(editDistance(unknown, k.Name), editDistance(leaf, k.Name[strings.LastIndex(k.Name, ".")+1:])+1)
		if d < bestDist {
			best, bestDist = k.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, over bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Value returns the value of the key named name ("moco.k"), or nil when no
// such key exists.
func (c *Config) Value(name string) any {
	k, ok := lookupKey(name)
	if !ok {
		return nil
	}
	return c.field(k).Interface()
}
