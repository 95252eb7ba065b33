package interop

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/mochi-ssl/mochi/internal/numconv"
)

// storageClasses are the torch storage types whose tensors Read accepts,
// with the bytes per element.
var storageClasses = map[string]struct {
	class pytorch.StorageClassInterface
	size  int
}{
	"FloatStorage":    {&pytorch.FloatStorageClass{}, 4},
	"DoubleStorage":   {&pytorch.DoubleStorageClass{}, 8},
	"HalfStorage":     {&pytorch.HalfStorageClass{}, 2},
	"BFloat16Storage": {&pytorch.BFloat16StorageClass{}, 2},
	"LongStorage":     {&pytorch.LongStorageClass{}, 8},
	"IntStorage":      {&pytorch.IntStorageClass{}, 4},
}

// decodeTorch parses a torch.save file: name names it, b holds its bytes.
// Both formats, zip (torch ≥ 1.6) and legacy (MoCo's published
// checkpoints), are unpickled with gopickle and every storage's size is
// checked against the bytes there are before anything is allocated.
func decodeTorch(name string, b []byte) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil { // gopickle assumes well-formed input
			obj, err = nil, fmt.Errorf("%s: not a readable PyTorch checkpoint (the reader failed: %v)", name, r)
		}
	}()
	if len(b) >= 4 && string(b[:4]) == "PK\x03\x04" {
		return decodeTorchZip(name, b)
	}
	return decodeTorchLegacy(name, b)
}

func decodeTorchZip(name string, b []byte) (any, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: a damaged zip archive (%v); is the file truncated? download it again", name, err)
	}
	records := map[string]*zip.File{}
	var pkl *zip.File
	for _, f := range zr.File {
		dir, base := path.Split(f.Name)
		switch {
		case base == "data.pkl" && pkl == nil:
			pkl = f
		case strings.HasSuffix(dir, "/data/"):
			records[base] = f
		case base == "constants.pkl":
			return nil, fmt.Errorf("%s is a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead", name)
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%s: a zip archive without data.pkl, not a torch.save file", name)
	}
	r, err := pkl.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: data.pkl: %w", name, err)
	}
	defer r.Close()
	u := newTorchUnpickler(r, false, func(ref storageRef) (pytorch.StorageInterface, error) {
		class, key, n := ref.class, ref.key, ref.n
		rec, ok := records[key]
		if !ok {
			return nil, fmt.Errorf("storage %q is not in the archive (truncated?)", key)
		}
		if want := uint64(n) * uint64(class.size); rec.UncompressedSize64 != want {
			return nil, fmt.Errorf("storage %q holds %d bytes, its %d %s elements need %d", key, rec.UncompressedSize64, n, class.name, want)
		}
		data, err := rec.Open()
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		defer data.Close()
		s := class.class.New(n, ref.location)
		if err := s.SetFromFileWithSize(data, n); err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		return s, nil
	})
	obj, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("%s: data.pkl: %w", name, err)
	}
	return obj, nil
}

// newTorchUnpickler reads a torch pickle from r (the zip format's data.pkl,
// or the legacy format when legacy), building only the classes
// findTorchClass allows; load makes the storage of each reference, once per
// storage key however many tensors share it.
func newTorchUnpickler(r io.Reader, legacy bool, load func(storageRef) (pytorch.StorageInterface, error)) pickle.Unpickler {
	u := pickle.NewUnpickler(r)
	u.FindClass = findTorchClass
	loaded := map[string]pytorch.StorageInterface{}
	u.PersistentLoad = func(id any) (any, error) {
		ref, err := parseStorageRef(id, legacy)
		if err != nil {
			return nil, err
		}
		if s, ok := loaded[ref.key]; ok {
			return s, nil
		}
		s, err := load(ref)
		if err != nil {
			return nil, err
		}
		loaded[ref.key] = s
		return s, nil
	}
	return u
}

// storageRef is the persistent id by which a pickle names a tensor storage:
// ("storage", class, key, location, elements), with a sixth element in the
// legacy format (a view of the storage, None for a whole one).
type storageRef struct {
	class         *storageClass
	key, location string
	n             int
}

// parseStorageRef reads a persistent id of the zip (legacy false) or the
// legacy format.
func parseStorageRef(id any, legacy bool) (storageRef, error) {
	t, ok := id.(*types.Tuple)
	arity, what := 5, "a tensor storage"
	if legacy {
		arity, what = 6, "a whole tensor storage"
	}
	if !ok || t.Len() != arity || t.Get(0) != "storage" || legacy && t.Get(5) != nil {
		return storageRef{}, fmt.Errorf("a persistent id %v that is not %s", id, what)
	}
	class, ok1 := t.Get(1).(*storageClass)
	key, ok2 := t.Get(2).(string)
	location, ok3 := t.Get(3).(string)
	n, ok4 := t.Get(4).(int)
	if !ok1 || !ok2 || !ok3 || !ok4 || n < 0 {
		return storageRef{}, fmt.Errorf("a storage reference %v of unexpected types", id)
	}
	return storageRef{class: class, key: key, location: location, n: n}, nil
}

