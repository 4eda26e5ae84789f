package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotTimes draws the slowest puller's broadcast time against N, one line
// per variant (stalled runs left out), both axes logarithmic.
func plotTimes(path string, rows []Row) error {
	p := plot.New()
	p.Title.Text = "swarmsim (a model): broadcast time against N"
	p.X.Label.Text = "N (nodes, origin included)"
	p.Y.Label.Text = "slowest puller's time, simulated s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	colors := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
	var order []string
	pts := map[string]plotter.XYs{}
	for _, r := range rows {
		if _, ok := pts[r.Variant]; !ok {
			order = append(order, r.Variant)
			pts[r.Variant] = nil
		}
		if r.Error == "" && r.Max > 0 {
			pts[r.Variant] = append(pts[r.Variant], plotter.XY{X: float64(r.N), Y: r.Max})
		}
	}
	for i, v := range order {
		if len(pts[v]) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts[v])
		if err != nil {
			return fmt.Errorf("plot %s: %w", v, err)
		}
		c := colors[i%len(colors)]
		l.Color, s.Color = c, c
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		label := v
		if n := countRows(rows, v); n > len(pts[v]) {
			label = fmt.Sprintf("%s (%d of %d N stalled)", v, n-len(pts[v]), n)
		}
		p.Legend.Add(label, l, s)
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: write %s: %w", path, err)
	}
	return nil
}

func countRows(rows []Row, v string) int {
	n := 0
	for _, r := range rows {
		if r.Variant == v {
			n++
		}
	}
	return n
}
