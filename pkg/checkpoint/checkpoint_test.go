package checkpoint

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func randomCheckpoint(rng *rand.Rand, tensorLen int) *Checkpoint {
	c := New()
	for i := 0; i < 3; i++ {
		data := make([]float32, tensorLen+i)
		for j := range data {
			data[j] = float32(rng.NormFloat64())
		}
		c.PutTensor("layer"+strconv.Itoa(i)+".weight", []int{len(data)}, data)
	}
	blob := make([]byte, 17)
	for i := range blob {
		blob[i] = byte(rng.IntN(256))
	}
	c.PutBlob("rng", blob)
	c.PutBlob("config", []byte("moco:\n  k: 4096\n"))
	return c
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := randomCheckpoint(rng, 100)
	path := filepath.Join(t.TempDir(), "last.ckpt")
	mustSave(t, path, c)
	got := mustLoad(t, path)
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("loaded checkpoint differs from the saved one")
	}
	if _, err := got.Tensor("missing"); err == nil {
		t.Fatal("Tensor of a missing name: no error")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("folder holds %d files after Save, want only the checkpoint", len(entries))
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	a := randomCheckpoint(rand.New(rand.NewPCG(3, 4)), 50)
	b := randomCheckpoint(rand.New(rand.NewPCG(3, 4)), 50)
	if string(a.Encode()) != string(b.Encode()) {
		t.Fatal("equal checkpoints encode to different bytes")
	}
}

func TestCorruptFiles(t *testing.T) {
	good := randomCheckpoint(rand.New(rand.NewPCG(5, 6)), 20).Encode()
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x40
	badMagic := append([]byte("NOTMOCHI"), good[8:]...)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"flipped byte", flipped},
		{"wrong magic", badMagic},
	} {
		if _, err := Decode(tc.data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tc.name, err)
		}
	}
	for n := 0; n < len(good); n += 7 {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrCorrupt", n, len(good), err)
		}
	}
}

// TestKillDuringSave kills a process that saves checkpoints in a loop at
// random moments; whatever is on disk afterwards must load.
func TestKillDuringSave(t *testing.T) {
	if path := os.Getenv("MOCHI_CHECKPOINT_SAVE_LOOP"); path != "" {
		rng := rand.New(rand.NewPCG(7, 8))
		for {
			if err := Save(path, randomCheckpoint(rng, 200000)); err != nil {
				os.Exit(3)
			}
		}
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "last.ckpt")
	rng := rand.New(rand.NewPCG(9, 10))
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringSave$")
		cmd.Env = append(os.Environ(), "MOCHI_CHECKPOINT_SAVE_LOOP="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := os.Stat(path); os.IsNotExist(err) {
			continue
		}
		if _, err := Load(path); err != nil {
			t.Fatalf("round %d: checkpoint left by a killed writer does not load: %v", round, err)
		}
	}
}

// TestSaveAndLinkMode checks that checkpoints are 0644, as the run's other
// files (os.CreateTemp alone makes them 0600).
func TestSaveAndLinkMode(t *testing.T) {
	dir := t.TempDir()
	epoch, last := filepath.Join(dir, "epoch-0000.ckpt"), filepath.Join(dir, "last.ckpt")
	mustSave(t, epoch, randomCheckpoint(rand.New(rand.NewPCG(1, 2)), 10))
	if err := Link(epoch, last); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{epoch, last} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != FileMode {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), FileMode)
		}
	}
}

// TestLinkReplacesAtomically checks that Link gives dst src's content,
// replacing an existing dst, and leaves no temporary file behind.
func TestLinkReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	src, dst := filepath.Join(dir, "epoch-0001.ckpt"), filepath.Join(dir, "last.ckpt")
	mustSave(t, dst, randomCheckpoint(rng, 10))
	want := randomCheckpoint(rng, 20)
	mustSave(t, src, want)
	if err := Link(src, dst); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, dst)
	if !reflect.DeepEqual(got, want) {
		t.Error("after Link, dst does not hold src's checkpoint")
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, TempPattern)); len(tmps) != 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}
	// dst is a new name of the file, not a shared one that a later Save of
	// src could change: Save replaces src by rename.
	mustSave(t, src, randomCheckpoint(rng, 5))
	if again, _ := Load(dst); !reflect.DeepEqual(again, want) {
		t.Error("saving src again changed dst")
	}
}

func mustSave(t *testing.T, path string, c *Checkpoint) {
	t.Helper()
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, path string) *Checkpoint {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
