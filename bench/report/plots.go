package report

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/hopguard/hopguard/bench/result"
)

// series is one named line of a plot.
type series struct {
	name string
	xys  plotter.XYs
}

// linePlot writes an SVG line plot with points to path. logY puts the y
// axis on a log scale (all y values must then be positive).
func linePlot(path, title, xLabel, yLabel string, logY bool, lines []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	var args []any
	for _, s := range lines {
		if len(s.xys) == 0 {
			continue
		}
		args = append(args, s.name, s.xys)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("report: plot %s: %w", filepath.Base(path), err)
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("report: plot %s: %w", filepath.Base(path), err)
	}
	return nil
}

// overheadPlot plots p50 and p99 against the offered rate for both servers.
func overheadPlot(path string, o *result.Overhead) error {
	var lines []series
	for _, srv := range []string{result.ServerHopguard, result.ServerNoop} {
		p50, p99 := series{name: srv + " p50"}, series{name: srv + " p99"}
		for _, r := range o.Rates {
			s, ok := o.Step(srv, r)
			if !ok || s.Latency.Count == 0 {
				continue
			}
			p50.xys = append(p50.xys, plotter.XY{X: r, Y: s.Latency.P50 / 1000})
			p99.xys = append(p99.xys, plotter.XY{X: r, Y: s.Latency.P99 / 1000})
		}
		lines = append(lines, p50, p99)
	}
	return linePlot(path, "ext_proc latency vs offered rate (from intended send time)", "offered rate (requests/s)", "latency (ms, log)", true, lines)
}

// cpscalePlot plots change → ACK p50 and p99 against the client count.
func cpscalePlot(path string, c *result.CPScale) error {
	var lines []series
	for _, srv := range []string{result.ServerHopguard, result.ServerBare} {
		p50, p99 := series{name: srv + " p50"}, series{name: srv + " p99"}
		for _, n := range c.ClientCounts() {
			r, ok := c.Run(srv, n)
			if !ok {
				continue
			}
			p50.xys = append(p50.xys, plotter.XY{X: float64(n), Y: r.ChangeToAck.P50 / 1000})
			p99.xys = append(p99.xys, plotter.XY{X: float64(n), Y: r.ChangeToAck.P99 / 1000})
		}
		lines = append(lines, p50, p99)
	}
	return linePlot(path, "config change → client ACK", "ADS clients", "latency (ms, log)", true, lines)
}
