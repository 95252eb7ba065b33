package eval

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// near reports whether c is within tol of want on every RGB channel.
func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { return math.Abs(float64(int(x>>8)-int(y))) <= float64(tol) }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

func decodePNG(t *testing.T, data []byte, w, h int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("PNG is %d×%d, want %d×%d", b.Dx(), b.Dy(), w, h)
	}
	return img
}

func TestWritePlanePNGPointWhereExpected(t *testing.T) {
	const w, h = 640, 480
	for _, pts := range [][]PlanePoint{
		{{Label: "moco", Uniformity: -3.2, Alignment: 0.4}},
		{{Label: "moco", Uniformity: -3.2, Alignment: 0.4}, {Label: "mochi", Uniformity: -3.6, Alignment: 0.45}},
	} {
		var buf bytes.Buffer
		if err := WritePlanePNG(&buf, pts, w, h); err != nil {
			t.Fatal(err)
		}
		img := decodePNG(t, buf.Bytes(), w, h)

		// Map data → pixels through the plot's own transform on a canvas
		// of the same size: vg points × DPI/72, y flipped.
		p, err := planePlot(pts)
		if err != nil {
			t.Fatal(err)
		}
		c := vgimg.NewWith(vgimg.UseWH(pxToVG(w), pxToVG(h)), vgimg.UseDPI(PlotDPI))
		da := p.DataCanvas(draw.New(c))
		tx, ty := p.Transforms(&da)
		centres := make([]image.Point, len(pts))
		for i, pt := range pts {
			centres[i] = image.Pt(int(math.Round(tx(pt.Uniformity).Dots(PlotDPI))), h-int(math.Round(ty(pt.Alignment).Dots(PlotDPI))))
		}
		// The glyph radius is 4 pt ≈ 5.3 px: the centre pixel must be the
		// point's colour, and every point-coloured pixel lies within 8 px
		// of some centre.
		inside := 0
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if !near(img.At(x, y), planePointColor, 40) {
					continue
				}
				ok := false
				for _, ctr := range centres {
					if dx, dy := x-ctr.X, y-ctr.Y; dx*dx+dy*dy <= 64 {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("point-coloured pixel at (%d, %d), far from every expected centre %v", x, y, centres)
				}
				inside++
			}
		}
		for _, ctr := range centres {
			if !near(img.At(ctr.X, ctr.Y), planePointColor, 40) {
				t.Fatalf("no point drawn at the expected pixel %v (colour there %v)", ctr, img.At(ctr.X, ctr.Y))
			}
		}
		if inside < 40*len(pts) {
			t.Fatalf("only %d point-coloured pixels for %d points", inside, len(pts))
		}
	}
}

func TestWritePlanePNGErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePlanePNG(&buf, nil, 400, 300); err == nil {
		t.Fatal("no points accepted")
	}
	if err := WritePlanePNG(&buf, []PlanePoint{{Uniformity: math.NaN()}}, 400, 300); err == nil {
		t.Fatal("NaN accepted")
	}
}

func TestWriteHistogramsPNGSeriesDrawn(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	q, k, negs := randMatrix(rng, 64, 16), randMatrix(rng, 64, 16), randMatrix(rng, 1024, 16)
	for _, c := range []struct {
		s, sPrime int
		want      map[color.RGBA]bool
	}{
		{64, 16, map[color.RGBA]bool{negativesColor: true, hardNegativesColor: true, mixedColor: true, queryMixedColor: true}},
		{0, 16, map[color.RGBA]bool{negativesColor: true, hardNegativesColor: true, mixedColor: false, queryMixedColor: true}},
	} {
		st, err := AnalyzeHardness(q, k, negs, HardnessConfig{N: 64, S: c.s, SPrime: c.sPrime, Tau: 0.2, Bins: 40, Epsilon: 1e-5})
		if err != nil {
			t.Fatal(err)
		}
		const w, h = 800, 500
		var buf bytes.Buffer
		if err := WriteHistogramsPNG(&buf, "checkpoint", st, w, h); err != nil {
			t.Fatal(err)
		}
		img := decodePNG(t, buf.Bytes(), w, h)
		counts := map[color.RGBA]int{}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for col := range c.want {
					if near(img.At(x, y), col, 8) {
						counts[col]++
					}
				}
			}
		}
		for col, present := range c.want {
			// A drawn series leaves a 2 pt outline (hundreds of pixels) plus its legend swatch.
			if present && counts[col] < 100 {
				t.Errorf("s=%d s′=%d: series colour %v has %d pixels, want ≥ 100", c.s, c.sPrime, col, counts[col])
			}
			if !present && counts[col] != 0 {
				t.Errorf("s=%d s′=%d: empty series colour %v drawn (%d pixels)", c.s, c.sPrime, col, counts[col])
			}
		}
	}
	if err := WriteHistogramsPNG(&bytes.Buffer{}, "empty", HardnessStats{}, 400, 300); err == nil {
		t.Fatal("empty stats accepted")
	}
}
