//go:build !purego || turbojpeg

// turbojpeg keeps libjpeg-turbo in a purego build: the GPU binaries take
// gonum's BLAS (no libopenblas on the GPU machine) but still feed the GPU
// from this decoder, linked statically (scripts/build-gpu.sh).

package data

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

// mochi_jpeg_header reads a JPEG's size and colour space; it returns 0 on
// success, else -1 with the message in err.
static int mochi_jpeg_header(const unsigned char *buf, unsigned long len, int *w, int *h, int *cs, char *err, int errlen) {
	tjhandle t = tjInitDecompress();
	if (t == NULL) {
		strncpy(err, tjGetErrorStr2(NULL), errlen - 1);
		return -1;
	}
	int sub;
	int rc = tjDecompressHeader3(t, buf, len, w, h, &sub, cs);
	if (rc != 0) {
		strncpy(err, tjGetErrorStr2(t), errlen - 1);
	}
	tjDestroy(t);
	return rc;
}

// mochi_jpeg_decode decodes into packed RGB of w×h, a size tjGetScalingFactors
// allows. A warning (e.g. extraneous bytes before a marker, which libjpeg
// corrects) still yields the image: it returns 1 with the warning in err;
// an error returns -1.
static int mochi_jpeg_decode(const unsigned char *buf, unsigned long len, unsigned char *dst, int w, int h, char *err, int errlen) {
	tjhandle t = tjInitDecompress();
	if (t == NULL) {
		strncpy(err, tjGetErrorStr2(NULL), errlen - 1);
		return -1;
	}
	int rc = tjDecompress2(t, buf, len, dst, w, 0, h, TJPF_RGB, 0);
	if (rc != 0) {
		strncpy(err, tjGetErrorStr2(t), errlen - 1);
		rc = tjGetErrorCode(t) == TJERR_WARNING ? 1 : -1;
	}
	tjDestroy(t);
	return rc;
}
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

// JPEGDecoder names the JPEG decoder this build uses.
const JPEGDecoder = "libjpeg-turbo (cgo; build tag purego without turbojpeg for Go's image/jpeg)"

// jpegTurbo: JPEGs decode as Pillow decodes them (the same library).
const jpegTurbo = true

// jpegHeader returns a JPEG's size, and cmyk for CMYK/YCCK files, which
// libjpeg-turbo cannot convert to RGB.
func jpegHeader(buf []byte) (w, h int, cmyk bool, err error) {
	if len(buf) == 0 {
		return 0, 0, false, errors.New("empty file")
	}
	var cw, ch, cs C.int
	var msg [200]C.char
	if C.mochi_jpeg_header((*C.uchar)(unsafe.Pointer(&buf[0])), C.ulong(len(buf)), &cw, &ch, &cs, &msg[0], C.int(len(msg))) != 0 {
		return 0, 0, false, errors.New(C.GoString(&msg[0]))
	}
	return int(cw), int(ch), cs == C.TJCS_CMYK || cs == C.TJCS_YCCK, nil
}

// jpegDCTScales are the DCT-domain reductions libjpeg-turbo offers cheaply,
// largest first.
var jpegDCTScales = []int{8, 4, 2}

// decodeJPEG decodes a (non-CMYK) JPEG of size w×h reduced by 1/denom in the
// DCT domain (denom 1, 2, 4 or 8) into img as RGB.
func decodeJPEG(buf []byte, w, h, denom int, img *rgbImage) error {
	sw, sh := (w+denom-1)/denom, (h+denom-1)/denom // TJSCALED: the ceiling
	img.resize(sw, sh)
	var msg [200]C.char
	rc := C.mochi_jpeg_decode((*C.uchar)(unsafe.Pointer(&buf[0])), C.ulong(len(buf)), (*C.uchar)(unsafe.Pointer(&img.pix[0])), C.int(sw), C.int(sh), &msg[0], C.int(len(msg)))
	switch {
	case rc < 0:
		return errors.New(C.GoString(&msg[0]))
	case rc > 0 && strings.Contains(strings.ToLower(C.GoString(&msg[0])), "premature end"):
		// libjpeg pads a truncated file with gray and calls it a warning;
		// the image is incomplete, so it is corrupt (PIL refuses it too).
		return errors.New(C.GoString(&msg[0]))
	}
	return nil
}
