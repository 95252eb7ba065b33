package main

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// openBackend returns the compute backend named by run.device.
func openBackend(name string) (device.Backend, error) {
	if name != "cpu" {
		return nil, fmt.Errorf("run.device = %s: this binary has the cpu backend only; build the GPU binary with scripts/build-gpu.sh", name)
	}
	return cpu.New(0), nil
}
