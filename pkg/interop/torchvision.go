package interop

import (
	"fmt"
	"slices"
	"strings"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/npy"
	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Encoder is one network's state as mochi holds it: parameters and
// BatchNorm running statistics by torchvision name, flattened.
type Encoder struct {
	Weights map[string][]float32
	Stats   map[string][]float32
}

// layout lists a network's tensors in torchvision's order: every
// parameter with its shape, and every BatchNorm layer's name.
type layout struct {
	names  []string         // parameters, named_parameters order
	shapes map[string][]int // parameter shapes
	norms  []string         // BatchNorm layers (bn1, layer1.0.bn1, …)
	width  map[string]int   // channels of each BatchNorm layer
}

// netLayout builds the network of cfg on a scratch graph to read its
// parameter names and shapes; nothing is computed.
func netLayout(cfg resnet.Config) (*layout, error) {
	cfg = cfg.WithDefaults()
	cfg.BNGroups, cfg.Prefix = 1, ""
	g := gorgonia.NewGraph()
	x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(1, cfg.InChannels, 32, 32), gorgonia.WithName("x"))
	m, err := resnet.Build(g, x, cfg, nil)
	if err != nil {
		return nil, err
	}
	l := &layout{shapes: m.Shapes(), width: map[string]int{}}
	for _, p := range m.Params {
		l.names = append(l.names, p.Name)
	}
	for _, n := range m.Norms {
		l.norms = append(l.norms, n.Name)
		l.width[n.Name] = l.shapes[n.Name+".weight"][0]
	}
	return l, nil
}

// Export returns the torchvision state_dict of an encoder of the network
// net: the backbone, and with head MoCo-v2's MLP head (fc.0, fc.2). Every
// BatchNorm layer gets num_batches_tracked = batches, the number of
// batches its statistics have seen.
func Export(net resnet.Config, enc Encoder, head bool, batches int64) (StateDict, error) {
	if head && net.EmbedDim == 0 {
		return nil, fmt.Errorf("export: the network has no projection head to export")
	}
	if !head {
		net.EmbedDim = 0
	}
	l, err := netLayout(net)
	if err != nil {
		return nil, err
	}
	sd := StateDict{}
	put := func(name string, shape []int, v []float32) error {
		if v == nil {
			return fmt.Errorf("export: the checkpoint has no values for %s", name)
		}
		if len(v) != npy.Len(shape) {
			return fmt.Errorf("export: %s has %d values, torchvision's shape %s needs %d", name, len(v), shapeString(shape), npy.Len(shape))
		}
		sd[name] = Tensor{Shape: shape, F32: append([]float32(nil), v...)}
		return nil
	}
	for _, name := range l.names {
		if err := put(name, l.shapes[name], enc.Weights[name]); err != nil {
			return nil, err
		}
	}
	for _, bn := range l.norms {
		c := []int{l.width[bn]}
		for _, s := range []string{".running_mean", ".running_var"} {
			if err := put(bn+s, c, enc.Stats[bn+s]); err != nil {
				return nil, err
			}
		}
		sd[bn+".num_batches_tracked"] = Tensor{Shape: []int{}, I64: []int64{batches}}
	}
	return sd, nil
}

// Imported is a state_dict mapped onto a mochi network.
type Imported struct {
	Net     resnet.Config // the network asked for, with the file's input channels and head
	Layout  string        // the layout recognised, e.g. "MoCo (module.encoder_q.)"
	Query   Encoder       // the query encoder, or the only network of the file
	Key     *Encoder      // MoCo's key encoder; nil when the file has none
	Queue   *queue.State  // MoCo's queue of negatives; nil when the file has none
	Head    bool          // the file holds MoCo-v2's MLP head (fc.0, fc.2)
	Ignored []string      // keys of the file that Import did not use, with why
}

