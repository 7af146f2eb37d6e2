package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// namedReport is a decoded report and the label that names it: where it
// came from, or its name in legends.
type namedReport struct {
	label string
	r     *Report
}

// fileLabels names reports by their files' base names, or by the paths as
// given when two base names are the same.
func fileLabels(paths []string) []string {
	labels := make([]string, len(paths))
	seen := map[string]bool{}
	for i, p := range paths {
		labels[i] = filepath.Base(p)
		if seen[labels[i]] {
			return slices.Clone(paths)
		}
		seen[labels[i]] = true
	}
	return labels
}

// htmlData is what the HTML report's charts draw, embedded in the page as
// JSON (<script type="application/json" id="teckenrun-data">) so that
// tests, and readers with other tools, get the numbers rather than the
// drawing.
type htmlData struct {
	// Files are the reports, in the order given; series name them by index.
	Files []htmlFile `json:"files"`
	// Overview is the achieved rate of every request step over the run.
	Overview htmlChart `json:"overview"`
	// Steps are the steps of all files by name, in the order they ran.
	Steps []htmlStep `json:"steps"`
}

// htmlFile is one report's run and its steps' spans on the time axis.
type htmlFile struct {
	Label     string  `json:"label"`
	Plan      string  `json:"plan"`
	StartedAt string  `json:"started_at"`
	DurationS float64 `json:"duration_s"`
	// Spans place each step on the time axis, in seconds since the run
	// started. A report has only the steps' durations: the spans are laid
	// end to end back from the run's end (what ran before the first step,
	// such as starting the embedded emulator, comes before them), or from
	// its start when the durations add up to more than the run's.
	Spans []htmlSpan `json:"spans"`
}

