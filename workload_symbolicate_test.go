package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// symReport is a symbolicate step's JSON as a script reads it.
type symReport struct {
	OK    bool `json:"ok"`
	Steps []struct {
		Kind  string  `json:"kind"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		SymbolicateResult
	} `json:"steps"`
}

func runSymJSON(t *testing.T, plan string) (*symReport, error) {
	t.Helper()
	r, _, err := runPlanAs[symReport](t, context.Background(), plan, nil, nil)
	return r, err
}

// symbolStore returns an emulator holding n synthetic modules, and a
// folder of stack files drawn from them with make-stacks' generator.
func symbolStore(t *testing.T, opts emulator.Options, files int) (*emulator.Server, *httptest.Server, string) {
	t.Helper()
	opts.KeepLog = true
	emu := emulator.New(opts)
	r := rand.New(rand.NewPCG(5, 6))
	var mods []*breakpad.Symbols
	for _, name := range []string{"xul", "nss3", "mozglue"} {
		m := breakpad.Synthesize(r, name, "windows", 40)
		emu.Put(m.Key(), m.Bytes())
		syms, err := breakpad.Parse(bytes.NewReader(m.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, syms)
	}
	dir := t.TempDir()
	res := &MakeStacksResult{}
	for i := range files {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%03d.json", i)), makeStack(r, mods, res), 0o644)
	}
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	return emu, ts, dir
}

func symPlan(host, dir, extra string) string {
	return fmt.Sprintf("host: %s\nseed: 3\ntimeout: 5s\nsteps:\n  - symbolicate:\n      stacks_dir: %s\n%s", host, dir, extra)
}

func TestSymbolicateBatchesAndCounts(t *testing.T) {
	for _, tt := range []struct {
		api      string
		batch    int
		requests int
	}{{"v5", 3, 3}, {"v5", 1, 7}, {"v4", 1, 7}, {"v5", 7, 1}, {"v5", 10, 1}} {
		t.Run(fmt.Sprintf("%s batch %d", tt.api, tt.batch), func(t *testing.T) {
			emu, ts, dir := symbolStore(t, emulator.Options{}, 7)
			r, err := runSymJSON(t, symPlan(ts.URL, dir, fmt.Sprintf("      api: %s\n      batch_size: %d\n      concurrency: 2\n", tt.api, tt.batch)))
			if err != nil {
				t.Fatal(err)
			}
			s := r.Steps[0]
			// 7 files: the last, partial batch is sent too.
			if s.Metrics.Requests != int64(tt.requests) || s.Jobs != 7 || s.InvalidResponses != 0 || s.Metrics.Errors != 0 {
				t.Fatalf("requests %d, jobs %d, invalid %d (%s), errors %d", s.Metrics.Requests, s.Jobs, s.InvalidResponses, s.InvalidSample, s.Metrics.Errors)
			}
			if n := emu.Counts()[emulator.CountKey{Endpoint: "symbolicate", Status: 200}]; n != tt.requests {
				t.Errorf("server answered %d requests, report says %d", n, tt.requests)
			}
			// Frames were drawn inside known functions: every frame in a
			// found module has a name.
			if s.SymbolicatedPct == nil || *s.SymbolicatedPct != 100 || s.Frames == 0 {
				t.Errorf("symbolicated %v%% of %d frames", s.SymbolicatedPct, s.Frames)
			}
			if got := s.Debug["stacks.count"].Sum; got != json.Number(strconv.Itoa(s.Frames)) {
				t.Errorf("debug stacks.count sum %v, frames sent %d", got, s.Frames)
			}
		})
	}
}

func TestSymbolicateLimitAndSeed(t *testing.T) {
	emu, ts, dir := symbolStore(t, emulator.Options{}, 5)
	r, err := runSymJSON(t, symPlan(ts.URL, dir, "      limit: 12\n      batch_size: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Steps[0]; s.Metrics.Requests != 12 || s.Jobs != 24 {
		t.Errorf("limit 12, batch 2: %d requests, %d jobs", s.Metrics.Requests, s.Jobs)
	}
	if n := len(emu.Log()); n != 12 {
		t.Errorf("server saw %d requests", n)
	}
}

func TestSymbolicateRetriesOn503(t *testing.T) {
	emu, ts, dir := symbolStore(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "symbolicate", Every: 2, Status: 503, Limit: 3}}}, 6)
	r, err := runSymJSON(t, symPlan(ts.URL, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	counts := emu.Counts()
	if s.Metrics.Retries != 3 || counts[emulator.CountKey{Endpoint: "symbolicate", Status: 503}] != 3 {
		t.Errorf("retries %d, server sent %d × 503", s.Metrics.Retries, counts[emulator.CountKey{Endpoint: "symbolicate", Status: 503}])
	}
	if s.Metrics.Requests != 6 || len(s.Metrics.ByStatus) != 1 || s.Metrics.ByStatus[0].Status != 200 || s.Metrics.ByStatus[0].Requests != 6 {
		t.Errorf("requests %d, by status %+v", s.Metrics.Requests, s.Metrics.ByStatus)
	}
}

func TestSymbolicate400IsRecordedNotRetried(t *testing.T) {
	_, ts, dir := symbolStore(t, emulator.Options{}, 3)
	os.WriteFile(filepath.Join(dir, "float.json"), []byte(`{"memoryMap": [["xul.pdb", "AB"]], "stacks": [[[-1, 1.8446744073709552e+19], [0, 5]]], "version": 4}`), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"memoryMap": [`), 0o644)
	r, err := runSymJSON(t, symPlan(ts.URL, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if s.Metrics.Requests != 4 || s.Metrics.Retries != 0 || len(s.ErrorsByMessage) != 1 {
		t.Fatalf("requests %d, retries %d, errors %+v", s.Metrics.Requests, s.Metrics.Retries, s.ErrorsByMessage)
	}
	if e := s.ErrorsByMessage[0]; e.Status != 400 || e.Message != "Frame must be two integers" || e.Count != 1 || e.SampleFiles[0] != "float.json" {
		t.Errorf("error %+v", e)
	}
	if len(s.SkippedFiles) != 1 || !strings.HasSuffix(s.SkippedFiles[0].File, "broken.json") || !strings.Contains(s.SkippedFiles[0].Error, "not a JSON object") {
		t.Errorf("skipped %+v", s.SkippedFiles)
	}
	// sanitize rewrites the float: no 400, and the frame is counted.
	r, err = runSymJSON(t, symPlan(ts.URL, dir, "      sanitize: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Steps[0]; len(s.ErrorsByMessage) != 0 || s.SanitizedFrames != 1 {
		t.Errorf("sanitized: errors %+v, sanitized frames %d", s.ErrorsByMessage, s.SanitizedFrames)
	}
}

// TestSymbolicateRetriesABodyCutOff: an answer whose body breaks off
// after the headers is retried, like a 503.
func TestSymbolicateRetriesABodyCutOff(t *testing.T) {
	emu, _, dir := symbolStore(t, emulator.Options{}, 4)
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			io.Copy(io.Discard, r.Body)
			cutBody(w)
			return
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	r, err := runSymJSON(t, symPlan(ts.URL, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if s.Metrics.Requests != 4 || s.Metrics.Errors != 0 || s.Metrics.Retries != 2 || s.InvalidResponses != 0 || len(s.Metrics.ByStatus) != 1 || s.Metrics.ByStatus[0].Requests != 4 {
		t.Errorf("requests %d, errors %d, retries %d, invalid %d, by status %+v", s.Metrics.Requests, s.Metrics.Errors, s.Metrics.Retries, s.InvalidResponses, s.Metrics.ByStatus)
	}
	if n := hits.Load(); n != 6 {
		t.Errorf("server saw %d requests, want 6", n)
	}
}

// TestSymbolicateSkipsDirectories: a directory among the stack files (a
// folder named *.json, or anything a glob matches) is skipped and
// listed, like any other file that is not a stack.
func TestSymbolicateSkipsDirectories(t *testing.T) {
	_, ts, dir := symbolStore(t, emulator.Options{}, 3)
	for _, d := range []string{"nested.json", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		stacksDir string
		skipped   []string
	}{{dir, []string{"nested.json"}}, {dir + "/*", []string{"nested.json", "other"}}} {
		r, err := runSymJSON(t, symPlan(ts.URL, tt.stacksDir, ""))
		if err != nil {
			t.Fatalf("%s: %v", tt.stacksDir, err)
		}
		s := r.Steps[0]
		var skipped []string
		for _, f := range s.SkippedFiles {
			skipped = append(skipped, filepath.Base(f.File))
			if !strings.Contains(f.Error, "directory") {
				t.Errorf("%s: skipped %s for %q", tt.stacksDir, f.File, f.Error)
			}
		}
		if s.Metrics.Requests != 3 || s.Files != 3 || fmt.Sprint(skipped) != fmt.Sprint(tt.skipped) {
			t.Errorf("%s: requests %d, files %d, skipped %v; want 3, 3, %v", tt.stacksDir, s.Metrics.Requests, s.Files, skipped, tt.skipped)
		}
	}
}

// TestSymbolicateRealCorpus replays part of the real stacks: every file
// with a float offset gets 400 "Frame must be two integers", and none
// does with sanitize.
func TestSymbolicateRealCorpus(t *testing.T) {
	const corpus = "../shared/data/stacks"
	if _, err := os.Stat(corpus); err != nil {
		t.Skip("no real corpus at ../shared/data/stacks")
	}
	abs, err := filepath.Abs(corpus)
	if err != nil {
		t.Fatal(err)
	}
	glob := abs + "/0*.json"
	paths, _ := filepath.Glob(glob)
	floats := 0
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var body struct{ Stacks [][][]json.Number }
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	file:
		for _, st := range body.Stacks {
			for _, fr := range st {
				for _, n := range fr {
					if strings.ContainsAny(n.String(), ".eE") {
						floats++
						break file
					}
				}
			}
		}
	}
	if len(paths) < 100 || floats == 0 {
		t.Fatalf("%d files, %d with floats: not the corpus this test expects", len(paths), floats)
	}
	emu := emulator.New(emulator.Options{})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	r, err := runSymJSON(t, symPlan(ts.URL, glob, "      batch_size: 1\n      concurrency: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	got := 0
	for _, e := range s.ErrorsByMessage {
		if e.Status == 400 && e.Message == "Frame must be two integers" {
			got = e.Count
		}
	}
	if s.Metrics.Requests != int64(len(paths)) || got != floats {
		t.Errorf("%d requests for %d files; %d × 400 for %d files with float offsets", s.Metrics.Requests, len(paths), got, floats)
	}
	r, err = runSymJSON(t, symPlan(ts.URL, glob, "      batch_size: 5\n      concurrency: 4\n      sanitize: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Steps[0]; len(s.ErrorsByMessage) != 0 || s.SanitizedFrames < floats || s.InvalidResponses != 0 {
		t.Errorf("sanitized run: errors %+v, sanitized %d, invalid %d", s.ErrorsByMessage, s.SanitizedFrames, s.InvalidResponses)
	}
}

func TestSymbolicateDetectsMalformedResults(t *testing.T) {
	emu, _, dir := symbolStore(t, emulator.Options{}, 4)
	mutate := []func(map[string]any){
		func(m map[string]any) { m["results"] = m["results"].([]any)[1:] }, // a result missing
		func(m map[string]any) { // a frame missing
			st := m["results"].([]any)[0].(map[string]any)["stacks"].([]any)
			st[0] = st[0].([]any)[1:]
		},
		func(m map[string]any) { // found_modules keys wrong
			m["results"].([]any)[0].(map[string]any)["found_modules"] = map[string]any{"x/y": true}
		},
	}
	for i, mut := range mutate {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			emu.ServeHTTP(rec, r)
			var m map[string]any
			json.Unmarshal(rec.Body.Bytes(), &m)
			mut(m)
			json.NewEncoder(w).Encode(m)
		}))
		r, err := runSymJSON(t, symPlan(ts.URL, dir, "      batch_size: 2\n"))
		ts.Close()
		// Every answer was invalid: the step fails, and says why.
		if r == nil || err == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, "no answer was a valid symbolication") {
			t.Fatalf("mutation %d: %v", i, err)
		}
		if s := r.Steps[0]; s.InvalidResponses != 2 || s.InvalidSample == "" {
			t.Errorf("mutation %d: %d invalid responses (%q), want 2", i, s.InvalidResponses, s.InvalidSample)
		}
	}
}

func TestSymbolicateDebugForms(t *testing.T) {
	for _, eliot := range []bool{false, true} {
		t.Run(fmt.Sprint("eliot=", eliot), func(t *testing.T) {
			_, ts, dir := symbolStore(t, emulator.Options{Eliot: eliot}, 6)
			r, err := runSymJSON(t, symPlan(ts.URL, dir, "      batch_size: 3\n"))
			if err != nil {
				t.Fatal(err)
			}
			s := r.Steps[0]
			// One request at a time: each of the 3 modules is downloaded
			// exactly once, whichever form the debug takes.
			if d := s.Debug["downloads.count"]; d.Sum != "3" {
				t.Errorf("downloads.count %+v", d)
			}
			objects := 6 // a debug per job
			if eliot {
				objects = 2 // a debug per request
			}
			if d := s.Debug["time"]; d.Count != int64(objects) || s.DebugObjects != objects {
				t.Errorf("time %+v, debug objects %d: not %d debug objects", d, s.DebugObjects, objects)
			}
			if _, ok := s.Debug["modules.stacks_per_module"]; ok {
				t.Error("per-module map flattened")
			}
			if s.Conclusion.DownloadBytesPerS == nil || s.Conclusion.NotDownloadingTotalS == nil {
				t.Errorf("conclusion %+v", s.Conclusion)
			}
		})
	}
}

func TestSymbolicateNeverDividesByZero(t *testing.T) {
	emu := emulator.New(emulator.Options{})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	dir := t.TempDir()
	// Every frame has module index -1: no lookups, no downloads.
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(`{"memoryMap": [["xul.pdb", "AB"]], "stacks": [[[-1, 4294967295], [-1, 1]]], "version": 4}`), 0o644)
	r, err := runSymJSON(t, symPlan(ts.URL, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if s.Conclusion.DownloadBytesPerS != nil || s.SymbolicatedPct != nil || s.Debug["cache_lookups.count"].Sum != "0" {
		t.Errorf("conclusion %+v, symbolicated %v, debug %+v", s.Conclusion, s.SymbolicatedPct, s.Debug)
	}
	var table bytes.Buffer
	if err := s.SymbolicateResult.writeTable(&table); err != nil || strings.Contains(table.String(), "NaN") || strings.Contains(table.String(), "Inf") {
		t.Errorf("table: %v\n%s", err, table.String())
	}
}

// TestInvalidAnswersCountNoDebugObjects: an answer that does not fit its
// request is counted whole as invalid, its debug objects too: however far
// the check got before it failed, none of them is counted.
func TestInvalidAnswersCountNoDebugObjects(t *testing.T) {
	batch := []*stackFile{{name: "a", modules: []string{"m"}, frames: [][]int64{{0}}}, {name: "b", modules: []string{"m"}, frames: [][]int64{{0}}}}
	valid := `{"results":[{"stacks":[[{"frame":0,"module":"m","function":"f"}]],"found_modules":{"m":true},"debug":{"time":1}},` +
		`{"stacks":[[{"frame":0,"module":"m","function":"f"}]],"found_modules":{"m":true},"debug":{"time":2}}]}`
	badSecond := `{"results":[{"stacks":[[{"frame":0,"module":"m","function":"f"}]],"found_modules":{"m":true},"debug":{"time":1}},` +
		`{"stacks":[],"found_modules":{"m":true},"debug":{"time":2}}]}`
	for _, tc := range []struct {
		answer  string
		objects int
	}{{valid, 2}, {badSecond, 0}} {
		agg := newSymbolicateAgg(2, nil, pace{})
		var o symOutcome
		o.Status = 200
		o.checkV5([]byte(tc.answer), batch)
		agg.add(o)
		if got := agg.res.DebugObjects; got != tc.objects {
			t.Errorf("debug objects %d (invalid %q), want %d", got, o.invalid, tc.objects)
		}
	}
}
