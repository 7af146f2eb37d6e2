package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// t0 is when the golden report's requests start.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// ex is an exchange sent at t0+at that took took, with the final status
// (0 with class for no answer) and the attempts made.
func ex(at, took time.Duration, status int, class string, attempts int) exchange {
	e := exchange{Sample: metrics.Sample{Sent: t0.Add(at), Done: t0.Add(at + took), Status: status, Class: class, Attempts: attempts}}
	if status == 0 {
		e.err = errString("connect: connection refused")
	}
	return e
}

// goldenReport is a report with fixed numbers, one step of every kind.
func goldenReport() *Report {
	dl := newDownloadAgg(&queries{rows: make([]query, 16), junk: 2}, pace{})
	for _, o := range []downloadOutcome{
		{exchange: ex(0, 2*time.Millisecond, 302, "", 1), expect: 200, debugTime: "0.0012"},
		{exchange: ex(100*time.Millisecond, 4*time.Millisecond, 302, "", 2), expect: 200, debugTime: "0.02"},
		{exchange: ex(time.Second, time.Millisecond, 404, "", 1), expect: 200, debugTime: "0.5"},
		{exchange: ex(1500*time.Millisecond, time.Millisecond, 404, "", 1), expect: 404, debugTime: "0"},
		{exchange: ex(1900*time.Millisecond, 100*time.Millisecond, 0, classRefused, 5), expect: 200},
	} {
		dl.add(o)
	}
	dlRes, _ := dl.result()
	sym := newSymbolicateAgg(3, []SkippedFile{{File: "bad.json", Error: "not a JSON object"}}, pace{rate: 4})
	sym.add(symOutcome{exchange: ex(0, 30*time.Millisecond, 200, "", 1), jobs: 2, frames: 10, knownFrames: 8, symbolicated: 6,
		debugs: []map[string]float64{{"time": 0.5, "downloads.size": 2048, "downloads.time": 0.25, "cache_lookups.count": 2, "cache_lookups.time": 0.01}, {"time": 0.1, "downloads.size": 0, "downloads.time": 0, "cache_lookups.count": 5, "cache_lookups.time": 0.02}}})
	sym.add(symOutcome{exchange: ex(500*time.Millisecond, 5*time.Millisecond, 400, "", 1), jobs: 1, frames: 3, files: []string{"float.json"}, message: "Frame must be two integers"})
	sym.load(issued{target: 4, missed: 1, saturated: true, peak: 2})
	symRes, _ := sym.result()
	mix := &mixAgg{requests: newRequests(pace{}), res: newMixResult(), weights: [2]int{60, 40},
		dl: newDownloadAgg(&queries{rows: make([]query, 4)}, pace{}), sym: newSymbolicateAgg(2, nil, pace{})}
	mix.add(mixOutcome{scenario: scenarioDownload, dl: downloadOutcome{exchange: ex(0, 3*time.Millisecond, 302, "", 1), expect: 200, debugTime: "0.001"}})
	mix.add(mixOutcome{scenario: scenarioDownload, dl: downloadOutcome{exchange: ex(time.Millisecond, 2*time.Millisecond, 404, "", 1), expect: 404,
		checkFailure: `404 for a.pdb/1/a.sym without "Symbol Not Found": "oops"`}})
	mix.add(mixOutcome{scenario: scenarioSymbolicate, sym: symOutcome{exchange: ex(2*time.Millisecond, 20*time.Millisecond, 200, "", 1), jobs: 1, frames: 4, knownFrames: 4, symbolicated: 4}})
	mix.res.Balance = &MixBalance{FoundJobs: 3, MissingJobs: 2, KeptFound: 2, KeptMissing: 2}
	mixRes, _ := mix.result()
	up := &uploadAgg{requests: newRequests(pace{}), res: newUploadResult(), state: &runState{}}
	e1, e2 := ex(0, 500*time.Millisecond, 201, "", 1), ex(600*time.Millisecond, 100*time.Millisecond, 400, "", 1)
	up.add(UploadRecord{File: "/very/long/path/to/the/zips/folder/of/this/run/a.zip", Bytes: 1 << 20, Status: 201, Attempts: 1, DurationS: 0.5, UploadID: ptr(7), ex: &e1})
	up.add(UploadRecord{File: "b.zip", Bytes: 2048, Status: 400, Attempts: 1, DurationS: 0.1, Error: ptr("400 File is not a zip file"), ex: &e2})
	up.add(UploadRecord{skipped: &SkippedUpload{File: "c.zip", Bytes: 3 << 30, Reason: "over max_size 1000mb"}})
	up.res.Metrics = up.m.Summary()
	msg := "1 of 2 uploads failed"
	notRun, _ := kindByName("download") // after the failed upload, with stop_on_error
	return &Report{SchemaVersion: reportSchemaVersion, Version: "test", Plan: "golden", PlanSHA256: strings.Repeat("ab", 32),
		Host: "http://127.0.0.1:8000", OK: false, StartedAt: t0, EndedAt: t0.Add(3500 * time.Millisecond),
		DurationS: 3.5, Seed: 42, Steps: []StepReport{
			{Kind: "download", Name: "download", OK: true, Ran: true, DurationS: 2, result: dlRes},
			{Kind: "make-stacks", Name: "make-stacks", OK: true, Ran: true, DurationS: 0.25, result: &MakeStacksResult{OutDir: "/tmp/stacks", Files: 3, Modules: 2, Frames: 13, UnknownModuleFrames: 1, NoModuleFrames: 1}},
			{Kind: "symbolicate", Name: "symbolicate", OK: true, Ran: true, DurationS: 1, result: symRes},
			{Kind: "list-zips", Name: "list-zips", OK: true, Ran: true, DurationS: 0.1, result: &ListZipsResult{
				Zips:       []ZipURL{{URL: "https://firefox-ci-tc.services.mozilla.com/api/queue/v1/task/abc/artifacts/public/build/target.crashreporter-symbols.zip", Size: 123 << 20}},
				Namespaces: 2, Expired: 1, Skipped: []SkippedZip{{URL: "https://example.invalid/x.zip", Reason: "over max_size"}}}},
			{Kind: "make-zips", Name: "make-zips", OK: true, Ran: true, DurationS: 0.2, result: &MakeZipsResult{
				Zips: []MadeZip{{Path: "/tmp/zips/a.zip", Files: 4, Bytes: 256 << 10}}, FailedFiles: []FailedFile{},
				ZipBytesPerS: ptr(float64(10 << 20)), SaveDir: "/tmp/zips"}},
			{Kind: "mix", Name: "mix", OK: true, Ran: true, DurationS: 0.03, result: mixRes},
			{Kind: "upload", Name: "upload", OK: false, Ran: true, Error: &msg, DurationS: 0.5, result: up.res},
			{Kind: "download", Name: "download-uploaded", result: notRun.result()},
			{Kind: "fetch-records", Name: "fetch-records", OK: true, Ran: true, DurationS: 0.3, result: &FetchRecordsResult{
				Files: []RecordsFile{{Date: "2017-06-08", Path: "/tmp/records/2017-06-08.json.gz", Hits: 138, Bytes: 150 << 10}}, Hits: 138, OutDir: "/tmp/records"}},
			{Kind: "analyze", Name: "analyze", OK: true, Ran: true, DurationS: 0.4, result: &AnalyzeResult{Uploads: &UploadsAnalysis{
				Analyzed: 2, Skipped: 1, SkippedUploads: []SkippedAnalyze{{ID: 3, Reason: "not completed"}},
				Rows: []UploadTiming{
					{ID: 2, CreatedAt: t0.Add(time.Hour), Size: 288888303, TimeS: 124.25, Files: 140, SumTimesS: 600.5, WinPct: ptr(483.3), SavingS: 476.25},
					{ID: 1, CreatedAt: t0, Size: 22, TimeS: 0, Files: 1, SumTimesS: 0.5, SavingS: 0.5}},
				AverageWinPct: ptr(483.3), MedianWinPct: ptr(483.3), AverageSavingS: ptr(238.375), MedianSavingS: ptr(238.375)}}},
			{Kind: "analyze", Name: "analyze-2", OK: true, Ran: true, DurationS: 0.6, result: &AnalyzeResult{Logs: &LogsAnalysis{
				Lines: 7, Malformed: 1, MalformedLines: []MalformedLine{{File: "logs/public-symbols/a.log", Line: 2, Reason: "4 fields, want at least 17"}},
				Files: 2, NonGET: 1, SpanS: ptr(4.0),
				Rates:      []LogRate{{Status: 200, Count: 4, RatePerS: ptr(1.0)}, {Status: 403, Private: true, Count: 1, RatePerS: ptr(0.25)}},
				TotalTimes: []LogTotalTimes{{Status: 200, Count: 3, AverageS: ptr(0.171), MedianS: ptr(0.1), P95S: ptr(0.412)}, {Status: 403, Private: true}},
				Cache:      []CacheFit{{Size: 1, Lookups: 5, Hits: 1, HitRatio: ptr(0.2)}, {Size: 300, Lookups: 5, Hits: 2, HitRatio: ptr(0.4)}},
				Outputs:    []string{"/tmp/downloading/symbol-queries.csv", "/tmp/downloading/symbol-queries-groups.csv"}}}},
		},
		Thresholds: []ThresholdResult{
			{Expr: "download.p95 < 800ms", Value: ptr(0.1), Unit: "s", OK: ptr(true)},
			{Expr: "upload.failed == 0", Value: ptr(1.0), OK: ptr(false)},
			{Expr: "other.requests > 0", Note: "step not selected with -only"},
		}}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestReportGolden(t *testing.T) {
	for _, tt := range []struct {
		golden string
		render reporter
	}{{"testdata/report.txt", tableReport}, {"testdata/report.json", jsonReport}} {
		var got bytes.Buffer
		if err := tt.render(&got, goldenReport()); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, tt.golden, got.Bytes())
	}
}

