package main

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// The charts are SVG drawn here, scaled by their viewBox to the page's
// width: the page needs no script and loads nothing.
const (
	svgW, svgH             = 480.0, 250.0
	padL, padR, padT, padB = 58.0, 24.0, 14.0, 34.0
)

// palette is Okabe and Ito's colour-blind-safe palette (without yellow,
// too pale on white); series also differ by dash and marker.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// dashOf gives each metric its dash pattern, the same in every chart.
func dashOf(metric string, i int) string {
	switch metric {
	case "p99", metrics.ServiceTime, "service p99":
		return "7 4"
	case "max", metrics.ScheduleLag, "target", "lag p99":
		return "2 3"
	case "p50", "requests", "errors", metrics.ResponseTime:
		return ""
	}
	// The overview's series are steps: vary the dash when colours repeat.
	return []string{"", "7 4", "2 3"}[i/len(palette)%3]
}

// marker draws file f's marker at (x, y): a circle, square, triangle,
// diamond or cross, so that overlaid files differ without colour.
func marker(f int, x, y float64, colour string) string {
	switch f % 5 {
	case 0:
		return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x, y, colour)
	case 1:
		return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="6" height="6" fill="%s"/>`, x-3, y-3, colour)
	case 2:
		return fmt.Sprintf(`<path d="M%.1f %.1fl3.5 6h-7z" fill="%s"/>`, x, y-4, colour)
	case 3:
		return fmt.Sprintf(`<path d="M%.1f %.1fl4 4-4 4-4-4z" fill="%s"/>`, x, y-4, colour)
	}
	return fmt.Sprintf(`<path d="M%.1f %.1fl6 6m0-6l-6 6" stroke="%s" stroke-width="1.8"/>`, x-3, y-3, colour)
}

// axis maps values to one direction of the plot.
type axis struct {
	lo, hi   float64
	log      bool
	from, to float64 // pixels
	ticks    []tick
}

type tick struct {
	v     float64
	label string
}

func (a *axis) pos(v float64) float64 {
	f := (v - a.lo) / (a.hi - a.lo)
	if a.log {
		f = (math.Log10(max(v, a.lo)) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return a.from + f*(a.to-a.from)
}

// linearAxis spans lo..hi (hi raised to a round tick when round) with
// about five ticks labelled by label.
func linearAxis(lo, hi float64, round bool, label func(float64) string) axis {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 5
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	if round {
		hi = math.Ceil(hi/step-1e-9) * step
	}
	a := axis{lo: lo, hi: hi}
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		a.ticks = append(a.ticks, tick{v, label(v)})
	}
	return a
}

// logAxis spans whole decades around lo..hi, with ticks at each decade
// and, over two decades or fewer, at 2 and 5 times them.
func logAxis(lo, hi float64, label func(float64) string) axis {
	// A value just above a decade gets the decade below, off the frame.
	lo = math.Pow(10, math.Floor(math.Log10(max(lo, 1e-6))-0.1))
	hi = math.Pow(10, math.Ceil(math.Log10(max(hi, lo))))
	if hi <= lo {
		hi = lo * 10
	}
	a := axis{lo: lo, hi: hi, log: true}
	dense := hi/lo <= 100
	for d := lo; d <= hi*1.0001; d *= 10 {
		a.ticks = append(a.ticks, tick{d, label(d)})
		if dense && d*2 < hi {
			a.ticks = append(a.ticks, tick{d * 2, label(d * 2)}, tick{d * 5, label(d * 5)})
		}
	}
	return a
}

// shortSeconds labels a time axis: 500µs, 1.5ms, 2s.
func shortSeconds(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-3:
		return strconv.FormatFloat(s*1e6, 'g', 3, 64) + "µs"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'g', 4, 64) + "s"
}

func plainNumber(v float64) string {
	if math.Abs(v) < 1e-9 { // not -0 nor 1e-17 after adding steps
		v = 0
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// percentileOf labels 1/(1-q) as the percentile q, to 4 decimals: 2 is
// 50%, 100000 is 99.999%.
func percentileOf(x float64) string {
	return strconv.FormatFloat(math.Round(1e6*(1-1/x))/1e4, 'f', -1, 64) + "%"
}

// seriesStyle is how a series is drawn: its colour, dash and marker.
type seriesStyle struct {
	colour, dash string
	file         int
}

func styleOf(c *htmlChart, i int) seriesStyle {
	s := c.Series[i]
	return seriesStyle{colour: palette[i%len(palette)], dash: dashOf(s.Metric, i), file: s.File}
}

// drawChart draws c as SVG, with the files' step boundaries on a time
// axis; step is the chart's step, "" for the overview.
func drawChart(c *htmlChart, step string, files []htmlFile) template.HTML {
	x, y := chartAxes(c)
	x.from, x.to = padL, svgW-padR
	y.from, y.to = svgH-padB, padT
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-t"><title id="%s-t">%s</title>`,
		svgW, svgH, c.ID, c.ID, template.HTMLEscapeString(c.Title))
	b.WriteString(`<g class="grid">`)
	for _, t := range y.ticks {
		p := y.pos(t.v)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f"/><text x="%g" y="%.1f" text-anchor="end">%s</text>`,
			padL, svgW-padR, p, p, padL-4, p+4, template.HTMLEscapeString(t.label))
	}
	for _, t := range x.ticks {
		p := x.pos(t.v)
		fmt.Fprintf(&b, `<line class="xt" x1="%.1f" x2="%.1f" y1="%g" y2="%g"/><text x="%.1f" y="%g" text-anchor="middle">%s</text>`,
			p, p, svgH-padB, svgH-padB+4, p, svgH-padB+16, template.HTMLEscapeString(t.label))
	}
	xTitle := "seconds since the run started"
	if c.Type == chartDist {
		xTitle = "percentile (log scale of 1/(1-q))"
	}
	fmt.Fprintf(&b, `<text class="at" x="%g" y="%g" text-anchor="middle">%s</text></g>`, (padL+svgW-padR)/2, svgH-4, xTitle)
	if c.XUnit == "s" {
		drawSpans(&b, step, files, &x)
	}
	// Series stay inside the plot: an interval may outlast the run.
	fmt.Fprintf(&b, `<defs><clipPath id="c-%s"><rect x="%g" y="%g" width="%g" height="%g"/></clipPath></defs><g clip-path="url(#c-%s)">`,
		c.ID, padL, padT-4, svgW-padL-padR, svgH-padT-padB+8, c.ID)
	switch c.Type {
	case chartBars:
		drawBars(&b, c, &x, &y)
	case chartLines:
		drawSteps(&b, c, &x, &y)
	case chartDist:
		drawDist(&b, c, &x, &y)
	}
	b.WriteString(`</g>`)
	fmt.Fprintf(&b, `<rect class="frame" x="%g" y="%g" width="%g" height="%g"/></svg>`, padL, padT, svgW-padL-padR, svgH-padT-padB)
	return template.HTML(b.String())
}

