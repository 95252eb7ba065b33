package data

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randomFloats(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

func assertClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > tol {
			t.Fatalf("%s: value %d = %v, want %v (tol %g)", what, i, got[i], want[i], tol)
		}
	}
}

func TestSampleCropBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	// wide: 300×500 is wider than 4/3, so no crop exceeds 300×400 = 0.8 of it.
	for _, tc := range []struct {
		h, w    int
		maxArea float64
	}{{28, 28, 1}, {32, 32, 1}, {1000, 1000, 1}, {300, 500, 0.8}} {
		h, w := tc.h, tc.w
		area := float64(h * w)
		var minFrac, maxFrac = 2.0, 0.0
		small := 0
		const n = 20000
		for range n {
			b := SampleCrop(rng, h, w, 0.2, 1, CropRatioMin, CropRatioMax)
			if b.Top < 0 || b.Left < 0 || b.Height < 1 || b.Width < 1 || b.Top+b.Height > h || b.Left+b.Width > w {
				t.Fatalf("%d×%d: box %+v outside the image", h, w, b)
			}
			// Sides are rounded, so allow half a pixel on each side.
			bw, bh := float64(b.Width), float64(b.Height)
			if (bw+0.5)*(bh+0.5) < 0.2*area || (bw-0.5)*(bh-0.5) > area {
				t.Fatalf("%d×%d: box %+v has area fraction %.3f outside [0.2, 1]", h, w, b, bw*bh/area)
			}
			if (bw+0.5)/(bh-0.5) < CropRatioMin || (bw-0.5)/(bh+0.5) > CropRatioMax {
				t.Fatalf("%d×%d: box %+v has aspect %.3f outside [3/4, 4/3]", h, w, b, bw/bh)
			}
			frac := bw * bh / area
			minFrac, maxFrac = min(minFrac, frac), max(maxFrac, frac)
			if frac < 0.6 {
				small++
			}
		}
		if h >= 300 && (minFrac < 0.2-1e-3 || maxFrac > 1) {
			t.Errorf("%d×%d: area fractions span [%.4f, %.4f], want within [0.2, 1]", h, w, minFrac, maxFrac)
		}
		// The scale is uniform on [0.2, 1] before rejection, and rejection only
		// removes large crops: the whole range is used and more than half the
		// crops are below the midpoint 0.6.
		if minFrac > 0.23 || maxFrac < 0.9*tc.maxArea {
			t.Errorf("%d×%d: area fractions span only [%.3f, %.3f]", h, w, minFrac, maxFrac)
		}
		if tc.maxArea == 1 && (small < n/2 || small > n*8/10) {
			t.Errorf("%d×%d: %d of %d crops below 0.6 of the area, want 50%%–80%%", h, w, small, n)
		}
	}
	// A 1×100 strip never fits a crop of ratio ≤ 4/3 with 20% of the area: the
	// fallback is the centred 1×1 box (torchvision: h = H, w = round(H·4/3)).
	if b := SampleCrop(rng, 1, 100, 0.2, 1, CropRatioMin, CropRatioMax); b != (CropBox{0, 49, 1, 1}) {
		t.Errorf("fallback box %+v, want {0 49 1 1}", b)
	}
	if b := SampleCrop(rng, 100, 3, 0.5, 1, CropRatioMin, CropRatioMax); b != (CropBox{48, 0, 4, 3}) {
		t.Errorf("tall fallback box %+v, want {48 0 4 3}", b)
	}
}

