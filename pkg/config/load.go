package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/mochi-ssl/mochi/internal/enum"
)

// Source is the layer a value came from. Later layers override earlier ones:
// default < file < env < flag.
type Source int

// The layers, lowest precedence first.
const (
	FromDefault Source = iota
	FromFile
	FromEnv
	FromFlag
)

// String names the layer as `mochi config` prints it.
func (s Source) String() string { return enum.Name(s, "default", "file", "env", "flag") }

// Origin says where one value came from.
type Origin struct {
	// Source is the layer.
	Source Source
	// Where is the file and line ("configs/ci.yaml:12"), the environment
	// variable ("MOCHI_MOCO_K") or the flag ("--lr"); empty for a default.
	Where string
}

// String is "default", "file configs/ci.yaml:12", "env MOCHI_MOCO_K" or "flag --lr".
func (o Origin) String() string {
	if o.Where == "" {
		return o.Source.String()
	}
	return o.Source.String() + " " + o.Where
}

// Provenance records the Origin of every key of a loaded Config.
type Provenance struct {
	file    string
	origins map[string]Origin
}

// Of returns where the value of key came from; a key Load did not see is a default.
func (p *Provenance) Of(key string) Origin {
	if p == nil {
		return Origin{Source: FromDefault}
	}
	return p.origins[key]
}

// File is the config file that was read, "" when none.
func (p *Provenance) File() string {
	if p == nil {
		return ""
	}
	return p.file
}

// SetFlag is the name of the repeatable flag that sets any key: --set moco.k=8192.
const SetFlag = "set"

// flagKeyAnnotation marks a flag registered by AddFlags with the key it sets.
const flagKeyAnnotation = "mochi/config-key"

// commonFlags are the shortcuts AddFlags registers: flag name → key.
var commonFlags = []struct{ flag, key string }{
	{"epochs", "optim.epochs"},
	{"batch", "optim.batch"},
	{"lr", "optim.lr"},
	{"k", "moco.k"},
	{"n", "mochi.n"},
	{"s", "mochi.s"},
	{"s-prime", "mochi.s_prime"},
	{"mix-start-epoch", "mochi.mix_start_epoch"},
	{"data-path", "data.path"},
	{"limit", "data.limit"},
	{"workers", "data.workers"},
	{"seed", "run.seed"},
	{"device", "run.device"},
	{"output-dir", "run.output_dir"},
}

// AddFlags registers the override flags on fs: --set key=value for any key
// (repeatable) and shortcuts for the common keys (--epochs, --batch, --lr, --k,
// --n, --s, --s-prime, --mix-start-epoch, --data-path, --limit, --workers,
// --seed, --device, --output-dir). Only flags the user sets override anything.
func AddFlags(fs *pflag.FlagSet) {
	// pflag shows the first `quoted` word of a usage as the value placeholder.
	fs.StringArray(SetFlag, nil, "set any config `key=value`, e.g. moco.k=8192 (repeatable; mochi config --reference lists the keys)")
	for _, cf := range commonFlags {
		fs.String(cf.flag, "", "")
		if err := RebindFlag(fs, cf.flag, cf.key); err != nil {
			panic(err)
		}
	}
}

// RebindFlag makes the shortcut flag registered by AddFlags set key instead
// of its usual one, for commands where the usual key means nothing:
// linear-eval's --epochs sets eval.linear_epochs.
func RebindFlag(fs *pflag.FlagSet, flag, key string) error {
	k, ok := lookupKey(key)
	if !ok {
		return fmt.Errorf("config: flag --%s bound to unknown key %s", flag, key)
	}
	f := fs.Lookup(flag)
	if f == nil {
		return fmt.Errorf("config: no flag --%s to bind to %s", flag, key)
	}
	f.Usage = fmt.Sprintf("set %s to this `%s` (default %s)", k.Name, placeholder[k.Type], k.Default)
	return fs.SetAnnotation(flag, flagKeyAnnotation, []string{k.Name})
}

// FlagKey returns the key a shortcut flag sets, or "" for other flags.
func FlagKey(f *pflag.Flag) string {
	if ann := f.Annotations[flagKeyAnnotation]; len(ann) > 0 {
		return ann[0]
	}
	return ""
}

// placeholder names a key type in flag help the way pflag names its own
// flag types (--epochs int).
var placeholder = map[string]string{
	"integer": "int", "number": "float", "bool": "bool", "string": "string", "list of integers": "ints",
}

// rawValue is one value from one layer, before it is decoded into the Config.
type rawValue struct {
	value  any
	origin Origin
}

