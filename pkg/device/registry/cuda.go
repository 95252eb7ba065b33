//go:build gpu

package registry

import (
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cuda"
)

// The GPU build registers "cuda": the backend on GPU 0.
func init() {
	register("cuda", func() (device.Backend, error) {
		b, err := cuda.New(0)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return b, nil
	})
}
