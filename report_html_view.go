package main

import (
	"bytes"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// htmlView is what the HTML template shows.
type htmlView struct {
	Title    string
	Run      tableView
	Files    []fileView
	Overview *chartView
	Steps    []stepView
	// Data is the charts' data as JSON (htmlData).
	Data template.JS
}

// fileView is a report's thresholds and baseline comparison.
type fileView struct {
	Label      string
	Thresholds tableView
	Baseline   *tableView
}

// stepView is a step of one or more reports.
type stepView struct {
	Name, Kind string
	Status     tableView
	Charts     []chartView
	Tables     []tableView
	// Texts are the step's tables as the run printed them, by file.
	Texts []textView
}

type textView struct{ Label, Text string }

// chartView is a drawn chart with its legend and its numbers.
type chartView struct {
	ID, Title, Note string
	SVG             template.HTML
	Legend          []legendItem
	Numbers         tableView
}

type legendItem struct {
	Key  template.HTML
	Name string
}

// tableView is a table of text cells; the first column is a row header.
type tableView struct {
	// Text left-aligns every column (else numbers are right-aligned).
	Text    bool
	Caption string
	Head    []string
	Rows    [][]string
}

// buildHTMLView lays out reports and their chart data d for the template.
func buildHTMLView(reports []namedReport, d *htmlData) htmlView {
	v := htmlView{Title: "teckenrun: " + reports[0].r.Plan}
	v.Run = tableView{Text: true, Head: []string{""}}
	rows := [][]string{{"plan"}, {"status"}, {"host"}, {"started"}, {"ended"}, {"duration"}, {"seed"}, {"version"}, {"plan sha256"}}
	for _, nr := range reports {
		r := nr.r
		host := r.Host
		if r.Embedded {
			host += " (embedded emulator)"
		}
		v.Run.Head = append(v.Run.Head, nr.label)
		for i, c := range []string{r.Plan, runStatus(r), host, r.StartedAt.Format(time.RFC3339Nano), r.EndedAt.Format(time.RFC3339Nano),
			seconds(r.DurationS), strconv.FormatUint(r.Seed, 10), r.Version, r.PlanSHA256} {
			rows[i] = append(rows[i], c)
		}
		fv := fileView{Label: nr.label, Thresholds: thresholdsTable(r.Thresholds)}
		fv.Thresholds.Caption += " (" + nr.label + ")"
		if r.Baseline != nil {
			fv.Baseline = baselineTable(r.Baseline)
		}
		v.Files = append(v.Files, fv)
	}
	v.Run.Rows = rows
	if len(d.Overview.Series) > 0 {
		cv := chartOf(&d.Overview, "", d.Files)
		var key []string
		for i, sp := range d.Files[0].Spans {
			key = append(key, strconv.Itoa(i+1)+" "+sp.Step)
		}
		cv.Note += " Steps of " + d.Files[0].Label + ": " + strings.Join(key, ", ") + "."
		v.Overview = &cv
	}
	for si, hs := range d.Steps {
		sv := stepView{Name: hs.Name, Kind: hs.Kind, Status: tableView{Text: true, Head: []string{"file", "status", "duration", "error"}}}
		for c := range hs.Charts {
			sv.Charts = append(sv.Charts, chartOf(&d.Steps[si].Charts[c], hs.Name, d.Files))
		}
		statuses := tableView{Caption: "Requests by HTTP status (response time)",
			Head: []string{"file", "status", "class", "requests", "share", "p50", "p95", "p99", "max"}}
		for _, nr := range reports {
			i := slices.IndexFunc(nr.r.Steps, func(s StepReport) bool { return s.Name == hs.Name })
			if i < 0 {
				sv.Status.Rows = append(sv.Status.Rows, []string{nr.label, "not run", "", ""})
				continue
			}
			s := &nr.r.Steps[i]
			state := s.state()
			errText := ""
			if s.Error != nil {
				errText = *s.Error
			}
			sv.Status.Rows = append(sv.Status.Rows, []string{nr.label, state, seconds(s.DurationS), errText})
			if m := requestSummary(s); m != nil {
				statuses.Rows = append(statuses.Rows, statusRows(nr.label, m)...)
			}
			for _, t := range kindTables(s.result) {
				t.Caption += " (" + nr.label + ")"
				sv.Tables = append(sv.Tables, t)
			}
			var text bytes.Buffer
			if s.result != nil && s.result.writeTable(&text) == nil {
				sv.Texts = append(sv.Texts, textView{Label: nr.label, Text: text.String()})
			}
		}
		if len(statuses.Rows) > 0 {
			sv.Tables = append([]tableView{statuses}, sv.Tables...)
		}
		v.Steps = append(v.Steps, sv)
	}
	return v
}

func runStatus(r *Report) string {
	switch {
	case r.Interrupted:
		return "INTERRUPTED (partial results)"
	case !r.OK:
		return "FAILED"
	}
	return "ok"
}

// chartOf draws c and writes its numbers out as a table.
func chartOf(c *htmlChart, step string, files []htmlFile) chartView {
	cv := chartView{ID: c.ID, Title: c.Title, Note: c.Note, SVG: drawChart(c, step, files)}
	for i := range c.Series {
		cv.Legend = append(cv.Legend, legendItem{Key: swatch(c, i), Name: c.Series[i].Name})
	}
	xHead, xText, yText := "t (s since start)", plainNumber, plainNumber
	if c.Type == chartDist {
		xHead, xText = "percentile", percentileOf
	}
	if c.YUnit == "s" {
		yText = seconds
	}
	cv.Numbers.Head = []string{xHead}
	var xs []float64
	for _, s := range c.Series {
		cv.Numbers.Head = append(cv.Numbers.Head, s.Name)
		for _, p := range s.Points {
			xs = append(xs, p[0])
		}
	}
	slices.Sort(xs)
	for _, x := range slices.Compact(xs) {
		row := []string{xText(x)}
		for _, s := range c.Series {
			cell := ""
			if j := slices.IndexFunc(s.Points, func(p [2]float64) bool { return p[0] == x }); j >= 0 {
				cell = yText(s.Points[j][1])
			}
			row = append(row, cell)
		}
		cv.Numbers.Rows = append(cv.Numbers.Rows, row)
	}
	return cv
}

// statusRows are a step's requests by status, with the requests that got
// no answer as their own row.
func statusRows(label string, m *metrics.Summary) [][]string {
	var rows [][]string
	for _, bs := range m.ByStatus {
		row := []string{label, strconv.Itoa(bs.Status), strconv.Itoa(bs.Status/100) + "xx",
			strconv.FormatInt(bs.Requests, 10), pctString(bs.Requests, m.Requests)}
		if rt := bs.ResponseTime; rt != nil {
			row = append(row, seconds(rt.P50S), seconds(rt.P95S), seconds(rt.P99S), seconds(rt.MaxS))
		} else {
			row = append(row, "", "", "", "")
		}
		rows = append(rows, row)
	}
	if m.Errors > 0 {
		te := m.TransportErrors
		rows = append(rows, []string{label, "none", "no answer: " + strconv.FormatInt(te.Timeout, 10) + " timeout, " +
			strconv.FormatInt(te.Refused, 10) + " refused, " + strconv.FormatInt(te.Reset, 10) + " reset, " +
			strconv.FormatInt(te.Other, 10) + " other", strconv.FormatInt(m.Errors, 10), pctString(m.Errors, m.Requests), "", "", "", ""})
	}
	return rows
}

// thresholdsTable lists the plan's thresholds with their values.
func thresholdsTable(ts []ThresholdResult) tableView {
	t := tableView{Text: true, Caption: "Thresholds", Head: []string{"threshold", "value", "result", "note"}}
	for _, th := range ts {
		result := "not evaluated"
		if th.OK != nil {
			result = map[bool]string{true: "✔ held", false: "✘ FAILED"}[*th.OK]
		}
		t.Rows = append(t.Rows, []string{th.Expr, unitValue(th.Value, th.Unit), result, th.Note})
	}
	return t
}

// baselineTable lists a baseline comparison's rows.
func baselineTable(c *Comparison) *tableView {
	t := &tableView{Caption: "Compared with " + c.Baseline + " (tolerance " + strconv.FormatFloat(c.TolerancePct, 'f', -1, 64) +
		" %): " + strconv.Itoa(c.Regressions) + " regressions",
		Head: []string{"step", "metric", "baseline", "run", "change", "result"}}
	for _, r := range c.Rows {
		change := "n/a"
		if r.ChangePct != nil {
			change = strconv.FormatFloat(*r.ChangePct, 'f', 1, 64) + " %"
		}
		result := "ok"
		if r.Regression {
			result = "✘ REGRESSION"
		}
		t.Rows = append(t.Rows, []string{r.Step, r.Metric, unitValue(r.Old, r.Unit), unitValue(r.New, r.Unit), change, result})
	}
	for _, m := range c.MissingSteps {
		t.Rows = append(t.Rows, []string{m.Step, "", "", "", "", "only in the " + m.In})
	}
	return t
}

// unitValue formats a threshold's or comparison's value in its unit.
func unitValue(v *float64, unit string) string {
	switch {
	case v == nil:
		return "n/a"
	case unit == "s":
		return seconds(*v)
	case unit == "":
		return plainNumber(*v)
	}
	return plainNumber(*v) + " " + unit
}

// kindTables are a step kind's own tables.
func kindTables(res stepResult) []tableView {
	switch r := res.(type) {
	case *DownloadResult:
		facts := tableView{Caption: "Download", Head: []string{"figure", "value"}, Rows: [][]string{
			{"right status", strconv.Itoa(r.Right) + " (" + optPct(r.RightPct) + ")"},
			{"ignored names (Debug-Time: 0)", strconv.Itoa(r.IgnoreHits) + " (" + optPct(r.IgnoreHitsPct) + ")"},
			{"fast lookups (last " + strconv.Itoa(r.FastcacheWindow) + ")", strconv.Itoa(r.FastcacheFast) + " of " + strconv.Itoa(r.FastcacheLookups) + " (" + optPct(r.FastcachePct) + ")"},
			{"CSV rows (junk)", strconv.Itoa(r.Rows) + " (" + strconv.Itoa(r.JunkRows) + ")"},
		}}
		by := tableView{Caption: "Download by status", Head: []string{"status", "count", "right", "Debug-Time median", "Debug-Time mean"}}
		for _, s := range r.ByStatus {
			med, mean := "n/a", "n/a"
			if s.Internal != nil {
				med, mean = seconds(s.Internal.Median), seconds(s.Internal.Mean)
			}
			by.Rows = append(by.Rows, []string{strconv.Itoa(s.Status), strconv.Itoa(s.Count), pctString(int64(s.Right), int64(s.Count)), med, mean})
		}
		return []tableView{facts, by}
	case *SymbolicateResult:
		facts := tableView{Caption: "Symbolication", Head: []string{"figure", "value"}, Rows: [][]string{
			{"jobs", strconv.Itoa(r.Jobs)},
			{"frames", strconv.Itoa(r.Frames)},
			{"symbolicated of known frames", strconv.Itoa(r.SymbolicatedFrames) + " of " + strconv.Itoa(r.KnownFrames) + " (" + optPct(r.SymbolicatedPct) + ")"},
			{"invalid responses", strconv.Itoa(r.InvalidResponses)},
			{"stack files (skipped)", strconv.Itoa(r.Files) + " (" + strconv.Itoa(len(r.SkippedFiles)) + ")"},
			{"debug objects", strconv.Itoa(r.DebugObjects)},
		}}
		debug := tableView{Caption: "Debug statistics", Head: []string{"key", "count", "mean", "median", "min", "max"}}
		for _, k := range slices.Sorted(maps.Keys(r.Debug)) {
			s := r.Debug[k]
			debug.Rows = append(debug.Rows, []string{k, strconv.FormatInt(s.Count, 10), plainNumber(s.Mean), plainNumber(s.Median), s.Min.String(), s.Max.String()})
		}
		errs := tableView{Caption: "Errors by message", Head: []string{"message", "status", "count", "sample files"}}
		for _, e := range r.ErrorsByMessage {
			errs.Rows = append(errs.Rows, []string{e.Message, strconv.Itoa(e.Status), strconv.Itoa(e.Count), strings.Join(e.SampleFiles, ", ")})
		}
		return []tableView{facts, debug, errs}
	case *UploadResult:
		facts := tableView{Caption: "Uploads", Head: []string{"figure", "value"}, Rows: [][]string{
			{"succeeded", strconv.Itoa(r.Succeeded)}, {"failed", strconv.Itoa(r.Failed)}, {"skipped", strconv.Itoa(r.Skipped)},
			{"cancelled", strconv.Itoa(r.Cancelled)}, {"bytes of those that succeeded", strconv.FormatInt(r.BytesTotal, 10)}, {"retries", strconv.Itoa(r.Retries)},
		}}
		ups := tableView{Caption: "Each upload", Head: []string{"file or URL", "bytes", "status", "attempts", "duration", "upload id", "error"}}
		for _, u := range r.Uploads {
			id, errText := "", ""
			if u.UploadID != nil {
				id = strconv.Itoa(*u.UploadID)
			}
			if u.Error != nil {
				errText = *u.Error
			}
			ups.Rows = append(ups.Rows, []string{u.File + u.URL, strconv.FormatInt(u.Bytes, 10), strconv.Itoa(u.Status), strconv.Itoa(u.Attempts), seconds(u.DurationS), id, errText})
		}
		return []tableView{facts, ups}
	}
	return nil
}