// Load builds the Config from the defaults, then the YAML file at path (skipped
// when path is ""), then the MOCHI_* environment variables, then the flags of
// fs registered by AddFlags that the user set (fs may be nil). It reports an
// unknown key in the file or in a MOCHI_<SECTION>_* variable, a key set twice in
// the file, and a value of the wrong type, each naming the key and its origin.
// Load does not validate ranges: call Validate.
func Load(path string, fs *pflag.FlagSet) (*Config, *Provenance, error) {
	var src []byte
	if path != "" {
		var err error
		if src, err = os.ReadFile(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("config file %s does not exist; pass the path of a YAML file (see configs/)", path)
			}
			return nil, nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	return load(path, src, fs, true)
}

// Parse is Load for YAML already in memory (a config saved inside a
// checkpoint); name stands for the file in messages and provenance.
func Parse(name string, src []byte, fs *pflag.FlagSet) (*Config, *Provenance, error) {
	return load(name, src, fs, true)
}

// ParseSaved reads a config a run saved (in a checkpoint) exactly as it was
// saved: no MOCHI_* variable overrides it, so it can be compared with the
// config a new invocation asks for.
func ParseSaved(name string, src []byte) (*Config, error) {
	cfg, _, err := load(name, src, nil, false)
	return cfg, err
}

// load layers defaults, the YAML src of file path (none when path is ""),
// the environment (when env is set) and the flags.
func load(path string, src []byte, fs *pflag.FlagSet, env bool) (*Config, *Provenance, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	prov := &Provenance{file: path, origins: make(map[string]Origin, len(keys))}
	def := Default()
	for _, k := range keys {
		v.SetDefault(k.Name, def.field(k).Interface())
		prov.origins[k.Name] = Origin{Source: FromDefault}
	}

	if path != "" {
		lines, err := fileKeys(path, src)
		if err != nil {
			return nil, nil, err
		}
		if err := v.ReadConfig(bytes.NewReader(src)); err != nil {
			return nil, nil, fmt.Errorf("config file %s: %w", path, err)
		}
		for key, line := range lines {
			prov.origins[key] = Origin{Source: FromFile, Where: fmt.Sprintf("%s:%d", path, line)}
		}
	}

	if !env {
		return decodeAll(v, prov)
	}
	if err := checkEnv(os.Environ()); err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if err := v.BindEnv(k.Name, k.Env); err != nil {
			return nil, nil, err
		}
		// viper ignores empty variables; so does the provenance.
		if val, ok := os.LookupEnv(k.Env); ok && val != "" {
			prov.origins[k.Name] = Origin{Source: FromEnv, Where: k.Env}
		}
	}

	if fs != nil {
		flagged, err := flagValues(fs)
		if err != nil {
			return nil, nil, err
		}
		for key, rv := range flagged {
			v.Set(key, rv.value)
			prov.origins[key] = rv.origin
		}
	}
	return decodeAll(v, prov)
}

// decodeAll decodes every key's layered value into a Config.
func decodeAll(v *viper.Viper, prov *Provenance) (*Config, *Provenance, error) {
	cfg := &Config{}
	for _, k := range keys {
		if err := decode(cfg.field(k), v.Get(k.Name)); err != nil {
			return nil, nil, fmt.Errorf("%s (from %s): %w", k.Name, prov.origins[k.Name], err)
		}
	}
	return cfg, prov, nil
}

// fileKeys parses the YAML file and returns the line of every key it sets. It
// rejects unknown keys, duplicate keys, sections given a value and keys given a
// mapping.
func fileKeys(path string, src []byte) (map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	lines := map[string]int{}
	if len(doc.Content) == 0 {
		return lines, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
			return lines, nil
		}
		return nil, fmt.Errorf("%s:%d: the top level must be a mapping of sections (%s)", path, top.Line, strings.Join(sections, ", "))
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		secNode, body := top.Content[i], top.Content[i+1]
		sec := secNode.Value
		at := fmt.Sprintf("%s:%d", path, secNode.Line)
		if !isSection(sec) {
			return nil, unknownKeyError(at, sec)
		}
		if _, dup := lines[sec]; dup {
			return nil, fmt.Errorf("%s: section %s appears twice (first at line %d); merge them", at, sec, lines[sec])
		}
		lines[sec] = secNode.Line
		switch {
		case body.Kind == yaml.ScalarNode && body.Tag == "!!null":
			continue // "moco:" with nothing under it sets nothing
		case body.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("%s: %s is a section; put its keys under it (e.g. %s)", at, sec, sectionExample(sec))
		}
		for j := 0; j+1 < len(body.Content); j += 2 {
			keyNode, valNode := body.Content[j], body.Content[j+1]
			key := sec + "." + keyNode.Value
			at := fmt.Sprintf("%s:%d", path, keyNode.Line)
			k, ok := lookupKey(key)
			if !ok {
				return nil, unknownKeyError(at, key)
			}
			if first, dup := lines[key]; dup {
				return nil, fmt.Errorf("%s: key %s appears twice (first at line %d); keep one", at, key, first)
			}
			if valNode.Kind == yaml.MappingNode {
				return nil, fmt.Errorf("%s: key %s takes a value (%s), not a mapping", at, key, k.Type)
			}
			if valNode.Kind == yaml.ScalarNode && valNode.Tag == "!!null" {
				return nil, fmt.Errorf("%s: key %s has no value; give one (%s) or delete the line to keep the default %s", at, key, k.Type, k.Default)
			}
			lines[key] = keyNode.Line
		}
	}
	for _, sec := range sections {
		delete(lines, sec)
	}
	return lines, nil
}

