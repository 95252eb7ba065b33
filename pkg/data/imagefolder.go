package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/image/draw"
)

// imageFile is one image of an ImageFolder with its class index.
type imageFile struct {
	path  string
	class int
}

// openImageFolder reads root/split/<class>/*.{png,jpg,jpeg} — or root/<class>/*
// when root has no split folder — resizing every image to ImageSize×ImageSize.
// Classes are the sorted sub-folder names, as in torchvision's ImageFolder.
func openImageFolder(spec Spec) (*memDataset, error) {
	if spec.ImageSize <= 0 {
		return nil, fmt.Errorf("%w: imagefolder %s needs an image size (ImageSize > 0) to resize its images to, got %d", ErrBadSpec, spec.Path, spec.ImageSize)
	}
	root := spec.Path
	if st, err := os.Stat(filepath.Join(root, spec.Split)); err == nil && st.IsDir() {
		root = filepath.Join(root, spec.Split)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v: check the dataset path", ErrMissingFile, root, err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) == 0 {
		return nil, fmt.Errorf("%w: %s has no class sub-folders: lay the images out as %s/<class>/<image>.png|jpg", ErrNoImages, root, root)
	}
	var files []imageFile
	for ci, class := range classes {
		dir := filepath.Join(root, class)
		list, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMissingFile, dir, err)
		}
		before := len(files)
		for _, e := range list {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg":
				files = append(files, imageFile{path: filepath.Join(dir, e.Name()), class: ci})
			}
		}
		if len(files) == before {
			return nil, fmt.Errorf("%w: class folder %s holds no .png/.jpg/.jpeg images: add images or remove the folder", ErrNoImages, dir)
		}
	}
	if spec.Limit > 0 && spec.Limit < len(files) {
		files = files[:spec.Limit]
	}

	// Pass 1: headers only, to learn whether any image is in colour.
	channels := 1
	for _, f := range files {
		color, err := imageIsColor(f.path)
		if err != nil {
			return nil, err
		}
		if color {
			channels = 3
			break
		}
	}

	// Pass 2: decode and resize, in parallel, straight into the dataset array.
	side := spec.ImageSize
	itemSize := channels * side * side
	pixels := make([]uint8, len(files)*itemSize)
	labels := make([]int, len(files))
	workers := min(runtime.GOMAXPROCS(0), len(files))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wi := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rs resizer
			for i := wi; i < len(files); i += workers {
				labels[i] = files[i].class
				if err := rs.load(files[i].path, side, channels, pixels[i*itemSize:(i+1)*itemSize]); err != nil {
					errs[wi] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return newMemDataset("imagefolder:"+filepath.Base(spec.Path)+"/"+spec.Split, channels, side, side, len(classes), pixels, labels), nil
}

// imageIsColor reads the image header and reports whether its colour model
// carries colour (a palette counts as colour unless every entry is gray).
func imageIsColor(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrBadImage, path, err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v: the file is not a valid PNG/JPEG; replace or delete it", ErrBadImage, path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return false, fmt.Errorf("%w: %s: %s image of size %d×%d: replace or delete it", ErrBadImage, path, format, cfg.Width, cfg.Height)
	}
	switch m := cfg.ColorModel.(type) {
	case color.Palette:
		for _, c := range m {
			r, g, b, _ := c.RGBA()
			if r != g || g != b {
				return true, nil
			}
		}
		return false, nil
	default:
		return m != color.GrayModel && m != color.Gray16Model, nil
	}
}

// resizer decodes and resizes images, keeping its destination buffers between
// calls.
type resizer struct {
	gray *image.Gray
	rgba *image.RGBA
}

// load decodes path and writes it resized to side×side into dst (C×H×W).
func (rs *resizer) load(path string, side, channels int, dst []uint8) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadImage, path, err)
	}
	img, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: %v: the file is corrupt or truncated; replace or delete it", ErrBadImage, path, err)
	}
	rect := image.Rect(0, 0, side, side)
	if channels == 1 {
		if rs.gray == nil {
			rs.gray = image.NewGray(rect)
		}
		draw.CatmullRom.Scale(rs.gray, rect, img, img.Bounds(), draw.Src, nil)
		copy(dst, rs.gray.Pix)
		return nil
	}
	if rs.rgba == nil {
		rs.rgba = image.NewRGBA(rect)
	}
	// RGBA is premultiplied: translucent pixels come out composited over black.
	draw.CatmullRom.Scale(rs.rgba, rect, img, img.Bounds(), draw.Src, nil)
	plane := side * side
	for p := range plane {
		dst[p] = rs.rgba.Pix[4*p]
		dst[plane+p] = rs.rgba.Pix[4*p+1]
		dst[2*plane+p] = rs.rgba.Pix[4*p+2]
	}
	return nil
}
