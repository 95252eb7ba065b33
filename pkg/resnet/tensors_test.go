package resnet

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// namedTensor is one entry of the exchange format of scripts/torch_resnet.py:
// base.json lists {name, shape}, base.f32 holds the values, little-endian
// float32, one tensor after the other.
type namedTensor struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	data  []float32
}

func writeTensors(base string, ts []namedTensor) error {
	index, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", index, 0o644); err != nil {
		return err
	}
	var buf []byte
	for _, t := range ts {
		for _, v := range t.data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	return os.WriteFile(base+".f32", buf, 0o644)
}

func readTensors(base string) (map[string]namedTensor, error) {
	index, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var ts []namedTensor
	if err := json.Unmarshal(index, &ts); err != nil {
		return nil, fmt.Errorf("%s.json: %w", base, err)
	}
	raw, err := os.ReadFile(base + ".f32")
	if err != nil {
		return nil, err
	}
	out := make(map[string]namedTensor, len(ts))
	off := 0
	for _, t := range ts {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if 4*(off+n) > len(raw) {
			return nil, fmt.Errorf("%s.f32 is shorter than %s.json says", base, base)
		}
		t.data = make([]float32, n)
		for i := range t.data {
			t.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(off+i):]))
		}
		off += n
		out[t.Name] = t
	}
	if 4*off != len(raw) {
		return nil, fmt.Errorf("%s.f32 holds %d values, %s.json lists %d", base, len(raw)/4, base, off)
	}
	return out, nil
}
