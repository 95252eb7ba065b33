package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

func TestBenchCommandCPU(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"bench", "--device", "cpu", "--width", "4", "--size", "16", "--batch", "8", "--steps", "2", "--warmup", "1", "--cpu-conv", "blas"})
	if err := root.Execute(); err != nil {
		t.Fatalf("mochi bench: %v\n%s", err, out.String())
	}
	testenv.Contains(t, "bench", out.String(), "mochi resnet18-cifar 16x16 batch 8 on cpu, convolutions blas (im2col + BLAS): ", " images/s", "MiB", "kernels/step")
}

// TestBenchDefaultConv: without --cpu-conv, bench runs cpu.conv's default,
// auto, and says which kernels that is in this build.
func TestBenchDefaultConv(t *testing.T) {
	out, _ := mustRun(t, "bench", "--device", "cpu", "--width", "4", "--size", "16", "--batch", "8", "--steps", "1", "--warmup", "0")
	want := "convolutions auto (3×3 stride 1 from 64 channels: mochi wino F(4x4,3x3); others: direct, " + cpu.OneDNN() + ")"
	if strings.HasPrefix(cpu.OneDNN(), "none") { // the purego build
		want = "convolutions auto: blas (im2col + BLAS)"
	}
	testenv.Contains(t, "bench", out, want)
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--model", "vgg16"},
		{"bench", "--batch", "6", "--bn-groups", "4"},
		{"bench", "--steps", "0"},
		{"bench", "--device", "tpu"},
		{"bench", "--cpu-conv", "fft"},
	} {
		root := newRootCmd()
		root.SetOut(new(bytes.Buffer))
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("mochi %s succeeded", strings.Join(args, " "))
		}
	}
}

// tf32Backend is a CPU backend that claims a TF32 mode, to watch setTF32.
type tf32Backend struct {
	device.Backend
	on  bool
	err error
}

func (b *tf32Backend) SetConvTF32(on bool) error {
	b.on = on
	return b.err
}

func TestSetTF32(t *testing.T) {
	var log bytes.Buffer
	if err := setTF32(cpu.New(1), &log); err != nil || !strings.Contains(log.String(), "run.tf32 has no effect on the cpu backend") {
		t.Errorf("cpu: err %v, log %q; want a note and no error", err, log.String())
	}
	log.Reset()
	be := &tf32Backend{Backend: cpu.New(1)}
	if err := setTF32(be, &log); err != nil || !be.on || log.Len() != 0 {
		t.Errorf("TF32 backend: err %v, on %v, log %q; want it switched on silently", err, be.on, log.String())
	}
	be = &tf32Backend{Backend: cpu.New(1), err: errors.New("cublasSetMathMode: status 7")}
	if err := setTF32(be, &log); err == nil || !strings.Contains(err.Error(), "run.tf32") || !strings.Contains(err.Error(), "status 7") {
		t.Errorf("failing TF32 backend: err %v, want it named run.tf32 with the cause", err)
	}
}
