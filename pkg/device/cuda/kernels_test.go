package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPTXIsFresh: every embedded .ptx was generated from the current .cu
// and common.cuh (their hash is on the PTX's first line). A stale PTX means
// the GPU binary would run old kernels: run scripts/build-gpu.sh. A test
// binary run outside the package folder (gpu-check.sh runs .gpu/cuda.test
// from the repository root) has no sources to hash and skips: the PTX was
// checked when the binary was built.
func TestPTXIsFresh(t *testing.T) {
	common, err := os.ReadFile("kernels/common.cuh")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("kernels/common.cuh not found: not run from pkg/device/cuda, nothing to compare the embedded PTX with")
	}
	if err != nil {
		t.Fatal(err)
	}
	sources, err := filepath.Glob("kernels/*.cu")
	if err != nil || len(sources) == 0 {
		t.Fatalf("no kernels/*.cu (err %v)", err)
	}
	for _, cu := range sources {
		name := strings.TrimSuffix(filepath.Base(cu), ".cu")
		src, err := os.ReadFile(cu)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(append(append([]byte{}, common...), src...))
		want := "// mochi-source-sha256: " + hex.EncodeToString(sum[:])
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
