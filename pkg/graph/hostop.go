package graph

import (
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// HostOp marks a Gorgonia op whose Do is its only implementation and which
// a plan may run on the CPU backend by calling Do on the buffers' host
// memory (the MoCHi loss ops of pkg/hardneg). On any other backend Compile
// refuses it.
type HostOp interface {
	gorgonia.Op
	RunsOnHost()
}

// hostKernel runs a HostOp's Do over CPU buffers wrapped as tensors of the
// nodes' shapes and copies the result into the output buffer.
type hostKernel struct {
	op       HostOp
	inShapes []tensor.Shape
	inTypes  []tensor.Dtype
}

func newHostKernel(n *gorgonia.Node, children []*gorgonia.Node, op HostOp) (*hostKernel, error) {
	k := &hostKernel{op: op}
	for _, c := range children {
		if c.Dtype() != tensor.Float32 && c.Dtype() != tensor.Int32 {
			return nil, fmt.Errorf("graph.Compile: node %v: input %v is %v; host ops take float32 or int32", n.Name(), c.Name(), c.Dtype())
		}
		k.inShapes = append(k.inShapes, c.Shape().Clone())
		k.inTypes = append(k.inTypes, c.Dtype())
	}
	return k, nil
}

func (k *hostKernel) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	if be.Name() != "cpu" {
		return fmt.Errorf("%v runs on the host only; the %s backend cannot run it", k.op, be.Name())
	}
	vals := make([]gorgonia.Value, len(in))
	for i, b := range in {
		vals[i] = hostValue(b, k.inShapes[i], k.inTypes[i])
	}
	v, err := k.op.Do(vals...)
	if err != nil {
		return err
	}
	switch d := v.Data().(type) {
	case []float32:
		copy(cpu.Float32s(out), d)
	case float32:
		cpu.Float32s(out)[0] = d
	case []int32:
		copy(cpu.Int32s(out), d)
	default:
		return fmt.Errorf("%v returned %T; plans hold float32 and int32 values", k.op, d)
	}
	return nil
}

// hostValue wraps a CPU buffer as a Gorgonia value of the given shape,
// sharing its memory.
func hostValue(b device.Buffer, s tensor.Shape, dt tensor.Dtype) gorgonia.Value {
	if dt == tensor.Int32 {
		x := cpu.Int32s(b)
		if s.IsScalar() {
			return gorgonia.NewI32(x[0])
		}
		return tensor.New(tensor.WithShape(s...), tensor.WithBacking(x[:s.TotalSize()]))
	}
	x := cpu.Float32s(b)
	if s.IsScalar() {
		return gorgonia.NewF32(x[0])
	}
	return tensor.New(tensor.WithShape(s...), tensor.WithBacking(x[:s.TotalSize()]))
}
