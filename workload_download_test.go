package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// testReport is the JSON report as a script would read it.
type testReport struct {
	Plan        string `json:"plan"`
	Host        string `json:"host"`
	OK          bool   `json:"ok"`
	Interrupted bool   `json:"interrupted"`
	Seed        uint64 `json:"seed"`
	Steps       []struct {
		Kind  string  `json:"kind"`
		Name  string  `json:"name"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		DownloadResult
	} `json:"steps"`
}

// runJSON runs a plan (see runPlanAs) and decodes its download report.
func runJSON(t *testing.T, ctx context.Context, plan string, files map[string]string, args ...string) (*testReport, error) {
	t.Helper()
	r, _, err := runPlanAs[testReport](t, ctx, plan, files, nil, args...)
	return r, err
}

// store is a small known symbol store for download tests.
var testStoreKeys = []string{
	"xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym",
	"wntdll.pdb/D74F79EB1F8D4A45ABCD2F476CCABACC2/wntdll.sym",
	"libxul.so/8C1A7F0E2D3B4C5D6E7F8091A2B3C4D50/libxul.so.sym",
}

func startEmulator(t *testing.T, opts emulator.Options) (*emulator.Server, string) {
	t.Helper()
	opts.KeepLog = true
	s := emulator.New(opts)
	for _, k := range testStoreKeys {
		s.Put(k, []byte("MODULE "+k+"\n"))
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

const testCSV = `URI,STATUS CODE,PRIVATE,COUNT
/org.mozilla.crash-stats.symbols-public/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym,200,false,5
/org.mozilla.crash-stats.symbols-public/v1/wntdll.pdb/D74F79EB1F8D4A45ABCD2F476CCABACC2/wntdll.sym,200,false,3
/org.mozilla.crash-stats.symbols-public/v1/libxul.so/8C1A7F0E2D3B4C5D6E7F8091A2B3C4D50/libxul.so.sym,404,false,2
/org.mozilla.crash-stats.symbols-public/v1/nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301/nvwgf2umx.sym,404,false,4
/org.mozilla.crash-stats.symbols-private/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym,403,true,2
/org.mozilla.crash-stats.symbols-public/v1/gone.pdb/FEDCBA9876543210FEDCBA98765432101/gone.sym,200,false,1
/org.mozilla.crash-stats.symbols-public/v1/firefox.pdb/0123456789ABCDEF0123456789ABCDEF1/file.ptr,404,false,2
/org.mozilla.crash-stats.symbols-public/v1/x.pdb/0123456789ABCDEF0123456789ABCDEF1/x.exe,404,false,1
HEAD /org.mozilla.crash-stats.symbols-public/v1/a.so/8C1A/a.so.sym HTTP/1.1,200,false,7
/too/short,404,false,3
`

const testMissing = `debug_file,debug_id,code_file,code_id
nvwgf2umx.pdb,8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301,nvwgf2umx.dll,5B6DBA8B1AB000
xul.pdb,44E4EC8C2F41492B9369D6B9A059577C2,,
`

func downloadPlan(host, extra string) string {
	return fmt.Sprintf("host: %s\nseed: 7\ntimeout: 5s\nsteps:\n  - download:\n      csv: q.csv\n      missing_csv: m.csv\n%s", host, extra)
}

var downloadFiles = map[string]string{"q.csv": testCSV, "m.csv": testMissing}

func TestDownloadCountsMatchTheServer(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      concurrency: 3\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	// 5+3+2+4+2+1+2+1 usable jobs; the HEAD line and /too/short are junk.
	if s.Metrics.Requests != 20 || s.Metrics.Errors != 0 || s.Metrics.Retries != 0 || s.JunkRows != 2 || s.Rows != 8 {
		t.Fatalf("requests %d, errors %d, retries %d, junk %d, rows %d", s.Metrics.Requests, s.Metrics.Errors, s.Metrics.Retries, s.JunkRows, s.Rows)
	}
	counts := emu.Counts()
	total := 0
	for _, bs := range s.ByStatus {
		if n := counts[emulator.CountKey{Endpoint: "download", Status: bs.Status}]; n != bs.Count {
			t.Errorf("status %d: reported %d, server answered %d", bs.Status, bs.Count, n)
		}
		total += bs.Count
	}
	if served := len(emu.Log()); served != total || int64(total) != s.Metrics.Requests {
		t.Errorf("server saw %d requests, report has %d (requests %d)", served, total, s.Metrics.Requests)
	}
	// Ignore hits are the server's "Debug-Time: 0" answers.
	zero := 0
	for _, rec := range emu.Log() {
		if rec.DebugTime == "0" {
			zero++
		}
	}
	if s.IgnoreHits != zero || zero != 3 {
		t.Errorf("ignore hits %d, server sent Debug-Time 0 %d times, want 3", s.IgnoreHits, zero)
	}
	// Wrong: gone.pdb (S3 200, Tecken 404: 1 job) and libxul.so (S3 404,
	// now stored: 2 jobs).
	if want := 100 * 17.0 / 20; s.RightPct == nil || *s.RightPct != want || s.Right != 17 {
		t.Errorf("right %d, right_pct %v, want 17, %v", s.Right, s.RightPct, want)
	}
	for _, bs := range s.ByStatus {
		switch bs.Status {
		case 302:
			if bs.Count != 10 || bs.Right != 8 || bs.Internal == nil {
				t.Errorf("302 row %+v", bs)
			}
		case 404:
			if bs.Count != 10 || bs.Right != 9 {
				t.Errorf("404 row %+v", bs)
			}
		default:
			t.Errorf("unexpected status %d", bs.Status)
		}
	}
}

func TestDownloadSendsCodeFileAndHeaders(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{})
	var uas atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Debug") != "true" {
			t.Errorf("Debug header %q", r.Header.Get("Debug"))
		}
		uas.Store(r.Header.Get("User-Agent"))
		emu.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(h)
	defer ts.Close()
	_ = url
	if _, err := runJSON(t, context.Background(), downloadPlan(ts.URL, "      concurrency: 1\n")+"user_agent: my-agent/1\n", downloadFiles); err != nil {
		t.Fatal(err)
	}
	if uas.Load() != "my-agent/1" {
		t.Errorf("User-Agent %v", uas.Load())
	}
	withCode, without := 0, 0
	for _, rec := range emu.Log() {
		switch {
		case strings.HasPrefix(rec.Path, "/nvwgf2umx.pdb/"):
			if rec.Query != "code_file=nvwgf2umx.dll&code_id=5B6DBA8B1AB000" {
				t.Errorf("query %q", rec.Query)
			}
			withCode++
		case rec.Query != "":
			t.Errorf("%s got query %q; only rows in the missing CSV with codes get one", rec.Path, rec.Query)
		default:
			without++
		}
	}
	if withCode != 4 || without != 16 {
		t.Errorf("%d requests with code_file, %d without; want 4 and 16", withCode, without)
	}
}

func TestDownloadMaxRequestsIsExact(t *testing.T) {
	for _, n := range []int{1, 7, 45} { // 45 > 20 jobs: cycles through them
		emu, url := startEmulator(t, emulator.Options{})
		r, err := runJSON(t, context.Background(), downloadPlan(url, fmt.Sprintf("      max_requests: %d\n      concurrency: 4\n", n)), downloadFiles)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(emu.Log()); got != n || r.Steps[0].Metrics.Requests != int64(n) {
			t.Errorf("max_requests %d: server saw %d, report says %d", n, got, r.Steps[0].Metrics.Requests)
		}
	}
}

func TestDownloadOrderIsSeeded(t *testing.T) {
	order := func(seed string) string {
		emu, url := startEmulator(t, emulator.Options{})
		if _, err := runJSON(t, context.Background(), downloadPlan(url, "      concurrency: 1\n"), downloadFiles, "-seed", seed); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, rec := range emu.Log() {
			paths = append(paths, rec.Path)
		}
		return strings.Join(paths, " ")
	}
	a, b, c := order("1"), order("1"), order("2")
	if a != b {
		t.Error("the same seed gave two orders")
	}
	if a == c {
		t.Error("seeds 1 and 2 gave the same order")
	}
}

func TestDownloadCountsInjectedFaults(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{
		{Endpoint: "download", Every: 4, Status: 502},
		{Endpoint: "download", Every: 6, Drop: true},
	}})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      concurrency: 2\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if !s.OK || s.Metrics.Requests != 20 || s.Metrics.Errors != 0 {
		t.Fatalf("ok %v, requests %d, errors %d", s.OK, s.Metrics.Requests, s.Metrics.Errors)
	}
	counts := emu.Counts()
	drops := counts[emulator.CountKey{Endpoint: "download", Status: 0}]
	if drops == 0 || s.Metrics.Retries != int64(drops) {
		t.Errorf("retries %d, server dropped %d connections", s.Metrics.Retries, drops)
	}
	var got502 int
	for _, bs := range s.ByStatus {
		if n := counts[emulator.CountKey{Endpoint: "download", Status: bs.Status}]; n != bs.Count {
			t.Errorf("status %d: reported %d, server answered %d", bs.Status, bs.Count, n)
		}
		if bs.Status == 502 {
			got502 = bs.Count
			if bs.Right != 0 {
				t.Errorf("a 502 counted as right")
			}
		}
	}
	if got502 == 0 {
		t.Error("no 502 reported")
	}
}

func TestDownloadTransportErrors(t *testing.T) {
	// A port nothing listens on: every attempt is refused.
	ln := httptest.NewServer(http.NotFoundHandler())
	url := ln.URL
	ln.Close()
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      max_requests: 2\n      concurrency: 2\n"), downloadFiles)
	if err == nil || !strings.Contains(err.Error(), "step download (download) failed: all 2 requests failed") {
		t.Fatalf("run error %v, want the step to fail", err)
	}
	s := r.Steps[0]
	if s.OK || s.Error == nil || !strings.Contains(*s.Error, "all 2 requests failed") {
		t.Errorf("step ok %v, error %v", s.OK, s.Error)
	}
	if s.Metrics.Errors != 2 || s.Metrics.TransportErrors.Refused != 2 || s.Metrics.Retries != 2*downloadRetries {
		t.Errorf("errors %d, refused %d, retries %d", s.Metrics.Errors, s.Metrics.TransportErrors.Refused, s.Metrics.Retries)
	}
}

func TestDownloadTimeout(t *testing.T) {
	emu := emulator.New(emulator.Options{KeepLog: true, Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: 1 << 40}}})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	plan := strings.Replace(downloadPlan(ts.URL, "      max_requests: 1\n"), "timeout: 5s", "timeout: 50ms", 1)
	r, err := runJSON(t, context.Background(), plan, downloadFiles)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	s := r.Steps[0]
	if s.Metrics.TransportErrors.Timeout != 1 || s.Metrics.Retries != downloadRetries {
		t.Errorf("timeouts %d, retries %d", s.Metrics.TransportErrors.Timeout, s.Metrics.Retries)
	}
	ts.Close() // waits for the stalled handlers, which record when the client has gone
	if n := len(emu.Log()); n != 1+downloadRetries {
		t.Errorf("server saw %d attempts, want %d", n, 1+downloadRetries)
	}
}

func TestDownloadInterrupted(t *testing.T) {
	emu, _ := startEmulator(t, emulator.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		emu.ServeHTTP(w, r)
		if served.Add(1) == 10 {
			cancel() // Ctrl-C after the 10th answer
		}
	}))
	defer ts.Close()
	r, err := runJSON(t, ctx, downloadPlan(ts.URL, "      max_requests: 100000\n      concurrency: 4\n"), downloadFiles)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || exitCode(err, new(bytes.Buffer)) != exitInterrupted {
		t.Fatalf("run error %v, want interrupted (exit 130)", err)
	}
	if !r.Interrupted || r.OK {
		t.Errorf("interrupted %v, ok %v", r.Interrupted, r.OK)
	}
	s := r.Steps[0]
	if got := len(emu.Log()); s.Metrics.Requests != int64(got) || got < 10 || got > 100 {
		t.Errorf("report counts %d requests (cancelled %d), server answered %d", s.Metrics.Requests, s.Metrics.Cancelled, got)
	}
}

func TestDownloadBadCSV(t *testing.T) {
	const head = "URI,STATUS CODE,PRIVATE,COUNT\n/a/b/c/d.sym,200,false,1\n"
	tests := []struct {
		name, csv, want string
	}{
		{"wrong header", "URL,STATUS,PRIVATE,COUNT\n", `q.csv:1: header is "URL,STATUS,PRIVATE,COUNT", want "URI,STATUS CODE,PRIVATE,COUNT"`},
		{"bad status", "URI,STATUS CODE,PRIVATE,COUNT\n/a/b/c/d.sym,ok,false,1\n", `q.csv:2: STATUS CODE "ok" is not an HTTP status`},
		{"bad count", "URI,STATUS CODE,PRIVATE,COUNT\n/a/b/c/d.sym,200,false,many\n", `q.csv:2: COUNT "many" is not a count`},
		{"short row", "URI,STATUS CODE,PRIVATE,COUNT\n/a/b/c/d.sym,200\n", "q.csv:2: wrong number of fields: 2, want 4"},
		{"long row", "URI,STATUS CODE,PRIVATE,COUNT\n/a/b/c/d.sym,200,false,1,extra\n", "q.csv:2: wrong number of fields: more than 4"},
		{"broken quote", "URI,STATUS CODE,PRIVATE,COUNT\n\"/a/b/c/d.sym,200,false,1\n", `q.csv:2: extraneous or missing " in quoted-field`},
		{"only junk", "URI,STATUS CODE,PRIVATE,COUNT\nHEAD /a/b/c HTTP/1.1,200,false,1\n", "q.csv: no usable rows (1 junk rows skipped)"},
		{"private not a boolean", head + "/a/b/c/e.sym,200,yes,1\n", `q.csv:3: PRIVATE "yes" is not true or false`},
		{"private capitalised", head + "/a/b/c/e.sym,200,True,1\n", `q.csv:3: PRIVATE "True" is not true or false`},
		{"count too large", head + "/a/b/c/e.sym,200,false,100000000\n",
			"q.csv:3: COUNT 100000000 is too large: the COUNTs of a CSV may add up to at most 100000000 jobs"},
		{"count over an int", head + "/a/b/c/e.sym,200,false,123456789012345678901234567890\n",
			"q.csv:3: COUNT 123456789012345678901234567890 is too large: the COUNTs of a CSV may add up to at most 100000000 jobs"},
		{"line over the limit", head + "/a/b/c/" + strings.Repeat("x", maxCSVLine) + ".sym,200,false,1\n",
			"q.csv:3: the line is longer than 1048576 bytes, the most a row may take"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startEmulator(t, emulator.Options{})
			r, err := runJSON(t, context.Background(), downloadPlan(url, ""), map[string]string{"q.csv": tt.csv, "m.csv": testMissing})
			if err == nil || r == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, tt.want) {
				t.Fatalf("run error %v; want the step error to contain %q (report %+v)", err, tt.want, r)
			}
		})
	}
	for _, tt := range []struct{ missing, want string }{
		{"debug_file,debug_id,code_file,code_id\na,b,c,d\na,b\n", "m.csv:3: wrong number of fields"},
		{"", `m.csv: empty, want the header "debug_file,debug_id,code_file,code_id"`},
	} {
		path := filepath.Join(t.TempDir(), "m.csv")
		os.WriteFile(path, []byte(tt.missing), 0o644)
		if _, err := loadMissing(path); err == nil || !strings.HasSuffix(err.Error(), tt.want) {
			t.Errorf("missing CSV %q: %v, want %q", tt.missing, err, tt.want)
		}
	}
}