// htmlSpan is a step's place on the time axis.
type htmlSpan struct {
	Step   string  `json:"step"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// Stages are where the step's stages end, from its first request
	// (seconds since the run started); [] for a step without stages.
	Stages []float64 `json:"stages"`
}

// htmlStep is a step's charts; a step that made no requests has none.
type htmlStep struct {
	Name   string      `json:"name"`
	Kind   string      `json:"kind"`
	Charts []htmlChart `json:"charts"`
}

// Chart types.
const (
	chartBars  = "bars"         // per interval: requests, errors stacked on top
	chartLines = "lines"        // per interval, as steps
	chartDist  = "distribution" // percentile distribution, x = 1/(1-q)
)

// htmlChart is one chart: its series, and what its axes mean.
type htmlChart struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Title string `json:"title"`
	// XUnit and YUnit are "s" (seconds), "/s", "1/(1-q)" or "" (a count).
	XUnit string `json:"x_unit"`
	YUnit string `json:"y_unit"`
	// XMin and XMax bound the x axis.
	XMin   float64      `json:"x_min"`
	XMax   float64      `json:"x_max"`
	Series []htmlSeries `json:"series"`
	// Note says what the chart shows and what it cannot.
	Note string `json:"note"`
}

// htmlSeries is one line, or one set of bars, of a chart.
type htmlSeries struct {
	// Name is the legend's text: the file's label, the step's name when
	// the chart shows several steps, and the metric.
	Name string `json:"name"`
	// File is the index of the report in files.
	File   int    `json:"file"`
	Metric string `json:"metric"`
	// WidthS is the interval of a timeline series: each point covers
	// [x, x+width_s). 0 for a distribution.
	WidthS float64 `json:"width_s"`
	// Points are [x, y]: for a timeline, the interval's start in seconds
	// since the run started and its value; for a distribution, 1/(1-q)
	// and the value at quantile q in seconds.
	Points [][2]float64 `json:"points"`
}

// distXs are the x positions, 1/(1-q), of the percentile distribution:
// 20 a decade from 50 % (x=2) to 99.999 % (x=100000), and the reports'
// percentiles exactly: 50, 90, 95, 99, 99.9 %.
var distXs = func() []float64 {
	xs := []float64{2, 20}
	for i := 7; i <= 100; i++ { // 10^(i/20): 10^(7/20) ≈ 2.24
		xs = append(xs, math.Pow(10, float64(i)/20))
	}
	slices.Sort(xs)
	return xs
}()

// stepSpans lays a report's steps end to end back from its end, or from
// its start when their durations add up to more than the run's (a report
// written by hand). Times are rounded to the microsecond.
func stepSpans(r *Report) []htmlSpan {
	spans := make([]htmlSpan, len(r.Steps))
	total := 0.0
	for _, s := range r.Steps {
		total += s.DurationS
	}
	start := max(r.EndedAt.Sub(r.StartedAt).Seconds()-total, 0)
	for i, s := range r.Steps {
		spans[i] = htmlSpan{Step: s.Name, StartS: roundMicro(start), EndS: roundMicro(start + s.DurationS), Stages: []float64{}}
		start += s.DurationS
		if m := requestSummary(&r.Steps[i]); m != nil && m.FirstSentAt != nil {
			at := m.FirstSentAt.Sub(r.StartedAt).Seconds()
			for _, st := range m.Stages {
				at += st.DurationS
				spans[i].Stages = append(spans[i].Stages, roundMicro(at))
			}
		}
	}
	return spans
}

func roundMicro(s float64) float64 { return math.Round(s*1e6) / 1e6 }

// requestSummary returns a step's request metrics, nil for steps that
// make no requests.
func requestSummary(s *StepReport) *metrics.Summary {
	if rr, ok := s.result.(requestResult); ok && s.Ran {
		return rr.requestMetrics()
	}
	return nil
}

// buildHTMLData gathers what the charts of reports draw.
func buildHTMLData(reports []namedReport) (*htmlData, error) {
	d := &htmlData{Steps: []htmlStep{}}
	for _, nr := range reports {
		d.Files = append(d.Files, htmlFile{Label: nr.label, Plan: nr.r.Plan, StartedAt: nr.r.StartedAt.Format("2006-01-02T15:04:05.999Z07:00"),
			DurationS: nr.r.DurationS, Spans: stepSpans(nr.r)})
	}
	d.Overview = htmlChart{ID: "overview", Type: chartLines, Title: "Achieved rate of every request step over the run",
		XUnit: "s", YUnit: "/s", Series: []htmlSeries{},
		Note: "Requests done per interval divided by the interval, per step; the grey lines are the step boundaries (laid end to end from the steps' durations)."}
	for _, name := range stepNames(reports) {
		st := htmlStep{Name: name, Charts: []htmlChart{}}
		id := "s" + strconv.Itoa(len(d.Steps))
		charts := []htmlChart{
			{ID: id + "-requests", Type: chartBars, Title: "Requests per interval", XUnit: "s",
				Note: "Requests done per interval; errors (requests with no HTTP answer) are the hatched top of each bar. The timeline does not split answers by status: the table below has the statuses over the whole step."},
			{ID: id + "-classes", Type: chartLines, Title: "Answers per interval by status class (stacked)", XUnit: "s",
				Note: "Stacked: each line adds its class to the ones below it, 2xx first and requests without an answer last, so the top line is every request done in the interval."},
			{ID: id + "-rate", Type: chartLines, Title: "Achieved rate", XUnit: "s", YUnit: "/s",
				Note: "Requests done per interval divided by the interval."},
			{ID: id + "-latency", Type: chartLines, Title: "Latency over time (response p50, p99, max; service and lag p99 with a rate)", XUnit: "s", YUnit: "s",
				Note: "Timeline intervals carry the response time only; without a rate it is the service time."},
			{ID: id + "-distribution", Type: chartDist, Title: "Latency percentile distribution", XUnit: "1/(1-q)", YUnit: "s",
				Note: "The HdrHistogram percentile distribution from 50 % to 99.999 %, on a log axis of 1/(1-q)."},
		}
		xmin, xmax := math.Inf(1), math.Inf(-1)
		for fi, nr := range reports {
			i := slices.IndexFunc(nr.r.Steps, func(s StepReport) bool { return s.Name == name })
			if i < 0 {
				continue
			}
			s := &nr.r.Steps[i]
			st.Kind = s.Kind
			span := d.Files[fi].Spans[i]
			xmin, xmax = min(xmin, span.StartS), max(xmax, span.EndS)
			m := requestSummary(s)
			if m == nil || m.Requests == 0 {
				continue
			}
			if m.ScheduleLag != nil {
				charts[3].Note = "Response time runs from each request's slot in the schedule; the service time (from the actual send) and the schedule lag are drawn at their p99; the distribution below has them whole."
			}
			series, err := stepSeries(nr, m)
			if err != nil {
				return nil, fmt.Errorf("%s: step %q: %w", nr.label, name, err)
			}
			for c := range charts {
				for _, ser := range series[charts[c].ID[len(id)+1:]] {
					ser.File = fi
					ser.Name = nr.label + ": " + ser.Metric
					charts[c].Series = append(charts[c].Series, ser)
					if ser.WidthS > 0 && len(ser.Points) > 0 {
						xmin, xmax = min(xmin, ser.Points[0][0]), max(xmax, ser.Points[len(ser.Points)-1][0]+ser.WidthS)
					}
				}
			}
			rate := series["rate"][0]
			rate.File, rate.Name = fi, nr.label+": "+name
			d.Overview.Series = append(d.Overview.Series, rate)
		}
		if len(charts[0].Series) > 0 {
			for c := range charts {
				charts[c].XMin, charts[c].XMax = xmin, xmax
				if charts[c].Type == chartDist {
					charts[c].XMin, charts[c].XMax = distXs[0], distXs[len(distXs)-1]
				}
			}
			st.Charts = charts
		}
		d.Steps = append(d.Steps, st)
	}
	// The overview spans the runs and every interval of their steps.
	for _, f := range d.Files {
		d.Overview.XMax = max(d.Overview.XMax, f.DurationS)
	}
	for _, s := range d.Overview.Series {
		d.Overview.XMin = min(d.Overview.XMin, s.Points[0][0])
		d.Overview.XMax = max(d.Overview.XMax, s.Points[len(s.Points)-1][0]+s.WidthS)
	}
	return d, nil
}

// stepNames lists the steps of all reports by name: the first report's in
// order, then those only later reports have.
func stepNames(reports []namedReport) []string {
	var names []string
	for _, nr := range reports {
		for _, s := range nr.r.Steps {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	return names
}

// stepSeries returns a request step's series by chart: requests, rate,
// latency and distribution. m has requests.
func stepSeries(nr namedReport, m *metrics.Summary) (map[string][]htmlSeries, error) {
	tl := m.Timeline
	if tl.StartedAt == nil || len(tl.Points) == 0 || tl.IntervalS <= 0 {
		return nil, fmt.Errorf("metrics.timeline: no points for %d requests", m.Requests)
	}
	origin := tl.StartedAt.Sub(nr.r.StartedAt).Seconds()
	w := tl.IntervalS
	series := func(metric string) htmlSeries {
		return htmlSeries{Metric: metric, WidthS: w, Points: [][2]float64{}}
	}
	reqs, errs, rate := series("requests"), series("errors"), series("rate")
	classes := []htmlSeries{series("2xx"), series("+3xx"), series("+4xx"), series("+5xx"), series("+no answer")}
	p50, p99, mx := series("p50"), series("p99"), series("max")
	svc, lag := series("service p99"), series("lag p99")
	// The step covers the first and last intervals only in part: their
	// rate is over the part it covers.
	from, to := math.Inf(-1), math.Inf(1)
	if m.FirstSentAt != nil && m.LastDoneAt != nil {
		from, to = m.FirstSentAt.Sub(*tl.StartedAt).Seconds(), m.LastDoneAt.Sub(*tl.StartedAt).Seconds()
	}
	for _, p := range tl.Points {
		x := origin + p.TS
		reqs.Points = append(reqs.Points, [2]float64{x, float64(p.Requests)})
		errs.Points = append(errs.Points, [2]float64{x, float64(p.Errors)})
		covered := min(p.TS+w, to) - max(p.TS, from)
		if covered <= 0 || covered > w {
			covered = w
		}
		rate.Points = append(rate.Points, [2]float64{x, float64(p.Requests) / covered})
		c := p.ByClass
		stack := 0.0
		for k, n := range []int64{c.S1xx + c.S2xx, c.S3xx, c.S4xx, c.S5xx, p.Errors} {
			stack += float64(n)
			classes[k].Points = append(classes[k].Points, [2]float64{x, stack})
		}
		for _, v := range []struct {
			s *htmlSeries
			y *float64
		}{{&p50, p.P50S}, {&p99, p.P99S}, {&mx, p.MaxS}} {
			if v.y != nil {
				v.s.Points = append(v.s.Points, [2]float64{x, *v.y})
			}
		}
		if p.Service != nil {
			svc.Points = append(svc.Points, [2]float64{x, p.Service.P99S})
			lag.Points = append(lag.Points, [2]float64{x, p.Lag.P99S})
		}
	}
	full, err := metrics.FromSummary(*m)
	if err != nil {
		return nil, fmt.Errorf("metrics.%w", err)
	}
	dists := []string{metrics.ResponseTime}
	if m.ScheduleLag != nil { // else service time is the response time
		dists = append(dists, metrics.ServiceTime, metrics.ScheduleLag)
	}
	var dist []htmlSeries
	for _, which := range dists {
		s := htmlSeries{Metric: which, Points: [][2]float64{}}
		for _, x := range distXs {
			y, ok := full.Quantile(which, 1-1/x)
			if !ok {
				break
			}
			s.Points = append(s.Points, [2]float64{x, y})
		}
		dist = append(dist, s)
	}
	latency := []htmlSeries{p50, p99, mx}
	if m.ScheduleLag != nil && len(svc.Points) > 0 { // a rate-driven step: service time and lag too
		latency = append(latency, svc, lag)
	}
	rates := []htmlSeries{rate}
	if m.TargetRatePerS != nil { // the schedule's (mean) target, across the step
		target := series("target")
		first, last := origin+tl.Points[0].TS, origin+tl.Points[len(tl.Points)-1].TS
		target.Points = [][2]float64{{first, *m.TargetRatePerS}, {last, *m.TargetRatePerS}}
		rates = append(rates, target)
	}
	return map[string][]htmlSeries{
		"requests":     {reqs, errs},
		"classes":      classes,
		"rate":         rates,
		"latency":      latency,
		"distribution": dist,
	}, nil
}

//go:embed report_html.tmpl
var htmlTemplateText string

var htmlTemplate = template.Must(template.New("report").Parse(htmlTemplateText))

// htmlReport writes one self-contained HTML page of reports: the run, its
// thresholds and baseline, and per request step the charts (SVG, drawn
// here: the page loads nothing and runs no script) with their numbers in
// tables, the per-status table and the kind's own tables. Several reports
// overlay on the same charts, named by their labels.
func htmlReport(w io.Writer, reports []namedReport) error {
	d, err := buildHTMLData(reports)
	if err != nil {
		return err
	}
	data, err := json.Marshal(d) // escapes <, > and & for the script element
	if err != nil {
		return err
	}
	v := buildHTMLView(reports, d)
	v.Data = template.JS(data)
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}
