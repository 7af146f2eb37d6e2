package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"github.com/mozilla-services/teckenrun/internal/metrics"
)

var htmlDataRE = regexp.MustCompile(`(?s)<script type="application/json" id="teckenrun-data">(.*?)</script>`)

// pageData returns the chart data a page embeds, decoded, and as JSON.
func pageData(t *testing.T, page []byte) (*htmlData, []byte) {
	t.Helper()
	m := htmlDataRE.FindSubmatch(page)
	if m == nil {
		t.Fatal("the page has no teckenrun-data script element")
	}
	var d htmlData
	if err := json.Unmarshal(m[1], &d); err != nil {
		t.Fatalf("teckenrun-data is not JSON: %v", err)
	}
	return &d, m[1]
}

// chart returns the chart of step whose ID ends in suffix.
func chart(t *testing.T, d *htmlData, step, suffix string) *htmlChart {
	t.Helper()
	for i := range d.Steps {
		for j := range d.Steps[i].Charts {
			if c := &d.Steps[i].Charts[j]; d.Steps[i].Name == step && strings.HasSuffix(c.ID, "-"+suffix) {
				return c
			}
		}
	}
	t.Fatalf("no %s chart for step %s", suffix, step)
	return nil
}

// TestHTMLReportData: the numbers the charts draw are the report's (golden
// data in testdata/report_html_data.json, -update to rewrite it).
func TestHTMLReportData(t *testing.T) {
	stdout, _, err := runArgs(t, terminal{}, "report", "-format", "html", "testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	d, raw := pageData(t, []byte(stdout))
	var got bytes.Buffer
	if err := json.Indent(&got, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	const golden = "testdata/report_html_data.json"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		os.WriteFile(golden+".got", got.Bytes(), 0o644)
		t.Errorf("%s differs; see %s.got (go test -run %s -update to accept)", golden, golden, t.Name())
	}

	r, err := loadReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) != 1 || d.Files[0].Label != "report.json" || len(d.Files[0].Spans) != len(r.Steps) {
		t.Fatalf("files %+v", d.Files)
	}
	spans := d.Files[0].Spans
	// The golden report's steps take longer than its run: they start at 0.
	if spans[0].StartS != 0 {
		t.Errorf("the first step starts at %v s", spans[0].StartS)
	}
	requestSteps := 0
	for i, s := range r.Steps {
		if sp := spans[i]; sp.Step != s.Name || math.Abs(sp.EndS-sp.StartS-s.DurationS) > 1e-9 || (i > 0 && sp.StartS != spans[i-1].EndS) {
			t.Errorf("span %+v of step %s (%v s)", sp, s.Name, s.DurationS)
		}
		m := requestSummary(&r.Steps[i])
		if m == nil {
			if d.Steps[i].Name != s.Name || len(d.Steps[i].Charts) != 0 {
				t.Errorf("step %s makes no requests, has charts %+v", s.Name, d.Steps[i])
			}
			continue
		}
		requestSteps++
		t.Run(s.Name, func(t *testing.T) { checkStepData(t, d, r, s.Name, m) })
	}
	if len(d.Overview.Series) != requestSteps {
		t.Errorf("the overview has %d series, want one per request step (%d)", len(d.Overview.Series), requestSteps)
	}
}

