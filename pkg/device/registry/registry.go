package registry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// opener creates a backend; each call returns a new one.
type opener func() (device.Backend, error)

// openers holds the backends of this binary by name.
var openers = map[string]opener{
	"cpu": func() (device.Backend, error) { return cpu.New(0), nil },
}

// gpuOnly lists the backends that exist only in the GPU build, to tell a
// user of the CPU binary where to find them.
var gpuOnly = []string{"cuda"}

// register adds a backend under name; an init function of a file behind a
// build tag calls it. A name registered twice is a programming error.
func register(name string, open opener) {
	if _, dup := openers[name]; dup {
		panic("registry: " + name + " registered twice")
	}
	openers[name] = open
}

// Available lists the backends built into this binary, "cpu" first and the
// rest sorted.
func Available() []string {
	names := []string{"cpu"}
	for name := range openers {
		if name != "cpu" {
			names = append(names, name)
		}
	}
	sort.Strings(names[1:])
	return names
}

// Open returns a new backend of the given name: "cpu" or, in the GPU
// build, "cuda". The caller owns it; backends with a Close method (cuda)
// should be closed when done.
func Open(name string) (device.Backend, error) {
	if open, ok := openers[name]; ok {
		return open()
	}
	for _, g := range gpuOnly {
		if name == g {
			return nil, fmt.Errorf("device %q: this binary was built without GPU support (it has %s); "+
				"build the GPU binary with bash scripts/build-gpu.sh (gives bin/mochi-gpu, docs/GPU.md) "+
				"or docker build -f Dockerfile.cuda -t mochi-gpu ., or use --device cpu",
				name, strings.Join(Available(), ", "))
		}
	}
	return nil, fmt.Errorf("device %q: unknown backend; this binary has %s", name, strings.Join(Available(), ", "))
}