func TestLoadQueries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.csv")
	csv := "URI,STATUS CODE,PRIVATE,COUNT\r\n" +
		"\"/b/v1/a.pdb/ABC1/a.sym\",200,false,2\r\n" + // quoted, CRLF
		"/b/v1/b.pdb/ABC2/b.sym,404,true,0\n" + // COUNT 0: a row without jobs
		"/b/v1/c.pdb/ABC3/c.dll,403,true,1\n" +
		"/b/v1/d.pdb//d.sym,200,false,1\n" + // empty segment: junk
		"/b/v1/e.pdb/ABC5/e%zz.sym,200,false,1\n" // broken escape: junk
	os.WriteFile(path, []byte(csv), 0o644)
	q, err := loadQueries(path, false)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range q.rows {
		paths = append(paths, fmt.Sprintf("%s=%d", q.path(&q.rows[i]), q.rows[i].expect))
	}
	if got, want := strings.Join(paths, " "), "a.pdb/ABC1/a.sym=200 b.pdb/ABC2/b.sym=404 c.pdb/ABC3/c.dll=403"; got != want {
		t.Errorf("rows %s, want %s", got, want)
	}
	if fmt.Sprint(q.jobs) != "[0 0 2]" || q.junk != 2 {
		t.Errorf("jobs %v, junk %d", q.jobs, q.junk)
	}
	if k := q.debugKey(&q.rows[0]); k != "a.pdb/ABC1" {
		t.Errorf("debugKey %q", k)
	}
	ms, err := loadQueries(path, true)
	if err != nil || len(ms.rows) != 2 {
		t.Errorf("microsoft_like_only kept %d rows (%v), want the two .pdb/.sym ones", len(ms.rows), err)
	}
}

