package main

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/minnowml/minnow/recipes"
)

func plotCmd() *cli.Command {
	return &cli.Command{
		Name:      "plot",
		Usage:     "draw metrics of one or more runs against the step, overlaid, to PNG or SVG",
		ArgsUsage: "RUNDIR... (a directory, or its name under runs/)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "image to write, .png or .svg (default: RUNDIR/plot.png for one run, plot.png for several)"},
			&cli.StringFlag{Name: "metric", Usage: "comma-separated metrics of metrics.jsonl, one panel each, such as loss,lr,reward (default: those of " + strings.Join(defaultPlotMetrics, ", ") + " the runs have)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return hinted{usageErr{errors.New("plot takes at least one RUNDIR")}, "`minnow runs ls` lists the runs"}
			}
			dirs := make([]string, c.NArg())
			for i, a := range c.Args().Slice() {
				dirs[i] = resolveRun(a)
			}
			out := c.String("out")
			if out == "" {
				out = "plot.png"
				if len(dirs) == 1 {
					out = filepath.Join(dirs[0], "plot.png")
				}
			}
			format := strings.TrimPrefix(strings.ToLower(filepath.Ext(out)), ".")
			if format != "png" && format != "svg" {
				return usageErr{fmt.Errorf("--out %s: want a .png or .svg file", out)}
			}
			runs := map[string][]recipes.MetricRow{}
			for _, dir := range dirs {
				rows, err := recipes.ReadMetrics(dir)
				if err != nil {
					return hinted{usageErr{fmt.Errorf("run %s: %w", dir, err)}, "give run directories made by `minnow run`"}
				}
				runs[dir] = rows
			}
			var metrics []string
			if c.IsSet("metric") {
				for _, m := range strings.Split(c.String("metric"), ",") {
					if m = strings.TrimSpace(m); m != "" {
						metrics = append(metrics, m)
					}
				}
				if len(metrics) == 0 {
					return usageErr{errors.New("--metric names no metric")}
				}
			} else if metrics = presentMetrics(runs, defaultPlotMetrics); len(metrics) == 0 {
				return usageErr{fmt.Errorf("the runs have none of %s yet", strings.Join(defaultPlotMetrics, ", "))}
			}
			if err := drawRuns(out, format, dirs, runs, metrics); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s\n", out)
			return nil
		},
	}
}

// defaultPlotMetrics are the curves plot draws without --metric, when the
// runs have them: losses for every method, reward and completion length
// for RL.
var defaultPlotMetrics = []string{"loss", "eval_loss", "reward", "completion_length_mean"}

// presentMetrics returns the metrics of want that some run has, in
// want's order.
func presentMetrics(runs map[string][]recipes.MetricRow, want []string) []string {
	var out []string
	for _, m := range want {
	search:
		for _, rows := range runs {
			for _, r := range rows {
				if _, ok := r[m]; ok {
					out = append(out, m)
					break search
				}
			}
		}
	}
	return out
}

// drawRuns draws one panel per metric, stacked, with a line per run, and
// writes the image to out. It returns a bad-input error when a metric is
// in none of the runs, naming the metrics they do have.
func drawRuns(out, format string, dirs []string, runs map[string][]recipes.MetricRow, metrics []string) error {
	var panels [][]*plot.Plot
	have := map[string]bool{}
	for _, rows := range runs {
		for _, r := range rows {
			for k := range r {
				have[k] = true
			}
		}
	}
	for _, m := range metrics {
		if !have[m] {
			names := make([]string, 0, len(have))
			for k := range have {
				if k != "step" {
					names = append(names, k)
				}
			}
			sort.Strings(names)
			return usageErr{fmt.Errorf("--metric %s: no run has it (they have: %s)", m, strings.Join(names, ", "))}
		}
		p := plot.New()
		p.Title.Text = m
		p.X.Label.Text = "step"
		p.Y.Label.Text = m
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for i, dir := range dirs {
			var xys plotter.XYs
			for _, r := range runs[dir] {
				if v, ok := r[m]; ok {
					xys = append(xys, plotter.XY{X: r["step"], Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s of %s: %w", m, dir, err)
			}
			col := plotutil.Color(i)
			l.Color = col
			s.Color = col
			s.Shape = draw.CircleGlyph{}
			s.Radius = vg.Points(1.5)
			if len(xys) > 40 {
				s.Radius = 0 // dense curves read better as lines alone
			}
			p.Add(l, s)
			p.Legend.Add(filepath.Base(filepath.Clean(dir)), l)
		}
		panels = append(panels, []*plot.Plot{p})
	}
	w, h := 8*vg.Inch, vg.Length(len(panels))*3*vg.Inch
	cw, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		panels[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return usageErr{err}
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
