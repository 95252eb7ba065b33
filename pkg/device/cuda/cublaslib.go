package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The GPU binaries need "libcublas.so" without a version (build-gpu.sh links
// them against a stand-in of that name), so the dynamic loader takes
// whichever libcublas the run offers: CUDA 12's libcublas.so.12 or CUDA
// 13's libcublas.so.13 (scripts/gpu-env.sh picks the one the driver runs);
// the Docker build links CUDA 12's directly. An error names the file
// actually loaded, read from /proc/self/maps.

// cublasFile returns the path of the libcublas mapped into this process,
// or "" when none is (or the maps cannot be read).
func cublasFile() string {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return ""
	}
	return cublasFileIn(string(maps))
}

// cublasFileIn finds libcublas in the text of a /proc/<pid>/maps file:
// the path of the first mapping whose file is libcublas.so or
// libcublas.so.N… (not libcublasLt).
func cublasFileIn(maps string) string {
	for _, line := range strings.Split(maps, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 {
			continue
		}
		path := fields[5]
		if base := filepath.Base(path); base == "libcublas.so" || strings.HasPrefix(base, "libcublas.so.") {
			return path
		}
	}
	return ""
}

// cublasHint explains a failed cublasCreate: which library was loaded, and
// that its CUDA major version must not exceed the driver's.
func cublasHint(file string) string {
	if file == "" {
		file = "not found in /proc/self/maps"
	}
	return fmt.Sprintf("libcublas loaded: %s; libcublas.so.N needs a driver for CUDA N or newer "+
		"(nvidia-smi shows the driver's \"CUDA Version\"): put the matching libcublas.so.12 or .so.13 "+
		"first on LD_LIBRARY_PATH, as scripts/gpu-env.sh does", file)
}
