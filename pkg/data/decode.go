package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the decoders ImageFolder accepts
	_ "image/png"
	"io"
	"os"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// rgbImage is a decoded image as packed 8-bit RGB, H×W×3: every input
// (grayscale, CMYK, palette, 16-bit, with alpha) is converted to it, as
// torchvision's ImageFolder converts every image to RGB.
type rgbImage struct {
	pix  []uint8
	w, h int
}

// resize sets the size, keeping the buffer when it is large enough.
func (m *rgbImage) resize(w, h int) {
	n := w * h * 3
	if cap(m.pix) < n {
		m.pix = make([]uint8, n)
	}
	m.pix, m.w, m.h = m.pix[:n], w, h
}

// from converts src to RGB as PIL's convert("RGB") does: alpha is dropped
// (not composited), CMYK is (255−C)(255−K)/255, and 16-bit samples keep their
// high byte (PIL would clip them at 255 instead).
func (m *rgbImage) from(src image.Image) {
	b := src.Bounds()
	m.resize(b.Dx(), b.Dy())
	i := 0
	put := func(r, g, bl uint8) {
		m.pix[i], m.pix[i+1], m.pix[i+2] = r, g, bl
		i += 3
	}
	switch s := src.(type) {
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, v := range s.Pix[s.PixOffset(b.Min.X, y):][:b.Dx()] {
				put(v, v, v)
			}
		}
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := s.YOffset(x, y), s.COffset(x, y)
				put(color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci]))
			}
		}
	case *image.CMYK:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			p := s.Pix[s.PixOffset(b.Min.X, y):][:4*b.Dx()]
			for x := 0; x < len(p); x += 4 {
				put(color.CMYKToRGB(p[x], p[x+1], p[x+2], p[x+3]))
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			p := s.Pix[s.PixOffset(b.Min.X, y):][:4*b.Dx()]
			for x := 0; x < len(p); x += 4 {
				put(p[x], p[x+1], p[x+2])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(src.At(x, y)).(color.NRGBA64)
				put(uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
			}
		}
	}
}

// isCMYKModel reports whether a JPEG's colour model is CMYK (or YCCK).
func isCMYKModel(m color.Model) bool { return m == color.CMYKModel }

// imageDecoder reads image files, keeping its buffers between calls: one per
// goroutine.
type imageDecoder struct {
	path   string
	buf    []byte
	w, h   int
	isJPEG bool // and not CMYK: the fast decoder applies
	img    rgbImage
}

// open reads path and its header: the full-resolution size is then d.w×d.h.
func (d *imageDecoder) open(path string) error {
	d.path = path
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	n := int(st.Size())
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if _, err := io.ReadFull(f, d.buf); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadImage, path, err)
	}
	d.isJPEG = false
	if len(d.buf) >= 3 && d.buf[0] == 0xff && d.buf[1] == 0xd8 && d.buf[2] == 0xff {
		w, h, cmyk, err := jpegHeader(d.buf)
		if err != nil {
			return d.corrupt(err)
		}
		d.w, d.h, d.isJPEG = w, h, !cmyk
	} else {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(d.buf))
		if err != nil {
			return d.corrupt(err)
		}
		d.w, d.h = cfg.Width, cfg.Height
	}
	if d.w <= 0 || d.h <= 0 {
		return d.corrupt(fmt.Errorf("size %d×%d", d.w, d.h))
	}
	return nil
}

// BadImageError is an image file that cannot be decoded (errors.Is
// ErrBadImage).
type BadImageError struct {
	Path string
	Err  error // the decoder's complaint
}

func (e *BadImageError) Error() string {
	return fmt.Sprintf("%v: %s: %v: the file is corrupt, truncated or not an image; replace or delete it, or set data.skip_corrupt: true to skip such files (they are counted and reported)", ErrBadImage, e.Path, e.Err)
}

func (e *BadImageError) Unwrap() error { return ErrBadImage }

// corrupt wraps a decoding error with the file and what to do.
func (d *imageDecoder) corrupt(err error) error { return &BadImageError{Path: d.path, Err: err} }

// SkipSummary is the count of the corrupt images a reader skipped with
// data.skip_corrupt (as Skipped and EvalSkipped list them) and the first
// one: its file and why, or the whole error when it names no file.
func SkipSummary(skipped []error) (n int, first string) {
	if len(skipped) == 0 {
		return 0, ""
	}
	var bad *BadImageError
	if errors.As(skipped[0], &bad) {
		return len(skipped), fmt.Sprintf("%s (%v)", bad.Path, bad.Err)
	}
	return len(skipped), skipped[0].Error()
}

// dctDenom is the largest DCT-domain reduction 1/k (k ∈ jpegDCTScales) that
// keeps a crop whose shorter side is minSide at least out pixels: the crop
// is then still downscaled (or copied) by the resampler, so the reduction
// only does early what the antialiasing filter would do anyway.
func (d *imageDecoder) dctDenom(minSide, out int) int {
	if !d.isJPEG {
		return 1
	}
	for _, k := range jpegDCTScales {
		if minSide/k >= out {
			return k
		}
	}
	return 1
}

// openDecode opens path and decodes it at full size.
func (d *imageDecoder) openDecode(path string) (*rgbImage, error) {
	if err := d.open(path); err != nil {
		return nil, err
	}
	return d.decode(1)
}

// decode decodes the opened file reduced by 1/denom (1 unless dctDenom said
// otherwise) into d.img.
func (d *imageDecoder) decode(denom int) (*rgbImage, error) {
	if d.isJPEG {
		if err := decodeJPEG(d.buf, d.w, d.h, denom, &d.img); err != nil {
			return nil, d.corrupt(err)
		}
		return &d.img, nil
	}
	// CMYK JPEGs land here too: Go's decoder undoes Adobe's inverted CMYK.
	m, _, err := image.Decode(bytes.NewReader(d.buf))
	if err != nil {
		return nil, d.corrupt(err)
	}
	d.img.from(m)
	return &d.img, nil
}
