//go:build purego && !turbojpeg

package data

import (
	"bytes"
	"image/jpeg"
)

// JPEGDecoder names the JPEG decoder this build uses.
const JPEGDecoder = "Go's image/jpeg (build tag purego; add turbojpeg for libjpeg-turbo)"

// jpegTurbo is false: Go's decoder differs from Pillow's libjpeg-turbo by a few levels.
const jpegTurbo = false

// jpegHeader returns a JPEG's size, and cmyk for CMYK/YCCK files.
func jpegHeader(buf []byte) (w, h int, cmyk bool, err error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		return 0, 0, false, err
	}
	return cfg.Width, cfg.Height, cfg.ColorModel != nil && isCMYKModel(cfg.ColorModel), nil
}

// jpegDCTScales is empty: Go's decoder has no reduced-size decoding.
var jpegDCTScales []int

// decodeJPEG decodes a JPEG into img as RGB; denom is always 1 here.
func decodeJPEG(buf []byte, _, _, _ int, img *rgbImage) error {
	m, err := jpeg.Decode(bytes.NewReader(buf))
	if err != nil {
		return err
	}
	img.from(m)
	return nil
}