// mocoLayouts are the key prefixes of the layouts Import recognises, most
// specific first: MoCo's model saved under DataParallel or not, a
// DataParallel torchvision model, a plain torchvision model.
var mocoLayouts = []struct{ name, query, key, queue string }{
	{"MoCo (module.encoder_q.)", "module.encoder_q.", "module.encoder_k.", "module."},
	{"MoCo (encoder_q.)", "encoder_q.", "encoder_k.", ""},
	{"torchvision (DataParallel module.)", "module.", "", ""},
	{"torchvision", "", "", ""},
}

// Import maps f's state_dict onto the network net (net.InChannels and
// net.EmbedDim are taken from the file: conv1's input channels, the head's
// output or no head). Every tensor the network needs must be present with
// its shape; a model tensor the network lacks is an error too (another
// architecture), while BatchNorm counters, torchvision's classifier fc and
// entries outside the model are reported in Ignored.
func Import(f *File, net resnet.Config) (*Imported, error) {
	sd := f.Tensors
	im := &Imported{Net: net}
	for _, e := range f.Ignored {
		im.Ignored = append(im.Ignored, e+" (not a tensor of the state_dict)")
	}
	var query, key, queuePrefix string
	for _, l := range mocoLayouts {
		if _, ok := sd[l.query+"conv1.weight"]; ok {
			im.Layout, query, key, queuePrefix = l.name, l.query, l.key, l.queue
			break
		}
	}
	if im.Layout == "" {
		names := sd.Names()
		return nil, fmt.Errorf("%s: no ResNet weights found: no conv1.weight, module.encoder_q.conv1.weight or module.conv1.weight among its %d keys (%s)", f.Path, len(names), listKeys(names))
	}
	conv1 := sd[query+"conv1.weight"]
	if len(conv1.Shape) != 4 || (conv1.Shape[1] != 1 && conv1.Shape[1] != 3) {
		return nil, fmt.Errorf("%s: key %q has shape %s, not a ResNet stem of 1 or 3 input channels", f.Path, query+"conv1.weight", shapeString(conv1.Shape))
	}
	im.Net.InChannels = conv1.Shape[1]
	_, im.Head = sd[query+"fc.0.weight"]
	wantDim := im.Net.EmbedDim
	im.Net.EmbedDim = 0
	if im.Head {
		fc2 := sd[query+"fc.2.weight"]
		if len(fc2.Shape) != 2 {
			return nil, fmt.Errorf("%s: key %q (the head's output layer) is missing or not a matrix", f.Path, query+"fc.2.weight")
		}
		if im.Net.EmbedDim = fc2.Shape[0]; wantDim != 0 && wantDim != im.Net.EmbedDim {
			return nil, fmt.Errorf("%s: key %q has shape %s: the head makes %d-dimensional embeddings, the config asks for %d; set model.embed_dim to %d",
				f.Path, query+"fc.2.weight", shapeString(fc2.Shape), im.Net.EmbedDim, wantDim, im.Net.EmbedDim)
		}
	}
	l, err := netLayout(im.Net)
	if err != nil {
		return nil, err
	}

	used := map[string]bool{}
	enc, err := mapEncoder(f.Path, sd, query, l, used)
	if err != nil {
		return nil, err
	}
	im.Query = *enc
	if key != "" {
		if _, ok := sd[key+"conv1.weight"]; ok {
			if im.Key, err = mapEncoder(f.Path, sd, key, l, used); err != nil {
				return nil, err
			}
		}
	}
	if _, ok := sd[queuePrefix+"queue"]; ok && key != "" && im.Head {
		if im.Queue, err = mapQueue(f.Path, sd, queuePrefix, im.Net.EmbedDim); err != nil {
			return nil, err
		}
		used[queuePrefix+"queue"], used[queuePrefix+"queue_ptr"] = true, true
	}
	var unexpected []string
	for _, name := range sd.Names() {
		if used[name] {
			continue
		}
		local, inModel := strings.CutPrefix(name, query)
		if !inModel && key != "" {
			local, inModel = strings.CutPrefix(name, key)
		}
		switch {
		case !inModel && name == queuePrefix+"queue":
			im.Ignored = append(im.Ignored, name+" (MoCo's queue, of no use without MoCo-v2's head)")
		case !inModel:
			im.Ignored = append(im.Ignored, name+" (outside the encoder)")
		case strings.HasSuffix(local, ".num_batches_tracked"):
			im.Ignored = append(im.Ignored, name+" (BatchNorm counter; mochi's BatchNorm uses a fixed momentum)")
		case local == "fc.weight" || local == "fc.bias":
			im.Ignored = append(im.Ignored, name+" (a classifier or single-layer head, not MoCo-v2's MLP head)")
		default:
			unexpected = append(unexpected, name)
		}
	}
	if len(unexpected) > 0 {
		return nil, fmt.Errorf("%s: %d keys that a %s does not have: %s; is the checkpoint another architecture? set model.backbone, model.width and model.stem to match it",
			f.Path, len(unexpected), describe(im.Net), listKeys(unexpected))
	}
	slices.Sort(im.Ignored)
	return im, nil
}