// refResizedCrop is bilinear resampling written as a triangle filter: every
// source pixel of the box weighs max(0, 1−|s−y|)·max(0, 1−|t−x|) at the
// half-pixel source position (s, t), clamped into the box.
func refResizedCrop(src []uint8, c, h, w int, box CropBox, size int) []float64 {
	out := make([]float64, c*size*size)
	pos := func(o, span int) float64 {
		return min(max((float64(o)+0.5)*float64(span)/float64(size)-0.5, 0), float64(span-1))
	}
	for ch := range c {
		for oy := range size {
			sy := pos(oy, box.Height)
			for ox := range size {
				sx := pos(ox, box.Width)
				var acc float64
				for y := range box.Height {
					wy := math.Max(0, 1-math.Abs(sy-float64(y)))
					for x := range box.Width {
						wx := math.Max(0, 1-math.Abs(sx-float64(x)))
						acc += wy * wx * float64(src[ch*h*w+(box.Top+y)*w+box.Left+x])
					}
				}
				out[ch*size*size+oy*size+ox] = acc / 255
			}
		}
	}
	return out
}

func TestResizedCropMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ c, h, w, size int }{{1, 28, 28, 28}, {3, 32, 32, 32}, {3, 40, 30, 16}, {1, 9, 13, 24}} {
		cfg := MoCoV2Augment(tc.c, tc.size)
		a, err := NewAugmenter(cfg, tc.c, tc.h, tc.w)
		if err != nil {
			t.Fatal(err)
		}
		src := randomBytes(rng, tc.c*tc.h*tc.w)
		dst := make([]float32, a.OutputLen())
		for range 8 {
			box := SampleCrop(rng, tc.h, tc.w, 0.2, 1, CropRatioMin, CropRatioMax)
			a.resizedCrop(dst, src, box)
			assertClose(t, "resized crop", dst, refResizedCrop(src, tc.c, tc.h, tc.w, box, tc.size), 1e-5)
		}
		full := CropBox{0, 0, tc.h, tc.w}
		a.resizedCrop(dst, src, full)
		if tc.h == tc.size && tc.w == tc.size {
			for i, v := range src {
				if math.Abs(float64(dst[i])-float64(v)/255) > 1e-6 {
					t.Fatalf("full-image crop at the same size is not the identity at %d", i)
				}
			}
		}
	}
}

func refLuma(r, g, b float64) float64 { return 0.2989*r + 0.587*g + 0.114*b }

// refHSVShift shifts hue with colorsys' formulas in float64.
func refHSVShift(r, g, b, shift float64) (float64, float64, float64) {
	maxc, minc := math.Max(r, math.Max(g, b)), math.Min(r, math.Min(g, b))
	v := maxc
	if maxc == minc {
		return v, v, v
	}
	s := (maxc - minc) / maxc
	rc, gc, bc := (maxc-r)/(maxc-minc), (maxc-g)/(maxc-minc), (maxc-b)/(maxc-minc)
	var h float64
	if r == maxc {
		h = bc - gc
	} else if g == maxc {
		h = 2 + rc - bc
	} else {
		h = 4 + gc - rc
	}
	h = math.Mod(h/6+shift+2, 1)
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, tt := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) % 6 {
	case 0:
		return v, tt, p
	case 1:
		return q, v, p
	case 2:
		return p, v, tt
	case 3:
		return p, q, v
	case 4:
		return tt, p, v
	}
	return v, p, q
}

func TestColorOpsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const plane = 7 * 5
	clamp := func(v float64) float64 { return math.Min(math.Max(v, 0), 1) }
	for trial := range 10 {
		x := randomFloats(rng, 3*plane)
		ref := func(f func(r, g, b float64) (float64, float64, float64)) []float64 {
			out := make([]float64, 3*plane)
			for p := range plane {
				out[p], out[plane+p], out[2*plane+p] = f(float64(x[p]), float64(x[plane+p]), float64(x[2*plane+p]))
			}
			return out
		}
		factor := 0.6 + 0.8*rng.Float64()
		shift := 0.2*rng.Float64() - 0.1
		if trial == 0 {
			shift = -0.5
		}

		y := append([]float32(nil), x...)
		adjustBrightness(y, float32(factor))
		assertClose(t, "brightness", y, ref(func(r, g, b float64) (float64, float64, float64) {
			return clamp(factor * r), clamp(factor * g), clamp(factor * b)
		}), 1e-6)

		var mean float64
		for p := range plane {
			mean += refLuma(float64(x[p]), float64(x[plane+p]), float64(x[2*plane+p])) / plane
		}
		y = append([]float32(nil), x...)
		adjustContrast(y, 3, plane, float32(factor))
		assertClose(t, "contrast", y, ref(func(r, g, b float64) (float64, float64, float64) {
			m := (1 - factor) * mean
			return clamp(factor*r + m), clamp(factor*g + m), clamp(factor*b + m)
		}), 1e-5)

		y = append([]float32(nil), x...)
		adjustSaturation(y, plane, float32(factor), make([]float32, plane))
		assertClose(t, "saturation", y, ref(func(r, g, b float64) (float64, float64, float64) {
			l := (1 - factor) * refLuma(r, g, b)
			return clamp(factor*r + l), clamp(factor*g + l), clamp(factor*b + l)
		}), 1e-5)

		y = append([]float32(nil), x...)
		adjustHue(y, plane, float32(shift))
		assertClose(t, "hue", y, ref(func(r, g, b float64) (float64, float64, float64) {
			return refHSVShift(r, g, b, shift)
		}), 1e-5)

		y = append([]float32(nil), x...)
		toGrayscale(y, plane)
		assertClose(t, "grayscale", y, ref(func(r, g, b float64) (float64, float64, float64) {
			l := refLuma(r, g, b)
			return l, l, l
		}), 1e-6)

		// One channel: contrast blends with the plain mean.
		g := append([]float32(nil), x[:plane]...)
		var gm float64
		for _, v := range g {
			gm += float64(v) / plane
		}
		want := make([]float64, plane)
		for i, v := range g {
			want[i] = clamp(factor*float64(v) + (1-factor)*gm)
		}
		adjustContrast(g, 1, plane, float32(factor))
		assertClose(t, "gray contrast", g, want, 1e-5)
	}
	// A third of a turn takes pure red to pure green.
	red := []float32{1, 0, 0}
	adjustHue(red, 1, 1.0/3)
	assertClose(t, "red+1/3 turn", red, []float64{0, 1, 0}, 1e-6)
}

func TestColorJitterGrayOnlyBrightnessContrast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	cfg := MoCoV2Augment(1, 6)
	cfg.Brightness, cfg.Contrast = 0, 0 // only saturation and hue left: both no-ops on gray
	a, err := NewAugmenter(cfg, 1, 6, 6)
	if err != nil {
		t.Fatal(err)
	}
	x := randomFloats(rng, 36)
	y := append([]float32(nil), x...)
	a.colorJitter(y, rng)
	want := make([]float64, 36)
	for i, v := range x {
		want[i] = float64(v)
	}
	assertClose(t, "gray jitter without brightness/contrast", y, want, 0)
}

// refBlur convolves with the 2-D Gaussian directly, mirroring indices with
// period 2n−2 (reflect padding).
func refBlur(x []float32, c, s, taps int, sigma float64) []float64 {
	r := taps / 2
	k := make([]float64, taps)
	var sum float64
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	mirror := func(i int) int {
		p := 2*s - 2
		i = ((i % p) + p) % p
		if i >= s {
			i = p - i
		}
		return i
	}
	out := make([]float64, len(x))
	for ch := range c {
		for y := range s {
			for xx := range s {
				var acc float64
				for dy := range taps {
					for dx := range taps {
						acc += k[dy] * k[dx] / (sum * sum) * float64(x[ch*s*s+mirror(y+dy-r)*s+mirror(xx+dx-r)])
					}
				}
				out[ch*s*s+y*s+xx] = acc
			}
		}
	}
	return out
}

func TestBlurMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		sigma   float64
		s, taps int
	}{{0.1, 28, 3}, {0.7, 28, 7}, {1.05, 224, 9}, {2, 224, 13}, {2, 5, 9}} {
		if got := blurTaps(tc.sigma, tc.s); got != tc.taps {
			t.Errorf("blurTaps(%v, %d) = %d, want %d", tc.sigma, tc.s, got, tc.taps)
		}
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tc := range []struct{ c, s int }{{1, 28}, {3, 32}, {3, 64}, {1, 224}, {1, 96}, {1, 5}} {
		a, err := NewAugmenter(MoCoV2Augment(tc.c, tc.s), tc.c, tc.s, tc.s)
		if err != nil {
			t.Fatal(err)
		}
		sigmas := []float64{0.1, 0.7, 2}
		if tc.s > 100 { // the direct 2-D reference is slow at this size
			sigmas = sigmas[2:]
		}
		for _, sigma := range sigmas {
			x := randomFloats(rng, tc.c*tc.s*tc.s)
			want := refBlur(x, tc.c, tc.s, blurTaps(sigma, tc.s), sigma)
			a.blur(x, sigma)
			assertClose(t, "blur", x, want, 1e-5)
		}
	}
}

func TestFlip(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
	flipHorizontal(x, 2, 3)
	assertClose(t, "flip", x, []float64{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10, 15, 14, 13, 18, 17, 16}, 0)
}

func TestApplyShapeAndRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct{ c, h, w, size int }{{1, 28, 28, 28}, {3, 32, 32, 32}, {3, 48, 40, 24}} {
		cfg := MoCoV2Augment(tc.c, tc.size)
		a, err := NewAugmenter(cfg, tc.c, tc.h, tc.w)
		if err != nil {
			t.Fatal(err)
		}
		if a.OutputLen() != tc.c*tc.size*tc.size {
			t.Fatalf("OutputLen %d, want %d", a.OutputLen(), tc.c*tc.size*tc.size)
		}
		src := randomBytes(rng, tc.c*tc.h*tc.w)
		// NaN poison: every output value must be written.
		q := make([]float32, a.OutputLen()+1)
		k := make([]float32, a.OutputLen())
		for trial := range 50 {
			for i := range q {
				q[i] = float32(math.NaN())
			}
			a.Apply(q, src, rng)
			a.Apply(k, src, rng)
			if !math.IsNaN(float64(q[len(q)-1])) {
				t.Fatalf("Apply wrote past C×S×S")
			}
			var diff float64
			plane := tc.size * tc.size
			for i, v := range q[:len(k)] {
				c := i / plane
				lo := (0 - cfg.Mean[c]) / cfg.Std[c]
				hi := (1 - cfg.Mean[c]) / cfg.Std[c]
				if !(v >= lo-1e-5 && v <= hi+1e-5) {
					t.Fatalf("trial %d: value %d = %v outside [%v, %v]", trial, i, v, lo, hi)
				}
				diff += math.Abs(float64(v - k[i]))
			}
			if diff == 0 {
				t.Fatalf("trial %d: two views of one image are identical", trial)
			}
		}
	}
}

func TestAugmentConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*AugmentConfig)
	}{
		{"crop size", func(c *AugmentConfig) { c.CropSize = 1 }},
		{"scale", func(c *AugmentConfig) { c.ScaleMin = 0 }},
		{"scale order", func(c *AugmentConfig) { c.ScaleMin, c.ScaleMax = 0.9, 0.5 }},
		{"hue", func(c *AugmentConfig) { c.Hue = 0.6 }},
		{"probability", func(c *AugmentConfig) { c.GrayProb = 1.5 }},
		{"blur sigma", func(c *AugmentConfig) { c.BlurSigmaMin = 0 }},
		{"mean length", func(c *AugmentConfig) { c.Mean = c.Mean[:1] }},
		{"std zero", func(c *AugmentConfig) { c.Std[2] = 0 }},
	} {
		cfg := MoCoV2Augment(3, 32)
		if err := cfg.Validate(3); err != nil {
			t.Fatalf("default config: %v", err)
		}
		tc.edit(&cfg)
		if err := cfg.Validate(3); err == nil {
			t.Errorf("%s: Validate accepted %+v", tc.name, cfg)
		}
	}
}
