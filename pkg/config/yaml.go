package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WriteYAML writes c as a YAML file that Load reads back to the same Config,
// with a comment after every value saying where it came from (p may be nil:
// every value is then reported as a default).
func (c *Config) WriteYAML(w io.Writer, p *Provenance) error {
	var b strings.Builder
	if f := p.File(); f != "" {
		fmt.Fprintf(&b, "# effective config: defaults < %s < MOCHI_* env < flags\n", f)
	} else {
		b.WriteString("# effective config: defaults < MOCHI_* env < flags (no file)\n")
	}
	section := ""
	for _, k := range keys {
		sec, name, _ := strings.Cut(k.Name, ".")
		if sec != section {
			fmt.Fprintf(&b, "%s:\n", sec)
			section = sec
		}
		entry := fmt.Sprintf("  %s: %s", name, formatValue(c.field(k)))
		fmt.Fprintf(&b, "%-44s # %s\n", entry, p.Of(k.Name))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteReference writes the key reference as a Markdown table: key,
// environment variable, type, default and meaning.
func WriteReference(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| key | env | type | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | `%s` | %s |\n", k.Name, k.Env, k.Type, k.Default, strings.ReplaceAll(k.Help, "|", "\\|"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatValue writes one value as a YAML scalar or flow list.
func formatValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.String:
		out, err := yaml.Marshal(v.String())
		if err != nil {
			panic(err) // a Go string always marshals
		}
		return strings.TrimSuffix(string(out), "\n")
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("config: cannot format %v", v.Type()))
}

// FormatValue writes a key's value (Config.Value) as WriteYAML does.
func FormatValue(v any) string {
	return formatValue(reflect.ValueOf(v))
}
