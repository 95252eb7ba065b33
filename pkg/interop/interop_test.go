package interop

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/npy"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// tiny is a small network for format tests: ResNet-18 of width 4 on grey
// images, with MoCo-v2's head of dimension 8.
var tiny = resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 4, InChannels: 1, EmbedDim: 8}

// randomEncoder returns random parameters and statistics for net.
func randomEncoder(t testing.TB, net resnet.Config, seed uint64) Encoder {
	t.Helper()
	l, err := netLayout(net)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	enc := Encoder{Weights: map[string][]float32{}, Stats: map[string][]float32{}}
	for _, name := range l.names {
		enc.Weights[name] = fill(npy.Len(l.shapes[name]))
	}
	for _, bn := range l.norms {
		enc.Stats[bn+".running_mean"], enc.Stats[bn+".running_var"] = fill(l.width[bn]), fill(l.width[bn])
	}
	return enc
}

func safetensorsBytes(t testing.TB, sd StateDict, meta map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSafetensors(&b, sd, meta); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestExportImportRoundTrip exports an encoder with its head to
// safetensors and imports it again: every value, the torchvision shapes and
// dtypes, the metadata and the report of ignored keys.
func TestExportImportRoundTrip(t *testing.T) {
	enc := randomEncoder(t, tiny, 1)
	sd, err := Export(tiny, enc, true, 42)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]int{"conv1.weight": {4, 1, 3, 3}, "layer2.0.downsample.0.weight": {8, 4, 1, 1},
		"bn1.running_var": {4}, "fc.0.weight": {32, 32}, "fc.2.weight": {8, 32}, "fc.2.bias": {8}, "bn1.num_batches_tracked": {}} {
		if !slices.Equal(sd[name].Shape, want) {
			t.Errorf("%s: shape %v, torchvision's is %v", name, sd[name].Shape, want)
		}
	}
	if n := sd["layer4.1.bn2.num_batches_tracked"]; n.I64 == nil || n.I64[0] != 42 {
		t.Errorf("num_batches_tracked = %+v, want int64 42", n)
	}
	path := testenv.TempFile(t, "enc.safetensors", safetensorsBytes(t, sd, map[string]string{"mochi.checkpoint_sha256": "abc"}))
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != "safetensors" || f.Metadata["mochi.checkpoint_sha256"] != "abc" {
		t.Errorf("format %q, metadata %v", f.Format, f.Metadata)
	}
	net := tiny
	net.InChannels, net.EmbedDim = 0, 0 // both come from the file
	im, err := Import(f, net)
	if err != nil {
		t.Fatal(err)
	}
	if !im.Head || im.Net.EmbedDim != 8 || im.Net.InChannels != 1 || im.Key != nil || im.Queue != nil || im.Layout != "torchvision" {
		t.Errorf("import: head %v, embed %d, channels %d, key %v, queue %v, layout %q", im.Head, im.Net.EmbedDim, im.Net.InChannels, im.Key != nil, im.Queue != nil, im.Layout)
	}
	for name, v := range enc.Weights {
		if !equal(im.Query.Weights[name], v) {
			t.Errorf("%s differs after the round trip", name)
		}
	}
	for name, v := range enc.Stats {
		if !equal(im.Query.Stats[name], v) {
			t.Errorf("%s differs after the round trip", name)
		}
	}
	if len(im.Ignored) != 20 || !strings.Contains(im.Ignored[0], "num_batches_tracked (BatchNorm counter") {
		t.Errorf("ignored %d keys, want the 20 BatchNorm counters: %v", len(im.Ignored), im.Ignored)
	}
}

