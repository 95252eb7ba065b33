package data

import (
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// imageExtensions are the file types an ImageFolder reads: torchvision's
// IMG_EXTENSIONS less .ppm/.pgm, which Go cannot decode (matched ignoring case).
var imageExtensions = []string{".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

// ImageFolder is a split of an image tree, root/<split>/<class>/…/<image>,
// read file by file when images are needed: only its index (paths, labels,
// class names) is held in memory. Classes are the sorted sub-folder names and
// images are in torchvision's ImageFolder order (class, then sorted folder,
// then sorted file name), so labels and indices match torchvision's.
//
// As a Dataset it yields ImageSize×ImageSize RGB images through the
// evaluation transform (EvalTransform); TwoViewLoader instead crops its
// views from the full-resolution images (see cropViews).
type ImageFolder struct {
	name        string
	dir         string // the split folder
	size        int
	skipCorrupt bool
	idx         folderIndex

	mu          sync.Mutex
	evalSkipped map[int]error // corrupt images the evaluation reads stepped over (skip_corrupt)
}

// folderIndex is what the index cache stores.
type folderIndex struct {
	Version string
	Dirs    []dirStamp // every folder listed: the cache is valid while none changed
	Classes []string   // sorted
	Files   []string   // relative to the split folder
	Labels  []int32
	Bytes   int64 // total file size
}

// dirStamp identifies a listing: a folder's modification time changes when
// an entry is added, removed or renamed in it.
type dirStamp struct {
	Path    string // relative to the split folder
	ModNano int64
}

// indexVersion changes whenever folderIndex or the listing rules change.
const indexVersion = "mochi-imagefolder-index-1"

// openImageFolder indexes root/<split> (from the cache when the folder's
// listing has not changed).
func openImageFolder(spec Spec) (*ImageFolder, error) {
	if spec.ImageSize <= 0 {
		return nil, fmt.Errorf("%w: imagefolder %s needs an image size (ImageSize > 0) to resize its images to, got %d", ErrBadSpec, spec.Path, spec.ImageSize)
	}
	dir := filepath.Join(spec.Path, spec.Split)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, missingSplit(spec)
	}
	classes, err := listClasses(dir)
	if err != nil {
		return nil, err
	}
	d := &ImageFolder{
		name: "imagefolder:" + filepath.Base(filepath.Clean(spec.Path)) + "/" + spec.Split,
		dir:  dir, size: spec.ImageSize, skipCorrupt: spec.SkipCorrupt,
	}
	if !d.loadIndex(classes) {
		if d.idx, err = buildIndex(dir, classes); err != nil {
			return nil, err
		}
		d.saveIndex()
	}
	if spec.Limit > 0 && spec.Limit < len(d.idx.Files) {
		d.idx.Files, d.idx.Labels = d.idx.Files[:spec.Limit], d.idx.Labels[:spec.Limit]
	}
	return d, nil
}

// missingSplit explains a missing split folder: each split is its own folder,
// and the test split is never silently the training images.
func missingSplit(spec Spec) error {
	layout := fmt.Sprintf("lay the dataset out as %s/train/<class>/<image> and %s/test/<class>/<image>", spec.Path, spec.Path)
	if spec.Split == "test" {
		if st, err := os.Stat(filepath.Join(spec.Path, "train")); err == nil && st.IsDir() {
			layout = fmt.Sprintf("add %s/test/<class>/<image> (for ImageNet, link its val folder as test), or set data.test_split: train to evaluate on the training images", spec.Path)
		}
	}
	return fmt.Errorf("%w: imagefolder %s has no %s/ folder: %s", ErrMissingFile, spec.Path, spec.Split, layout)
}

// listClasses returns the sorted class folders of dir.
func listClasses(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v: check the dataset path", ErrMissingFile, dir, err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) == 0 {
		return nil, fmt.Errorf("%w: %s has no class sub-folders: lay the images out as %s/<class>/<image>.jpg", ErrNoImages, dir, dir)
	}
	return classes, nil
}

// stamp is the listing stamp of dir/rel.
func stamp(dir, rel string) (dirStamp, error) {
	st, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		return dirStamp{}, err
	}
	return dirStamp{Path: rel, ModNano: st.ModTime().UnixNano()}, nil
}

