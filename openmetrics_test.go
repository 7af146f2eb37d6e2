package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sampleKey names one sample: its name and labels, as Prometheus writes
// them (labels sorted).
func sampleKey(name string, labels ...string) string {
	m := model.Metric{model.MetricNameLabel: model.LabelValue(name)}
	for i := 0; i+1 < len(labels); i += 2 {
		m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	return m.String()
}

// flatten turns metric families into samples by sampleKey. A label of
// strip with the value strip gives is left out of the key (the
// Pushgateway adds job and instance); with another value it stays.
func flatten(t *testing.T, fams []*dto.MetricFamily, strip map[string]string) map[string]float64 {
	t.Helper()
	out, err := samplesOf(fams, strip)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// samplesOf is flatten without a test, for a server's handler: it returns
// the first problem instead.
func samplesOf(fams []*dto.MetricFamily, strip map[string]string) (map[string]float64, error) {
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, fams...)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range vec {
		for l, v := range strip {
			if s.Metric[model.LabelName(l)] == model.LabelValue(v) {
				delete(s.Metric, model.LabelName(l))
			}
		}
		k := s.Metric.String()
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("sample %s appears twice", k)
		}
		out[k] = float64(s.Value)
	}
	return out, nil
}

// parseOpenMetrics parses text with the OpenMetrics 1.0 parser, which
// refuses anything the format does not allow (a missing # EOF included).
func parseOpenMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	dec := expfmt.NewDecoder(strings.NewReader(text), expfmt.FmtOpenMetrics_1_0_0)
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not OpenMetrics: %v\n%s", err, text)
		}
		fams = append(fams, mf)
	}
	return flatten(t, fams, nil)
}

// parseText parses the Prometheus text format, as the node_exporter
// textfile collector reads its .prom files and as a Pushgateway serves
// /metrics.
func parseText(t *testing.T, r io.Reader, strip map[string]string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	fams := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		fams = append(fams, mf)
	}
	return flatten(t, fams, strip)
}

// expectedSamples reads, from the report itself, the samples that its
// metrics must have, and the keys that must be absent because the
// report's value is null.
func expectedSamples(r *Report) (want map[string]float64, absent []string) {
	want = map[string]float64{}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	plan := []string{"plan", r.Plan}
	want[sampleKey("teckenrun_run_ok", plan...)] = b(r.OK)
	want[sampleKey("teckenrun_run_interrupted", plan...)] = b(r.Interrupted)
	want[sampleKey("teckenrun_run_duration_seconds", plan...)] = r.DurationS
	want[sampleKey("teckenrun_run_start_time_seconds", plan...)] = float64(r.StartedAt.UnixNano()) / 1e9
	want[sampleKey("teckenrun_run_end_time_seconds", plan...)] = float64(r.EndedAt.UnixNano()) / 1e9
	for _, th := range r.Thresholds {
		okKey := sampleKey("teckenrun_threshold_ok", "plan", r.Plan, "threshold", th.Expr)
		if th.OK == nil {
			absent = append(absent, okKey)
		} else {
			want[okKey] = b(*th.OK)
		}
		valueKey := sampleKey("teckenrun_threshold_value", "plan", r.Plan, "threshold", th.Expr, "unit", th.Unit)
		if th.Value == nil {
			absent = append(absent, valueKey)
		} else {
			want[valueKey] = *th.Value
		}
	}
	for _, s := range r.Steps {
		l := []string{"plan", r.Plan, "step", s.Name, "kind", s.Kind}
		key := func(name string, more ...string) string { return sampleKey(name, append(more, l...)...) }
		optional := func(k string, v *float64, scale float64) {
			if v == nil {
				absent = append(absent, k)
			} else {
				want[k] = *v * scale
			}
		}
		want[key("teckenrun_step_ok")] = b(s.OK)
		want[key("teckenrun_step_duration_seconds")] = s.DurationS
		switch res := s.result.(type) {
		case *DownloadResult:
			optional(key("teckenrun_download_right_ratio"), res.RightPct, 0.01)
		case *SymbolicateResult:
			optional(key("teckenrun_symbolicate_symbolicated_ratio"), res.SymbolicatedPct, 0.01)
		case *UploadResult:
			want[key("teckenrun_upload_succeeded_total")] = float64(res.Succeeded)
			want[key("teckenrun_upload_failed_total")] = float64(res.Failed)
			want[key("teckenrun_upload_skipped_total")] = float64(res.Skipped)
		}
		rr, ok := s.result.(requestResult)
		if !ok {
			continue
		}
		m := rr.requestMetrics()
		want[key("teckenrun_requests_total")] = float64(m.Requests)
		want[key("teckenrun_errors_total")] = float64(m.Errors)
		want[key("teckenrun_retries_total")] = float64(m.Retries)
		want[key("teckenrun_cancelled_total")] = float64(m.Cancelled)
		optional(key("teckenrun_requests_per_second"), m.RatePerS, 1)
		for _, st := range m.ByStatus {
			want[key("teckenrun_responses_total", "status", strconv.Itoa(st.Status))] = float64(st.Requests)
		}
		d := m.ResponseTime
		if d == nil {
			absent = append(absent, key("teckenrun_response_time_seconds", "quantile", "0.95"), key("teckenrun_response_time_seconds_count"))
			continue
		}
		for q, v := range map[string]float64{"0.5": d.P50S, "0.9": d.P90S, "0.95": d.P95S, "0.99": d.P99S, "0.999": d.P999S, "1": d.MaxS} {
			want[key("teckenrun_response_time_seconds", "quantile", q)] = v
		}
		want[key("teckenrun_response_time_seconds_count")] = float64(d.Count)
		want[key("teckenrun_response_time_seconds_sum")] = d.SumS
	}
	return want, absent
}

