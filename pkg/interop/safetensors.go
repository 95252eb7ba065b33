package interop

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/nlpodyssey/safetensors"

	"github.com/mochi-ssl/mochi/pkg/npy"
)

// view is a Tensor as the safetensors library serialises it.
type view struct {
	dtype safetensors.DType
	shape []uint64
	data  []byte
}

func (v view) DType() safetensors.DType { return v.dtype }
func (v view) Shape() []uint64          { return v.shape }
func (v view) Data() []byte             { return v.data }
func (v view) DataLen() uint64          { return uint64(len(v.data)) }

// toView lays a tensor out little-endian, as safetensors stores it.
func toView(t Tensor) (view, error) {
	if n := npyLen(t); n != npy.Len(t.Shape) {
		return view{}, fmt.Errorf("%d values for shape %s", n, shapeString(t.Shape))
	}
	v := view{shape: make([]uint64, len(t.Shape))}
	for i, d := range t.Shape {
		v.shape[i] = uint64(d)
	}
	if t.I64 != nil {
		v.dtype, v.data = safetensors.I64, make([]byte, 8*len(t.I64))
		for i, x := range t.I64 {
			binary.LittleEndian.PutUint64(v.data[8*i:], uint64(x))
		}
		return v, nil
	}
	v.dtype, v.data = safetensors.F32, make([]byte, 4*len(t.F32))
	for i, x := range t.F32 {
		binary.LittleEndian.PutUint32(v.data[4*i:], math.Float32bits(x))
	}
	return v, nil
}

// npyLen is the number of values a tensor holds.
func npyLen(t Tensor) int {
	if t.I64 != nil {
		return len(t.I64)
	}
	return len(t.F32)
}

// WriteSafetensors writes sd as a safetensors file with the string
// metadata meta (its "__metadata__").
func WriteSafetensors(w io.Writer, sd StateDict, meta map[string]string) error {
	views := make(map[string]view, len(sd))
	for name, t := range sd {
		v, err := toView(t)
		if err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		views[name] = v
	}
	return safetensors.SerializeToWriter(views, meta, w)
}

// DecodeSafetensors parses a whole safetensors file; name is the file's
// name for errors.
func DecodeSafetensors(name string, b []byte) (StateDict, map[string]string, error) {
	st, err := safetensors.Deserialize(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a valid safetensors file (%v); is it truncated?", name, err)
	}
	_, meta, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	sd := StateDict{}
	for _, nt := range st.Tensors() {
		v := nt.TensorView
		shape := make([]int, len(v.Shape()))
		for i, d := range v.Shape() {
			if d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("%s: tensor %q has dimension %d", name, nt.Name, d)
			}
			shape[i] = int(d)
		}
		t, err := fromBytes(v.DType(), shape, v.Data())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: %w", name, nt.Name, err)
		}
		sd[nt.Name] = t
	}
	return sd, meta.Metadata(), nil
}

// fromBytes converts little-endian safetensors data to a Tensor.
func fromBytes(dt safetensors.DType, shape []int, b []byte) (Tensor, error) {
	n := npy.Len(shape)
	if uint64(len(b)) != uint64(n)*dt.Size() {
		return Tensor{}, fmt.Errorf("%d bytes for shape %s of %v", len(b), shapeString(shape), dt)
	}
	t := Tensor{Shape: shape}
	le := binary.LittleEndian
	switch dt {
	case safetensors.F32:
		t.F32 = decodeLE(b, n, 4, func(p []byte) float32 { return math.Float32frombits(le.Uint32(p)) })
	case safetensors.F64:
		t.F32 = decodeLE(b, n, 8, func(p []byte) float32 { return float32(math.Float64frombits(le.Uint64(p))) })
	case safetensors.F16:
		t.F32 = decodeLE(b, n, 2, func(p []byte) float32 { return halfToFloat(le.Uint16(p)) })
	case safetensors.BF16:
		t.F32 = decodeLE(b, n, 2, func(p []byte) float32 { return math.Float32frombits(uint32(le.Uint16(p)) << 16) })
	case safetensors.I64:
		t.I64 = decodeLE(b, n, 8, func(p []byte) int64 { return int64(le.Uint64(p)) })
	case safetensors.I32:
		t.I64 = decodeLE(b, n, 4, func(p []byte) int64 { return int64(int32(le.Uint32(p))) })
	default:
		return Tensor{}, fmt.Errorf("dtype %v is not supported (floating point or int32/int64)", dt)
	}
	return t, nil
}

// decodeLE converts n elements of size bytes each from b with at.
func decodeLE[T any](b []byte, n, size int, at func([]byte) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = at(b[size*i:])
	}
	return out
}

// halfToFloat converts an IEEE binary16 value.
func halfToFloat(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(frac, -24))
	case 31:
		if frac == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(1+frac/1024, exp-15))
}