// buildIndex walks every class folder in torchvision's order.
func buildIndex(dir string, classes []string) (folderIndex, error) {
	idx := folderIndex{Version: indexVersion, Classes: classes}
	for ci, class := range classes {
		type folder struct {
			path  string
			files []string
		}
		var folders []folder
		err := filepath.WalkDir(filepath.Join(dir, class), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				folders = append(folders, folder{path: p})
				rel, _ := filepath.Rel(dir, p)
				st, err := stamp(dir, rel)
				idx.Dirs = append(idx.Dirs, st)
				return err
			}
			if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			ext := strings.ToLower(filepath.Ext(e.Name()))
			for _, x := range imageExtensions {
				if ext == x {
					f := &folders[len(folders)-1]
					f.files = append(f.files, e.Name())
					break
				}
			}
			return nil
		})
		if err != nil {
			return idx, fmt.Errorf("%w: %v", ErrMissingFile, err)
		}
		sort.Slice(folders, func(i, j int) bool { return folders[i].path < folders[j].path })
		before := len(idx.Files)
		for _, f := range folders {
			sort.Strings(f.files)
			rel, _ := filepath.Rel(dir, f.path)
			for _, name := range f.files {
				p := filepath.Join(rel, name)
				if st, err := os.Stat(filepath.Join(dir, p)); err == nil {
					idx.Bytes += st.Size()
				}
				idx.Files = append(idx.Files, p)
				idx.Labels = append(idx.Labels, int32(ci))
			}
		}
		if len(idx.Files) == before {
			return idx, fmt.Errorf("%w: class folder %s holds no %s images: add images or remove the folder", ErrNoImages, filepath.Join(dir, class), strings.Join(imageExtensions, "/"))
		}
	}
	return idx, nil
}

// indexPaths are where the index cache may live: beside the data (in the
// split folder, whose own listing is not part of the stamp), else (read-only
// data) in the user's cache folder under a name derived from the folder.
func (d *ImageFolder) indexPaths() []string {
	paths := []string{filepath.Join(d.dir, ".mochi-index")}
	if c, err := os.UserCacheDir(); err == nil {
		abs, _ := filepath.Abs(d.dir)
		sum := sha256.Sum256([]byte(abs))
		paths = append(paths, filepath.Join(c, "mochi", "imagefolder-"+hex.EncodeToString(sum[:8])+".index"))
	}
	return paths
}

// loadIndex reads a cached index of the same classes whose folders' listings
// are unchanged.
func (d *ImageFolder) loadIndex(classes []string) bool {
	for _, p := range d.indexPaths() {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var idx folderIndex
		err = gob.NewDecoder(f).Decode(&idx)
		f.Close()
		if err == nil && idx.Version == indexVersion && slices.Equal(idx.Classes, classes) && len(idx.Files) == len(idx.Labels) && d.unchanged(idx.Dirs) {
			d.idx = idx
			return true
		}
	}
	return false
}

// unchanged reports whether every stamped folder still has its stamp.
func (d *ImageFolder) unchanged(dirs []dirStamp) bool {
	for _, s := range dirs {
		if now, err := stamp(d.dir, s.Path); err != nil || now != s {
			return false
		}
	}
	return true
}

// saveIndex writes the index cache at the first place that accepts it. A
// cache that cannot be written only costs the next run a listing.
func (d *ImageFolder) saveIndex() {
	for _, p := range d.indexPaths() {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			continue
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".mochi-index-*")
		if err != nil {
			continue
		}
		err = gob.NewEncoder(tmp).Encode(&d.idx)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil && os.Rename(tmp.Name(), p) == nil {
			return
		}
		os.Remove(tmp.Name())
	}
}

func (d *ImageFolder) Len() int        { return len(d.idx.Files) }
func (d *ImageFolder) Channels() int   { return 3 }
func (d *ImageFolder) Height() int     { return d.size }
func (d *ImageFolder) Width() int      { return d.size }
func (d *ImageFolder) NumClasses() int { return len(d.idx.Classes) }
func (d *ImageFolder) Label(i int) int { return int(d.idx.Labels[i]) }
func (d *ImageFolder) Name() string    { return d.name }

// Classes are the class names, sorted; label i is Classes()[i].
func (d *ImageFolder) Classes() []string { return d.idx.Classes }

// Path is the file of image i.
func (d *ImageFolder) Path(i int) string { return filepath.Join(d.dir, d.idx.Files[i]) }

