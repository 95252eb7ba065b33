package main

import (
	"fmt"
	"io"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/device/registry"
)

// openDevice opens the compute backend named by run.device (or --device),
// switches its convolutions to TF32 when tf32 is set (run.tf32, --tf32) and
// the CPU backend's convolutions to cpuConv (cpu.conv), and notes on log
// what does not apply: TF32 on a backend without it, cpu.conv on another
// backend.
func openDevice(name string, tf32 bool, cpuConv string, log io.Writer) (device.Backend, error) {
	be, err := registry.Open(name)
	if err != nil {
		return nil, err
	}
	if err := setCPUConv(be, cpuConv, log); err != nil {
		closeBackend(be)
		return nil, err
	}
	if tf32 {
		if err := setTF32(be, log); err != nil {
			closeBackend(be)
			return nil, err
		}
	}
	return be, nil
}

// setTF32 switches be's convolutions to TF32, or notes on log that be has
// no such mode.
func setTF32(be device.Backend, log io.Writer) error {
	t, ok := be.(device.ConvTF32)
	if !ok {
		fmt.Fprintf(log, "note: run.tf32 has no effect on the %s backend: it computes in fp32\n", be.Name())
		return nil
	}
	if err := t.SetConvTF32(true); err != nil {
		return fmt.Errorf("run.tf32: %w", err)
	}
	return nil
}

// setCPUConv switches a CPU backend's convolutions to mode (cpu.conv), or
// notes on log that another backend ignores a mode other than the default.
func setCPUConv(be device.Backend, mode string, log io.Writer) error {
	c, ok := be.(*cpu.Backend)
	if !ok {
		if mode != config.Default().CPU.Conv {
			fmt.Fprintf(log, "note: cpu.conv has no effect on the %s backend\n", be.Name())
		}
		return nil
	}
	m, err := cpu.ParseConvMode(mode)
	if err == nil {
		err = c.SetConvMode(m)
	}
	if err != nil {
		return fmt.Errorf("cpu.conv: %w", err)
	}
	return nil
}