// checkSamples compares parsed samples with the report's values. Times
// of day are compared to the microsecond, everything else exactly.
func checkSamples(t *testing.T, got map[string]float64, r *Report) {
	t.Helper()
	want, absent := expectedSamples(r)
	for k, w := range want {
		g, ok := got[k]
		tolerance := 0.0
		if strings.Contains(k, "_time_seconds{") && !strings.Contains(k, "response_time") {
			tolerance = 1e-3 // the gateway prints 15 significant digits
		}
		if !ok || math.Abs(g-w) > tolerance {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	for _, k := range absent {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v, want it absent (null in the report)", k, v)
		}
	}
}

func TestOpenMetricsGolden(t *testing.T) {
	var got bytes.Buffer
	if err := openMetricsReport(&got, goldenReport()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/report.openmetrics", got.Bytes())
	// teckenrun report prints the same from the saved report.
	stdout, _, err := runArgs(t, terminal{}, "report", "-format", "openmetrics", "testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != got.String() {
		t.Errorf("teckenrun report -format openmetrics testdata/report.json differs from openMetricsReport(goldenReport()):\n%s", stdout)
	}
}

// TestOpenMetricsParsesBack: the golden report's metrics, read by the
// OpenMetrics parser and by the text parser of the node_exporter textfile
// collector, hold the report's values; nulls are left out.
func TestOpenMetricsParsesBack(t *testing.T) {
	r, err := loadReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := openMetricsReport(&out, r); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\n# EOF\n") {
		t.Errorf("no # EOF at the end:\n%s", out.String())
	}
	for name, got := range map[string]map[string]float64{
		"openmetrics": parseOpenMetrics(t, out.String()),
		"text":        parseText(t, bytes.NewReader(out.Bytes()), nil),
	} {
		t.Run(name, func(t *testing.T) {
			checkSamples(t, got, r)
			// Spot checks against the golden numbers themselves.
			dl := []string{"plan", "golden", "step", "download", "kind", "download"}
			for k, v := range map[string]float64{
				sampleKey("teckenrun_requests_total", dl...):                                             5,
				sampleKey("teckenrun_response_time_seconds", append(dl, "quantile", "0.95")...):          0.1,
				sampleKey("teckenrun_responses_total", append(dl, "status", "404")...):                   2,
				sampleKey("teckenrun_download_right_ratio", dl...):                                       0.6,
				sampleKey("teckenrun_threshold_ok", "plan", "golden", "threshold", "upload.failed == 0"): 0,
				sampleKey("teckenrun_run_start_time_seconds", "plan", "golden"):                          1795773600,
			} {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			// "other.requests > 0" was not selected: no ok, no value.
			for k := range got {
				if strings.Contains(k, "other.requests") {
					t.Errorf("a threshold without a value or result has a sample: %s", k)
				}
			}
		})
	}
}

// TestOpenMetricsNullsAndEscaping: a step that did nothing has its counts
// (0) but no latency, rate or shares; a threshold not evaluated has no
// sample; quotes, backslashes and newlines in names survive.
func TestOpenMetricsNullsAndEscaping(t *testing.T) {
	r := &Report{Plan: "odd \"plan\" \\ with\nnewline", StartedAt: t0, EndedAt: t0, Steps: []StepReport{}, Thresholds: []ThresholdResult{
		{Expr: `odd.p95 < 1s`, Unit: "s", Note: "step not selected with -only"},
		{Expr: `odd.requests > 0`, OK: ptr(false), Note: "no value: nothing was measured"},
	}}
	for _, k := range kinds {
		r.Steps = append(r.Steps, StepReport{Kind: k.name, Name: k.name + ` "x"\y`, result: k.result()})
	}
	var out bytes.Buffer
	if err := openMetricsReport(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	got := parseOpenMetrics(t, text)
	checkSamples(t, got, r)
	step := func(kind string) []string { return []string{"plan", r.Plan, "step", kind + ` "x"\y`, "kind", kind} }
	if v, ok := got[sampleKey("teckenrun_requests_total", step("download")...)]; !ok || v != 0 {
		t.Errorf("an empty download has no requests_total 0: %v %v", v, ok)
	}
	for _, name := range []string{"teckenrun_download_right_ratio", "teckenrun_requests_per_second", "teckenrun_download_fastcache_ratio", "teckenrun_download_ignore_hits_ratio"} {
		if _, ok := got[sampleKey(name, step("download")...)]; ok {
			t.Errorf("%s of an empty download is written, want it left out", name)
		}
	}
	if _, ok := got[sampleKey("teckenrun_threshold_ok", "plan", r.Plan, "threshold", "odd.requests > 0")]; !ok {
		t.Error("a failed threshold without a value has no teckenrun_threshold_ok")
	}
	for _, bad := range []string{"NaN", "response_time_seconds{", "symbolicated_ratio{", "odd.p95"} {
		if strings.Contains(text, bad) {
			t.Errorf("output has %q:\n%s", bad, text)
		}
	}
	if !strings.Contains(text, `plan="odd \"plan\" \\ with\nnewline"`) {
		t.Errorf("the plan label is not escaped:\n%s", text)
	}
}

// TestOpenMetricsOfADemoRun: a real run of the demo prints OpenMetrics
// whose values are the run's own report's; teckenrun report prints the
// same bytes from the saved report.
func TestOpenMetricsOfADemoRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run.json")
	stdout, _, err := runArgs(t, terminal{}, "-format", "openmetrics", "-out", out, "plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := loadReport(out)
	if err != nil {
		t.Fatal(err)
	}
	got := parseOpenMetrics(t, stdout)
	checkSamples(t, got, r)
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "teckenrun_responses_total{") {
			n++
		}
	}
	if n < 3 {
		t.Errorf("the demo's metrics have %d per-status counts, want the 200s, 302s and 404s at least:\n%s", n, stdout)
	}
	again, _, err := runArgs(t, terminal{}, "report", "-format", "openmetrics", out)
	if err != nil {
		t.Fatal(err)
	}
	if again != stdout {
		t.Errorf("teckenrun report -format openmetrics prints\n%s\nthe run printed\n%s", again, stdout)
	}
}

// pushed is what a fake Pushgateway received.
type pushed struct {
	method, path, user, password string
	samples                      map[string]float64
	err                          error // what the push body got wrong
}

// fakeGateway is a loopback HTTP server that decodes pushes and answers
// with status.
func fakeGateway(t *testing.T, status int) (*httptest.Server, func() []pushed) {
	t.Helper()
	var mu sync.Mutex
	var got []pushed
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := pushed{method: req.Method, path: req.URL.EscapedPath()}
		p.user, p.password, _ = req.BasicAuth()
		dec := expfmt.NewDecoder(req.Body, expfmt.ResponseFormat(req.Header))
		var fams []*dto.MetricFamily
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("push body: %v", err)
				}
				break
			}
			fams = append(fams, mf)
		}
		p.samples, p.err = samplesOf(fams, nil)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "gateway says no\n")
	}))
	t.Cleanup(ts.Close)
	return ts, func() []pushed {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range got {
			if p.err != nil {
				t.Errorf("push to %s: %v", p.path, p.err)
			}
		}
		return got
	}
}