// Bytes is the size on disk of the split's images (all of them, whatever
// the limit).
func (d *ImageFolder) Bytes() int64 { return d.idx.Bytes }

// Fingerprint is the SHA-256 of what names the split wherever it lies: the
// image size, the classes, every image's path (relative to the split
// folder) and label, and the split's size on disk. Unlike a hash of the
// pixels it costs no decoding (an epoch's worth at ImageNet scale) and a
// corrupt file does not stop it.
func (d *ImageFolder) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsize %d bytes %d\n", indexVersion, d.size, d.idx.Bytes)
	for _, c := range d.idx.Classes {
		fmt.Fprintf(h, "class %q\n", c)
	}
	for i, f := range d.idx.Files {
		fmt.Fprintf(h, "%d %q\n", d.idx.Labels[i], filepath.ToSlash(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Pixels decodes image i and returns it through the evaluation transform
// in a new slice. It panics when the file cannot be decoded: the package's
// own readers use ReadEval, which returns the error.
func (d *ImageFolder) Pixels(i int) []uint8 {
	out := make([]uint8, 3*d.size*d.size)
	if err := d.ReadEval(i, out); err != nil {
		panic(err)
	}
	return out
}

// EvalResizeSide is the shorter side an evaluation image is resized to
// before its size×size centre crop: 256 for 224, torchvision's ImageNet
// evaluation, scaled with the crop.
func EvalResizeSide(size int) int { return int(math.Round(256 * float64(size) / 224)) }

// EvalTransform names the evaluation transform, e.g. for cache keys.
func (d *ImageFolder) EvalTransform() string {
	return fmt.Sprintf("Resize(%d)+CenterCrop(%d), antialiased bilinear", EvalResizeSide(d.size), d.size)
}

// ReadEval decodes image i into dst (3×S×S uint8) through the evaluation
// transform EvalTransform.
func (d *ImageFolder) ReadEval(i int, dst []uint8) error {
	var dec imageDecoder
	img, err := dec.openDecode(d.Path(i))
	if err != nil {
		return err
	}
	var rs resampler
	evalTransform(dst, img, d.size, &rs)
	return nil
}

// evalTransform is torchvision's Resize(EvalResizeSide(s)) then
// CenterCrop(s), on PIL images: the shorter side becomes R, the longer
// floor(R·long/short); the crop starts at round((side − s)/2) (half to even).
// Only the cropped part of the resized image is computed.
func evalTransform(dst []uint8, img *rgbImage, s int, rs *resampler) {
	r := EvalResizeSide(s)
	newW, newH := r, r
	if img.w < img.h {
		newH = int(float64(r) * float64(img.h) / float64(img.w))
	} else {
		newW = int(float64(r) * float64(img.w) / float64(img.h))
	}
	left := int(math.RoundToEven(float64(newW-s) / 2))
	top := int(math.RoundToEven(float64(newH-s) / 2))
	rs.x.set(0, float64(img.w)/float64(newW), 0, img.w, left, s)
	rs.y.set(0, float64(img.h)/float64(newH), 0, img.h, top, s)
	tmp := make([]float32, 3*s*s)
	rs.run(tmp, img, s, s, 1)
	for i, v := range tmp {
		dst[i] = uint8(min(max(math.Round(float64(v)), 0), 255))
	}
}

// viewSource decodes ImageFolder images for one loader goroutine and crops
// two-view samples from them at full resolution.
type viewSource struct {
	d       *ImageFolder
	dec     imageDecoder
	rs      resampler
	skipped map[int]error // corrupt images met (data.skip_corrupt)
}

// twoViews writes the query and key views of image idx, drawing both crops
// first (on the full-resolution image), then each view's colour and flip
// parameters. A corrupt image is an error, or with skip_corrupt the next
// image (idx+1, …) stands in for it and it is recorded in skipped. It returns
// the index of the image used.
func (v *viewSource) twoViews(q, k []float32, idx int, a *Augmenter, rng *rand.Rand) (int, error) {
	for range v.d.Len() {
		err := v.tryViews(q, k, idx, a, rng)
		if err == nil {
			return idx, nil
		}
		if !v.d.skipCorrupt || !errors.Is(err, ErrBadImage) {
			return idx, err
		}
		if v.skipped == nil {
			v.skipped = map[int]error{}
		}
		v.skipped[idx] = err
		idx = (idx + 1) % v.d.Len()
	}
	return idx, fmt.Errorf("%w: every image of %s is unreadable", ErrBadImage, v.d.Name())
}

func (v *viewSource) tryViews(q, k []float32, idx int, a *Augmenter, rng *rand.Rand) error {
	if err := v.dec.open(v.d.Path(idx)); err != nil {
		return err
	}
	w, h := v.dec.w, v.dec.h
	cfg := &a.cfg
	bq := SampleCrop(rng, h, w, cfg.ScaleMin, cfg.ScaleMax, CropRatioMin, CropRatioMax)
	bk := SampleCrop(rng, h, w, cfg.ScaleMin, cfg.ScaleMax, CropRatioMin, CropRatioMax)
	denom := v.dec.dctDenom(min(bq.Width, bq.Height, bk.Width, bk.Height), a.s)
	img, err := v.dec.decode(denom)
	if err != nil {
		return err
	}
	v.cropView(q, img, bq, a, rng)
	v.cropView(k, img, bk, a, rng)
	return nil
}

// oneView writes one augmented view of image i, cropped at full resolution
// (the linear evaluation's training augmentation). A corrupt image is an
// error; AugmentedBatches decides whether to skip it (no other image takes
// its place: every probe epoch sees the same images).
func (v *viewSource) oneView(dst []float32, i int, a *Augmenter, rng *rand.Rand) error {
	if err := v.dec.open(v.d.Path(i)); err != nil {
		return err
	}
	cfg := &a.cfg
	b := SampleCrop(rng, v.dec.h, v.dec.w, cfg.ScaleMin, cfg.ScaleMax, CropRatioMin, CropRatioMax)
	img, err := v.dec.decode(v.dec.dctDenom(min(b.Width, b.Height), a.s))
	if err != nil {
		return err
	}
	v.cropView(dst, img, b, a, rng)
	return nil
}

// cropView resamples crop b (full-resolution pixels) of img, which may be
// decoded at a reduced size, to an S×S view and applies the rest of the
// augmentation.
func (v *viewSource) cropView(dst []float32, img *rgbImage, b CropBox, a *Augmenter, rng *rand.Rand) {
	sx, sy := float64(img.w)/float64(v.dec.w), float64(img.h)/float64(v.dec.h)
	dst = dst[:a.OutputLen()]
	v.rs.crop(dst, img, box{
		left: float64(b.Left) * sx, width: float64(b.Width) * sx,
		top: float64(b.Top) * sy, height: float64(b.Height) * sy,
	}, a.s, a.s)
	a.photometric(dst, rng)
}

// readEvalBatch decodes images start … start+n−1 through the evaluation
// transform into dst, on every core. A corrupt image is an error, or with
// skip_corrupt it is recorded (EvalSkipped) and skip[i] is set.
func (d *ImageFolder) readEvalBatch(dst []uint8, skip []bool, start, n int) error {
	item := 3 * d.size * d.size
	workers := min(runtime.GOMAXPROCS(0), n)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var dec imageDecoder
			var rs resampler
			for i := w; i < n; i += workers {
				skip[i] = false
				img, err := dec.openDecode(d.Path(start + i))
				if err != nil {
					if skip[i] = d.skipEval(start+i, err); !skip[i] {
						errs[w] = err
						return
					}
					continue
				}
				evalTransform(dst[i*item:(i+1)*item], img, d.size, &rs)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// skipEval reports whether an evaluation read of image i that failed with
// err steps over it (skip_corrupt and a corrupt image), recording it.
func (d *ImageFolder) skipEval(i int, err error) bool {
	if !d.skipCorrupt || !errors.Is(err, ErrBadImage) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.evalSkipped == nil {
		d.evalSkipped = map[int]error{}
	}
	d.evalSkipped[i] = err
	return true
}

// EvalSkipped lists the corrupt images that the evaluation reads of ds
// (EvalBatches, AugmentedBatches) stepped over so far with
// data.skip_corrupt, one error naming each file, in index order: nil for
// the in-memory datasets, which have no corrupt images.
func EvalSkipped(ds Dataset) []error {
	d, ok := ds.(*ImageFolder)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedErrors(d.evalSkipped)
}

// sortedErrors lists m's errors in the order of their keys.
func sortedErrors(m map[int]error) []error {
	keys := slices.Sorted(maps.Keys(m))
	errs := make([]error, len(keys))
	for k, i := range keys {
		errs[k] = m[i]
	}
	return errs
}