// describe names a network for messages: "resnet18 (width 64, small stem)".
func describe(c resnet.Config) string {
	c = c.WithDefaults()
	stem := "cifar"
	if c.Stem == resnet.ImageNetStem {
		stem = "imagenet"
	}
	return fmt.Sprintf("resnet%d (width %d, %s stem)", c.Depth, c.Width, stem)
}

// mapEncoder reads the network of l from the keys under prefix, checking
// every shape, and marks the keys it used.
func mapEncoder(path string, sd StateDict, prefix string, l *layout, used map[string]bool) (*Encoder, error) {
	enc := &Encoder{Weights: map[string][]float32{}, Stats: map[string][]float32{}}
	var missing []string
	take := func(local string, shape []int, into map[string][]float32) error {
		name := prefix + local
		t, ok := sd[name]
		if !ok {
			missing = append(missing, name)
			return nil
		}
		if !slices.Equal(t.Shape, shape) {
			return fmt.Errorf("%s: key %q has shape %s, the configured network needs %s; is the checkpoint another architecture? set model.backbone, model.width and model.stem to match it",
				path, name, shapeString(t.Shape), shapeString(shape))
		}
		if t.F32 == nil {
			return fmt.Errorf("%s: key %q holds integers, not floating-point values", path, name)
		}
		into[local] = t.F32
		used[name] = true
		return nil
	}
	for _, name := range l.names {
		if err := take(name, l.shapes[name], enc.Weights); err != nil {
			return nil, err
		}
	}
	for _, bn := range l.norms {
		for _, s := range []string{".running_mean", ".running_var"} {
			if err := take(bn+s, []int{l.width[bn]}, enc.Stats); err != nil {
				return nil, err
			}
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %d keys the configured network needs are missing: %s; is the checkpoint another architecture? set model.backbone, model.width and model.stem to match it",
			path, len(missing), listKeys(missing))
	}
	return enc, nil
}

// mapQueue reads MoCo's queue buffer (D×K, keys in columns) and pointer.
func mapQueue(path string, sd StateDict, prefix string, dim int) (*queue.State, error) {
	q, ptr := sd[prefix+"queue"], sd[prefix+"queue_ptr"]
	if len(q.Shape) != 2 || q.F32 == nil || q.Shape[0] != dim || q.Shape[1] == 0 {
		return nil, fmt.Errorf("%s: key %q has shape %s, MoCo's queue for a head of dimension %d is [%d, K]", path, prefix+"queue", shapeString(q.Shape), dim, dim)
	}
	if len(ptr.I64) != 1 {
		return nil, fmt.Errorf("%s: key %q should hold the queue pointer, one integer", path, prefix+"queue_ptr")
	}
	d, k := q.Shape[0], q.Shape[1]
	st := &queue.State{K: k, D: d, Ptr: int(ptr.I64[0]), Keys: make([]float32, k*d), Meta: make([]queue.Meta, k)}
	for i := range k {
		for j := range d {
			st.Keys[i*d+j] = q.F32[j*k+i]
		}
		st.Meta[i] = queue.Unfilled // the file does not say which image made each key
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", path, prefix+"queue_ptr", err)
	}
	return st, nil
}
