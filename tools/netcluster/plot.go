package main

import (
	"cmp"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WritePNG plots the median broadcast time against N, one line per mode, with
// each run as a dot and the raw TCP copy of one object as a dashed line.
func (r *BenchResult) WritePNG(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("trove broadcast: %d MiB to N-1 nodes, %s links", r.Size>>20, r.Rate)
	p.X.Label.Text = "N (nodes, origin included)"
	p.Y.Label.Text = "time until every node has the object (s)"
	p.Legend.Top, p.Legend.Left = true, true
	colors := map[string]color.Color{"swarm": color.RGBA{0, 114, 178, 255}, "single": color.RGBA{213, 94, 0, 255},
		"current": color.RGBA{213, 94, 0, 255}}
	var ticks []plot.Tick
	seen := map[int]bool{}
	for _, mode := range []string{"swarm", "single", "current"} {
		var line, dots plotter.XYs
		for _, pt := range r.Points {
			if pt.Mode != mode {
				continue
			}
			line = append(line, plotter.XY{X: float64(pt.N), Y: pt.MedianSeconds})
			for _, run := range pt.Runs {
				dots = append(dots, plotter.XY{X: float64(pt.N), Y: run.Seconds})
			}
			if !seen[pt.N] {
				seen[pt.N] = true
				ticks = append(ticks, plot.Tick{Value: float64(pt.N), Label: fmt.Sprint(pt.N)})
			}
		}
		if len(line) == 0 {
			continue
		}
		l, err := plotter.NewLine(line)
		if err != nil {
			return err
		}
		l.Color, l.Width = colors[mode], vg.Points(2)
		s, err := plotter.NewScatter(dots)
		if err != nil {
			return err
		}
		s.Color, s.Shape, s.Radius = colors[mode], draw.CircleGlyph{}, vg.Points(2.5)
		p.Add(l, s)
		name := mode + " (median, runs as dots)"
		if mode == "current" {
			name = "one holder per pull (median, runs as dots)"
		}
		p.Legend.Add(name, l, s)
	}
	if r.TCPSeconds > 0 && len(ticks) > 0 {
		base, err := plotter.NewLine(plotter.XYs{{X: ticks[0].Value, Y: r.TCPSeconds}, {X: ticks[len(ticks)-1].Value, Y: r.TCPSeconds}})
		if err != nil {
			return err
		}
		base.Color, base.Dashes = color.Gray{Y: 100}, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(base)
		p.Legend.Add("raw TCP copy of the object over one link", base)
		// One source's link shared by N-1 pullers: what single-source pulls
		// cost at best.
		var ideal plotter.XYs
		for _, t := range ticks {
			ideal = append(ideal, plotter.XY{X: t.Value, Y: (t.Value - 1) * r.TCPSeconds})
		}
		one, err := plotter.NewLine(ideal)
		if err != nil {
			return err
		}
		one.Color, one.Dashes = color.Gray{Y: 160}, []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(one)
		p.Legend.Add("(N-1) x the TCP copy: one source's link shared", one)
	}
	slices.SortFunc(ticks, func(a, b plot.Tick) int { return cmp.Compare(a.Value, b.Value) })
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