// checkStepData checks a step's charts against its metrics m.
func checkStepData(t *testing.T, d *htmlData, r *Report, step string, m *metrics.Summary) {
	tl := m.Timeline
	origin := tl.StartedAt.Sub(r.StartedAt).Seconds()
	bars, rate, lat := chart(t, d, step, "requests"), chart(t, d, step, "rate"), chart(t, d, step, "latency")
	wantRates := 1
	if m.TargetRatePerS != nil {
		wantRates = 2 // and the target
		if tg := rate.Series[1]; tg.Metric != "target" || tg.Points[0][1] != *m.TargetRatePerS {
			t.Errorf("target series %+v, want %v", tg, *m.TargetRatePerS)
		}
	}
	wantLat := 3
	if m.ScheduleLag != nil {
		wantLat = 5 // and the service time's and the lag's p99
	}
	if len(bars.Series) != 2 || len(rate.Series) != wantRates || len(lat.Series) != wantLat {
		t.Fatalf("series: %d bars, %d rate, %d latency", len(bars.Series), len(rate.Series), len(lat.Series))
	}
	var total int64
	for i, p := range tl.Points {
		x := origin + p.TS
		total += p.Requests
		for _, c := range []struct {
			name string
			got  [2]float64
			want float64
		}{
			{"requests", bars.Series[0].Points[i], float64(p.Requests)},
			{"errors", bars.Series[1].Points[i], float64(p.Errors)},
			{"rate", rate.Series[0].Points[i], float64(p.Requests) / coveredS(m, p.TS)},
			{"p50", lat.Series[0].Points[i], *p.P50S},
			{"p99", lat.Series[1].Points[i], *p.P99S},
			{"max", lat.Series[2].Points[i], *p.MaxS},
		} {
			if c.got != [2]float64{x, c.want} {
				t.Errorf("%s point %d: %v, want [%v %v]", c.name, i, c.got, x, c.want)
			}
		}
		if wantLat == 5 && (lat.Series[3].Points[i] != [2]float64{x, p.Service.P99S} || lat.Series[4].Points[i] != [2]float64{x, p.Lag.P99S}) {
			t.Errorf("point %d: service %v, lag %v, want p99s %v and %v", i, lat.Series[3].Points[i], lat.Series[4].Points[i], p.Service.P99S, p.Lag.P99S)
		}
	}
	if total != m.Requests || bars.Series[0].WidthS != tl.IntervalS {
		t.Errorf("the bars hold %d requests of %d, width %v s", total, m.Requests, bars.Series[0].WidthS)
	}
	dist := chart(t, d, step, "distribution")
	rt := dist.Series[0]
	if rt.Metric != metrics.ResponseTime || len(rt.Points) != len(distXs) {
		t.Fatalf("distribution %s with %d points", rt.Metric, len(rt.Points))
	}
	at := func(x float64) float64 {
		for _, p := range rt.Points {
			if p[0] == x {
				return p[1]
			}
		}
		t.Fatalf("the distribution has no point at x=%v", x)
		return 0
	}
	for _, c := range []struct {
		x, want float64
	}{{2, m.ResponseTime.P50S}, {10, m.ResponseTime.P90S}, {20, m.ResponseTime.P95S}, {100, m.ResponseTime.P99S}, {1000, m.ResponseTime.P999S}} {
		if got := at(c.x); got != c.want {
			t.Errorf("percentile %s: %v s, the report says %v s", percentileOf(c.x), got, c.want)
		}
	}
	for i, p := range rt.Points {
		if p[1] > m.ResponseTime.MaxS || (i > 0 && p[1] < rt.Points[i-1][1]) {
			t.Errorf("distribution point %v: above max %v or below the one before", p, m.ResponseTime.MaxS)
		}
	}
}

// TestHTMLReportOverlay: several files overlay on the same charts, named by
// file in the legend; the CLI refuses what it cannot draw.
func TestHTMLReportOverlay(t *testing.T) {
	dir := t.TempDir()
	golden, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	os.WriteFile(a, golden, 0o644)
	os.WriteFile(b, golden, 0o644)
	stdout, _, err := runArgs(t, terminal{}, "report", "-format", "html", a, b)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pageData(t, []byte(stdout))
	if len(d.Files) != 2 || d.Files[0].Label != "old.json" || d.Files[1].Label != "new.json" {
		t.Fatalf("files %+v", d.Files)
	}
	lat := chart(t, d, "download", "latency")
	var names []string
	for _, s := range lat.Series {
		names = append(names, s.Name)
	}
	if want := "old.json: p50,old.json: p99,old.json: max,new.json: p50,new.json: p99,new.json: max"; strings.Join(names, ",") != want {
		t.Errorf("legend %q, want %q", strings.Join(names, ","), want)
	}
	if lat.Series[3].File != 1 || len(d.Overview.Series) != 8 { // 4 request steps in each file
		t.Errorf("file of the second file's series %d, overview series %d", lat.Series[3].File, len(d.Overview.Series))
	}
	for _, s := range []string{`<span>old.json: p50</span>`, `<span>new.json: max</span>`} {
		if !strings.Contains(stdout, s) {
			t.Errorf("the page has no legend entry %s", s)
		}
	}
	// Files of the same name are named by their paths.
	if got := fileLabels([]string{"a/run.json", "b/run.json"}); strings.Join(got, " ") != "a/run.json b/run.json" {
		t.Errorf("labels %v", got)
	}

	for _, args := range [][]string{
		{"report", "-format", "html"},
		{"report", "-format", "json", a, b},
		{"report", "-format", "html", a, filepath.Join(dir, "missing.json")},
	} {
		if _, _, err := runArgs(t, terminal{}, args...); exitCode(err, &strings.Builder{}) != exitUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestHTMLAfterFailedRun: -html writes the page also when a step failed,
// with what the step did.
func TestHTMLAfterFailedRun(t *testing.T) {
	_, _, stacks := symbolStore(t, emulator.Options{}, 3)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": "Frame must be two integers"}`, http.StatusBadRequest)
	}))
	defer ts.Close()
	page := filepath.Join(t.TempDir(), "run.html")
	r, _, err := runPlanAs[Report](t, context.Background(), symPlan(ts.URL, stacks, ""), nil, nil, "-html", page)
	if exitCode(err, &strings.Builder{}) != exitFailed || r == nil {
		t.Fatalf("err %v, want a failed step", err)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pageData(t, b)
	bars := chart(t, d, "symbolicate", "requests")
	var n float64
	for _, p := range bars.Series[0].Points {
		n += p[1]
	}
	if n != 3 || !strings.Contains(string(b), "FAILED") || !strings.Contains(string(b), "Frame must be two integers") {
		t.Errorf("the page of the failed run: %v requests drawn, want 3, and the failure", n)
	}
	if info, err := os.Stat(page); err != nil || info.Mode().Perm()&0o644 != 0o644 {
		t.Errorf("page mode %v: %v", info.Mode(), err)
	}
	// An -html that cannot be written is refused before the run.
	_, _, err = runArgs(t, terminal{}, "-html", t.TempDir(), "plans/demo.yaml")
	if exitCode(err, &strings.Builder{}) != exitUsage || !strings.Contains(err.Error(), "-html") {
		t.Errorf("-html DIR: %v", err)
	}
}