// TestCSVByteOrderMark: CSVs saved with a UTF-8 byte order mark (as
// spreadsheet tools write them) are read like any other.
func TestCSVByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	bom := "\xef\xbb\xbf"
	queriesPath, missingPath := filepath.Join(dir, "q.csv"), filepath.Join(dir, "m.csv")
	os.WriteFile(queriesPath, []byte(bom+testCSV), 0o644)
	os.WriteFile(missingPath, []byte(bom+testMissing), 0o644)
	q, err := loadQueries(queriesPath, false)
	if err != nil || len(q.rows) != 8 || len(q.jobs) != 20 {
		t.Errorf("queries: %v", err)
	}
	codes, err := loadMissing(missingPath)
	if err != nil || codes["nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301"] != "code_file=nvwgf2umx.dll&code_id=5B6DBA8B1AB000" {
		t.Errorf("missing: %v %v", codes, err)
	}
}

// BenchmarkDownload measures the download step's client cost per request
// against an in-process emulator (go test -bench Download -cpuprofile).
func BenchmarkDownload(b *testing.B) {
	emu := emulator.New(emulator.Options{})
	emu.Put(testStoreKeys[0], []byte("MODULE\n"))
	ts := httptest.NewServer(emu)
	defer ts.Close()
	dir := b.TempDir()
	csv := fmt.Sprintf("URI,STATUS CODE,PRIVATE,COUNT\n/b/v1/%s,200,false,%d\n", testStoreKeys[0], b.N)
	os.WriteFile(filepath.Join(dir, "q.csv"), []byte(csv), 0o644)
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte("host: "+ts.URL+"\nsteps:\n  - download: {csv: q.csv, concurrency: 50}\n"), 0o644)
	b.ResetTimer()
	if err := run(context.Background(), []string{"-format", "json", plan}, nil, io.Discard, io.Discard, terminal{}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLoadQueries measures loading a download CSV of b.N rows.
func BenchmarkLoadQueries(b *testing.B) {
	path := filepath.Join(b.TempDir(), "q.csv")
	f, _ := os.Create(path)
	fmt.Fprintln(f, "URI,STATUS CODE,PRIVATE,COUNT")
	for i := range b.N {
		fmt.Fprintf(f, "/org.mozilla.crash-stats.symbols-public/v1/mod%d.pdb/%032X1/mod%d.sym,200,false,2\n", i, i, i)
	}
	f.Close()
	b.ResetTimer()
	q, err := loadQueries(path, false)
	if err != nil || len(q.rows) != b.N || len(q.jobs) != 2*b.N {
		b.Fatalf("%d rows, %v", len(q.rows), err)
	}
}

// TestDownloadRateMeasuresFromTheSchedule: with a rate, a slow server
// shows up as latency, not as a lower rate (no coordinated omission).
func TestDownloadRateMeasuresFromTheSchedule(t *testing.T) {
	// At most one worker, 10 requests scheduled 1 ms apart, each answered
	// after 20 ms: the last is sent about 180 ms after its slot, while
	// each took only 20 ms once sent. The step is saturated.
	_, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: 20 * time.Millisecond}}})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      max_requests: 10\n      concurrency: 1\n      max_concurrency: 1\n      rate: 1000\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	if m.ResponseTime.P99S < 0.15 || m.ScheduleLag.P99S < 0.1 {
		t.Errorf("response time p99 %.3fs, schedule lag p99 %.3fs; measured from the schedule the last is at least 0.18s", m.ResponseTime.P99S, m.ScheduleLag.P99S)
	}
	if m.ServiceTime.P50S > 0.1 || !m.Saturated || m.PeakWorkers != 1 || m.Late < 5 || m.TargetRatePerS == nil || *m.TargetRatePerS != 1000 {
		t.Errorf("service p50 %.3fs, saturated %v, peak workers %d, late %d, target %v", m.ServiceTime.P50S, m.Saturated, m.PeakWorkers, m.Late, m.TargetRatePerS)
	}
}

