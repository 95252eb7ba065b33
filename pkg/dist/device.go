package dist

import "github.com/mochi-ssl/mochi/pkg/device"

// DeviceComm is the optional ability of a Comm whose collectives also run
// on a backend's buffers where they live (NCCL on the GPU: package
// dist/nccl), found by a type assertion. Without it, device data travels
// through host memory: download, the Comm's host collective, upload.
// The device collectives follow Comm's rules: every rank calls the same
// ones in the same order, a failure or timeout breaks the Comm.
type DeviceComm interface {
	Comm
	// AllReduceSumDevice replaces each of bufs (Float32 buffers of the
	// backend the Comm was opened on) by its element-wise sum over the
	// ranks, in place.
	AllReduceSumDevice(bufs ...device.Buffer) error
	// AllGatherDevice puts rank r's send at elements
	// [r·send.Len(), (r+1)·send.Len()) of recv on every rank; recv must
	// hold Size·send.Len() elements of send's type.
	AllGatherDevice(send, recv device.Buffer) error
}
