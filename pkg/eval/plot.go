package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotDPI is the resolution of the PNG figures: a W×H-pixel figure is drawn
// on a canvas of W·72/PlotDPI × H·72/PlotDPI points.
const PlotDPI = 96

// PlanePoint is one checkpoint on the alignment–uniformity plane.
type PlanePoint struct {
	// Run names the run the checkpoint belongs to: one colour and legend
	// entry per run, its checkpoints joined by a line in epoch order.
	Run string
	// Epoch orders the checkpoints of a run.
	Epoch int
	// Label is printed beside the point.
	Label      string
	Uniformity float64 // x axis, lower is better
	Alignment  float64 // y axis, lower is better
}

// Colours of the figures' series, fixed so readers (and tests) can tell them apart.
var (
	negativesColor     = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	hardNegativesColor = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	mixedColor         = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	queryMixedColor    = color.RGBA{R: 148, G: 103, B: 189, A: 255}
)

// SeriesColors colour the runs of a figure in order; they repeat after the
// last.
var SeriesColors = []color.RGBA{
	{R: 220, G: 20, B: 60, A: 255},   // crimson
	{R: 31, G: 119, B: 180, A: 255},  // blue
	{R: 255, G: 127, B: 14, A: 255},  // orange
	{R: 44, G: 160, B: 44, A: 255},   // green
	{R: 148, G: 103, B: 189, A: 255}, // purple
	{R: 140, G: 86, B: 75, A: 255},   // brown
	{R: 227, G: 119, B: 194, A: 255}, // pink
	{R: 127, G: 127, B: 127, A: 255}, // grey
}

// SeriesColor is the colour of the i-th run of a figure.
func SeriesColor(i int) color.RGBA { return SeriesColors[i%len(SeriesColors)] }

// titlePadding separates a figure's title from its frame, legendInset a
// legend from the frame's corner.
const (
	titlePadding = 8 // points
	legendInset  = 6 // points
)

// planePlot builds the alignment–uniformity figure of Wang & Isola (Fig. 2
// there): one labelled point per checkpoint, a colour and legend entry per
// run, a run's checkpoints joined in epoch order; the best encoders sit at
// the bottom left.
func planePlot(points []PlanePoint) (*plot.Plot, error) {
	if len(points) == 0 {
		return nil, fmt.Errorf("eval: the alignment–uniformity plot needs at least one checkpoint")
	}
	xys := make(plotter.XYs, len(points))
	var runs []string
	byRun := map[string][]int{} // run → point indices
	for i, pt := range points {
		if math.IsNaN(pt.Uniformity) || math.IsInf(pt.Uniformity, 0) || math.IsNaN(pt.Alignment) || math.IsInf(pt.Alignment, 0) {
			return nil, fmt.Errorf("eval: checkpoint %q has uniformity %v, alignment %v; both must be finite to plot", pt.Label, pt.Uniformity, pt.Alignment)
		}
		xys[i] = plotter.XY{X: pt.Uniformity, Y: pt.Alignment}
		if _, ok := byRun[pt.Run]; !ok {
			runs = append(runs, pt.Run)
		}
		byRun[pt.Run] = append(byRun[pt.Run], i)
	}
	p := plot.New()
	p.Title.Text = "Alignment vs uniformity (lower is better on both)"
	p.Title.Padding = vg.Points(titlePadding)
	p.X.Label.Text = "uniformity: log E exp(−2‖x−y‖²)"
	p.Y.Label.Text = "alignment: E ‖x−y‖² over positive pairs"
	p.Legend.Top = true
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(legendInset), -vg.Points(legendInset)
	p.Add(plotter.NewGrid())
	for r, run := range runs {
		idx := byRun[run]
		sort.SliceStable(idx, func(a, b int) bool { return points[idx[a]].Epoch < points[idx[b]].Epoch })
		pts := make(plotter.XYs, len(idx))
		for j, i := range idx {
			pts[j] = xys[i]
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, fmt.Errorf("eval: plane plot: %w", err)
		}
		sc.GlyphStyle.Color = SeriesColor(r)
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(4)
		thumbs := []plot.Thumbnailer{sc}
		if len(pts) > 1 {
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, fmt.Errorf("eval: plane plot: %w", err)
			}
			l.Color, l.Width = SeriesColor(r), vg.Points(1.5)
			p.Add(l)
			thumbs = append(thumbs, l)
		}
		p.Add(sc)
		p.Legend.Add(run, thumbs...)
	}
	// Labels alternate above and below the points in the order of their
	// uniformity, so that neighbouring points do not print over each other.
	order := make([]int, len(xys))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return xys[order[a]].X < xys[order[b]].X })
	var sides [2]plotter.XYLabels // above, below
	for rank, i := range order {
		side := &sides[rank%2]
		side.XYs = append(side.XYs, xys[i])
		side.Labels = append(side.Labels, points[i].Label)
	}
	for side, offset := range []vg.Length{vg.Points(6), -vg.Points(16)} {
		if len(sides[side].XYs) == 0 {
			continue
		}
		lb, err := plotter.NewLabels(sides[side])
		if err != nil {
			return nil, fmt.Errorf("eval: plane plot: %w", err)
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XCenter
		}
		lb.Offset = vg.Point{Y: offset}
		p.Add(lb)
	}
	// Pad the ranges so that a single point (or points on a line) sit
	// inside the frame rather than on its edge, and the legend clear of them.
	p.X.Min, p.X.Max = paddedRange(xys, func(xy plotter.XY) float64 { return xy.X })
	p.Y.Min, p.Y.Max = paddedRange(xys, func(xy plotter.XY) float64 { return xy.Y })
	p.Y.Max += 0.1 * float64(len(runs)) * (p.Y.Max - p.Y.Min)
	return p, nil
}