func TestDownloadDurationStopsIssuing(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      duration: 200ms\n      rate: 50\n      concurrency: 2\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	// Slots at 0, 20, …, 180 ms fall inside 200 ms, and only those.
	if n := r.Steps[0].Metrics.Requests; n != 10 || n != int64(len(emu.Log())) {
		t.Errorf("%d requests (server %d) in 200ms at 50/s", n, len(emu.Log()))
	}
}

// TestDownloadResetConnections: a server that drops every connection is
// a "reset" transport error once the retries are spent, and every
// attempt the server saw is counted.
func TestDownloadResetConnections(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Drop: true}}})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      max_requests: 1\n      concurrency: 1\n"), downloadFiles)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	s := r.Steps[0]
	drops := emu.Counts()[emulator.CountKey{Endpoint: "download", Status: 0}]
	if s.Metrics.TransportErrors.Reset != 1 || s.Metrics.Errors != 1 || s.Metrics.Retries < downloadRetries || s.Metrics.Retries+1 != int64(drops) {
		t.Errorf("reset %d, errors %d, retries %d; the server dropped %d connections", s.Metrics.TransportErrors.Reset, s.Metrics.Errors, s.Metrics.Retries, drops)
	}
}

// TestDownloadRetriesABodyCutOff: an answer whose body breaks off after
// the headers is retried like a transport error.
func TestDownloadRetriesABodyCutOff(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			cutBody(w)
			return
		}
		w.Header().Set("Content-Length", "100")
		w.Write(make([]byte, 100))
	}))
	defer ts.Close()
	r, err := runJSON(t, context.Background(), downloadPlan(ts.URL, "      max_requests: 1\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if s.Metrics.Requests != 1 || s.Metrics.Errors != 0 || s.Metrics.Retries != 2 || len(s.ByStatus) != 1 || s.ByStatus[0].Status != 200 {
		t.Errorf("requests %d, errors %d, retries %d, by status %+v; want one 200 after 2 retries", s.Metrics.Requests, s.Metrics.Errors, s.Metrics.Retries, s.ByStatus)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
}

// TestDownloadRetriesABodyThatTimesOut: a body that stalls past the
// plan's timeout is retried, and the error says which timeout ran out.
func TestDownloadRetriesABodyThatTimesOut(t *testing.T) {
	ts, hits := stallServer(t, true)
	plan := strings.Replace(downloadPlan(ts.URL, "      max_requests: 1\n"), "timeout: 5s", "timeout: 100ms", 1)
	r, err := runJSON(t, context.Background(), plan, downloadFiles)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	s := r.Steps[0]
	if s.Metrics.Errors != 1 || s.Metrics.TransportErrors.Timeout != 1 || s.Metrics.Retries != downloadRetries {
		t.Errorf("errors %d, timeouts %d, retries %d; want 1, 1, %d", s.Metrics.Errors, s.Metrics.TransportErrors.Timeout, s.Metrics.Retries, downloadRetries)
	}
	if want := "all 1 requests failed: timed out after 100ms"; s.Error == nil || *s.Error != want {
		t.Errorf("step error %v, want %q", s.Error, want)
	}
	ts.Close()
	if n := hits.Load(); n < 1 || n > 1+downloadRetries {
		t.Errorf("server saw %d requests for %d attempts", n, 1+downloadRetries)
	}
}

// TestDownloadDoesNotRetryAnUntrustedCertificate: a certificate that
// does not verify fails the request once; no retry can fix it.
func TestDownloadDoesNotRetryAnUntrustedCertificate(t *testing.T) {
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	r, err := runJSON(t, context.Background(), downloadPlan(ts.URL, "      max_requests: 1\n"), downloadFiles)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	s := r.Steps[0]
	if s.Metrics.Errors != 1 || s.Metrics.Retries != 0 || s.Error == nil || !strings.Contains(*s.Error, "x509: certificate signed by unknown authority") {
		t.Errorf("errors %d, retries %d, error %v", s.Metrics.Errors, s.Metrics.Retries, s.Error)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestDownloadThroughAProxyUsesNetHTTP: when a proxy applies to the host,
// the lean client steps aside and net/http sends the GETs through the
// proxy, with the same headers and the same outcome.
func TestDownloadThroughAProxyUsesNetHTTP(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{})
	var proxied atomic.Int32
	target, _ := neturl.Parse(url)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == target.Host && r.Header.Get("Debug") == "true" && r.Header.Get("User-Agent") == "ua/1" {
			proxied.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	proxyURL, _ := neturl.Parse(proxy.URL)

	dir := t.TempDir()
	csv := filepath.Join(dir, "q.csv")
	if err := os.WriteFile(csv, []byte(testCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	qs, err := loadQueries(csv, false)
	if err != nil {
		t.Fatal(err)
	}
	rc := &runContext{plan: &Plan{UserAgent: "ua/1", Timeout: Duration(5 * time.Second)}, host: url}
	viaProxy := newTransport(1)
	viaProxy.Proxy = http.ProxyURL(proxyURL)
	direct := newTransport(1)
	srcs := map[string]*downloadSource{
		"proxy":  newDownloadSource(rc, viaProxy, 1, qs, nil, url, true),
		"direct": newDownloadSource(rc, direct, 1, qs, nil, url, true),
	}
	if srcs["proxy"].direct != nil || srcs["direct"].direct == nil {
		t.Fatalf("lean client with a proxy: %v, without: %v", srcs["proxy"].direct != nil, srcs["direct"].direct != nil)
	}
	outcomes := map[string][]downloadOutcome{}
	for name, src := range srcs {
		defer src.close()
		for i := range qs.jobs {
			outcomes[name] = append(outcomes[name], src.job(context.Background(), i, slot{sent: time.Now()}))
		}
	}
	if n := int(proxied.Load()); n != len(qs.jobs) {
		t.Errorf("the proxy carried %d of %d requests", n, len(qs.jobs))
	}
	if n := len(emu.Log()); n != 2*len(qs.jobs) {
		t.Errorf("the server saw %d requests, want %d", n, 2*len(qs.jobs))
	}
	p, d := outcomes["proxy"], outcomes["direct"]
	for i := range p {
		if p[i].Status != d[i].Status || p[i].Attempts != d[i].Attempts || p[i].location != d[i].location ||
			p[i].body != d[i].body || p[i].checkFailure != d[i].checkFailure || (p[i].debugTime == "") != (d[i].debugTime == "") {
			t.Errorf("job %d: through the proxy %d (%d attempts) %q %q, direct %d (%d attempts) %q %q", i,
				p[i].Status, p[i].Attempts, p[i].location, p[i].checkFailure, d[i].Status, d[i].Attempts, d[i].location, d[i].checkFailure)
		}
	}
}
