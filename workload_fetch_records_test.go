package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

type fetchRecordsReport struct {
	Steps []struct {
		Kind  string  `json:"kind"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		FetchRecordsResult
		Zips []MadeZip `json:"zips"`
	} `json:"steps"`
}

// readRecords reads a written .json.gz record file.
func readRecords(t *testing.T, path string) (hits []uploadedHit, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Hits  []uploadedHit `json:"hits"`
		Total int           `json:"total"`
	}
	if err := json.NewDecoder(zr).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	return rec.Hits, rec.Total
}

// TestFetchRecordsFromTheEmulator: the emulator's UploadedSymbols API
// lists the uploads of the day asked (not try uploads), and the records
// written are what make-zips reads.
func TestFetchRecordsFromTheEmulator(t *testing.T) {
	emu, url := apiEmulator(t)
	day := time.Date(2017, 6, 8, 0, 0, 0, 0, time.UTC)
	in := emulator.Upload{User: "a@example.com", Filename: "symbols.zip", Size: 460007344, CreatedAt: day.Add(23*time.Hour + 49*time.Minute + 2667561*time.Microsecond),
		CompletedAt: day.Add(24 * time.Hour), SkippedKeys: []string{"v1/libnss3.so/C425B91721CC4FF5547BF636383BB71C0/libnss3.so.dbg.gz"},
		Files: []emulator.FileUpload{{Key: "v1/libnss3.so/C425B91721CC4FF5547BF636383BB71C0/libnss3.so.sym"}}}
	id := emu.AddUpload(in)
	emu.AddUpload(emulator.Upload{Try: true, CreatedAt: day.Add(time.Hour), Files: in.Files}) // a try upload
	emu.AddUpload(emulator.Upload{CreatedAt: day.Add(24 * time.Hour), Files: in.Files})       // the next day
	emu.AddUpload(emulator.Upload{CreatedAt: day.Add(-time.Nanosecond), Files: in.Files})     // the day before
	out := filepath.Join(t.TempDir(), "records")
	r, _, err := runPlanAs[fetchRecordsReport](t, t.Context(), fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - fetch-records: {url: %s/api/UploadedSymbols/, date: 2017-06-08, out_dir: %s}\n", url, url, out), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	path := filepath.Join(out, "2017-06-08.json.gz")
	if len(s.Files) != 1 || s.Files[0].Path != path || s.Files[0].Hits != 1 || s.Hits != 1 || s.OutDir != out || s.Files[0].Date != "2017-06-08" {
		t.Fatalf("result %+v", s.FetchRecordsResult)
	}
	if info, err := os.Stat(path); err != nil || info.Size() != s.Files[0].Bytes {
		t.Errorf("%s: %v, %d bytes reported", path, err, s.Files[0].Bytes)
	}
	hits, total := readRecords(t, path)
	if total != 1 || len(hits) != 1 {
		t.Fatalf("%d hits, total %d", len(hits), total)
	}
	h := hits[0]
	if h.ID != id || h.Size != in.Size || h.Date != "2017-06-08T23:49:02.667561+00:00" || h.zipName() != "symbols-2017-06-08T23_49_02.zip" ||
		!slices.Equal(h.Content.Added, []string{emulator.PublicBucket + "," + in.Files[0].Key}) ||
		!slices.Equal(h.Content.Existed, []string{emulator.PublicBucket + "," + in.SkippedKeys[0]}) {
		t.Errorf("hit %+v", h)
	}
	// The file is what make-zips reads.
	if got, err := loadRecords(filepath.Join(out, "*.json.gz")); err != nil || len(got) != 1 || got[0].ID != id {
		t.Errorf("make-zips reads %+v, %v", got, err)
	}
}

// TestFetchRecordsChain: with host: embedded, what a run uploads can be
// fetched as records, rebuilt into a zip from the embedded S3 (which the
// emulator writes uploads to) and uploaded again.
func TestFetchRecordsChain(t *testing.T) {
	out := t.TempDir()
	plan := fmt.Sprintf(`host: embedded
seed: 3
steps:
  - make-zips: {source: synthetic, save_dir: temp, zip_size: 64kb, sym_size: 16kb}
  - name: first
    upload: {delete_uploaded: true}
  - fetch-records: {out_dir: %s}
  - make-zips:
      source: uploaded-symbols
      records: %s/*.json.gz
      symbols_url: s3://org.mozilla.crash-stats.symbols-public/
      endpoint: embedded
      save_dir: temp
  - name: again
    upload: {delete_uploaded: true}
`, out, out)
	r, stdout, err := runPlanAs[fetchRecordsReport](t, t.Context(), plan, nil, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	fr := r.Steps[2]
	today := time.Now().UTC().Format(time.DateOnly)
	if fr.Kind != "fetch-records" || fr.Hits != 1 || len(fr.Files) != 1 || fr.Files[0].Date != today {
		t.Fatalf("fetch-records %+v", fr.FetchRecordsResult)
	}
	first, again := r.Steps[0].Zips[0], r.Steps[3].Zips
	if len(again) != 1 || again[0].Files != first.Files || first.Files == 0 {
		t.Errorf("rebuilt %+v from %+v", again, first)
	}
}

// TestFetchRecordsRefusesBadAnswers: a status other than 200 and an
// answer that is not UploadedSymbols' shape fail the step, name the
// problem and write no file; the plan's token is sent for each day of
// the range.
func TestFetchRecordsRefusesBadAnswers(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", analystToken)
	var mu sync.Mutex
	var asked []string
	var tokens []string
	answer := ""
	status := http.StatusOK
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Query().Get("start_date")+".."+r.URL.Query().Get("end_date"))
		tokens = append(tokens, r.Header.Get("Auth-Token"))
		a, st := answer, status
		mu.Unlock()
		w.WriteHeader(st)
		io.WriteString(w, a)
	}))
	defer ts.Close()
	good := `{"hits": [{"id": 1, "date": "2017-06-08T23:49:02.667561+00:00", "size": 5, "content": {"added": [], "existed": []}}], "total": 1}`
	for _, tt := range []struct {
		name, answer string
		status       int
		want         string
	}{
		{"status", `{"error": "Forbidden"}`, http.StatusForbidden, "403 Forbidden"},
		{"not json", `<html>`, http.StatusOK, "not an UploadedSymbols answer"},
		{"no hits", `{"results": [], "total": 0}`, http.StatusOK, "not an UploadedSymbols answer: no hits list"},
		{"hits not a list", `{"hits": {}, "total": 0}`, http.StatusOK, "not an UploadedSymbols answer"},
		{"no content", `{"hits": [{"id": 1, "date": "x", "size": 5}], "total": 1}`, http.StatusOK, "hits[0] has no content.added and content.existed lists"},
		{"total", strings.Replace(good, `"total": 1`, `"total": 2`, 1), http.StatusOK, "total is 2 but 1 hits came"},
		{"ok", good, http.StatusOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			answer, status, asked, tokens = tt.answer, tt.status, nil, nil
			mu.Unlock()
			out := t.TempDir()
			r, _, err := runPlanAs[fetchRecordsReport](t, t.Context(), fmt.Sprintf("host: http://127.0.0.1:1\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - fetch-records: {url: %s/api/UploadedSymbols/, from: 2017-06-07, to: 2017-06-08, out_dir: %s}\n", ts.URL, out), nil, nil)
			left, _ := os.ReadDir(out)
			if tt.want == "" {
				if err != nil || len(left) != 2 || r.Steps[0].Hits != 2 || !slices.Equal(asked, []string{"2017-06-07..2017-06-07", "2017-06-08..2017-06-08"}) {
					t.Fatalf("err %v, files %v, asked %v", err, left, asked)
				}
			} else {
				if err == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, tt.want) {
					t.Fatalf("err %v, report %+v; want %q", err, r, tt.want)
				}
				if len(left) != 0 || len(asked) != 1 {
					t.Errorf("files left %v after %v", left, asked)
				}
			}
			for _, tok := range tokens {
				if tok != analystToken {
					t.Errorf("Auth-Token %q sent", tok)
				}
			}
		})
	}
}

// TestOtherHostRefusesRecordsAndLogsElsewhere: with a -host that is not
// embedded, fetch-records' crash-stats URL and logs read from AWS are
// refused at validation, each with the key to set.
func TestOtherHostRefusesRecordsAndLogsElsewhere(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", analystToken)
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte("host: https://symbols.stage.mozaws.net\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n"+
		"  - fetch-records: {}\n  - analyze:\n      logs: {bucket: logs}\n  - analyze:\n      logs: {bucket: logs, endpoint: \"https://s3.example.com\"}\n"), 0o644)
	_, _, err := runArgs(t, terminal{}, "-validate", "-host", "https://symbols.dev.mozaws.net", plan)
	for _, want := range []string{
		"steps[0].fetch-records.url: https://crash-stats.mozilla.com/api/UploadedSymbols/ is not on -host https://symbols.dev.mozaws.net, which every request must stay on; set url to a URL on that host, or to embedded (line 4)",
		"steps[1].analyze.logs.endpoint: is required with -host https://symbols.dev.mozaws.net: without it, the logs are read from AWS",
		"steps[2].analyze.logs.endpoint: https://s3.example.com is not on -host",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant it to contain %s", err, want)
		}
	}
	// -validate shows where they would go without -host.
	stdout, _, err := runArgs(t, terminal{}, "-validate", plan)
	if err != nil || !strings.Contains(stdout, "#   fetch-records (fetch-records): https://crash-stats.mozilla.com/api/UploadedSymbols/\n") ||
		!strings.Contains(stdout, "#   analyze (analyze): s3://logs/ on AWS (us-west-2)\n") || !strings.Contains(stdout, "#   analyze-2 (analyze): s3://logs/ on https://s3.example.com\n") {
		t.Errorf("%v\n%s", err, stdout)
	}
}

// TestFetchRecordsEmulatorStatuses: against the emulator, a 503 is asked
// again and a token without the view-all permission fails the step with
// the emulator's message, leaving no file.
func TestFetchRecordsEmulatorStatuses(t *testing.T) {
	viewer, plain := analystToken, "abcdefabcdefabcdefabcdefabcdefab"
	emu := emulator.New(emulator.Options{Faults: []emulator.Fault{{Endpoint: "api", Every: 1, Limit: 1, Status: http.StatusServiceUnavailable}},
		Tokens: map[string]emulator.Token{viewer: {User: "v@example.com", Permissions: []string{emulator.PermViewAll}}, plain: {User: "p@example.com"}}})
	ts := httptest.NewServer(emu)
	defer ts.Close()
	for _, tt := range []struct {
		token, want string
		files       int
	}{{viewer, "", 1}, {plain, "403 Insufficient permissions: View all Symbol Uploads", 0}} {
		t.Setenv("TECKENRUN_TEST_TOKEN", tt.token)
		out := t.TempDir()
		r, _, err := runPlanAs[fetchRecordsReport](t, t.Context(), fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - fetch-records: {url: %s/api/UploadedSymbols/, out_dir: %s}\n", ts.URL, ts.URL, out), nil, nil)
		left, _ := os.ReadDir(out)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("view-all token: %v", err)
		case tt.want != "" && (err == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, tt.want)):
			t.Errorf("plain token: %v, want %q", err, tt.want)
		case len(left) != tt.files:
			t.Errorf("files %v, want %d", left, tt.files)
		}
	}
	c := emu.Counts()
	if c[emulator.CountKey{Endpoint: "api", Status: 503}] != 1 || c[emulator.CountKey{Endpoint: "api", Status: 200}] != 1 || c[emulator.CountKey{Endpoint: "api", Status: 403}] != 1 {
		t.Errorf("the emulator answered %v", c)
	}
}
