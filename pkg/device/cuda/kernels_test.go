package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
	"testing"
)

// kernelSources are the inputs of every PTX: the nvcc flags, common.cuh
// and the .cu files, embedded so that the test binary checks its own PTX
// wherever it runs (gpu-check.sh runs .gpu/cuda.test from the repository
// root, far from this folder).
//
//go:embed kernels/nvcc.flags kernels/common.cuh kernels/*.cu
var kernelSources embed.FS

// TestPTXIsFresh: every embedded .ptx was generated from the current .cu,
// common.cuh and nvcc flags (their hash is on the PTX's first line). A stale
// PTX means the GPU binary would run old kernels, or kernels compiled with
// other flags: run scripts/build-gpu.sh where nvcc is installed.
func TestPTXIsFresh(t *testing.T) {
	flags, err := kernelSources.ReadFile("kernels/nvcc.flags")
	if err != nil {
		t.Fatal(err)
	}
	common, err := kernelSources.ReadFile("kernels/common.cuh")
	if err != nil {
		t.Fatal(err)
	}
	sources, err := fs.Glob(kernelSources, "kernels/*.cu")
	if err != nil || len(sources) == 0 {
		t.Fatalf("no kernels/*.cu (err %v)", err)
	}
	for _, cu := range sources {
		name := strings.TrimSuffix(path.Base(cu), ".cu")
		src, err := kernelSources.ReadFile(cu)
		if err != nil {
			t.Fatal(err)
		}
		want := "// mochi-source-sha256: " + ptxSourceHash(flags, common, src)
		ptx, err := modulePTX(name)
		if err != nil {
			t.Errorf("%s: %v", cu, err)
			continue
		}
		if first, _, _ := strings.Cut(ptx, "\n"); first != want {
			t.Errorf("kernels/%s.ptx is stale (first line %q, want %q): run bash scripts/build-gpu.sh", name, first, want)
		}
	}
}

// ptxSourceHash is what build-gpu.sh computes with
// cat nvcc.flags common.cuh NAME.cu | sha256sum.
func ptxSourceHash(flags, common, src []byte) string {
	h := sha256.New()
	h.Write(flags)
	h.Write(common)
	h.Write(src)
	return hex.EncodeToString(h.Sum(nil))
}

// TestKernelTable: every kernel of the table is an entry of its module's
// PTX, with as many parameters as kernelParams says, all 8 bytes wide (cu's
// Function.Launch copies 8 bytes per argument); and every PTX entry is in
// the table.
func TestKernelTable(t *testing.T) {
	inTable := map[string]bool{}
	for id, k := range kernelTable {
		if k.name == "" {
			t.Fatalf("kernel %d has no table entry", id)
		}
		inTable[k.module+"/"+k.name] = true
		ptx, err := modulePTX(k.module)
		if err != nil {
			t.Fatal(err)
		}
		params, ok := ptxEntryParams(ptx)[k.name]
		if !ok {
			t.Errorf("kernel %s is not an entry of kernels/%s.ptx", k.name, k.module)
			continue
		}
		if len(params) != kernelParams[id] {
			t.Errorf("kernel %s has %d parameters in the PTX, kernelParams says %d", k.name, len(params), kernelParams[id])
		}
		for i, w := range params {
			if w != 8 {
				t.Errorf("kernel %s parameter %d is %d bytes wide, want 8 (use long long, double or a pointer)", k.name, i, w)
			}
		}
	}
	for _, m := range modules() {
		ptx, _ := modulePTX(m)
		for name := range ptxEntryParams(ptx) {
			if !inTable[m+"/"+name] {
				t.Errorf("PTX entry %s of kernels/%s.ptx is not in kernelTable", name, m)
			}
		}
	}
}

func TestPTXEntryParams(t *testing.T) {
	ptx := `
.visible .entry a_f32(
	.param .u64 a_f32_param_0,
	.param .f64 a_f32_param_1,
	.param .u32 a_f32_param_2
)
{
	ret;
}
.visible .entry b_f32(
	.param .u64 b_f32_param_0
)
`
	got := ptxEntryParams(ptx)
	if len(got) != 2 || len(got["a_f32"]) != 3 || got["a_f32"][2] != 4 || got["a_f32"][1] != 8 || len(got["b_f32"]) != 1 {
		t.Errorf("ptxEntryParams = %v", got)
	}
}
