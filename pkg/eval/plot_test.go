package eval

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/plot/vg"
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

// renderPlane draws pts with WritePlanePNG and returns the image and the
// map from (uniformity, alignment) to its pixel, through the plot's own
// transform on a canvas of the same size: vg points × DPI/72, y flipped.
func renderPlane(t *testing.T, pts []PlanePoint, w, h int) (image.Image, func(u, a float64) image.Point) {
	t.Helper()
	var buf bytes.Buffer
	if err := WritePlanePNG(&buf, pts, w, h); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, buf.Bytes(), w, h)
	p, err := planePlot(pts)
	if err != nil {
		t.Fatal(err)
	}
	c := vgimg.NewWith(vgimg.UseWH(pxToVG(w), pxToVG(h)), vgimg.UseDPI(PlotDPI))
	da := p.DataCanvas(draw.New(c))
	tx, ty := p.Transforms(&da)
	return img, func(u, a float64) image.Point {
		return image.Pt(int(math.Round(tx(u).Dots(PlotDPI))), h-int(math.Round(ty(a).Dots(PlotDPI))))
	}
}

func TestWritePlanePNGPointWhereExpected(t *testing.T) {
	const w, h = 640, 480
	for _, pts := range [][]PlanePoint{
		{{Run: "moco", Label: "moco", Uniformity: -3.2, Alignment: 0.4}},
		{{Run: "moco", Label: "moco", Uniformity: -3.2, Alignment: 0.4}, {Run: "mochi", Label: "mochi", Uniformity: -3.6, Alignment: 0.45}},
	} {
		img, px := renderPlane(t, pts, w, h)
		centres := make([]image.Point, len(pts))
		for i, pt := range pts {
			centres[i] = px(pt.Uniformity, pt.Alignment)
		}
		// The glyph radius is 4 pt ≈ 5.3 px: the centre pixel must be the
		// point's colour, and every point-coloured pixel below the legend
		// (which sits above the highest point) lies within 8 px of some
		// centre.
		top := h
		for _, ctr := range centres {
			top = min(top, ctr.Y-12)
		}
		inside := 0
		for y := top; y < h; y++ {
			for x := 0; x < w; x++ {
				ok, coloured := false, false
				for i, ctr := range centres { // one run per point: point i has colour i
					if near(img.At(x, y), SeriesColor(i), 40) {
						coloured = true
						if dx, dy := x-ctr.X, y-ctr.Y; dx*dx+dy*dy <= 64 {
							ok = true
						}
					}
				}
				if !coloured {
					continue
				}
				if !ok {
					t.Fatalf("point-coloured pixel at (%d, %d), far from every expected centre %v", x, y, centres)
				}
				inside++
			}
		}
		for i, ctr := range centres {
			if !near(img.At(ctr.X, ctr.Y), SeriesColor(i), 40) {
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

// TestPlanePlotRuns: each run has its colour, a legend entry (its swatch at
// the top right, above the points) and a line through its checkpoints.
func TestPlanePlotRuns(t *testing.T) {
	const w, h = 800, 600
	pts := []PlanePoint{
		{Run: "moco", Epoch: 2, Label: "epoch 2", Uniformity: -3.0, Alignment: 0.50},
		{Run: "mochi", Epoch: 1, Label: "epoch 1", Uniformity: -2.6, Alignment: 0.30},
		{Run: "moco", Epoch: 1, Label: "epoch 1", Uniformity: -2.5, Alignment: 0.35},
		{Run: "mochi", Epoch: 2, Label: "epoch 2", Uniformity: -3.4, Alignment: 0.45},
	}
	img, px := renderPlane(t, pts, w, h)
	topPoint := h
	for _, pt := range pts {
		topPoint = min(topPoint, px(pt.Uniformity, pt.Alignment).Y)
	}
	for run, pair := range map[int][2]PlanePoint{0: {pts[0], pts[2]}, 1: {pts[1], pts[3]}} {
		col := SeriesColor(run)
		// The line: the midpoint between a run's two checkpoints.
		a, b := px(pair[0].Uniformity, pair[0].Alignment), px(pair[1].Uniformity, pair[1].Alignment)
		mid := image.Pt((a.X+b.X)/2, (a.Y+b.Y)/2)
		found := false
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				found = found || near(img.At(mid.X+dx, mid.Y+dy), col, 40)
			}
		}
		if !found {
			t.Errorf("run %d: no line of colour %v between its checkpoints at %v", run, col, mid)
		}
		// The legend swatch: the run's colour above every point.
		legend := 0
		for y := 0; y < topPoint-12; y++ {
			for x := 0; x < w; x++ {
				if near(img.At(x, y), col, 40) {
					legend++
				}
			}
		}
		if legend < 10 {
			t.Errorf("run %d: %d pixels of %v above the points, want a legend entry", run, legend, col)
		}
	}
}

// TestHistogramHeadroom: the tallest bin stays below the frame's top and
// the title clear of the frame.
func TestHistogramHeadroom(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	q, k, negs := randMatrix(rng, 64, 16), randMatrix(rng, 64, 16), randMatrix(rng, 1024, 16)
	st, err := AnalyzeHardness(q, k, negs, HardnessConfig{N: 64, S: 32, SPrime: 16, Tau: 0.2, Bins: 40, Epsilon: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	p, err := histogramPlot("title", st)
	if err != nil {
		t.Fatal(err)
	}
	tallest := 0.0
	for _, h := range []Histogram{st.Negatives, st.HardNegatives, st.Mixed, st.QueryMixed} {
		for _, v := range h.Density() {
			tallest = math.Max(tallest, v)
		}
	}
	if p.Y.Max < 1.1*tallest {
		t.Errorf("y axis ends at %v, the tallest bin is %v: want ≥ 10%% headroom", p.Y.Max, tallest)
	}
	if p.Title.Padding < vg.Points(4) {
		t.Errorf("title padding %v, want the title clear of the frame", p.Title.Padding)
	}
}

func TestWritePanelsPNG(t *testing.T) {
	panels := []Panel{
		{Title: "loss", XLabel: "step", YLabel: "loss", Curves: []Curve{
			{Label: "a", Run: 0, X: []float64{1, 2, 3}, Y: []float64{3, 2, 1}},
			{Label: "b", Run: 1, Dashed: true, X: []float64{1, 2}, Y: []float64{2, 2}},
		}},
		{Title: "lr", XLabel: "step", YLabel: "lr", Curves: []Curve{{Label: "a", Run: 0, X: []float64{1}, Y: []float64{0.1}}}},
		{Title: "speed", XLabel: "step", YLabel: "images/s", Curves: []Curve{{Label: "b", Run: 1, X: []float64{1, 2}, Y: []float64{5, 6}}}},
	}
	var buf bytes.Buffer
	if err := WritePanelsPNG(&buf, panels, 2, 600, 500); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, buf.Bytes(), 600, 500)
	for run := range 2 {
		n := 0
		for y := 0; y < 500; y++ {
			for x := 0; x < 600; x++ {
				if near(img.At(x, y), SeriesColor(run), 8) {
					n++
				}
			}
		}
		if n < 100 {
			t.Errorf("run %d: %d pixels of %v", run, n, SeriesColor(run))
		}
	}
	bad := []Panel{{Title: "x", Curves: []Curve{{Label: "a", X: []float64{1, 2}, Y: []float64{1}}}}}
	for _, tt := range []struct {
		panels []Panel
		cols   int
	}{{nil, 2}, {panels, 0}, {bad, 1}, {[]Panel{{Title: "empty"}}, 1}} {
		if err := WritePanelsPNG(&bytes.Buffer{}, tt.panels, tt.cols, 600, 500); err == nil {
			t.Errorf("%d panels in %d columns (%+v): no error", len(tt.panels), tt.cols, tt.panels)
		}
	}
}
