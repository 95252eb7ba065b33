package main

import (
	"fmt"
	"io"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/backend"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// openDevice opens the compute backend named by run.device (or --device)
// and, for the CPU, notes on log when the environment holds OpenBLAS to
// slower kernels.
func openDevice(name string, log io.Writer) (device.Backend, error) {
	be, err := backend.Open(name)
	if err == nil && name == "cpu" {
		if hint := cpu.BLASHint(); hint != "" {
			fmt.Fprintln(log, "note:", hint)
		}
	}
	return be, err
}
