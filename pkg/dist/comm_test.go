package dist

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestSingle(t *testing.T) {
	var c Comm = Single{}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("rank %d of %d, want 0 of 1", c.Rank(), c.Size())
	}
	buf := []float32{1.5, -2, 3}
	if err := c.AllReduceSum(buf); err != nil || !slices.Equal(buf, []float32{1.5, -2, 3}) {
		t.Fatalf("AllReduceSum over one rank: %v, %v; want the buffer unchanged", buf, err)
	}
	keys, all := []float32{0.25, 7}, make([]float32, 2)
	if err := AllGather(c, keys, all); err != nil || !slices.Equal(all, keys) {
		t.Fatalf("AllGather over one rank: %v, %v; want %v", all, err, keys)
	}
	idx := []int{3, 1, 4}
	if err := Broadcast(c, idx, 0); err != nil || !slices.Equal(idx, []int{3, 1, 4}) {
		t.Fatalf("Broadcast over one rank: %v, %v", idx, err)
	}
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
	if err := CheckConfig(c, []byte("moco:\n  k: 256\n")); err != nil {
		t.Fatalf("CheckConfig over one rank: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestArgumentErrors: bad lengths and roots are refused before any
// communication, with the numbers that fix them.
func TestArgumentErrors(t *testing.T) {
	c := Single{}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"gather", AllGather(c, []float32{1, 2}, make([]float32, 3)), "needs a receive buffer of 2, not 3"},
		{"gather bytes", c.AllGatherBytes([]byte{1}, nil), "needs a receive buffer of 1, not 0"},
		{"root", Broadcast(c, []float32{1}, 1), "broadcast from rank 1: the job has ranks 0 to 0"},
		{"gather 4 ranks", checkGather(4, 3, 9), "3 values from each of 4 ranks needs a receive buffer of 12, not 9"},
		{"count", checkCount("all-reduce", 1<<31, "values"), "all-reduce of 2147483648 values: MPI counts stop at 2147483647"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
	if err := checkCount("all-reduce", 1<<31-1, "values"); err != nil {
		t.Errorf("the largest MPI count is refused: %v", err)
	}
}

func TestDetectLauncher(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    launcher
		wantErr string
	}{
		{"alone", nil, launcher{}, ""},
		{"OpenMPI's mpirun", map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "PMIX_RANK": "2"}, launcher{mpi: true, size: 4}, ""},
		{"srun --mpi=pmix", map[string]string{"PMIX_RANK": "0"}, launcher{mpi: true}, ""},
		{"MPICH's hydra", map[string]string{"PMI_RANK": "1", "PMI_SIZE": "2"}, launcher{}, "not OpenMPI's"},
		{"bad size", map[string]string{"OMPI_COMM_WORLD_SIZE": "two"}, launcher{}, `OMPI_COMM_WORLD_SIZE="two"`},
	} {
		got, err := detectLauncher(func(k string) string { return tc.env[k] })
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case got != tc.want:
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestOpenAlone: a process started without a launcher gets Single, as
// every run did before this package (the test binary itself is one).
func TestOpenAlone(t *testing.T) {
	for _, v := range []string{envWorldSize, envPMIxRank, envPMIRank} {
		t.Setenv(v, "")
	}
	c, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(Single); !ok {
		t.Fatalf("Open without mpirun gave %T, want Single", c)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), "libmpi") {
		t.Fatal("Open without mpirun loaded libmpi")
	}
}

func TestFirstDifference(t *testing.T) {
	for _, tc := range []struct {
		a, b        string
		line        int
		here, there string
	}{
		{"a: 1\nb: 2\n", "a: 1\nb: 3\n", 2, "b: 2", "b: 3"},
		{"a: 1\n", "a: 1\nb: 3\n", 2, "", "b: 3"},
		{"x", "y", 1, "x", "y"},
	} {
		line, here, there := firstDifference([]byte(tc.a), []byte(tc.b))
		if line != tc.line || here != tc.here || there != tc.there {
			t.Errorf("firstDifference(%q, %q) = %d %q %q, want %d %q %q", tc.a, tc.b, line, here, there, tc.line, tc.here, tc.there)
		}
	}
}