// TestPushFailureAndExitCodes: a push that fails is an error on stderr
// that decides the exit code only when the run was good; the report is
// still printed, and the password of the URL is sent as basic
// authentication, never shown.
func TestPushFailureAndExitCodes(t *testing.T) {
	ts, pushes := fakeGateway(t, http.StatusInternalServerError)
	withAuth := strings.Replace(ts.URL, "http://", "http://pusher:s3cret@", 1)
	for _, tt := range []struct {
		name       string
		thresholds []string
		code       int
	}{
		{"good run", []string{"download.errors == 0"}, exitFailed},
		{"failed threshold", []string{"download.requests > 100000"}, exitThresholds},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(pushes())
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"-format", "json", "-push", withAuth, thresholdPlan(t, tt.thresholds...)}, strings.NewReader(""), &stdout, &stderr, terminal{})
			if code := exitCode(err, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d (%v)", code, tt.code, err)
			}
			var r Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("no report on stdout: %v", err)
			}
			if msg := stderr.String(); !strings.Contains(msg, "pushing the metrics to the Pushgateway") || !strings.Contains(msg, "500") ||
				strings.Contains(msg, "s3cret") {
				t.Errorf("stderr: %s", msg)
			}
			all := pushes()
			if len(all) != before+1 {
				t.Fatalf("%d pushes, want 1", len(all)-before)
			}
			p := all[len(all)-1]
			if p.method != http.MethodPut || p.path != "/metrics/job/teckenrun/plan/plan" || p.user != "pusher" || p.password != "s3cret" {
				t.Errorf("push %s %s as %q:%q", p.method, p.path, p.user, p.password)
			}
			// Pushed metrics carry no plan label: the grouping key adds it.
			for k := range p.samples {
				if strings.Contains(k, "plan=") {
					t.Errorf("a pushed sample has a plan label: %s", k)
				}
			}
			if v, ok := p.samples[sampleKey("teckenrun_requests_total", "step", "download", "kind", "download")]; !ok || v != float64(r.Steps[0].result.(requestResult).requestMetrics().Requests) {
				t.Errorf("pushed requests_total %v (%v)", v, ok)
			}
		})
	}
}