// paddedRange returns [min − pad, max + pad] of coord over xys, pad being
// 15% of the span or 0.05 when the span is smaller.
func paddedRange(xys plotter.XYs, coord func(plotter.XY) float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, xy := range xys {
		lo, hi = math.Min(lo, coord(xy)), math.Max(hi, coord(xy))
	}
	pad := math.Max(0.15*(hi-lo), 0.05)
	return lo - pad, hi + pad
}

// histogramHeadroom is the histograms' y range over their tallest bin.
const histogramHeadroom = 1.15

// histogramPlot builds the MoCHi paper's hardness figure (Fig. 3 there): the
// densities of q·n for all negatives, the top-N hard negatives and the
// synthetic h and h′, as overlaid step lines on [−1, 1]. Empty series
// (s = 0 or s′ = 0) are left out.
func histogramPlot(title string, st HardnessStats) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(titlePadding)
	p.X.Label.Text = "similarity q·n"
	p.Y.Label.Text = "density"
	p.X.Min, p.X.Max = -1, 1
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(legendInset), -vg.Points(legendInset)
	p.Add(plotter.NewGrid())
	series := []struct {
		name string
		h    Histogram
		c    color.RGBA
	}{
		{"all negatives", st.Negatives, negativesColor},
		{fmt.Sprintf("top-%d hard negatives", st.Config.N), st.HardNegatives, hardNegativesColor},
		{"synthetic h (neg–neg)", st.Mixed, mixedColor},
		{"synthetic h′ (query–neg)", st.QueryMixed, queryMixedColor},
	}
	drawn, tallest := 0, 0.0
	for _, s := range series {
		if s.h.Total == 0 || len(s.h.Counts) == 0 {
			continue
		}
		dens := s.h.Density()
		width := (s.h.Hi - s.h.Lo) / float64(len(dens))
		// A pre-step line through the bin edges draws the histogram outline.
		xys := make(plotter.XYs, 0, len(dens)+1)
		xys = append(xys, plotter.XY{X: s.h.Lo, Y: 0})
		for b, v := range dens {
			xys = append(xys, plotter.XY{X: s.h.Lo + float64(b+1)*width, Y: v})
			tallest = math.Max(tallest, v)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("eval: histogram plot %q: %w", s.name, err)
		}
		l.StepStyle = plotter.PreStep
		l.Color = s.c
		l.Width = vg.Points(2)
		p.Add(l)
		p.Legend.Add(s.name, l)
		drawn++
	}
	if drawn == 0 {
		return nil, fmt.Errorf("eval: histogram plot %q has no data: run AnalyzeHardness first", title)
	}
	// Headroom above the tallest bin, clear of the frame and the legend.
	p.Y.Min, p.Y.Max = 0, histogramHeadroom*tallest
	return p, nil
}

// Curve is one line of a Panel: Y over X, in the colour of run Run
// (SeriesColor), dashed for a second measure of the same run.
type Curve struct {
	Label  string
	Run    int
	Dashed bool
	X, Y   []float64
}

// Panel is one chart of a figure of curves, with a legend of its curves.
type Panel struct {
	Title, XLabel, YLabel string
	Curves                []Curve
}

// curvePoints marks every point of a curve with at most this many (sparse
// records such as a per-epoch kNN accuracy); denser curves are lines alone.
const curvePoints = 20