// checkGolden compares got with the golden file, or writes it with -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		os.WriteFile(golden+".got", got, 0o644)
		t.Errorf("%s differs; see %s.got (go test -run %s -update to accept)", golden, golden, t.Name())
	}
}

// TestReportRoundTrip: a report decodes into the same types, every kind's
// result included, and encodes back to the same bytes.
func TestReportRoundTrip(t *testing.T) {
	want, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeReport(bytes.NewReader(want), "report.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range r.Steps {
		seen[s.Kind] = true
	}
	for _, k := range kinds {
		if !seen[k.name] {
			t.Errorf("the golden report has no %s step", k.name)
		}
	}
	var got bytes.Buffer
	if err := jsonReport(&got, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("encode(decode(report.json)) differs:\n%s", got.String())
	}
}

// TestReportCommandReprintsTheTable: teckenrun report prints a saved
// report's table byte for byte as the run printed it.
func TestReportCommandReprintsTheTable(t *testing.T) {
	for _, tt := range []struct{ format, golden string }{{"table", "testdata/report.txt"}, {"json", "testdata/report.json"}} {
		stdout, _, err := runArgs(t, terminal{}, "report", "-format", tt.format, "testdata/report.json")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(tt.golden)
		if stdout != string(want) {
			t.Errorf("report -format %s differs from %s:\n%s", tt.format, tt.golden, stdout)
		}
	}
}

func TestDecodeReportErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, content, want string }{
		{"empty", "", "empty file"},
		{"not json", "plan: x", "not a teckenrun report"},
		{"old", `{"plan":"x","steps":[]}`, "no schema_version"},
		{"newer", `{"schema_version":99,"steps":[]}`, "newer than this teckenrun reads"},
		{"two", `{"schema_version":2,"steps":[]} {}`, "more than one JSON document"},
		{"kind", `{"schema_version":2,"steps":[{"kind":"fly","name":"x"}]}`, `unknown kind "fly"`},
		{"histogram", `{"schema_version":2,"steps":[{"kind":"download","name":"d","metrics":{"requests":"x"}}]}`, `step "d" (download): metrics.requests: want int64, got a JSON string`},
		{"cut", "{\"schema_version\": 2,\n \"steps\": [", `.json:2:12: not a teckenrun report: unexpected EOF`},
		{"syntax", "{\"schema_version\": 2,\n \"steps\": [}", `.json:2:12: not a teckenrun report: invalid character '}'`},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
		os.WriteFile(path, []byte(tt.content), 0o644)
		_, _, err := runArgs(t, terminal{}, "report", path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming %s with %q", tt.name, err, path, tt.want)
		}
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage {
			t.Errorf("%s: exit %d, want %d", tt.name, code, exitUsage)
		}
	}
}