// TestWriteNPZ reads every member of an exported npz back.
func TestWriteNPZ(t *testing.T) {
	sd, err := Export(tiny, randomEncoder(t, tiny, 2), false, 7)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteNPZ(&b, sd); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(sd) {
		t.Fatalf("%d members for %d tensors", len(zr.File), len(sd))
	}
	for _, m := range zr.File {
		r, _ := m.Open()
		var raw bytes.Buffer
		raw.ReadFrom(r)
		a, err := npy.Decode(raw.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		want := sd[strings.TrimSuffix(m.Name, ".npy")]
		if !slices.Equal(a.Shape, want.Shape) || !equal(a.F32, want.F32) || len(a.I64) != len(want.I64) {
			t.Errorf("%s: read %v, wrote %v", m.Name, a.Shape, want.Shape)
		}
	}
}

// pickler writes pickle opcodes (protocol 2) for hand-made torch files.
type pickler struct{ bytes.Buffer }

func (p *pickler) str(s string) {
	p.WriteByte('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}
func (p *pickler) int(v int) {
	p.WriteByte('J')
	binary.Write(p, binary.LittleEndian, int32(v))
}
func (p *pickler) global(module, name string) { p.WriteString("c" + module + "\n" + name + "\n") }
func (p *pickler) tuple(vs ...int) {
	p.WriteByte('(')
	for _, v := range vs {
		p.int(v)
	}
	p.WriteByte('t')
}

// tensor pickles torch._utils._rebuild_tensor_v2 of storage key (n float32
// elements) with the given offset, size and stride.
func (p *pickler) tensor(key string, n, offset int, size, stride []int) {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.WriteByte('(')
	p.WriteByte('(')
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.str(key)
	p.str("cpu")
	p.int(n)
	p.WriteString("tQ") // tuple, BINPERSID
	p.int(offset)
	p.tuple(size...)
	p.tuple(stride...)
	p.WriteByte(0x89) // False: requires_grad
	p.global("collections", "OrderedDict")
	p.WriteString(")R") // OrderedDict(): backward hooks
	p.WriteString("tR") // the arguments, call
}

// torchZip is a torch.save zip archive with data.pkl and float32 storages.
func torchZip(t testing.TB, pkl []byte, storages map[string][]float32) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write(pkl)
	for key, v := range storages {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data/" + key, Method: zip.Store})
		binary.Write(w, binary.LittleEndian, v)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stateDictPickle pickles {name: tensor} for tensors of storage "0".
func stateDictPickle(entries func(p *pickler)) []byte {
	var p pickler
	p.WriteString("\x80\x02}(") // protocol 2, empty dict, mark
	entries(&p)
	p.WriteString("u.") // set items, stop
	return p.Bytes()
}

// TestReadTorchZip reads hand-made torch.save archives: a contiguous
// tensor, a transposed view with an offset, and a MoCo-style checkpoint
// dict whose other entries are reported as ignored.
func TestReadTorchZip(t *testing.T) {
	storage := map[string][]float32{"0": {0, 1, 2, 3, 4, 5, 6}}
	pkl := stateDictPickle(func(p *pickler) {
		p.str("a")
		p.tensor("0", 7, 0, []int{2, 3}, []int{3, 1})
		p.str("b") // b = a[:, :2].T of the storage from offset 1
		p.tensor("0", 7, 1, []int{2, 2}, []int{1, 3})
	})
	f, err := Read(testenv.TempFile(t, "sd.pth", torchZip(t, pkl, storage)))
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Tensors["a"]; !slices.Equal(a.Shape, []int{2, 3}) || !equal(a.F32, []float32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("a = %+v", a)
	}
	if b := f.Tensors["b"]; !slices.Equal(b.Shape, []int{2, 2}) || !equal(b.F32, []float32{1, 4, 2, 5}) {
		t.Errorf("b = %+v, want [[1 4] [2 5]]", b)
	}

	var p pickler
	p.WriteString("\x80\x02}(")
	p.str("epoch")
	p.int(200)
	p.str("state_dict")
	p.WriteString("}(")
	p.str("module.encoder_q.x")
	p.tensor("0", 7, 0, []int{7}, []int{1})
	p.WriteString("u")
	p.WriteString("u.")
	f, err = Read(testenv.TempFile(t, "moco.pth.tar", torchZip(t, p.Bytes(), storage)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 1 || len(f.Ignored) != 1 || f.Ignored[0] != "epoch" {
		t.Errorf("tensors %v, ignored %v: want module.encoder_q.x and epoch", f.Tensors, f.Ignored)
	}
}

// TestBadInput feeds Read and Import files they must refuse with an error
// that names the file and, where there is one, the key.
func TestBadInput(t *testing.T) {
	storage := map[string][]float32{"0": {0, 1, 2, 3}}
	good := torchZip(t, stateDictPickle(func(p *pickler) {
		p.str("conv1.weight")
		p.tensor("0", 4, 0, []int{4}, []int{1})
	}), storage)
	sdBytes := safetensorsBytes(t, StateDict{"conv1.weight": {Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}}}, nil)

	r34 := tiny
	r34.Depth = 34
	sd34, err := Export(r34, randomEncoder(t, r34, 3), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	r50 := tiny
	r50.Depth = 50
	sd50, err := Export(r50, randomEncoder(t, r50, 4), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	noBN := StateDict{}
	for name, v := range sd34 {
		if !strings.HasPrefix(name, "layer4.1.bn2.") {
			noBN[name] = v
		}
	}

	for _, tc := range []struct {
		name  string
		file  []byte
		wants []string
	}{
		{"truncated.pth.tar", good[:len(good)/2], []string{"truncated.pth.tar", "damaged zip", "truncated"}},
		{"os-system.pth", torchZip(t, stateDictPickle(func(p *pickler) {
			p.str("conv1.weight")
			p.global("os", "system")
		}), storage), []string{"os-system.pth", "os.system"}},
		{"string-value.pth", torchZip(t, stateDictPickle(func(p *pickler) {
			p.str("conv1.weight")
			p.str("not a tensor")
		}), storage), []string{"string-value.pth", `key "conv1.weight"`, "string, not a tensor"}},
		{"short-storage.pth", torchZip(t, stateDictPickle(func(p *pickler) {
			p.str("conv1.weight")
			p.tensor("0", 1000, 0, []int{1000}, []int{1})
		}), storage), []string{"short-storage.pth", `storage "0" holds 16 bytes`}},
		{"past-storage.pth", torchZip(t, stateDictPickle(func(p *pickler) {
			p.str("conv1.weight")
			p.tensor("0", 4, 2, []int{4}, []int{1})
		}), storage), []string{"past-storage.pth", `key "conv1.weight"`, "reach past the storage"}},
		{"list.pth", torchZip(t, []byte("\x80\x02]."), nil), []string{"list.pth", "not a dict of tensors"}},
		{"truncated.safetensors", sdBytes[:len(sdBytes)-3], []string{"truncated.safetensors"}},
		{"garbage.bin", []byte("hello, world"), []string{"garbage.bin", "neither a torch.save file"}},
		{"legacy-garbage.pth", []byte("\x80\x02\x8a\x0a"), []string{"legacy-garbage.pth"}},
		{"resnet34.safetensors", safetensorsBytes(t, sd34, nil), []string{"resnet34.safetensors", "80 keys that a resnet18 (width 4, cifar stem) does not have", "layer1.2.bn1.bias"}},
		{"resnet50.safetensors", safetensorsBytes(t, sd50, nil), []string{"resnet50.safetensors", `key "layer1.0.conv1.weight" has shape [4, 4, 1, 1]`, "needs [4, 4, 3, 3]", "model.backbone"}},
		{"missing.safetensors", safetensorsBytes(t, noBN, nil), []string{"missing.safetensors", "missing", "layer4.1.bn2.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testenv.TempFile(t, tc.name, tc.file)
			f, err := Read(path)
			if err == nil {
				if tc.name == "missing.safetensors" {
					net := tiny
					net.Depth = 34
					_, err = Import(f, net)
				} else {
					_, err = Import(f, tiny)
				}
			}
			if err == nil {
				t.Fatalf("%s was accepted", tc.name)
			}
			testenv.Contains(t, "error", err.Error(), tc.wants...)
		})
	}
}

// FuzzRead feeds Read and Import arbitrary files: errors are fine, panics
// are not. The seeds are a torch zip, a safetensors file and a legacy
// pickle header.
func FuzzRead(f *testing.F) {
	f.Add(torchZip(f, stateDictPickle(func(p *pickler) {
		p.str("conv1.weight")
		p.tensor("0", 4, 0, []int{1, 1, 2, 2}, []int{4, 4, 2, 1})
	}), map[string][]float32{"0": {0, 1, 2, 3}}))
	f.Add(safetensorsBytes(f, StateDict{"conv1.weight": {Shape: []int{1, 1, 2, 2}, F32: []float32{1, 2, 3, 4}}, "n": {Shape: []int{}, I64: []int64{3}}}, map[string]string{"a": "b"}))
	f.Add([]byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "fuzz.pth")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if file, err := Read(path); err == nil {
			Import(file, tiny)
		}
	})
}

// TestImportMoCoV1 maps a MoCo (v1) layout: a single linear head fc and a
// queue, both of no use to mochi's MLP-head network, are ignored.
func TestImportMoCoV1(t *testing.T) {
	net := tiny
	net.EmbedDim = 0
	sd := StateDict{}
	backbone, err := Export(net, randomEncoder(t, net, 5), false, 1)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range backbone {
		sd["module.encoder_q."+name] = v
		sd["module.encoder_k."+name] = v
	}
	sd["module.encoder_q.fc.weight"] = Tensor{Shape: []int{8, 32}, F32: make([]float32, 256)}
	sd["module.encoder_q.fc.bias"] = Tensor{Shape: []int{8}, F32: make([]float32, 8)}
	sd["module.queue"] = Tensor{Shape: []int{8, 16}, F32: make([]float32, 128)}
	sd["module.queue_ptr"] = Tensor{Shape: []int{1}, I64: []int64{0}}
	im, err := Import(&File{Path: "moco_v1.pth.tar", Tensors: sd}, tiny)
	if err != nil {
		t.Fatal(err)
	}
	if im.Head || im.Queue != nil || im.Key == nil || im.Layout != "MoCo (module.encoder_q.)" {
		t.Errorf("head %v, queue %v, key %v, layout %q: want the two backbones alone", im.Head, im.Queue != nil, im.Key != nil, im.Layout)
	}
	ignored := strings.Join(im.Ignored, "\n")
	testenv.Contains(t, "ignored keys", ignored, "module.queue (MoCo's queue", "module.queue_ptr (outside", "module.encoder_q.fc.weight (a classifier or single-layer head")
}