// TestPushAfterAnInterrupt: an interrupted run still pushes what finished,
// and exits 130.
func TestPushAfterAnInterrupt(t *testing.T) {
	ts, pushes := fakeGateway(t, http.StatusOK)
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(interrupted{os.Interrupt})
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-format", "json", "-push", ts.URL, thresholdPlan(t, "download.errors == 0")}, strings.NewReader(""), &stdout, &stderr, terminal{})
	if code := exitCode(err, &stderr); code != exitInterrupted {
		t.Errorf("exit %d, want %d (%v)", code, exitInterrupted, err)
	}
	all := pushes()
	if len(all) != 1 {
		t.Fatalf("%d pushes after an interrupt, want 1", len(all))
	}
	if v, ok := all[0].samples[sampleKey("teckenrun_run_interrupted")]; !ok || v != 1 {
		t.Errorf("pushed teckenrun_run_interrupted %v (%v), want 1", v, ok)
	}
}

func TestPushURLIsChecked(t *testing.T) {
	for _, u := range []string{"ftp://user:hidden@gateway:9091", "localhost:9091", "http://user:hidden@:9091", "http://gw:9091/?x=1"} {
		_, _, err := runArgs(t, terminal{}, "-push", u, "plans/demo.yaml")
		if code := exitCode(err, io.Discard); code != exitUsage || !strings.Contains(err.Error(), "-push") || strings.Contains(err.Error(), "hidden") {
			t.Errorf("-push %s: exit %d, %v", u, code, err)
		}
	}
}