func unknownKeyError(at, key string) error {
	msg := fmt.Sprintf("%s: unknown key %s", at, key)
	if s := suggest(key); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return errors.New(msg + "; `mochi config --reference` lists every key")
}

func sectionExample(sec string) string {
	for _, k := range keys {
		if strings.HasPrefix(k.Name, sec+".") {
			return fmt.Sprintf("%s: {%s: %s}", sec, strings.TrimPrefix(k.Name, sec+"."), k.Default)
		}
	}
	return sec + ":"
}

// checkEnv rejects MOCHI_<SECTION>_* variables that name no key, so a typo in
// an environment variable is not silently ignored. Other MOCHI_* variables
// (MOCHI_SETUP_TORCH for scripts/setup.sh) are left alone.
func checkEnv(environ []string) error {
	known := make(map[string]bool, len(keys))
	for _, k := range keys {
		known[k.Env] = true
	}
	var bad []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if known[name] || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		for _, sec := range sections {
			if strings.HasPrefix(name, EnvName(sec)+"_") {
				bad = append(bad, name)
				break
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	var msgs []string
	for _, name := range bad {
		key := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
		key = strings.Replace(key, "_", ".", 1)
		msg := fmt.Sprintf("environment variable %s names no config key", name)
		if s := suggest(key); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(envNames(s), " or "))
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; ") + "; unset it or fix the name")
}

func envNames(keyList string) []string {
	var names []string
	for _, k := range strings.Split(keyList, " or ") {
		names = append(names, EnvName(k))
	}
	return names
}

// flagValues collects the keys set on the command line: the shortcut flags the
// user changed, then each --set key=value in order (a later one wins).
func flagValues(fs *pflag.FlagSet) (map[string]rawValue, error) {
	out := map[string]rawValue{}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		ann := f.Annotations[flagKeyAnnotation]
		if len(ann) == 0 || !f.Changed {
			return
		}
		out[ann[0]] = rawValue{value: f.Value.String(), origin: Origin{Source: FromFlag, Where: "--" + f.Name}}
	})
	if f := fs.Lookup(SetFlag); f != nil && f.Changed {
		sets, e := fs.GetStringArray(SetFlag)
		if e != nil {
			return nil, e
		}
		for _, s := range sets {
			key, val, ok := strings.Cut(s, "=")
			key = strings.TrimSpace(key)
			if !ok {
				err = fmt.Errorf("--set %q: write key=value, e.g. --set moco.k=8192", s)
				break
			}
			if _, known := lookupKey(key); !known {
				err = unknownKeyError("--set", key)
				break
			}
			out[key] = rawValue{value: val, origin: Origin{Source: FromFlag, Where: "--set " + key}}
		}
	}
	return out, err
}

// decode stores raw (from YAML, an environment variable or a flag) into dst,
// strictly: an integer key takes integers only (4096, 4096.0, "4096"), never
// 0.5 or "abc"; a bool key takes true/false; a list takes a YAML list or
// "60,80".
func decode(dst reflect.Value, raw any) error {
	switch dst.Kind() {
	case reflect.Int, reflect.Int64:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		dst.SetInt(n)
	case reflect.Float64:
		f, err := toFloat(raw)
		if err != nil {
			return err
		}
		dst.SetFloat(f)
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			dst.SetBool(b)
		case string:
			v, err := strconv.ParseBool(strings.TrimSpace(b))
			if err != nil {
				return fmt.Errorf("%q is not a bool; write true or false", b)
			}
			dst.SetBool(v)
		default:
			return fmt.Errorf("%v is not a bool; write true or false", raw)
		}
	case reflect.String:
		switch s := raw.(type) {
		case string:
			dst.SetString(s)
		case int, int64, float64, bool:
			dst.SetString(fmt.Sprint(s))
		default:
			return fmt.Errorf("%v is not a string", raw)
		}
	case reflect.Slice:
		var items []any
		switch l := raw.(type) {
		case []any:
			items = l
		case []int:
			for _, x := range l {
				items = append(items, x)
			}
		case string:
			for _, part := range strings.Split(strings.Trim(strings.TrimSpace(l), "[]"), ",") {
				if part = strings.TrimSpace(part); part != "" {
					items = append(items, part)
				}
			}
		default:
			return fmt.Errorf("%v is not a list of integers; write [60, 80] in YAML or 60,80 in a flag or variable", raw)
		}
		out := make([]int, 0, len(items))
		for i, it := range items {
			n, err := toInt(it)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, int(n))
		}
		dst.Set(reflect.ValueOf(out))
	default:
		panic(fmt.Sprintf("config: cannot decode into %v", dst.Type()))
	}
	return nil
}

func toInt(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", x)
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int64(x), nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			return int64(f), nil
		}
		return 0, fmt.Errorf("%q is not an integer", x)
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", raw, raw)
}

func toFloat(raw any) (float64, error) {
	switch x := raw.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%v is not a finite number", x)
		}
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", raw, raw)
}