// chartAxes chooses a chart's axes from its type and data.
func chartAxes(c *htmlChart) (x, y axis) {
	ymin, ymax := math.Inf(1), 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if p[1] > 0 {
				ymin = min(ymin, p[1])
			}
			ymax = max(ymax, p[1])
		}
	}
	if math.IsInf(ymin, 1) {
		ymin = ymax
	}
	switch c.Type {
	case chartDist:
		x = axis{lo: c.XMin, hi: c.XMax, log: true}
		for v := c.XMin; v <= c.XMax*1.0001; v *= 10 {
			if v == 20 { // 2 → 10: decades from 90 %
				v = 10
			}
			x.ticks = append(x.ticks, tick{v, percentileOf(v)})
		}
		return x, linearAxis(0, ymax, true, shortSeconds)
	case chartLines:
		x = linearAxis(c.XMin, c.XMax, false, plainNumber)
		x.lo, x.hi = c.XMin, c.XMax
		if c.YUnit == "s" {
			return x, logAxis(ymin, ymax, shortSeconds)
		}
		return x, linearAxis(0, ymax, true, plainNumber)
	}
	x = linearAxis(c.XMin, c.XMax, false, plainNumber)
	x.lo, x.hi = c.XMin, c.XMax
	return x, linearAxis(0, ymax, true, plainNumber)
}

// drawSpans marks the steps' boundaries on a time axis, dashed per
// file: in the overview numbered (file 0's), in a step's charts with the
// step's own span shaded.
func drawSpans(b *strings.Builder, step string, files []htmlFile, x *axis) {
	b.WriteString(`<g class="spans">`)
	for fi, f := range files {
		dash := []string{"3 3", "1 3", "6 2"}[fi%3]
		for i, sp := range f.Spans {
			lo, hi := max(sp.StartS, x.lo), min(sp.EndS, x.hi)
			if lo > hi {
				continue
			}
			switch {
			case step == "" && fi == 0:
				fmt.Fprintf(b, `<text class="sn" x="%.1f" y="%g" text-anchor="middle">%d</text>`, (x.pos(lo)+x.pos(hi))/2, padT+10, i+1)
			case sp.Step == step:
				fmt.Fprintf(b, `<rect class="span" x="%.1f" y="%g" width="%.1f" height="%g"/>`, x.pos(lo), padT, x.pos(hi)-x.pos(lo), svgH-padT-padB)
				for _, v := range sp.Stages { // where each stage of the step's load shape ends
					if v >= x.lo && v <= x.hi {
						p := x.pos(v)
						fmt.Fprintf(b, `<line class="stage" x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke-dasharray="1 2"/>`, p, p, padT, svgH-padB)
					}
				}
			}
			for _, v := range []float64{sp.StartS, sp.EndS} {
				if v >= x.lo && v <= x.hi {
					p := x.pos(v)
					fmt.Fprintf(b, `<line class="bound" x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke-dasharray="%s"/>`, p, p, padT, svgH-padB, dash)
				}
			}
		}
	}
	b.WriteString(`</g>`)
}