// TestHTMLRateStepDistributions: a step with a rate draws its service time
// and schedule lag beside its response time.
func TestHTMLRateStepDistributions(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{})
	page := filepath.Join(t.TempDir(), "run.html")
	r, _, err := runPlanAs[Report](t, context.Background(), downloadPlan(url, "      max_requests: 10\n      concurrency: 1\n      rate: 1000\n"), downloadFiles, nil, "-html", page)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pageData(t, b)
	m := requestSummary(&r.Steps[0])
	dist := chart(t, d, "download", "distribution")
	if len(dist.Series) != 3 || m.ScheduleLag == nil {
		t.Fatalf("%d distributions, schedule lag %v", len(dist.Series), m.ScheduleLag)
	}
	for i, c := range []struct {
		metric string
		want   *metrics.DistSummary
	}{{metrics.ResponseTime, m.ResponseTime}, {metrics.ServiceTime, m.ServiceTime}, {metrics.ScheduleLag, m.ScheduleLag}} {
		s := dist.Series[i]
		if s.Metric != c.metric || s.Points[0] != [2]float64{2, c.want.P50S} {
			t.Errorf("series %d: %s starting at %v, want %s at [2 %v]", i, s.Metric, s.Points[0], c.metric, c.want.P50S)
		}
	}
}

// TestHTMLAfterInterruptedRun: -html writes the page of what finished when
// Ctrl-C stops the run.
func TestHTMLAfterInterruptedRun(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel(interrupted{os.Interrupt}) // Ctrl-C while the first download is in flight
		http.NotFound(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	for name, content := range downloadFiles {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	plan, page := filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "run.html")
	os.WriteFile(plan, []byte(downloadPlan(ts.URL, "      concurrency: 1\n")), 0o644)
	err := run(ctx, []string{"-format", "json", "-grace", "1s", "-html", page, plan}, nil, &bytes.Buffer{}, &bytes.Buffer{}, terminal{})
	if exitCode(err, &strings.Builder{}) != exitInterrupted {
		t.Fatalf("err %v, want an interrupt", err)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "INTERRUPTED (partial results)") || !strings.Contains(string(b), "<td>interrupted</td>") {
		t.Error("the page does not say the run was interrupted")
	}
	d, _ := pageData(t, b)
	if bars := chart(t, d, "download", "requests"); len(bars.Series[0].Points) == 0 || bars.Series[0].Points[0][1] < 1 {
		t.Errorf("the request that finished is not drawn: %+v", bars.Series[0])
	}
}

// TestHTMLMarksStages: a step with stages has their ends in its span and
// drawn on its charts' time axis.
func TestHTMLMarksStages(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{})
	page := filepath.Join(t.TempDir(), "run.html")
	_, _, err := runPlanAs[Report](t, t.Context(), downloadPlan(url, "      stages: [{duration: 500ms, rate: 40}, {duration: 500ms, rate: 40}]\n"), downloadFiles, nil, "-html", page)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pageData(t, raw)
	if sp := d.Files[0].Spans[0]; len(sp.Stages) != 2 || math.Abs(sp.Stages[1]-sp.Stages[0]-0.5) > 1e-6 {
		t.Errorf("span %+v, want the ends of two 0.5 s stages", sp)
	}
	if n := strings.Count(string(raw), `class="stage"`); n < 2 {
		t.Errorf("%d stage marks drawn", n)
	}
}

// coveredS is how much of the timeline interval that starts ts seconds
// after its start the step covered, from its first request sent to its
// last answer: all of it but at the edges.
func coveredS(m *metrics.Summary, ts float64) float64 {
	tl := m.Timeline
	start := tl.StartedAt.Add(time.Duration(ts * float64(time.Second)))
	end := start.Add(time.Duration(tl.IntervalS * float64(time.Second)))
	if m.FirstSentAt.After(start) {
		start = *m.FirstSentAt
	}
	if m.LastDoneAt.Before(end) {
		end = *m.LastDoneAt
	}
	if d := end.Sub(start).Seconds(); d > 0 {
		return d
	}
	return tl.IntervalS
}