// storageClass is a torch storage type met in a pickle.
type storageClass struct {
	name  string
	class pytorch.StorageClassInterface
	size  int
}

// findTorchClass resolves the globals a state_dict pickle may name; any
// other is refused, so no unexpected object is ever built.
func findTorchClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return &pytorch.RebuildTensorV2{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	}
	if c, ok := storageClasses[name]; ok && module == "torch" {
		return &storageClass{name: name, class: c.class, size: c.size}, nil
	}
	return nil, fmt.Errorf("the pickle names %s.%s, which a checkpoint of tensors does not hold", module, name)
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks): a saved nn.Parameter is its tensor.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter without a tensor")
	}
	return args[0], nil
}

// legacyMagic is the number torch's pre-1.6 format starts with.
var legacyMagic = func() *big.Int { n, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16); return n }()

// decodeTorchLegacy reads torch's pre-1.6 format: pickles of the magic
// number, the protocol version (1001), system information, the object
// (storages as persistent ids) and the storage keys, then each storage as
// an int64 element count and its raw little-endian data. Every count is
// checked against the pickle and the bytes left before it is allocated.
func decodeTorchLegacy(name string, b []byte) (any, error) {
	r := bytes.NewReader(b)
	load := func(what string) (any, error) {
		u := pickle.NewUnpickler(r)
		v, err := u.Load()
		if err != nil {
			return nil, fmt.Errorf("%s is neither a torch.save file (zip or pickle) nor safetensors (%s: %v)", name, what, err)
		}
		return v, nil
	}
	magic, err := load("magic number")
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("%s is neither a torch.save file (zip or pickle) nor safetensors (no torch magic number)", name)
	}
	if v, err := load("protocol version"); err != nil || v != 1001 {
		return nil, fmt.Errorf("%s: torch legacy protocol version %v, want 1001 (%v)", name, v, err)
	}
	if _, err := load("system information"); err != nil {
		return nil, err
	}
	type pending struct {
		class *storageClass
		n     int
		s     pytorch.StorageInterface
	}
	storages := map[string]*pending{}
	u := newTorchUnpickler(r, true, func(ref storageRef) (pytorch.StorageInterface, error) {
		class, key, n := ref.class, ref.key, ref.n
		if uint64(n)*uint64(class.size) > uint64(r.Len()) {
			return nil, fmt.Errorf("storage %q of %d %s elements is longer than the rest of the file (truncated?)", key, n, class.name)
		}
		p := &pending{class: class, n: n, s: class.class.New(n, ref.location)}
		storages[key] = p
		return p.s, nil
	})
	obj, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	keys, err := load("storage keys")
	if err != nil {
		return nil, err
	}
	list, ok := keys.(*types.List)
	if !ok {
		return nil, fmt.Errorf("%s: the storage keys are a %T, not a list", name, keys)
	}
	for i := range list.Len() {
		key, _ := list.Get(i).(string)
		p, ok := storages[key]
		if !ok {
			return nil, fmt.Errorf("%s: storage %v is listed but no tensor uses it", name, list.Get(i))
		}
		var count int64
		if err := binary.Read(r, binary.LittleEndian, &count); err != nil || count != int64(p.n) {
			return nil, fmt.Errorf("%s: storage %q: element count %d, the pickle says %d (truncated?)", name, key, count, p.n)
		}
		if uint64(p.n)*uint64(p.class.size) > uint64(r.Len()) {
			return nil, fmt.Errorf("%s: storage %q is cut short (truncated file)", name, key)
		}
		if err := p.s.SetFromFileWithSize(r, p.n); err != nil {
			return nil, fmt.Errorf("%s: storage %q: %w", name, key, err)
		}
		delete(storages, key)
	}
	for key := range storages {
		return nil, fmt.Errorf("%s: storage %q has no data (truncated?)", name, key)
	}
	return obj, nil
}

// dictEntries returns the string-keyed entries of a pickled dict in order,
// or ok false when v is not a dict.
func dictEntries(v any) (keys []string, values []any, ok bool, err error) {
	add := func(k, val any) {
		s, isString := k.(string)
		if !isString && err == nil {
			err = fmt.Errorf("a dict key %v of type %T, not a string", k, k)
		}
		keys, values = append(keys, s), append(values, val)
	}
	switch d := v.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			add(entry.Key, entry.Value)
		}
	case *types.Dict:
		for _, entry := range *d {
			add(entry.Key, entry.Value)
		}
	default:
		return nil, nil, false, nil
	}
	return keys, values, true, err
}