// drawBars draws each file's requests per interval side by side, errors
// hatched on top.
func drawBars(b *strings.Builder, c *htmlChart, x, y *axis) {
	groups := len(c.Series) / 2
	for i, s := range c.Series {
		st := styleOf(c, i)
		g := i / 2
		fill := st.colour
		if s.Metric == "errors" {
			fill = "url(#" + hatchID(c.ID, i) + ")"
			b.WriteString(hatch(hatchID(c.ID, i), st.colour))
		}
		fmt.Fprintf(b, `<g class="series" data-metric="%s">`, s.Metric)
		under := c.Series[g*2].Points // errors sit on top of the requests' bar
		for j, p := range s.Points {
			if p[1] <= 0 {
				continue
			}
			slot := s.WidthS / float64(groups)
			x0, x1 := x.pos(p[0]+float64(g)*slot), x.pos(p[0]+float64(g+1)*slot)
			x0, x1 = x0+0.1*(x1-x0), x1-0.1*(x1-x0)
			top, bottom := y.pos(p[1]), y.pos(0)
			if s.Metric == "errors" {
				top, bottom = y.pos(under[j][1]), y.pos(under[j][1]-p[1])
			}
			fmt.Fprintf(b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s"/>`,
				x0, top, max(x1-x0, 0.5), bottom-top, fill, st.colour)
		}
		b.WriteString(`</g>`)
	}
}

func hatchID(chart string, i int) string { return "h-" + chart + "-" + strconv.Itoa(i) }

// hatch defines a diagonal hatch pattern in colour.
func hatch(id, colour string) string {
	return fmt.Sprintf(`<defs><pattern id="%s" patternUnits="userSpaceOnUse" width="5" height="5"><rect width="5" height="5" fill="#fff"/><path d="M0 5L5 0M-1 1L1 -1M4 6L6 4" stroke="%s" stroke-width="1.5"/></pattern></defs>`, id, colour)
}

// drawSteps draws timeline series as steps: a value holds over its
// interval; a gap (an interval without a value) breaks the line.
func drawSteps(b *strings.Builder, c *htmlChart, x, y *axis) {
	for i, s := range c.Series {
		st := styleOf(c, i)
		var d strings.Builder
		for j, p := range s.Points {
			if j > 0 && math.Abs(s.Points[j-1][0]+s.WidthS-p[0]) < s.WidthS*1e-6 {
				fmt.Fprintf(&d, "V%.1f", y.pos(p[1]))
			} else {
				fmt.Fprintf(&d, "M%.1f %.1f", x.pos(p[0]), y.pos(p[1]))
			}
			fmt.Fprintf(&d, "H%.1f", x.pos(p[0]+s.WidthS))
		}
		fmt.Fprintf(b, `<g class="series" data-metric="%s">%s`, s.Metric, path(d.String(), st))
		every := max(1, len(s.Points)/30)
		for j := 0; j < len(s.Points); j += every {
			p := s.Points[j]
			b.WriteString(marker(st.file, x.pos(p[0]+s.WidthS/2), y.pos(p[1]), st.colour))
		}
		b.WriteString(`</g>`)
	}
}

// drawDist draws percentile distributions, with markers at 50 %, 90 %,
// 99 % and so on.
func drawDist(b *strings.Builder, c *htmlChart, x, y *axis) {
	for i, s := range c.Series {
		st := styleOf(c, i)
		var d strings.Builder
		for j, p := range s.Points {
			fmt.Fprintf(&d, "%s%.1f %.1f", map[bool]string{true: "M", false: "L"}[j == 0], x.pos(p[0]), y.pos(p[1]))
		}
		fmt.Fprintf(b, `<g class="series" data-metric="%s">%s`, s.Metric, path(d.String(), st))
		for _, t := range x.ticks {
			for _, p := range s.Points {
				if p[0] == t.v {
					b.WriteString(marker(st.file, x.pos(p[0]), y.pos(p[1]), st.colour))
				}
			}
		}
		b.WriteString(`</g>`)
	}
}

func path(d string, st seriesStyle) string {
	dash := ""
	if st.dash != "" {
		dash = ` stroke-dasharray="` + st.dash + `"`
	}
	return fmt.Sprintf(`<path class="line" d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`, d, st.colour, dash)
}

// swatch draws series i's legend key: a bar, hatched for errors, or a
// line with its dash and marker.
func swatch(c *htmlChart, i int) template.HTML {
	st := styleOf(c, i)
	var b strings.Builder
	b.WriteString(`<svg class="key" viewBox="0 0 30 12" aria-hidden="true">`)
	switch {
	case c.Type == chartBars && c.Series[i].Metric == "errors":
		id := hatchID(c.ID, i) + "-key"
		fmt.Fprintf(&b, `%s<rect x="1" y="1" width="28" height="10" fill="url(#%s)" stroke="%s"/>`, hatch(id, st.colour), id, st.colour)
	case c.Type == chartBars:
		fmt.Fprintf(&b, `<rect x="1" y="1" width="28" height="10" fill="%s"/>`, st.colour)
	default:
		b.WriteString(path("M1 6H29", st))
		b.WriteString(marker(st.file, 15, 6, st.colour))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