// panelPlot builds one panel.
func panelPlot(pn Panel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.Title.Padding = vg.Points(titlePadding)
	p.X.Label.Text, p.Y.Label.Text = pn.XLabel, pn.YLabel
	p.Legend.Top = true
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(legendInset), -vg.Points(legendInset)
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range pn.Curves {
		if len(c.X) != len(c.Y) || len(c.X) == 0 {
			return nil, fmt.Errorf("eval: panel %q, curve %q: %d x values and %d y values; want the same number, at least one", pn.Title, c.Label, len(c.X), len(c.Y))
		}
		xys := make(plotter.XYs, len(c.X))
		for i := range c.X {
			xys[i] = plotter.XY{X: c.X[i], Y: c.Y[i]}
			lo, hi = math.Min(lo, c.Y[i]), math.Max(hi, c.Y[i])
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("eval: panel %q, curve %q: %w", pn.Title, c.Label, err)
		}
		l.Color, l.Width = SeriesColor(c.Run), vg.Points(1.5)
		if c.Dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		thumbs := []plot.Thumbnailer{l}
		if len(xys) <= curvePoints {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("eval: panel %q, curve %q: %w", pn.Title, c.Label, err)
			}
			sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = SeriesColor(c.Run), draw.CircleGlyph{}, vg.Points(2.5)
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		p.Legend.Add(c.Label, thumbs...)
	}
	if len(pn.Curves) == 0 {
		return nil, fmt.Errorf("eval: panel %q has no curves", pn.Title)
	}
	// Headroom for the legend (a line per curve) above the highest value.
	span := hi - lo
	if span == 0 {
		span = math.Max(math.Abs(hi), 1)
	}
	p.Y.Min, p.Y.Max = lo-0.05*span, hi+(0.1+0.1*float64(len(pn.Curves)))*span
	return p, nil
}

// WritePanelsPNG writes panels, cols to a row, as one widthPx×heightPx PNG.
func WritePanelsPNG(w io.Writer, panels []Panel, cols, widthPx, heightPx int) error {
	if len(panels) == 0 || cols < 1 {
		return fmt.Errorf("eval: a figure of %d panels in %d columns: want at least one of each", len(panels), cols)
	}
	if widthPx < 100 || heightPx < 100 {
		return fmt.Errorf("eval: figure size %d×%d px is too small; use at least 100×100", widthPx, heightPx)
	}
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p, err := panelPlot(pn)
		if err != nil {
			return err
		}
		grid[i/cols][i%cols] = p
	}
	c := vgimg.NewWith(vgimg.UseWH(pxToVG(widthPx), pxToVG(heightPx)), vgimg.UseDPI(PlotDPI))
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10),
		PadX: vg.Points(24), PadY: vg.Points(18)}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for col, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][col])
			}
		}
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("eval: encoding PNG: %w", err)
	}
	return nil
}

// renderPNG draws p on a widthPx×heightPx canvas at PlotDPI and writes a PNG.
func renderPNG(w io.Writer, p *plot.Plot, widthPx, heightPx int) error {
	if widthPx < 100 || heightPx < 100 {
		return fmt.Errorf("eval: figure size %d×%d px is too small; use at least 100×100", widthPx, heightPx)
	}
	c := vgimg.NewWith(vgimg.UseWH(pxToVG(widthPx), pxToVG(heightPx)), vgimg.UseDPI(PlotDPI))
	p.Draw(draw.New(c))
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("eval: encoding PNG: %w", err)
	}
	return nil
}

// pxToVG converts pixels at PlotDPI to vg lengths (points, 1/72 inch).
func pxToVG(px int) vg.Length { return vg.Length(float64(px) * 72 / PlotDPI) }

// WritePlanePNG writes the alignment–uniformity plane, one labelled point per
// checkpoint, as a widthPx×heightPx PNG.
func WritePlanePNG(w io.Writer, points []PlanePoint, widthPx, heightPx int) error {
	p, err := planePlot(points)
	if err != nil {
		return err
	}
	return renderPNG(w, p, widthPx, heightPx)
}

// WriteHistogramsPNG writes one checkpoint's similarity histograms (all
// negatives, top-N, synthetic h and h′) as a widthPx×heightPx PNG.
func WriteHistogramsPNG(w io.Writer, title string, st HardnessStats, widthPx, heightPx int) error {
	p, err := histogramPlot(title, st)
	if err != nil {
		return err
	}
	return renderPNG(w, p, widthPx, heightPx)
}

// SavePNG creates path and fills it with write, for the Write…PNG functions:
//
//	eval.SavePNG("plane.png", func(w io.Writer) error { return eval.WritePlanePNG(w, pts, 800, 600) })
func SavePNG(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("eval: creating figure: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("eval: figure %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("eval: writing figure %s: %w", path, err)
	}
	return nil
}