// torchStateDict finds the state_dict in a torch.save object: the object
// itself, or its "state_dict" entry (MoCo's checkpoints, which also hold
// "epoch", "arch" and "optimizer"; those are returned as ignored).
func torchStateDict(name string, obj any) (StateDict, []string, error) {
	keys, values, ok, err := dictEntries(obj)
	if !ok {
		return nil, nil, fmt.Errorf("%s holds a %T, not a dict of tensors (a state_dict or a checkpoint with one)", name, obj)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	var ignored []string
	for i, k := range keys {
		if k == "state_dict" {
			if keys, values, ok, err = dictEntries(values[i]); !ok || err != nil {
				return nil, nil, fmt.Errorf("%s: key \"state_dict\" holds a %T, not a dict of tensors", name, values[i])
			}
			ignored = removeKey(keysOf(obj), "state_dict")
			break
		}
	}
	sd := StateDict{}
	for i, k := range keys {
		t, ok := values[i].(*pytorch.Tensor)
		if !ok {
			return nil, nil, fmt.Errorf("%s: key %q holds a %T, not a tensor; is this a state_dict?", name, k, values[i])
		}
		v, err := tensorValues(t)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: key %q: %w", name, k, err)
		}
		sd[k] = v
	}
	return sd, ignored, nil
}

// topLevelInt returns the non-negative integer entry key of a pickled dict,
// or 0.
func topLevelInt(obj any, key string) int {
	keys, values, _, _ := dictEntries(obj)
	for i, k := range keys {
		if v, ok := values[i].(int); ok && k == key && v >= 0 {
			return v
		}
	}
	return 0
}

func keysOf(obj any) []string {
	keys, _, _, _ := dictEntries(obj)
	return keys
}

func removeKey(keys []string, drop string) []string {
	var out []string
	for _, k := range keys {
		if k != drop {
			out = append(out, k)
		}
	}
	return out
}

// tensorValues gathers a tensor's elements (storage, offset, size, stride)
// into a row-major Tensor.
func tensorValues(t *pytorch.Tensor) (Tensor, error) {
	var (
		f32 []float32
		i64 []int64
		n   int
	)
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		f32, n = s.Data, len(s.Data)
	case *pytorch.HalfStorage:
		f32, n = s.Data, len(s.Data)
	case *pytorch.BFloat16Storage:
		f32, n = s.Data, len(s.Data)
	case *pytorch.DoubleStorage:
		f32, n = numconv.Slice[float32](s.Data), len(s.Data)
	case *pytorch.LongStorage:
		i64, n = s.Data, len(s.Data)
	case *pytorch.IntStorage:
		i64, n = numconv.Slice[int64](s.Data), len(s.Data)
	default:
		return Tensor{}, fmt.Errorf("storage of type %T is not supported (floating point or int32/int64)", t.Source)
	}
	if len(t.Size) != len(t.Stride) || t.StorageOffset < 0 {
		return Tensor{}, fmt.Errorf("size %v and stride %v do not match", t.Size, t.Stride)
	}
	last, total := t.StorageOffset, 1 // the highest element index, the element count
	for i, d := range t.Size {
		if d < 0 || t.Stride[i] < 0 {
			return Tensor{}, fmt.Errorf("negative size %v or stride %v", t.Size, t.Stride)
		}
		if d == 0 {
			total = 0
			continue
		}
		if d > n || t.Stride[i] > n {
			return Tensor{}, fmt.Errorf("size %v with stride %v exceeds the storage of %d elements", t.Size, t.Stride, n)
		}
		last += (d - 1) * t.Stride[i]
		if total *= d; total > n { // state_dicts hold no expanded (stride 0) tensors
			return Tensor{}, fmt.Errorf("size %v exceeds the storage of %d elements", t.Size, n)
		}
	}
	if total > 0 && last >= n {
		return Tensor{}, fmt.Errorf("size %v, stride %v and offset %d reach past the storage of %d elements", t.Size, t.Stride, t.StorageOffset, n)
	}
	out := Tensor{Shape: append([]int{}, t.Size...)}
	index := make([]int, total) // storage index of every element, row-major
	for e := range index {
		off, rest := t.StorageOffset, e
		for i := len(t.Size) - 1; i >= 0; i-- {
			off += rest % t.Size[i] * t.Stride[i]
			rest /= t.Size[i]
		}
		index[e] = off
	}
	if f32 != nil || i64 == nil {
		out.F32 = make([]float32, total)
		for e, off := range index {
			out.F32[e] = f32[off]
		}
	} else {
		out.I64 = make([]int64, total)
		for e, off := range index {
			out.I64[e] = i64[off]
		}
	}
	return out, nil
}
