package train

import (
	"context"
	"io"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/dist"
)

// oneRankDevice is a job of one rank with device collectives, as NCCL on
// one GPU: the sum over one rank leaves the buffers, the gather copies.
type oneRankDevice struct {
	dist.Single
	be              device.Backend
	reduces, gather int
	buffers         int // buffers handed to the last all-reduce
}

func (c *oneRankDevice) AllReduceSumDevice(bufs ...device.Buffer) error {
	c.reduces++
	c.buffers = len(bufs)
	return nil
}

func (c *oneRankDevice) AllGatherDevice(send, recv device.Buffer) error {
	c.gather++
	c.be.Copy(recv, send)
	return nil
}

// TestDeviceCommOnOneRank: with device collectives on one rank the trainer
// all-reduces every gradient and all-gathers the keys through them once
// per step, and trains exactly as a process alone (every step's loss
// equal): what gpu-check.sh's nccl step expects of mpirun -np 1 with NCCL.
func TestDeviceCommOnOneRank(t *testing.T) {
	alone, withDevice := t.TempDir(), t.TempDir()
	run := func(dir string, comm dist.Comm, be device.Backend) {
		cfg := ciConfig(t, dir)
		cfg.Data.Limit, cfg.Eval.KNNEvery = 128, 0
		if _, err := Pretrain(context.Background(), cfg, Options{Comm: comm, Backend: be, Progress: io.Discard}); err != nil {
			t.Fatal(err)
		}
	}
	run(alone, nil, cpu.New(0))
	be := cpu.New(0)
	dc := &oneRankDevice{be: be}
	run(withDevice, dc, be)
	want, got := stepLosses(t, alone), stepLosses(t, withDevice)
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d steps with device collectives, %d alone", len(got), len(want))
	}
	for step, l := range want {
		if got[step] != l {
			t.Errorf("step %v: loss %v with device collectives, %v alone", step, got[step], l)
		}
	}
	if dc.reduces != len(want) || dc.gather != len(want) || dc.buffers == 0 {
		t.Errorf("%d steps: %d device all-reduces (last of %d buffers) and %d all-gathers, want one of each per step",
			len(want), dc.reduces, dc.buffers, dc.gather)
	}
}