// TestEmptyResultsHaveEveryKey: a step that failed before it started
// still has its kind's keys, with [] and null, never a missing key.
func TestEmptyResultsHaveEveryKey(t *testing.T) {
	full := map[string]map[string]any{}
	raw, _ := os.ReadFile("testdata/report.json")
	var golden struct{ Steps []map[string]any }
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	for _, s := range golden.Steps {
		if s["ran"] == true { // a step that did not run has an empty result
			full[s["kind"].(string)] = s
		}
	}
	for _, k := range kinds {
		b, err := json.Marshal(StepReport{Kind: k.name, Name: k.name, result: k.result()})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		json.Unmarshal(b, &got)
		for key := range full[k.name] {
			if _, ok := got[key]; !ok {
				t.Errorf("%s: an empty result lacks %q", k.name, key)
			}
		}
		for key, v := range got {
			if _, isList := full[k.name][key].([]any); isList && v == nil {
				t.Errorf("%s: %q is null in an empty result, want []", k.name, key)
			}
		}
	}
}

// TestTablesAreReadable: the golden tables fit in 100 columns, and no
// table has two columns with the same header.
func TestTablesAreReadable(t *testing.T) {
	raw, err := os.ReadFile("testdata/report.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, line := range lines {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("line %d is %d columns wide: %s", i+1, n, line)
		}
		// A header row sits between the two rules at a table's top.
		if i == 0 || i+1 >= len(lines) || !strings.HasPrefix(lines[i-1], "+-") || !strings.HasPrefix(lines[i+1], "+-") ||
			(i >= 2 && strings.HasPrefix(lines[i-2], "|")) {
			continue
		}
		seen := map[string]bool{}
		for _, h := range strings.Split(strings.Trim(line, "|"), "|") {
			h = strings.TrimSpace(h)
			if seen[h] {
				t.Errorf("line %d: two columns named %q: %s", i+1, h, line)
			}
			seen[h] = true
		}
	}
}

// TestReportReprintsARun: the table of a real run, and the table that
// teckenrun report prints from the run's -out file, are the same bytes.
func TestReportReprintsARun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run.json")
	table, _, err := runArgs(t, terminal{}, "-format", "table", "-out", out, "plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := runArgs(t, terminal{}, "report", "-format", "table", out)
	if err != nil {
		t.Fatal(err)
	}
	if again != table {
		t.Errorf("teckenrun report prints\n%s\nthe run printed\n%s", again, table)
	}
}

// TestStepThatFailedBeforeStartingHasItsKeys: a download whose CSV has
// no usable row still reports its metrics and lists, with null shares.
func TestStepThatFailedBeforeStartingHasItsKeys(t *testing.T) {
	r, _, err := runPlanAs[map[string]any](t, t.Context(), "host: http://127.0.0.1:1\nsteps:\n  - download: {csv: q.csv}\n",
		map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n"}, nil)
	if err == nil || r == nil {
		t.Fatalf("a CSV without rows did not fail the step: %v", err)
	}
	step := (*r)["steps"].([]any)[0].(map[string]any)
	m, ok := step["metrics"].(map[string]any)
	if !ok || m["requests"] != 0.0 || m["response_time"] != nil || m["by_status"] == nil {
		t.Errorf("metrics %v", step["metrics"])
	}
	if _, ok := step["right_pct"]; !ok || step["right_pct"] != nil || step["by_status"] == nil {
		t.Errorf("right_pct %v, by_status %v: want null and []", step["right_pct"], step["by_status"])
	}
}
